/**
 * @file Serves `Engine` over a message port: the RPC that `worker.js` runs in
 * its module Web Worker and that the page's `EngineClient` talks to.
 *
 * Requests are `{id, type, ...}` with `type` one of "load", "generate",
 * "abort", "embed" or "dispose". Replies carry the request's `id` and are
 * `{type: "progress", path, loaded, total, cached}` while files load,
 * `{type: "token", piece}` while text streams, then exactly one
 * `{type: "result", result}` or `{type: "error", error: {name, code, message}}`.
 * "abort" sends no reply of its own: it ends the request with the same `id`
 * (or `target`), whose result then has `finishReason: "abort"`. Requests run
 * one at a time in arrival order, because a model runs one pass at a time.
 * @module engine-host
 */

import { BackendUnavailableError, Engine } from "./engine.js";
import { show } from "./params.js";

const REQUEST_TYPES = ["load", "generate", "abort", "embed", "dispose"];
const LOAD_FIELDS = [
  "modelId",
  "manifest",
  "modelBaseUrl",
  "variant",
  "backend",
  "threads",
  "ortUrls",
  "cacheName",
];

/**
 * Error of a request that failed validation, sent with code "invalid-request".
 */
class InvalidRequestError extends TypeError {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "InvalidRequestError";
    this.code = "invalid-request";
  }
}

/**
 * Converts an error to the plain object sent in an "error" reply.
 * @param {Error} error
 * @returns {{name: string, code: string, message: string, backend?: string}}
 */
export function serializeError(error) {
  const name = error?.name ?? "Error";
  const payload = {
    name,
    code: error?.code ?? codeOf(error),
    message: error?.message ?? String(error),
  };
  if (error instanceof BackendUnavailableError) payload.backend = error.backend;
  return payload;
}

/**
 * Returns the reply code for an error without its own `code`.
 * @param {Error} error
 * @returns {string}
 */
function codeOf(error) {
  if (error instanceof BackendUnavailableError) return "backend-unavailable";
  if (error instanceof TypeError || error instanceof RangeError) return "invalid-argument";
  return "engine-error";
}

/**
 * Serves engines on `port`. It keeps at most one engine per task, so one
 * worker can hold the text-generation model and the embedding model.
 * @param {{postMessage: function(object): void,
 *   addEventListener: function(string, function): void, start?: function}} port
 *   A MessagePort or a DedicatedWorkerGlobalScope.
 * @param {{createFetchFile: function({baseUrl: string, variant: string,
 *   cacheName?: string, onProgress: function(object): void}): function}} deps
 *   `createFetchFile` builds the engine's `fetchFile` for one model (in the
 *   browser, the one from `cache.js`).
 * @returns {EngineHost}
 */
export function serveEngine(port, deps) {
  if (typeof deps?.createFetchFile !== "function") {
    throw new TypeError(`deps.createFetchFile must be a function, got ${show(deps?.createFetchFile)}.`);
  }
  const host = new EngineHost(port, deps.createFetchFile);
  port.addEventListener("message", (event) => host.receive(event.data));
  port.start?.();
  return host;
}

/**
 * Request queue and engines behind one port.
 */
export class EngineHost {
  /**
   * @param {{postMessage: function(object): void}} port
   * @param {function} createFetchFile
   */
  constructor(port, createFetchFile) {
    this.port = port;
    this.createFetchFile = createFetchFile;
    /** @type {Map<string, Engine>} Engines by task. */
    this.engines = new Map();
    /** @type {Map<*, AbortController>} Queued or running requests by id. */
    this.controllers = new Map();
    this.queue = Promise.resolve();
  }

  /**
   * Sends one reply.
   * @param {*} id
   * @param {string} type
   * @param {object} fields
   */
  reply(id, type, fields = {}) {
    this.port.postMessage({ ...fields, id, type });
  }

  /**
   * Handles one incoming message: answers invalid ones at once, aborts on
   * "abort", and queues every other request.
   * @param {unknown} message
   */
  receive(message) {
    const id = message?.id;
    if (typeof message !== "object" || message === null || !isRequestId(id)) {
      this.reply(null, "error", {
        error: serializeError(new InvalidRequestError(
          `A request must be an object with a number or string id, got ${show(message)}.`,
        )),
      });
      return;
    }
    if (!REQUEST_TYPES.includes(message.type)) {
      const error = new InvalidRequestError(
        `Request type must be one of ${show(REQUEST_TYPES)}, got ${show(message.type)}.`,
      );
      this.reply(id, "error", { error: serializeError(error) });
      return;
    }
    if (message.type === "abort") {
      this.controllers.get(message.target ?? id)?.abort();
      return;
    }
    if (this.controllers.has(id)) {
      const error = new InvalidRequestError(`Request id ${show(id)} is already in use.`);
      this.reply(id, "error", { error: serializeError(error) });
      return;
    }
    const controller = new AbortController();
    this.controllers.set(id, controller);
    this.queue = this.queue.then(() => this.run(message, controller.signal));
  }

  /**
   * Runs one queued request and sends its result or error.
   * @param {{id: *, type: string}} message
   * @param {AbortSignal} signal
   * @returns {Promise<void>}
   */
  async run(message, signal) {
    const { id, type } = message;
    try {
      if (signal.aborted && type !== "generate") {
        const error = new Error(`Request ${show(id)} was aborted before it started.`);
        error.code = "aborted";
        throw error;
      }
      const result = await this[type](message, signal);
      this.reply(id, "result", { result });
    } catch (error) {
      this.reply(id, "error", { error: serializeError(error) });
    } finally {
      this.controllers.delete(id);
    }
  }

  /**
   * Returns the engine for `task`, or throws naming what to load first.
   * @param {string} task
   * @param {unknown} modelId Optional id the request names.
   * @returns {Engine}
   */
  engineFor(task, modelId) {
    const engine = this.engines.get(task);
    if (!engine) {
      throw new InvalidRequestError(`No ${task} model is loaded; send a "load" request first.`);
    }
    if (modelId !== undefined && modelId !== engine.manifest.id) {
      throw new InvalidRequestError(
        `Model ${show(modelId)} is not loaded; the ${task} model is ${show(engine.manifest.id)}.`,
      );
    }
    return engine;
  }

  /**
   * Creates an engine, replacing the one loaded for the same task.
   * @param {object} message The "load" request.
   * @returns {Promise<object>} What the page needs to know of the engine.
   */
  async load(message) {
    rejectUnknownFields(message, LOAD_FIELDS);
    const { id, manifest, modelBaseUrl, variant, backend, threads, ortUrls } = message;
    const fetchFile = this.createFetchFile({
      baseUrl: modelBaseUrl,
      variant,
      ...(message.cacheName === undefined ? {} : { cacheName: message.cacheName }),
      onProgress: (progress) => this.reply(id, "progress", progress),
    });
    const engine = await Engine.create({
      manifest,
      modelBaseUrl,
      variant,
      backend,
      threads,
      fetchFile,
      ortUrls,
    });
    const task = engine.manifest.task;
    await this.engines.get(task)?.dispose();
    this.engines.set(task, engine);
    return {
      modelId: manifest.id,
      task,
      variant,
      backend: engine.backend,
      threads: engine.threads,
      sessionMs: engine.sessionMs,
    };
  }

  /**
   * Generates text, sending each released piece as a "token" reply.
   * @param {object} message The "generate" request.
   * @param {AbortSignal} signal
   * @returns {Promise<object>} The engine's generation result.
   */
  async generate(message, signal) {
    rejectUnknownFields(message, ["modelId", "messages", "prompt", "promptIds", "params"]);
    const engine = this.engineFor("text-generation", message.modelId);
    const request = { params: message.params, signal };
    for (const key of ["messages", "prompt", "promptIds"]) {
      if (message[key] !== undefined) request[key] = message[key];
    }
    request.onToken = (piece) => this.reply(message.id, "token", { piece });
    return engine.generate(request);
  }

  /**
   * Embeds texts with the loaded embedding model.
   * @param {object} message The "embed" request.
   * @returns {Promise<{embeddings: Float32Array[]}>}
   */
  async embed(message) {
    rejectUnknownFields(message, ["modelId", "texts"]);
    const engine = this.engineFor("feature-extraction", message.modelId);
    return { embeddings: await engine.embed(message.texts) };
  }

  /**
   * Disposes one model (by `modelId`) or every model.
   * @param {object} message The "dispose" request.
   * @returns {Promise<{disposed: string[]}>} Ids of the disposed models.
   */
  async dispose(message) {
    rejectUnknownFields(message, ["modelId"]);
    const disposed = [];
    for (const [task, engine] of this.engines) {
      if (message.modelId !== undefined && engine.manifest.id !== message.modelId) continue;
      await engine.dispose();
      this.engines.delete(task);
      disposed.push(engine.manifest.id);
    }
    return { disposed };
  }
}

/**
 * @param {unknown} id
 * @returns {boolean}
 */
function isRequestId(id) {
  return (typeof id === "number" && Number.isFinite(id)) || (typeof id === "string" && id !== "");
}

/**
 * Throws when a request has fields outside `known` (besides id and type).
 * @param {object} message
 * @param {string[]} known
 */
function rejectUnknownFields(message, known) {
  const unknown = Object.keys(message).filter(
    (key) => key !== "id" && key !== "type" && !known.includes(key),
  );
  if (unknown.length) {
    throw new InvalidRequestError(
      `A ${show(message.type)} request has unknown fields ${show(unknown.sort())}; ` +
        `the known fields are ${show(known)}.`,
    );
  }
}
