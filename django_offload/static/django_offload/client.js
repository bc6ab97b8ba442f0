/**
 * @file Device side of the task protocol (protocol version 1, described in
 * docs/protocol.md). `connect(runtime, config)` opens the WebSocket, sends
 * hello with the probe's capabilities and the user's consent, runs the tasks
 * the server leases to this page on `runtime.engine()`, evaluates each
 * output with `evaluators.js` and sends back scores and figures. The output
 * itself goes back only for server-delivery tasks. `run(url, data)` calls a
 * view decorated with `@offloaded` and resolves with the output.
 *
 * Events on `document`: `offload:connected` ({deviceId, model, reason}),
 * `offload:token` ({taskId, runId, token}), `offload:result` ({taskId,
 * runId, delivery, output, fallback}) and `offload:task-error` ({taskId,
 * runId, code}).
 * @module django_offload/client
 */

import { socketUrl } from "./config.js";
import { evaluate } from "./evaluators.js";

// Model that the embedding_similarity evaluator runs on the device.
const EMBEDDING_MODEL = "all-minilm-l6-v2";
import { getLogger } from "./log.js";

const log = getLogger("client");

/** Protocol version spoken by this client. */
export const PROTOCOL_VERSION = 1;

/** Reconnection and progress timing, in milliseconds. */
export const TIMING = Object.freeze({
  minBackoffMs: 500,
  maxBackoffMs: 30000,
  /** Minimum time between two `progress` frames of one task. */
  progressEveryMs: 5000,
  /** How long an unclaimed outcome of a page task is kept for `run()`. */
  keepOutcomeMs: 120000,
});

/** Close code of a socket without user or session: reconnecting cannot help. */
const CLOSE_NO_SESSION = 4403;

/** sessionStorage key of this tab's device id, so a reload keeps it. */
const DEVICE_KEY = "offload:device-id";
const CLIENT_NAME = "django-offload-js/1";

let current = null;

/** Error of `run()`: the view responded with an error or the task failed. */
export class OffloadRunError extends Error {
  /**
   * @param {string} code Error code such as "offload-unavailable".
   * @param {object|null} body JSON body of the response, when there is one.
   */
  constructor(code, body = null) {
    super(`django-offload: the offloaded request failed: ${code}`);
    this.name = "OffloadRunError";
    this.code = code;
    this.body = body;
  }
}

function emit(name, detail) {
  document.dispatchEvent(new CustomEvent(name, { detail }));
}

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function readSessionItem(key) {
  try {
    return sessionStorage.getItem(key);
  } catch {
    return null;
  }
}

function writeSessionItem(key, value) {
  try {
    sessionStorage.setItem(key, value);
  } catch (error) {
    log.debug("device id not remembered:", error?.message);
  }
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (match) return decodeURIComponent(match[1]);
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : null;
}

/** Creates a promise together with its resolve and reject functions. */
function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((yes, no) => {
    resolve = yes;
    reject = no;
  });
  return { promise, resolve, reject };
}

/** Maps an exception from the engine to a protocol error code. */
function errorCode(error) {
  if (error?.name === "AbortError") return "aborted";
  if (error?.name === "BackendUnavailableError") return "load-failed";
  if (error?.name === "EngineError") return "load-failed";
  if (error instanceof RangeError) return "out-of-memory";
  return "generation-failed";
}

/** Converts protocol generation params to the engine's names. */
function engineParams(params) {
  return {
    maxNewTokens: params.max_new_tokens,
    temperature: params.temperature,
    topK: params.top_k,
    topP: params.top_p,
    seed: params.seed ?? undefined,
    stop: params.stop,
  };
}

/** Decodes an output as JSON for a prompt version that has a schema. */
function parseOutput(output, schema) {
  if (schema === null || schema === undefined) return {};
  try {
    return { parsed: JSON.parse(output), parse_error: null };
  } catch {
    return { parsed: null, parse_error: "invalid-json" };
  }
}

/** One connection to the server; see `connect`. */
export class OffloadClient {
  /**
   * @param {object} runtime The runtime from `startRuntime`.
   * @param {object} config The runtime configuration (`socketPath` used).
   */
  constructor(runtime, config) {
    this.runtime = runtime;
    this.config = config;
    this.url = socketUrl(config, window.location);
    this.socket = null;
    this.deviceId = readSessionItem(DEVICE_KEY);
    this.welcome = null;
    this.attempt = 0;
    this.heartbeatTimer = null;
    this.closed = false;
    this.queue = Promise.resolve();
    /** @type {Map<string, {onToken: Function|null}>} runs by run id */
    this.runs = new Map();
    /** @type {Map<string, AbortController>} running tasks by task id */
    this.controllers = new Map();
    /** @type {Map<string, object>} page-task outcomes by task id */
    this.outcomes = new Map();
    this.onConsent = () => this.sendHello();
  }

  /** Opens the socket; reconnects by itself until `close()`. */
  open() {
    if (this.url === null) throw new Error("django-offload: config has no socketPath");
    document.addEventListener("offload:consent", this.onConsent);
    this.openSocket();
  }

  /** Closes the socket for good and stops reconnecting. */
  close() {
    this.closed = true;
    document.removeEventListener("offload:consent", this.onConsent);
    clearInterval(this.heartbeatTimer);
    this.socket?.close(1000);
  }

  openSocket() {
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.addEventListener("open", () => this.sendHello());
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", (event) => {
      if (event.code === CLOSE_NO_SESSION) {
        log.info("no session: sign in to run tasks on this device");
        this.closed = true;
      }
      this.scheduleReconnect(socket);
    });
  }

  scheduleReconnect(socket) {
    if (socket !== this.socket) return;
    clearInterval(this.heartbeatTimer);
    this.welcome = null;
    for (const controller of this.controllers.values()) controller.abort();
    if (this.closed) return;
    const ceiling = Math.min(TIMING.maxBackoffMs, TIMING.minBackoffMs * 2 ** this.attempt);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.attempt += 1;
    log.info(`socket closed; reconnecting in ${Math.round(delay)} ms`);
    setTimeout(() => this.openSocket(), delay);
  }

  send(message) {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify({ v: PROTOCOL_VERSION, ...message }));
    return true;
  }

  sendHello() {
    const hello = {
      type: "hello",
      capabilities: this.runtime.capabilities,
      consent: this.runtime.consent === true,
      client: CLIENT_NAME,
    };
    if (this.deviceId) hello.device_id = this.deviceId;
    this.send(hello);
  }

  receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      log.warn("server frame is not JSON; ignored");
      return;
    }
    const handler = {
      welcome: () => this.handleWelcome(message),
      task: () => this.handleTask(message),
      cancel: () => this.controllers.get(message.task_id)?.abort(),
      output: () => this.handleOutput(message),
      error: () => this.handleError(message),
      heartbeat: () => {},
    }[message.type];
    if (handler === undefined) log.warn("unknown frame type:", message.type);
    else handler();
  }

  handleWelcome(message) {
    this.welcome = message;
    this.attempt = 0;
    this.deviceId = message.device_id;
    writeSessionItem(DEVICE_KEY, message.device_id);
    clearInterval(this.heartbeatTimer);
    const every = Math.max(1, message.heartbeat_interval) * 1000;
    this.heartbeatTimer = setInterval(() => this.send({ type: "heartbeat" }), every);
    log.info("connected as device", message.device_id, message.reason ?? "");
    const detail = { deviceId: message.device_id, model: message.model, reason: message.reason };
    emit("offload:connected", detail);
  }

  handleTask(task) {
    const lease = { task_id: task.task_id, lease_token: task.lease_token };
    if (!this.welcome?.model) {
      this.send({ type: "error", ...lease, code: "unsupported-model" });
      return;
    }
    this.send({ type: "ack", ...lease });
    // The engine runs one generation at a time, so tasks queue up here.
    this.queue = this.queue.then(() => this.runTask(task, lease));
  }

  async runTask(task, lease) {
    const controller = new AbortController();
    this.controllers.set(task.task_id, controller);
    const runId = task.run_id ?? null;
    try {
      const started = performance.now();
      const generation = await this.generate(task, lease, runId, controller.signal);
      const latencyMs = performance.now() - started;
      this.send({ type: "progress", ...lease, stage: "evaluating" });
      const scores = await evaluate(task.evaluators, generation.text, {
        finishReason: generation.finishReason,
        latencyMs,
        ttftMs: generation.timings?.ttftMs,
        tokensPerSecond: generation.timings?.decodeTokensPerSecond,
        embed: (texts) => this.embed(texts),
      });
      this.send(this.resultFrame(task, lease, generation, scores, latencyMs));
      this.settle(task, { output: generation.text, fallback: null, runId });
    } catch (error) {
      const code = errorCode(error);
      log.warn("task failed on this device:", code, error?.message);
      this.send({ type: "error", ...lease, code });
      emit("offload:task-error", { taskId: task.task_id, runId, code });
    } finally {
      this.controllers.delete(task.task_id);
    }
  }

  /**
   * Embeds texts on this device with the embedding model, for the
   * `embedding_similarity` evaluator. The model loads on first use.
   * @param {string[]} texts Texts to embed.
   * @returns {Promise<Float32Array[]>} One normalised vector per text.
   */
  async embed(texts) {
    const engine = await this.runtime.engine(this.config.embeddingModel ?? EMBEDDING_MODEL);
    const { embeddings } = await engine.embed(texts);
    return embeddings;
  }

  /**
   * Forwards the runtime's download progress as `progress` frames, so a
   * long first download keeps the lease alive. Returns the stop function.
   */
  forwardLoading(lease) {
    let last = 0;
    const listener = (event) => {
      if (performance.now() - last < TIMING.progressEveryMs) return;
      last = performance.now();
      const { loaded, total } = event.detail ?? {};
      const frame = { type: "progress", ...lease, stage: "loading" };
      if (Number.isFinite(loaded) && Number.isFinite(total) && total > 0) {
        frame.fraction = Math.min(1, Math.max(0, loaded / total));
      }
      this.send(frame);
    };
    document.addEventListener("offload:progress", listener);
    return () => document.removeEventListener("offload:progress", listener);
  }

  async generate(task, lease, runId, signal) {
    const stopForwarding = this.forwardLoading(lease);
    let engine;
    try {
      engine = await this.runtime.engine(task.model_id);
    } finally {
      stopForwarding();
    }
    const onToken = this.runs.get(runId)?.onToken ?? null;
    let lastProgress = performance.now();
    let tokens = 0;
    return engine.generate({
      messages: task.messages,
      params: engineParams(task.params),
      signal,
      onToken: (token) => {
        tokens += 1;
        emit("offload:token", { taskId: task.task_id, runId, token });
        if (onToken) onToken(token);
        if (performance.now() - lastProgress >= TIMING.progressEveryMs) {
          lastProgress = performance.now();
          this.send({ type: "progress", ...lease, stage: "decoding", tokens });
        }
      },
    });
  }

  resultFrame(task, lease, generation, scores, latencyMs) {
    const usage = generation.usage ?? {};
    const frame = {
      type: "result",
      ...lease,
      scores,
      usage: {
        prompt_tokens: usage.promptTokens ?? 0,
        completion_tokens: usage.completionTokens ?? 0,
      },
      finish_reason: generation.finishReason,
      latency_ms: latencyMs,
      ttft_ms: generation.timings?.ttftMs ?? null,
      decode_tps: generation.timings?.decodeTokensPerSecond ?? null,
      backend: generation.backend,
      threads: generation.threads ?? 1,
    };
    // Page delivery: the output stays in this page and is never sent.
    if (task.delivery === "server") frame.output = generation.text;
    return frame;
  }

  /** Records the outcome of a page task for `run()` and the page. */
  settle(task, { output, fallback, runId }) {
    const schema = task.output_schema ?? null;
    const outcome = { output, fallback, ...parseOutput(output, schema) };
    emit("offload:result", {
      taskId: task.task_id,
      runId,
      delivery: task.delivery,
      output,
      fallback,
    });
    if (task.delivery !== "page") return;
    this.outcome(task.task_id).resolve(outcome);
  }

  handleOutput(message) {
    const task = { task_id: message.task_id, delivery: "page", output_schema: null };
    this.settle(task, { output: message.output, fallback: message.fallback, runId: null });
  }

  handleError(message) {
    if (message.task_id && message.code === "offload-unavailable") {
      this.outcome(message.task_id).reject(new OffloadRunError(message.detail ?? message.code));
      return;
    }
    log.warn("server rejected a frame:", message.code, message.field ?? "");
  }

  /** Returns the deferred outcome of a page task, created on first use. */
  outcome(taskId) {
    let entry = this.outcomes.get(taskId);
    if (entry === undefined) {
      entry = deferred();
      entry.promise.catch(() => {});
      this.outcomes.set(taskId, entry);
      setTimeout(() => this.outcomes.delete(taskId), TIMING.keepOutcomeMs);
    }
    return entry;
  }

  /**
   * POSTs to a view decorated with `@offloaded` and resolves with its
   * result. For page delivery the output comes from this page's own worker
   * (or the server's fallback) and the server never receives it.
   * @param {string} url URL of the decorated view.
   * @param {FormData|URLSearchParams|object} [data] Form fields to POST.
   * @param {{onToken?: (token: string) => void, signal?: AbortSignal}} [options]
   * @returns {Promise<object>} `{task_id, status, delivery, output, scores,
   *   usage, finish_reason, fallback}` plus `parsed` when the prompt has an
   *   output schema.
   * @throws {OffloadRunError} When the view responds with an error status or
   *   the task fails without a fallback.
   */
  async run(url, data = {}, { onToken = null, signal = undefined } = {}) {
    const runId = randomId();
    this.runs.set(runId, { onToken });
    try {
      const body = await this.post(url, data, runId, signal);
      if (body.delivery !== "page" || body.status !== "leased") return body;
      const outcome = await this.outcome(body.task_id).promise;
      this.outcomes.delete(body.task_id);
      return { ...body, ...outcome };
    } finally {
      this.runs.delete(runId);
    }
  }

  async post(url, data, runId, signal) {
    const headers = { "X-Offload-Run": runId };
    if (this.deviceId && this.welcome) headers["X-Offload-Device"] = this.deviceId;
    const token = csrfToken();
    if (token) headers["X-CSRFToken"] = token;
    const body =
      data instanceof FormData || data instanceof URLSearchParams
        ? data
        : new URLSearchParams(data);
    const response = await fetch(url, {
      method: "POST",
      body,
      headers,
      credentials: "same-origin",
      signal,
    });
    let json = null;
    try {
      json = await response.json();
    } catch {
      throw new OffloadRunError(`http-${response.status}`);
    }
    if (!response.ok) throw new OffloadRunError(json?.reason ?? `http-${response.status}`, json);
    return json;
  }
}

/**
 * Connects this page to the server's task socket and exposes `run()` on the
 * runtime (as `runtime.run`) when the runtime object allows it.
 * @param {object} runtime The started runtime (`capabilities`, `consent`,
 *   `engine()`).
 * @param {object} config The runtime configuration; `socketPath` is used.
 * @returns {OffloadClient} The open client.
 * @throws {Error} When the config has no socket path.
 */
export function connect(runtime, config) {
  const client = new OffloadClient(runtime, config);
  client.open();
  current = client;
  if (Object.isExtensible(runtime)) {
    runtime.run = (url, data, options) => client.run(url, data, options);
  }
  return client;
}

/**
 * Calls an `@offloaded` view through the client that `connect` opened;
 * see `OffloadClient.run`.
 * @param {string} url URL of the decorated view.
 * @param {FormData|URLSearchParams|object} [data] Form fields to POST.
 * @param {{onToken?: Function, signal?: AbortSignal}} [options]
 * @returns {Promise<object>} The result.
 * @throws {Error} When `connect` has not run yet.
 */
export function run(url, data, options) {
  if (current === null) {
    throw new Error("django-offload: run() needs connect(runtime, config) first");
  }
  return current.run(url, data, options);
}
