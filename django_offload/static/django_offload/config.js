/**
 * @file Configuration of the browser runtime: one object with every default,
 * merged with the JSON that the `{% offload_runtime %}` template tag renders
 * into `<script id="offload-config" type="application/json">`.
 * @module django_offload/config
 */

/**
 * Defaults of every configuration key. The template tag fills in the URLs.
 * @type {Readonly<object>}
 */
export const DEFAULTS = Object.freeze({
  /** Path of the WebSocket route (such as "/ws/offload/"), or null for none. */
  socketPath: null,
  /** URL of the JSON model manifest view. */
  manifestUrl: null,
  /** URL of the device fit view (POST capabilities, get a variant). */
  fitUrl: null,
  /** Model id that `runtime.engine()` loads when called without one. */
  model: "smollm2-135m-instruct",
  /** localStorage key that remembers the user's consent. */
  consentKey: "offload:consent",
  /** Logger level: "debug", "info", "warn", "error" or "silent". */
  logLevel: "warn",
  /** URL of the engine's module worker, or null when it is not installed. */
  workerUrl: null,
  /** URL of the socket client module, or null when it is not installed. */
  clientUrl: null,
  /**
   * ONNX Runtime Web builds by backend: `{webgpu: {module, wasmPaths:
   * {mjs, wasm}}, wasm: {module, wasmPaths}}`, all served from this site.
   */
  ort: null,
  /** URL of the vendored `@huggingface/tokenizers` module. */
  tokenizersUrl: null,
  /** URL of the vendored `@huggingface/jinja` module. */
  jinjaUrl: null,
  /** Cache Storage name for model files. */
  cacheName: "offload-models-v1",
  /** Download attempts per file; later attempts resume with HTTP Range. */
  downloadAttempts: 3,
  /** Consent widget text, translated on the server. */
  text: {
    title: "Run AI features on this device?",
    body: "The model is a one-time download of {size}.",
    accept: "Use this device",
    decline: "Not now",
    optOut: "Stop using this device for AI",
    downloading: "Downloading the model: {percent} %",
    ready: "AI features run on this device.",
    error: "The model could not be loaded: {message}",
  },
});

/**
 * Reads the config that the template tag rendered and merges it with the
 * defaults.
 * @param {Document} doc Document that contains `#offload-config`.
 * @returns {object} The merged configuration.
 * @throws {Error} When the element is missing or contains invalid JSON.
 */
export function readConfig(doc) {
  const element = doc.getElementById("offload-config");
  if (element === null) {
    throw new Error(
      "django-offload: no #offload-config element; add {% offload_runtime %} " +
        "to the page.",
    );
  }
  let values;
  try {
    values = JSON.parse(element.textContent);
  } catch (error) {
    throw new Error(`django-offload: #offload-config is not JSON: ${error.message}`);
  }
  return mergeConfig(values);
}

/**
 * Merges configuration values over the defaults; unknown keys are rejected.
 * @param {object} values Configuration values.
 * @returns {object} A new, frozen configuration object.
 * @throws {Error} When a key is unknown.
 */
export function mergeConfig(values) {
  for (const key of Object.keys(values)) {
    if (!(key in DEFAULTS)) {
      throw new Error(`django-offload: unknown config key ${JSON.stringify(key)}`);
    }
  }
  const text = { ...DEFAULTS.text, ...(values.text ?? {}) };
  return Object.freeze({ ...DEFAULTS, ...values, text });
}

/**
 * Builds the WebSocket URL from the config's path and the page's location,
 * choosing wss: on https pages.
 * @param {object} config Runtime configuration.
 * @param {Location} location Page location.
 * @returns {string|null} Absolute WebSocket URL, or null without a socket.
 */
export function socketUrl(config, location) {
  if (!config.socketPath) return null;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${config.socketPath}`;
}
