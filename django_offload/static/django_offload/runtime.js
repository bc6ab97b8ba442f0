/**
 * @file The page side of the browser runtime: probes the device, asks the
 * server which model variant fits, remembers the user's consent, downloads
 * the model files into Cache Storage with progress, and hands out one engine
 * per device. The tabs of a device elect a leader with Web Locks; only the
 * leader runs the engine worker, and the other tabs reach it through a
 * BroadcastChannel. When the leader closes, a waiting tab takes over.
 * Events on `document`: `offload:consent`, `offload:progress`,
 * `offload:ready`, `offload:error`, and `offload:leader` when this tab starts
 * running the device's engine.
 * @module django_offload/runtime
 */

import { checkQuota, deleteModelCache, fetchFile, isCached } from "./cache.js";
import { EngineClient, EngineError, workerTransport } from "./engine-client.js";
import { getLogger, setLevel } from "./log.js";
import { probeCapabilities } from "./probe.js";

const log = getLogger("runtime");

const LEADER_LOCK = "offload-engine-leader";
const DOWNLOAD_LOCK = "offload-model-download";
const CHANNEL_NAME = "offload-engine";
/** Events that the tab doing the work repeats to the other tabs. */
const SHARED_EVENTS = new Set(["offload:progress", "offload:ready", "offload:error"]);
const GRANTED = "granted";
const DENIED = "denied";

function absolute(url) {
  return url === null || url === undefined ? url : new URL(url, location.href).href;
}

function notRunnable(modelId, fit) {
  const message = `Model ${modelId} does not run on this device: ${fit.reason}`;
  return new EngineError(message, { code: fit.reason });
}

function emit(name, detail) {
  document.dispatchEvent(new CustomEvent(name, { detail }));
}

async function fetchJson(url, init) {
  const response = await fetch(url, { credentials: "same-origin", ...init });
  if (!response.ok) {
    throw new Error(`${url} returned HTTP ${response.status}`);
  }
  return response.json();
}

function readConsent(key) {
  try {
    const value = localStorage.getItem(key);
    if (value === GRANTED) return true;
    if (value === DENIED) return false;
  } catch (error) {
    log.warn("localStorage is not available:", error?.message);
  }
  return null;
}

function writeConsent(key, value) {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value ? GRANTED : DENIED);
  } catch (error) {
    log.warn("consent could not be remembered:", error?.message);
  }
}

/**
 * Runs a callback while holding a Web Lock, or directly where Web Locks
 * are missing.
 */
function withLock(name, callback) {
  if (!navigator.locks) return callback();
  return navigator.locks.request(name, callback);
}

/**
 * Elects the tab that owns the engine worker and relays requests and events
 * between tabs.
 */
class EngineBroker {
  constructor(runtime) {
    this.runtime = runtime;
    this.tabId = crypto.randomUUID();
    this.leader = false;
    this.elected = null;
    this.release = null;
    this.local = new Map();
    this.remote = new Map();
    this.remoteTransports = new Map();
    this.aborts = new Map();
    this.channel = null;
    if (typeof BroadcastChannel === "function") {
      this.channel = new BroadcastChannel(CHANNEL_NAME);
      this.channel.addEventListener("message", (event) => this.onChannel(event.data));
    }
  }

  /** Starts the election once; resolves true when this tab leads. */
  elect() {
    if (this.elected) return this.elected;
    if (!navigator.locks) {
      this.leader = true;
      this.elected = Promise.resolve(true);
      return this.elected;
    }
    this.elected = new Promise((resolve) => {
      navigator.locks.request(LEADER_LOCK, { ifAvailable: true }, (lock) => {
        if (!lock) {
          resolve(false);
          this.waitForLeadership();
          return undefined;
        }
        this.becomeLeader();
        resolve(true);
        return this.hold();
      });
    });
    return this.elected;
  }

  becomeLeader() {
    this.leader = true;
    emit("offload:leader", { leader: true });
  }

  hold() {
    return new Promise((release) => {
      this.release = release;
    });
  }

  waitForLeadership() {
    navigator.locks.request(LEADER_LOCK, () => {
      if (this.runtime.consent !== true) return undefined;
      log.info("this tab now runs the engine");
      this.becomeLeader();
      const message = "The tab that ran the engine was closed; retry.";
      const gone = new EngineError(message, { code: "leader-gone" });
      for (const transport of this.remoteTransports.values()) transport.client.fail(gone);
      this.remoteTransports.clear();
      this.remote.clear();
      return this.hold();
    });
  }

  /** Returns the engine for a model: local on the leader, relayed elsewhere. */
  async engine(modelId) {
    await this.elect();
    if (this.leader) return this.localEngine(modelId);
    if (!this.remote.has(modelId)) {
      const relayed = this.remoteEngine(modelId);
      relayed.catch(() => this.remote.delete(modelId));
      this.remote.set(modelId, relayed);
    }
    return this.remote.get(modelId);
  }

  localEngine(modelId) {
    if (!this.local.has(modelId)) {
      const created = this.createLocal(modelId);
      created.catch(() => this.local.delete(modelId));
      this.local.set(modelId, created);
    }
    return this.local.get(modelId);
  }

  async createLocal(modelId, retried = false) {
    const options = this.runtime.loadOptions(modelId);
    const client = new EngineClient(workerTransport(this.runtime.config.workerUrl));
    const onProgress = (message) => this.runtime.reportProgress(modelId, message);
    try {
      await client.load(options, onProgress);
    } catch (error) {
      client.transport.close();
      // A WebGPU adapter can pass the probe and still fail to create the
      // session. The runtime then picks WASM itself, never ORT's fallback.
      if (error?.code === "backend-unavailable" && options.backend === "webgpu" && !retried) {
        log.warn("WebGPU session failed, retrying on WASM:", error.message);
        await this.runtime.dropWebGpu();
        return this.createLocal(modelId, true);
      }
      throw error;
    }
    log.info("engine loaded", modelId, options.variant, options.backend);
    return client;
  }

  async remoteEngine(modelId) {
    if (!this.channel) {
      throw new EngineError("BroadcastChannel is missing, so tabs cannot share an engine");
    }
    const transport = {
      receive: null,
      onFailure: null,
      send: (message) => {
        this.channel.postMessage({ to: "leader", from: this.tabId, modelId, message });
      },
      close: () => this.remote.delete(modelId),
    };
    const client = new EngineClient(transport);
    transport.client = client;
    this.remoteTransports.set(modelId, transport);
    await client.load({ modelId });
    return client;
  }

  onChannel(data) {
    if (data?.kind === "event") {
      if (SHARED_EVENTS.has(data.name)) emit(data.name, data.detail);
    } else if (data?.to === "leader") {
      if (this.leader) this.serve(data);
    } else if (data?.to === this.tabId) {
      this.remoteTransports?.get(data.modelId)?.receive?.(data.message);
    }
  }

  /** Serves one request of another tab with this tab's engine. */
  async serve({ from, modelId, message }) {
    const reply = (answer) => {
      this.channel.postMessage({ to: from, modelId, message: answer });
    };
    const key = `${from}:${message.id}`;
    if (message.type === "abort") {
      this.aborts.get(key)?.abort();
      return;
    }
    try {
      const client = await this.localEngine(modelId);
      if (message.type === "load" || message.type === "dispose") {
        // Other tabs share the leader's engine, so only the leader disposes it.
        reply({ id: message.id, type: "result", result: client.info });
        return;
      }
      const controller = new AbortController();
      this.aborts.set(key, controller);
      const { id, type, ...payload } = message;
      const relay = (update) => reply({ ...update, id });
      const result = await client.request(type, payload, {
        onToken: (piece, update) => relay(update),
        onProgress: relay,
        signal: controller.signal,
      });
      reply({ id, type: "result", result });
    } catch (error) {
      const details = { message: error.message, code: error.code };
      reply({ id: message.id, type: "error", error: details });
    } finally {
      this.aborts.delete(key);
    }
  }

  /** Repeats an event to the other tabs. */
  share(name, detail) {
    this.channel?.postMessage({ kind: "event", name, detail });
  }

  /** Disposes this tab's engines and gives up leadership. */
  async dispose() {
    const engines = [...this.local.values()];
    this.local.clear();
    for (const pending of engines) {
      try {
        await (await pending).dispose();
      } catch (error) {
        log.debug("engine dispose failed:", error?.message);
      }
    }
    this.release?.();
    this.release = null;
    this.leader = false;
    this.elected = null;
  }
}

/**
 * The runtime of one page. Create it with `startRuntime`.
 */
export class Runtime {
  constructor(config, probed, models, fits) {
    this.config = config;
    this.probed = probed;
    this.models = models;
    this.fits = fits;
    this.consentValue = probed.consent;
    this.broker = new EngineBroker(this);
    this.preparing = new Map();
    // Another tab changed the consent: follow it here.
    window.addEventListener("storage", (event) => {
      if (event.key !== config.consentKey) return;
      this.applyConsent(readConsent(config.consentKey));
    });
  }

  /** The probe's capabilities JSON with the current consent. */
  get capabilities() {
    return { ...this.probed, consent: this.consentValue };
  }

  /** The user's consent: true, false, or null when not asked yet. */
  get consent() {
    return this.consentValue;
  }

  /** Remembers the user's consent; false also deletes the cached models. */
  set consent(value) {
    if (value !== true && value !== false && value !== null) {
      const shown = JSON.stringify(value);
      throw new TypeError(`consent must be true, false or null, got ${shown}`);
    }
    writeConsent(this.config.consentKey, value);
    this.applyConsent(value);
  }

  applyConsent(value) {
    if (value === this.consentValue) return;
    this.consentValue = value;
    emit("offload:consent", { consent: value });
    if (value === true) this.activate();
    else this.deactivate(value === false);
  }

  /**
   * Returns the model's description from the manifest view.
   * @param {string} [modelId] Model id; the config's model by default.
   * @returns {object|null} The description, or null when unknown.
   */
  model(modelId = this.config.model) {
    return this.models.find((model) => model.id === modelId) ?? null;
  }

  /**
   * Returns what would run on this device if the user consents.
   * @param {string} [modelId] Model id; the config's model by default.
   * @returns {{variant: ?string, backend: ?string, threads: number,
   *   reason: string}} The server's fit for this device.
   */
  possibleFit(modelId = this.config.model) {
    const unknown = { variant: null, backend: null, threads: 1, reason: "no-such-model" };
    return this.fits[modelId] ?? unknown;
  }

  /**
   * Returns what runs on this device now: nothing without consent.
   * @param {string} [modelId] Model id; the config's model by default.
   * @returns {{variant: ?string, backend: ?string, threads: number,
   *   reason: string}}
   */
  fit(modelId = this.config.model) {
    const fit = this.possibleFit(modelId);
    if (this.consentValue === true) return fit;
    return { ...fit, variant: null, backend: null, reason: "no-consent" };
  }

  /** Starts the election and the model download after consent. */
  activate() {
    this.broker.elect();
    this.prepare().catch(() => {});
  }

  async deactivate(deleteFiles) {
    await this.broker.dispose();
    this.preparing.clear();
    if (deleteFiles) await deleteModelCache(this.config.cacheName);
  }

  /** Returns the files a variant needs: the shared files and its weights. */
  files(modelId, variant) {
    const model = this.model(modelId);
    const files = Object.entries(model.files).map(([path, record]) => ({ path, ...record }));
    const { file, bytes, sha256, url } = model.variants[variant];
    files.push({ path: file, bytes, sha256, url });
    return files;
  }

  /**
   * Downloads the files of the fitting variant into Cache Storage, one tab
   * at a time, and emits `offload:progress` and then `offload:ready`.
   * @param {string} [modelId] Model id; the config's model by default.
   * @returns {Promise<object>} The `offload:ready` detail.
   * @throws {Error} Without consent or fit, or when a download fails (also
   *   emitted as `offload:error`).
   */
  prepare(modelId = this.config.model) {
    if (!this.preparing.has(modelId)) {
      const job = this.download(modelId);
      job.catch(() => this.preparing.delete(modelId));
      this.preparing.set(modelId, job);
    }
    return this.preparing.get(modelId);
  }

  async download(modelId) {
    const fit = this.fit(modelId);
    if (!fit.variant) throw notRunnable(modelId, fit);
    try {
      const done = await withLock(DOWNLOAD_LOCK, () => this.downloadFiles(modelId, fit));
      const detail = { model: modelId, ...fit, downloadedBytes: done };
      this.broadcast("offload:ready", detail);
      return detail;
    } catch (error) {
      this.broadcast("offload:error", {
        model: modelId,
        message: error.message,
        code: error.code ?? "error",
        url: error.url ?? null,
        status: error.status ?? null,
      });
      throw error;
    }
  }

  async downloadFiles(modelId, fit) {
    const { cacheName } = this.config;
    const missing = [];
    for (const file of this.files(modelId, fit.variant)) {
      const version = { sha256: file.sha256, cacheName };
      if (!(await isCached(absolute(file.url), version))) missing.push(file);
    }
    const total = missing.reduce((sum, file) => sum + file.bytes, 0);
    if (missing.length > 0) await checkQuota(total, absolute(this.model(modelId).baseUrl));
    let finished = 0;
    for (const file of missing) {
      await fetchFile(file.path, {
        bytes: file.bytes,
        sha256: file.sha256,
        baseUrl: absolute(this.model(modelId).baseUrl),
        cacheName,
        attempts: this.config.downloadAttempts,
        onProgress: ({ loaded }) => {
          const detail = { model: modelId, variant: fit.variant, file: file.path };
          this.broadcast("offload:progress", { ...detail, loaded: finished + loaded, total });
        },
      });
      finished += file.bytes;
    }
    return total;
  }

  /** Emits an event here and repeats it to the other tabs. */
  broadcast(name, detail) {
    emit(name, detail);
    this.broker.share(name, detail);
  }

  /**
   * Marks WebGPU unusable on this device, after a session failed to create
   * on it, and fetches the fit again so that later loads choose WASM.
   * @returns {Promise<void>}
   * @throws {Error} When the fit view fails.
   */
  async dropWebGpu() {
    if (this.probed.webgpu) {
      const error = "session creation failed";
      this.probed = { ...this.probed, webgpu: { ...this.probed.webgpu, device: false, error } };
    }
    const fitted = await fetchJson(this.config.fitUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ ...this.probed, consent: true }),
    });
    this.fits = fitted.models;
  }

  reportProgress(modelId, message) {
    const { id, type, ...detail } = message;
    this.broadcast("offload:progress", { model: modelId, ...detail });
  }

  /**
   * Builds the fields of the worker's "load" message, with absolute URLs.
   * @param {string} modelId Model id.
   * @returns {object} `{modelId, manifest, modelBaseUrl, variant, backend,
   *   threads, ortUrls: {module, mjs, wasm}, cacheName}`.
   */
  loadOptions(modelId) {
    const fit = this.fit(modelId);
    const model = this.model(modelId);
    if (!fit.variant || !model) throw notRunnable(modelId, fit);
    const ort = this.config.ort[fit.backend === "webgpu" ? "webgpu" : "wasm"];
    return {
      modelId,
      manifest: model,
      modelBaseUrl: absolute(model.baseUrl),
      variant: fit.variant,
      backend: fit.backend,
      threads: fit.threads,
      ortUrls: {
        module: absolute(ort.module),
        mjs: absolute(ort.wasmPaths.mjs),
        wasm: absolute(ort.wasmPaths.wasm),
      },
      cacheName: this.config.cacheName,
    };
  }

  /**
   * Returns the device's engine for a model, loading it on first use. The
   * tabs of a device share one engine.
   * @param {string} [modelId] Model id; the config's model by default.
   * @returns {Promise<EngineClient>} The engine proxy.
   * @throws {EngineError} Without consent, fit or worker.js, or when the
   *   engine fails to load.
   */
  async engine(modelId = this.config.model) {
    if (!this.config.workerUrl) {
      throw new EngineError("worker.js is not installed, so no engine can run", {
        code: "no-worker",
      });
    }
    this.loadOptions(modelId);
    await this.prepare(modelId);
    return this.broker.engine(modelId);
  }
}

/**
 * Starts the runtime: probes the device, loads the manifest and the fit,
 * and, when the user already consented, starts the model download.
 * @param {object} config Configuration from `config.js`.
 * @returns {Promise<Runtime>} The started runtime.
 * @throws {Error} When the manifest or fit view fails.
 */
export async function startRuntime(config) {
  setLevel(config.logLevel);
  const consent = readConsent(config.consentKey);
  const probed = await probeCapabilities({ consent });
  const manifest = await fetchJson(config.manifestUrl);
  const fitted = await fetchJson(config.fitUrl, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ ...probed, consent: true }),
  });
  const runtime = new Runtime(config, probed, manifest.models, fitted.models);
  log.info("runtime started", runtime.possibleFit());
  if (consent === true && runtime.possibleFit().variant) runtime.activate();
  return runtime;
}
