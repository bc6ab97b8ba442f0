/**
 * @file Validation of everything the device engine receives from outside:
 * generation parameters, prompts and engine options. Every error names the
 * parameter and shows the value, except for prompt and message text, which is
 * user data and is described only by its type and size.
 * @module params
 */

/** Limits shared with the server engine's `GenerationParams`. */
export const MAX_STOP_STRINGS = 16;
export const MAX_STOP_LENGTH = 256;
export const MAX_SEED = 2 ** 32 - 1;
export const MESSAGE_ROLES = Object.freeze(["system", "user", "assistant", "tool"]);
export const BACKENDS = Object.freeze(["webgpu", "wasm"]);
export const MAX_THREADS = 64;

/** Defaults of `generate({params})`, as in the server engine. */
export const DEFAULT_PARAMS = Object.freeze({
  maxNewTokens: 128,
  temperature: 0,
  topK: 0,
  topP: 1,
  seed: null,
  stop: Object.freeze([]),
});

/**
 * Formats a value for an error message, shortened to 100 characters.
 * @param {unknown} value
 * @returns {string}
 */
export function show(value) {
  let text;
  if (value === undefined) text = "undefined";
  else if (typeof value === "function") text = `function ${value.name || "(anonymous)"}`;
  else if (typeof value === "bigint") text = `${value}n`;
  else if (typeof value === "number") text = String(value);
  else {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = Object.prototype.toString.call(value);
    }
  }
  return text.length > 100 ? `${text.slice(0, 97)}...` : text;
}

/**
 * Describes user data by type and size only, so its text never reaches an
 * error message that may be logged or sent to the server.
 * @param {unknown} value
 * @returns {string}
 */
function describe(value) {
  if (Array.isArray(value)) return value.length ? `an array of ${value.length}` : "an empty array";
  if (value === null) return "null";
  if (typeof value === "string") return `a string of ${value.length} characters`;
  return typeof value;
}

/**
 * @param {unknown} value
 * @returns {value is Record<string, unknown>}
 */
function isPlainObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Throws when `object` has keys outside `known`.
 * @param {Record<string, unknown>} object
 * @param {string[]} known
 * @param {string} name What the object is, for the message.
 */
function rejectUnknownKeys(object, known, name) {
  const unknown = Object.keys(object).filter((key) => !known.includes(key));
  if (unknown.length) {
    throw new TypeError(
      `${name} has unknown keys ${show(unknown.sort())}; the known keys are ${show(known)}.`,
    );
  }
}

/**
 * @param {unknown} stop
 * @returns {string[]}
 */
function validateStop(stop) {
  const list = typeof stop === "string" ? [stop] : stop;
  if (!Array.isArray(list)) {
    throw new TypeError(`params.stop must be a string or an array of strings, got ${show(stop)}.`);
  }
  if (list.length > MAX_STOP_STRINGS) {
    throw new RangeError(
      `params.stop accepts at most ${MAX_STOP_STRINGS} strings, got ${list.length}: ${show(list)}.`,
    );
  }
  list.forEach((item, index) => {
    if (typeof item !== "string" || item === "") {
      throw new TypeError(`params.stop[${index}] must be a non-empty string, got ${show(item)}.`);
    }
    // Counted in code points, as Python's len() counts them.
    const length = [...item].length;
    if (length > MAX_STOP_LENGTH) {
      throw new RangeError(
        `params.stop[${index}] is ${length} characters long; the maximum is ` +
          `${MAX_STOP_LENGTH}: ${show(item)}.`,
      );
    }
  });
  return [...list];
}

/**
 * Validates generation parameters and fills in the defaults.
 * @param {unknown} params `{maxNewTokens, temperature, topK, topP, seed, stop}`,
 *   every key optional.
 * @returns {{maxNewTokens: number, temperature: number, topK: number,
 *   topP: number, seed: (number|null), stop: string[]}}
 * @throws {TypeError|RangeError} Naming the first invalid parameter.
 */
export function validateParams(params = {}) {
  if (!isPlainObject(params)) {
    throw new TypeError(`params must be an object, got ${show(params)}.`);
  }
  rejectUnknownKeys(params, Object.keys(DEFAULT_PARAMS), "params");
  const merged = { ...DEFAULT_PARAMS };
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined) merged[key] = value;
  }
  const { maxNewTokens, temperature, topK, topP, seed } = merged;

  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) {
    throw new RangeError(
      `params.maxNewTokens must be an integer of at least 1, got ${show(maxNewTokens)}.`,
    );
  }
  if (typeof temperature !== "number" || !Number.isFinite(temperature) || temperature < 0) {
    throw new RangeError(
      `params.temperature must be a finite number of at least 0 (0 means greedy), ` +
        `got ${show(temperature)}.`,
    );
  }
  if (!Number.isInteger(topK) || topK < 0) {
    throw new RangeError(
      `params.topK must be an integer of at least 0 (0 keeps every token), got ${show(topK)}.`,
    );
  }
  if (typeof topP !== "number" || !(topP > 0 && topP <= 1)) {
    throw new RangeError(
      `params.topP must be a number greater than 0 and at most 1, got ${show(topP)}.`,
    );
  }
  if (seed !== null && !(Number.isInteger(seed) && seed >= 0 && seed <= MAX_SEED)) {
    throw new RangeError(
      `params.seed must be null or an integer from 0 to ${MAX_SEED}, got ${show(seed)}.`,
    );
  }
  return { maxNewTokens, temperature, topK, topP, seed, stop: validateStop(merged.stop) };
}

/**
 * Validates chat messages and returns them as plain `{role, content}` objects.
 * @param {unknown} messages
 * @returns {{role: string, content: string}[]}
 * @throws {TypeError} Naming the invalid message and field.
 */
export function validateMessages(messages) {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new TypeError(`messages must be a non-empty array of objects, got ${describe(messages)}.`);
  }
  return messages.map((message, index) => {
    if (!isPlainObject(message)) {
      throw new TypeError(`messages[${index}] must be an object, got ${describe(message)}.`);
    }
    rejectUnknownKeys(message, ["role", "content"], `messages[${index}]`);
    if (!MESSAGE_ROLES.includes(message.role)) {
      throw new TypeError(
        `messages[${index}].role must be one of ${show(MESSAGE_ROLES)}, got ${show(message.role)}.`,
      );
    }
    if (typeof message.content !== "string") {
      throw new TypeError(
        `messages[${index}].content must be a string, got ${describe(message.content)}.`,
      );
    }
    return { role: message.role, content: message.content };
  });
}

/**
 * Validates token ids given as the prompt.
 * @param {unknown} ids
 * @param {number} vocabSize
 * @returns {number[]}
 * @throws {TypeError|RangeError} Naming the first invalid id.
 */
export function validatePromptIds(ids, vocabSize) {
  if (!Array.isArray(ids) || ids.length === 0) {
    throw new TypeError(`promptIds must be a non-empty array of token ids, got ${describe(ids)}.`);
  }
  ids.forEach((id, index) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new RangeError(
        `promptIds[${index}] must be an integer from 0 to ${vocabSize - 1}, got ${show(id)}.`,
      );
    }
  });
  return [...ids];
}

/**
 * Validates the arguments of `Engine.generate`.
 *
 * Exactly one of `messages` (chat messages rendered with the model's chat
 * template), `prompt` (text already templated) or `promptIds` (token ids) is
 * required.
 * @param {unknown} request
 * @param {number} vocabSize
 * @returns {{kind: "messages"|"prompt"|"promptIds", value: *, params: object,
 *   onToken: (function|null), signal: (AbortSignal|null)}}
 * @throws {TypeError|RangeError} Naming the invalid argument.
 */
export function validateGenerateRequest(request, vocabSize) {
  if (!isPlainObject(request)) {
    throw new TypeError(`generate() needs an options object, got ${describe(request)}.`);
  }
  const known = ["messages", "prompt", "promptIds", "params", "onToken", "signal"];
  rejectUnknownKeys(request, known, "generate() options");
  const given = ["messages", "prompt", "promptIds"].filter((key) => request[key] !== undefined);
  if (given.length !== 1) {
    throw new TypeError(
      `generate() needs exactly one of messages, prompt or promptIds, got ${show(given)}.`,
    );
  }
  const kind = given[0];
  let value;
  if (kind === "messages") value = validateMessages(request.messages);
  else if (kind === "promptIds") value = validatePromptIds(request.promptIds, vocabSize);
  else if (typeof request.prompt !== "string" || request.prompt === "") {
    throw new TypeError(`prompt must be a non-empty string, got ${describe(request.prompt)}.`);
  } else value = request.prompt;

  const { onToken = null, signal = null } = request;
  if (onToken !== null && typeof onToken !== "function") {
    throw new TypeError(`onToken must be a function or null, got ${show(onToken)}.`);
  }
  if (signal !== null && !(typeof signal === "object" && "aborted" in signal)) {
    throw new TypeError(`signal must be an AbortSignal or null, got ${show(signal)}.`);
  }
  return { kind, value, params: validateParams(request.params), onToken, signal };
}

/**
 * Validates a string argument that must be a non-empty URL or path.
 * @param {unknown} value
 * @param {string} name
 * @returns {string}
 */
function requireString(value, name) {
  if (typeof value !== "string" || value === "") {
    throw new TypeError(`${name} must be a non-empty string, got ${show(value)}.`);
  }
  return value;
}

/**
 * Validates the manifest fields the engine reads.
 * @param {unknown} manifest
 * @returns {object} The manifest itself.
 * @throws {TypeError} Naming the missing or invalid field.
 */
export function validateManifest(manifest) {
  if (!isPlainObject(manifest)) {
    throw new TypeError(`manifest must be an object, got ${show(manifest)}.`);
  }
  const id = requireString(manifest.id, "manifest.id");
  if (!["text-generation", "feature-extraction"].includes(manifest.task)) {
    throw new TypeError(
      `manifest.task of ${show(id)} must be "text-generation" or "feature-extraction", ` +
        `got ${show(manifest.task)}.`,
    );
  }
  for (const key of ["variants", "files"]) {
    if (!isPlainObject(manifest[key])) {
      throw new TypeError(
        `manifest.${key} of ${show(id)} must be an object, got ${show(manifest[key])}.`,
      );
    }
  }
  if (!isPlainObject(manifest.config)) {
    throw new TypeError(`manifest.config of ${show(id)} must be an object, got ${show(manifest.config)}.`);
  }
  if (manifest.task === "text-generation") {
    const config = manifest.config;
    for (const key of ["num_layers", "num_kv_heads", "head_dim", "vocab_size"]) {
      if (!Number.isInteger(config[key]) || config[key] < 1) {
        throw new TypeError(
          `manifest.config.${key} of ${show(id)} must be a positive integer, got ${show(config[key])}.`,
        );
      }
    }
    const eos = config.eos_token_ids;
    if (!Array.isArray(eos) || !eos.every((item) => Number.isInteger(item) && item >= 0)) {
      throw new TypeError(
        `manifest.config.eos_token_ids of ${show(id)} must be an array of token ids, got ${show(eos)}.`,
      );
    }
  }
  return manifest;
}

/**
 * Validates the options of `Engine.create`.
 * @param {unknown} options
 * @returns {{manifest: object, variant: string, variantInfo: object,
 *   modelBaseUrl: string, backend: string, threads: number,
 *   fetchFile: function, ortUrls: {module: string, mjs: string, wasm: string}}}
 * @throws {TypeError|RangeError} Naming the invalid option.
 */
export function validateCreateOptions(options) {
  if (!isPlainObject(options)) {
    throw new TypeError(`Engine.create() needs an options object, got ${show(options)}.`);
  }
  const known = ["manifest", "modelBaseUrl", "variant", "backend", "threads", "fetchFile", "ortUrls"];
  rejectUnknownKeys(options, known, "Engine.create() options");
  const manifest = validateManifest(options.manifest);
  const { variant, backend, threads, fetchFile, ortUrls } = options;

  const variantInfo = manifest.variants[variant];
  if (typeof variant !== "string" || !isPlainObject(variantInfo)) {
    throw new RangeError(
      `variant must be one of ${show(Object.keys(manifest.variants))} for ${show(manifest.id)}, ` +
        `got ${show(variant)}.`,
    );
  }
  requireString(variantInfo.file, `manifest.variants.${variant}.file`);
  if (!BACKENDS.includes(backend)) {
    throw new RangeError(`backend must be one of ${show(BACKENDS)}, got ${show(backend)}.`);
  }
  const listed = variantInfo.backends;
  if (Array.isArray(listed) && !listed.includes(backend)) {
    throw new RangeError(
      `backend ${show(backend)} is not listed for variant ${show(variant)} of ` +
        `${show(manifest.id)}; its backends are ${show(listed)}.`,
    );
  }
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_THREADS) {
    throw new RangeError(`threads must be an integer from 1 to ${MAX_THREADS}, got ${show(threads)}.`);
  }
  if (typeof fetchFile !== "function") {
    throw new TypeError(`fetchFile must be a function, got ${show(fetchFile)}.`);
  }
  if (!isPlainObject(ortUrls)) {
    throw new TypeError(`ortUrls must be an object {module, mjs, wasm}, got ${show(ortUrls)}.`);
  }
  rejectUnknownKeys(ortUrls, ["module", "mjs", "wasm"], "ortUrls");
  for (const key of ["module", "mjs", "wasm"]) requireString(ortUrls[key], `ortUrls.${key}`);
  return {
    manifest,
    variant,
    variantInfo,
    modelBaseUrl: requireString(options.modelBaseUrl, "modelBaseUrl"),
    backend,
    threads,
    fetchFile,
    ortUrls: { ...ortUrls },
  };
}

/**
 * Validates the texts given to `Engine.embed`.
 * @param {unknown} texts
 * @returns {string[]}
 * @throws {TypeError} Naming the first invalid text.
 */
export function validateTexts(texts) {
  if (!Array.isArray(texts) || texts.length === 0) {
    throw new TypeError(`texts must be a non-empty array of strings, got ${describe(texts)}.`);
  }
  texts.forEach((text, index) => {
    if (typeof text !== "string") {
      throw new TypeError(`texts[${index}] must be a string, got ${describe(text)}.`);
    }
  });
  return [...texts];
}
