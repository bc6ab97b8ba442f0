/**
 * @file Page-side proxy of the engine worker. `EngineClient` sends the
 * worker's RPC messages (`{id, type: "load" | "generate" | "abort" |
 * "embed" | "dispose", ...}`) over a transport and resolves each request
 * when its `result` or `error` message arrives; `token` and `progress`
 * messages go to the request's callbacks. Two transports exist: a module
 * Worker owned by this tab, and a BroadcastChannel to the tab that owns it.
 * @module django_offload/engine-client
 */

/**
 * Error reported by the engine, or raised when its worker or tab is gone.
 */
export class EngineError extends Error {
  /**
   * @param {string} message What failed.
   * @param {object} [details] `{name, code}` from the worker, if any.
   */
  constructor(message, details = {}) {
    super(message);
    this.name = "EngineError";
    this.code = details.code ?? details.name ?? "engine-error";
  }
}

/**
 * Proxy of one engine, reached through a transport with `send(message)`,
 * a `receive` callback property and `close()`.
 */
export class EngineClient {
  /**
   * @param {{send: Function, receive: Function|null, close: Function}} transport
   */
  constructor(transport) {
    this.transport = transport;
    this.pending = new Map();
    this.nextId = 1;
    this.info = null;
    transport.receive = (message) => this.handle(message);
    transport.onFailure = (error) => this.fail(error);
  }

  /**
   * Sends one request and returns a promise of its result.
   * @param {string} type Request type.
   * @param {object} [payload] Request fields.
   * @param {{onToken?: Function, onProgress?: Function, signal?: AbortSignal}}
   *   [callbacks]
   * @returns {Promise<object>} The `result` message's `result` field.
   */
  request(type, payload = {}, callbacks = {}) {
    const id = this.nextId++;
    const { signal } = callbacks;
    if (signal?.aborted) {
      return Promise.reject(signal.reason ?? new EngineError("aborted"));
    }
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, ...callbacks });
      const abort = () => this.transport.send({ id, type: "abort" });
      signal?.addEventListener("abort", abort, { once: true });
      this.transport.send({ ...payload, id, type });
    });
  }

  /** Routes one message from the worker to its pending request. */
  handle(message) {
    const entry = this.pending.get(message?.id);
    if (!entry) return;
    if (message.type === "token") entry.onToken?.(message.piece, message);
    else if (message.type === "progress") entry.onProgress?.(message);
    else if (message.type === "result") {
      this.pending.delete(message.id);
      entry.resolve(message.result);
    } else if (message.type === "error") {
      this.pending.delete(message.id);
      const error = message.error ?? {};
      entry.reject(new EngineError(error.message ?? String(error), error));
    }
  }

  /**
   * Rejects every pending request, when the worker or the owning tab is gone.
   * @param {Error} error Reason given to the callers.
   */
  fail(error) {
    for (const entry of this.pending.values()) entry.reject(error);
    this.pending.clear();
  }

  /**
   * Loads the model in the worker; see the worker's "load" message.
   * @param {object} options Load fields: modelId, manifest, modelBaseUrl,
   *   variant, backend, threads, ortUrls, cacheName.
   * @param {Function} [onProgress] Receives download progress messages.
   * @returns {Promise<object>} What the worker reports about the engine.
   */
  async load(options, onProgress) {
    this.info = await this.request("load", options, { onProgress });
    return this.info;
  }

  /**
   * Generates text; arguments as in the engine's `generate`, with
   * `onToken(piece, message)` called for each piece of text.
   * @param {{messages?: object[], prompt?: string, promptIds?: number[],
   *   params?: object, onToken?: Function, signal?: AbortSignal}} options
   * @returns {Promise<object>} `{text, tokenIds, finishReason, usage, timings,
   *   backend, threads}`.
   */
  generate({ onToken, signal, ...request }) {
    return this.request("generate", request, { onToken, signal });
  }

  /**
   * Embeds texts with an embedding model.
   * @param {string[]} texts Texts to embed.
   * @returns {Promise<object>} The worker's embedding result.
   */
  embed(texts) {
    return this.request("embed", { texts });
  }

  /**
   * Disposes the engine and closes the transport.
   * @returns {Promise<void>}
   */
  async dispose() {
    try {
      await this.request("dispose");
    } finally {
      this.fail(new EngineError("The engine was disposed", { code: "disposed" }));
      this.transport.close();
    }
  }
}

/**
 * Transport to a module Worker owned by this tab.
 * @param {string} url URL of worker.js.
 * @returns {{send: Function, receive: Function|null, close: Function,
 *   worker: Worker}}
 */
export function workerTransport(url) {
  const worker = new Worker(url, { type: "module" });
  const transport = {
    worker,
    receive: null,
    onFailure: null,
    send: (message) => worker.postMessage(message),
    close: () => worker.terminate(),
  };
  worker.addEventListener("message", (event) => transport.receive?.(event.data));
  worker.addEventListener("error", (event) => {
    transport.onFailure?.(new EngineError(`worker.js failed: ${event.message}`));
  });
  return transport;
}
