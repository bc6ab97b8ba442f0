/**
 * @file The device-side inference engine: a text-generation or an embedding
 * model run with ONNX Runtime Web on the WebGPU or WASM execution provider.
 *
 * Generation follows the server engine (`django_offload/engine`) step for
 * step: the model's own chat template and tokenizer, the decoder with its KV
 * cache in the optimum layout, the shared sampling algorithm, and stop strings
 * that are cut from the text. The engine never caches files itself: it reads
 * every file through the `fetchFile` function it is given.
 * @module engine
 */

import { Template } from "./vendor/jinja/index.js";
import { Tokenizer } from "./vendor/tokenizers/tokenizers.min.mjs";
import {
  show,
  validateCreateOptions,
  validateGenerateRequest,
  validateTexts,
} from "./params.js";
import { TokenSelector } from "./sampling.js";
import { IncrementalDecoder, StopStringFilter } from "./textstream.js";

// Texts embedded per model run; more are split into batches of this size.
const EMBED_BATCH_SIZE = 16;

// Prompt tokens per prefill run. The graph returns logits for every position
// (256 x 49152 float32 values, 50 MB, for SmolLM2), so a long prompt runs in
// chunks, as in the server engine, instead of holding them all at once.
const PREFILL_CHUNK = 256;

/**
 * Raised by `Engine.create` when the WebGPU execution provider cannot create
 * the session, so the caller can retry on WASM explicitly.
 */
export class BackendUnavailableError extends Error {
  /**
   * @param {string} backend
   * @param {unknown} cause
   */
  constructor(backend, cause) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    super(`The ${backend} backend could not create the session: ${detail}`, { cause });
    this.name = "BackendUnavailableError";
    this.backend = backend;
  }
}

// One ONNX Runtime module per URL; its `env` is global to that module.
const ortModules = new Map();

/**
 * Imports ONNX Runtime Web from `ortUrls.module` and configures its WASM
 * files and thread count, once per module.
 *
 * ONNX Runtime reads `numThreads` when it creates its first session, so a
 * later call with another count keeps the first one; the engine reports the
 * count in force.
 * @param {{module: string, mjs: string, wasm: string}} ortUrls
 * @param {number} threads
 * @returns {Promise<object>} The `ort` namespace.
 */
async function loadOrt(ortUrls, threads) {
  let pending = ortModules.get(ortUrls.module);
  if (!pending) {
    pending = import(ortUrls.module).then((ort) => {
      ort.env.wasm.numThreads = threads;
      ort.env.wasm.wasmPaths = { mjs: ortUrls.mjs, wasm: ortUrls.wasm };
      // The engine runs in a worker already, and a proxy would transfer
      // (detach) the input buffers the engine still reads.
      ort.env.wasm.proxy = false;
      ort.env.logLevel = "error";
      return ort;
    });
    ortModules.set(ortUrls.module, pending);
    pending.catch(() => ortModules.delete(ortUrls.module));
  }
  return pending;
}

/**
 * Parses a JSON file read through `fetchFile`.
 * @param {Uint8Array} bytes
 * @param {string} path For the error message.
 * @returns {object}
 */
function parseJson(bytes, path) {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new Error(`${path} is not valid JSON: ${error.message}`, { cause: error });
  }
}

/**
 * Returns the chat template source of a tokenizer config, or null.
 * @param {object} config Parsed tokenizer_config.json.
 * @returns {string|null}
 */
function chatTemplateSource(config) {
  let source = config.chat_template;
  if (Array.isArray(source)) {
    // Several named templates: the one named "default" is the chat one.
    source = source.find((item) => item?.name === "default")?.template;
  }
  return typeof source === "string" && source.trim() ? source : null;
}

/**
 * Returns the special tokens a chat template may refer to.
 * @param {object} config Parsed tokenizer_config.json.
 * @returns {Record<string, string>}
 */
function specialTokens(config) {
  const tokens = {};
  for (const name of ["bos_token", "eos_token", "unk_token", "pad_token"]) {
    // A special token is a string or an AddedToken object with "content".
    const value = config[name];
    const text = typeof value === "object" && value !== null ? value.content : value;
    if (typeof text === "string") tokens[name] = text;
  }
  return tokens;
}

/**
 * Resolves after pending tasks of the event loop have run.
 *
 * Model runs resolve without leaving the microtask queue, so a decode loop
 * that only awaits them never lets a worker receive its next message, such as
 * an abort. A MessageChannel round trip yields without the 4 ms clamp that
 * nested `setTimeout` calls get in browsers.
 * @returns {Promise<void>}
 */
function yieldToEventLoop() {
  if (typeof globalThis.scheduler?.yield === "function") return globalThis.scheduler.yield();
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}

/**
 * Milliseconds since an arbitrary origin, for durations.
 * @returns {number}
 */
function now() {
  return performance.now();
}

/**
 * An ONNX model loaded for generation (`text-generation`) or embeddings
 * (`feature-extraction`). One `generate` runs at a time.
 */
export class Engine {
  /**
   * Use `Engine.create`.
   * @param {object} fields
   */
  constructor(fields) {
    Object.assign(this, fields);
    this.busy = false;
    this.disposed = false;
    this.prefillChunk = PREFILL_CHUNK;
  }

  /**
   * Downloads the model files through `fetchFile` and creates the session.
   * @param {{manifest: object, modelBaseUrl: string, variant: string,
   *   backend: ("webgpu"|"wasm"), threads: number,
   *   fetchFile: function(string, {bytes: number, sha256: string}):
   *     Promise<Uint8Array>,
   *   ortUrls: {module: string, mjs: string, wasm: string}}} options
   * @returns {Promise<Engine>}
   * @throws {TypeError|RangeError} When an option is invalid.
   * @throws {BackendUnavailableError} When WebGPU cannot create the session.
   */
  static async create(options) {
    const checked = validateCreateOptions(options);
    const { manifest, variantInfo, backend, fetchFile } = checked;
    const started = now();

    const readFile = (path, info) =>
      fetchFile(path, { bytes: info?.bytes, sha256: info?.sha256 });
    const [tokenizerBytes, configBytes, modelBytes] = await Promise.all([
      readFile("tokenizer.json", manifest.files["tokenizer.json"]),
      readFile("tokenizer_config.json", manifest.files["tokenizer_config.json"]),
      readFile(variantInfo.file, variantInfo),
    ]);
    const tokenizerJson = parseJson(tokenizerBytes, "tokenizer.json");
    const tokenizerConfig = parseJson(configBytes, "tokenizer_config.json");
    // The sentence-embedding tokenizer.json has a fixed padding baked in,
    // and the engine pads its batches itself.
    tokenizerJson.padding = null;
    const tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
    const templateSource = chatTemplateSource(tokenizerConfig);

    const ort = await loadOrt(checked.ortUrls, checked.threads);
    const session = await Engine.createSession(ort, modelBytes, checked);
    return new Engine({
      ort,
      session,
      manifest,
      variant: checked.variant,
      backend,
      threads: ort.env.wasm.numThreads,
      tokenizer,
      template: templateSource ? new Template(templateSource) : null,
      specialTokens: specialTokens(tokenizerConfig),
      sessionMs: now() - started,
    });
  }

  /**
   * Creates the ONNX Runtime session on exactly the requested backend.
   * @param {object} ort
   * @param {Uint8Array} modelBytes
   * @param {object} checked Validated create options.
   * @returns {Promise<object>}
   */
  static async createSession(ort, modelBytes, checked) {
    const { manifest, backend } = checked;
    const options = {
      // Only the requested provider is listed, so ONNX Runtime cannot fall
      // back to another one without the caller knowing.
      executionProviders: [backend],
      graphOptimizationLevel: "all",
      logSeverityLevel: 3,
    };
    if (backend === "webgpu" && manifest.task === "text-generation") {
      // The KV cache stays on the GPU between steps; only logits come back.
      options.preferredOutputLocation = {};
      for (let layer = 0; layer < manifest.config.num_layers; layer++) {
        options.preferredOutputLocation[`present.${layer}.key`] = "gpu-buffer";
        options.preferredOutputLocation[`present.${layer}.value`] = "gpu-buffer";
      }
    }
    try {
      return await ort.InferenceSession.create(modelBytes, options);
    } catch (error) {
      if (backend === "webgpu") throw new BackendUnavailableError(backend, error);
      throw error;
    }
  }

  /**
   * Renders chat messages with the model's own chat template.
   * @param {{role: string, content: string}[]} messages Validated messages.
   * @param {boolean} [addGenerationPrompt=true]
   * @returns {string}
   * @throws {Error} When the model has no chat template.
   */
  renderChat(messages, addGenerationPrompt = true) {
    if (this.template === null) {
      throw new Error(
        `Model ${show(this.manifest.id)} has no chat_template in its ` +
          "tokenizer_config.json; pass prompt or promptIds instead of messages.",
      );
    }
    return this.template.render({
      messages,
      add_generation_prompt: addGenerationPrompt,
      ...this.specialTokens,
    });
  }

  /**
   * Encodes text to token ids without adding special tokens.
   * @param {string} text
   * @returns {number[]}
   */
  encode(text) {
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  /**
   * Decodes token ids to text, leaving special tokens out.
   * @param {number[]} ids
   * @returns {string}
   */
  decode(ids) {
    // The tokenizer rejects an empty list.
    if (ids.length === 0) return "";
    return this.tokenizer.decode(ids, {
      skip_special_tokens: true,
      clean_up_tokenization_spaces: false,
    });
  }

  /**
   * Throws unless the engine is alive and serves `task`.
   * @param {string} task
   * @param {string} method
   */
  requireTask(task, method) {
    if (this.disposed) throw new Error(`Engine.${method}() was called after dispose().`);
    if (this.manifest.task !== task) {
      throw new Error(
        `Engine.${method}() needs a ${task} model; ${show(this.manifest.id)} is ` +
          `${show(this.manifest.task)}.`,
      );
    }
  }

  /**
   * Generates text for a chat, a templated prompt or prompt token ids.
   * @param {{messages?: {role: string, content: string}[], prompt?: string,
   *   promptIds?: number[], params?: {maxNewTokens?: number,
   *   temperature?: number, topK?: number, topP?: number,
   *   seed?: (number|null), stop?: (string|string[])},
   *   onToken?: function(string): void, signal?: AbortSignal}} request
   * @returns {Promise<{text: string, tokenIds: number[],
   *   finishReason: ("stop"|"length"|"abort"),
   *   usage: {promptTokens: number, completionTokens: number},
   *   timings: {sessionMs: number, prefillMs: number, ttftMs: number,
   *     decodeMs: number, decodeTokensPerSecond: number},
   *   backend: string, threads: number, seed: number}>}
   * @throws {TypeError|RangeError} When an argument is invalid.
   * @throws {Error} When another generate() is running or the prompt does
   *   not fit the context.
   */
  async generate(request) {
    this.requireTask("text-generation", "generate");
    const config = this.manifest.config;
    const checked = validateGenerateRequest(request, config.vocab_size);
    if (this.busy) {
      throw new Error("Engine.generate() is already running; wait for its result first.");
    }
    this.busy = true;
    try {
      return await this.runGeneration(checked);
    } finally {
      this.busy = false;
    }
  }

  /**
   * Returns the prompt token ids of a validated request.
   * @param {{kind: string, value: *}} checked
   * @returns {number[]}
   */
  promptIds(checked) {
    if (checked.kind === "promptIds") return checked.value;
    const text = checked.kind === "messages" ? this.renderChat(checked.value) : checked.value;
    return this.encode(text);
  }

  /**
   * Runs the decode loop of one validated request.
   * @param {object} checked The output of `validateGenerateRequest`.
   * @returns {Promise<object>} The result described in `generate`.
   */
  async runGeneration(checked) {
    const started = now();
    const { params, onToken, signal } = checked;
    const prompt = this.promptIds(checked);
    const contextLength = this.manifest.context_length;
    if (Number.isInteger(contextLength) && prompt.length >= contextLength) {
      throw new RangeError(
        `The prompt has ${prompt.length} tokens; model ${show(this.manifest.id)} ` +
          `takes at most ${contextLength - 1} so that one token can be generated.`,
      );
    }
    const maxNewTokens = Number.isInteger(contextLength)
      ? Math.min(params.maxNewTokens, contextLength - prompt.length)
      : params.maxNewTokens;

    const selector = new TokenSelector(params);
    const decoder = new IncrementalDecoder((ids) => this.decode(ids));
    const filter = new StopStringFilter(params.stop);
    const eos = new Set(this.manifest.config.eos_token_ids);
    const emit = (piece) => {
      if (piece && onToken) onToken(piece);
    };
    const timings = { prefillMs: 0, ttftMs: 0, firstTokenAt: 0, lastTokenAt: 0 };
    const tokenIds = [];
    let finishReason = "length";

    const cache = new KvCache(this);
    try {
      let input = prompt;
      while (tokenIds.length < maxNewTokens) {
        if (tokenIds.length > 0) await yieldToEventLoop();
        if (signal?.aborted) {
          finishReason = "abort";
          break;
        }
        const stepStarted = now();
        const logits = await cache.step(input);
        const token = selector.select(logits);
        const tokenAt = now();
        if (tokenIds.length === 0) {
          timings.prefillMs = tokenAt - stepStarted;
          timings.ttftMs = tokenAt - started;
          timings.firstTokenAt = tokenAt;
        }
        timings.lastTokenAt = tokenAt;
        tokenIds.push(token);
        if (eos.has(token)) {
          finishReason = "stop";
          break;
        }
        emit(filter.push(decoder.push(token)));
        if (filter.stopped) {
          finishReason = "stop";
          break;
        }
        input = [token];
      }
    } finally {
      cache.dispose();
    }

    // Text held back as a possible incomplete character or stop string start.
    if (!filter.stopped) {
      emit(filter.push(decoder.flush()));
      if (filter.stopped) finishReason = "stop";
      else emit(filter.flush());
    }
    return this.generationResult({ prompt, tokenIds, filter, finishReason, timings, selector });
  }

  /**
   * Builds the result object of `generate`.
   * @param {object} state
   * @returns {object}
   */
  generationResult({ prompt, tokenIds, filter, finishReason, timings, selector }) {
    const decodeMs = tokenIds.length > 1 ? timings.lastTokenAt - timings.firstTokenAt : 0;
    return {
      text: filter.text,
      tokenIds,
      finishReason,
      usage: { promptTokens: prompt.length, completionTokens: tokenIds.length },
      timings: {
        sessionMs: this.sessionMs,
        prefillMs: timings.prefillMs,
        ttftMs: timings.ttftMs,
        decodeMs,
        decodeTokensPerSecond: decodeMs > 0 ? ((tokenIds.length - 1) * 1000) / decodeMs : 0,
      },
      backend: this.backend,
      threads: this.threads,
      seed: selector.seed,
    };
  }

  /**
   * Computes one L2-normalised, mean-pooled embedding per text.
   * @param {string[]} texts
   * @returns {Promise<Float32Array[]>}
   * @throws {TypeError} When `texts` is not an array of strings.
   */
  async embed(texts) {
    this.requireTask("feature-extraction", "embed");
    const checked = validateTexts(texts);
    const embeddings = [];
    for (let start = 0; start < checked.length; start += EMBED_BATCH_SIZE) {
      const batch = checked.slice(start, start + EMBED_BATCH_SIZE);
      embeddings.push(...(await this.embedBatch(batch)));
    }
    return embeddings;
  }

  /**
   * Embeds one batch of texts, padded to its longest text.
   * @param {string[]} texts
   * @returns {Promise<Float32Array[]>}
   */
  async embedBatch(texts) {
    const limit = this.manifest.context_length;
    const encoded = texts.map((text) => {
      const ids = this.tokenizer.encode(text).ids;
      // Keep the final separator token when the text is cut to the limit.
      return Number.isInteger(limit) && ids.length > limit
        ? [...ids.slice(0, limit - 1), ids[ids.length - 1]]
        : ids;
    });
    const width = Math.max(...encoded.map((ids) => ids.length));
    const size = texts.length * width;
    const ids = new BigInt64Array(size);
    const mask = new BigInt64Array(size);
    encoded.forEach((row, r) => {
      row.forEach((id, c) => {
        ids[r * width + c] = BigInt(id);
        mask[r * width + c] = 1n;
      });
    });
    const { Tensor } = this.ort;
    const dims = [texts.length, width];
    const feeds = {
      input_ids: new Tensor("int64", ids, dims),
      attention_mask: new Tensor("int64", mask, dims),
    };
    if (this.session.inputNames.includes("token_type_ids")) {
      feeds.token_type_ids = new Tensor("int64", new BigInt64Array(size), dims);
    }
    const outputs = await this.session.run(feeds);
    const hidden = outputs[this.session.outputNames[0]];
    const pooled = meanPool(hidden.data, hidden.dims, encoded);
    for (const name of this.session.outputNames) outputs[name].dispose?.();
    return pooled;
  }

  /**
   * Releases the session. The engine cannot be used afterwards.
   * @returns {Promise<void>}
   */
  async dispose() {
    if (this.disposed) return;
    this.disposed = true;
    await this.session.release();
  }
}

/**
 * Averages the hidden states over each text's tokens and L2-normalises them.
 * @param {Float32Array} data Hidden states, `[batch, width, hidden]`.
 * @param {number[]} dims
 * @param {number[][]} encoded Token ids per text, for their lengths.
 * @returns {Float32Array[]}
 */
function meanPool(data, dims, encoded) {
  const [, width, hiddenSize] = dims;
  return encoded.map((row, r) => {
    const sum = new Float64Array(hiddenSize);
    for (let c = 0; c < row.length; c++) {
      const offset = (r * width + c) * hiddenSize;
      for (let h = 0; h < hiddenSize; h++) sum[h] += data[offset + h];
    }
    let norm = 0;
    for (let h = 0; h < hiddenSize; h++) {
      sum[h] /= row.length;
      norm += sum[h] * sum[h];
    }
    norm = Math.max(Math.sqrt(norm), 1e-12);
    return Float32Array.from(sum, (value) => value / norm);
  });
}

/**
 * The decoder's KV cache across the steps of one generation, in the optimum
 * layout: inputs `past_key_values.N.key/value` and outputs `present.N.*`.
 */
class KvCache {
  /**
   * @param {Engine} engine
   */
  constructor(engine) {
    this.engine = engine;
    this.session = engine.session;
    this.ort = engine.ort;
    this.layers = engine.manifest.config.num_layers;
    this.length = 0;
    this.past = this.emptyPast();
  }

  /**
   * Returns zero-length past tensors for the first step.
   * @returns {Record<string, object>}
   */
  emptyPast() {
    const { num_kv_heads: heads, head_dim: headDim } = this.engine.manifest.config;
    const past = {};
    for (let layer = 0; layer < this.layers; layer++) {
      for (const part of ["key", "value"]) {
        past[`past_key_values.${layer}.${part}`] = new this.ort.Tensor(
          "float32",
          new Float32Array(0),
          [1, heads, 0, headDim],
        );
      }
    }
    return past;
  }

  /**
   * Runs the model on `ids` after the cached positions, in chunks of the
   * engine's `prefillChunk`, and returns the logits of the last position.
   * @param {number[]} ids
   * @returns {Promise<Float32Array>}
   */
  async step(ids) {
    const chunk = this.engine.prefillChunk;
    let logits;
    for (let start = 0; start < ids.length; start += chunk) {
      logits = await this.run(ids.slice(start, start + chunk));
    }
    return logits;
  }

  /**
   * Runs the model once on `ids` and returns the logits of the last position.
   * @param {number[]} ids
   * @returns {Promise<Float32Array>}
   */
  async run(ids) {
    const { Tensor } = this.ort;
    const total = this.length + ids.length;
    const feeds = {
      input_ids: new Tensor("int64", BigInt64Array.from(ids, BigInt), [1, ids.length]),
      attention_mask: new Tensor("int64", new BigInt64Array(total).fill(1n), [1, total]),
      ...this.past,
    };
    if (this.session.inputNames.includes("position_ids")) {
      const positions = BigInt64Array.from(ids, (_, i) => BigInt(this.length + i));
      feeds.position_ids = new Tensor("int64", positions, [1, ids.length]);
    }
    const outputs = await this.session.run(feeds);

    this.disposePast();
    this.past = {};
    for (let layer = 0; layer < this.layers; layer++) {
      for (const part of ["key", "value"]) {
        this.past[`past_key_values.${layer}.${part}`] = outputs[`present.${layer}.${part}`];
      }
    }
    this.length = total;

    const logits = outputs.logits;
    const vocab = logits.dims[2];
    const last = logits.data.slice((ids.length - 1) * vocab, ids.length * vocab);
    logits.dispose();
    return last;
  }

  /** Releases the past tensors; on WebGPU they hold GPU buffers. */
  disposePast() {
    for (const tensor of Object.values(this.past)) tensor.dispose();
  }

  /** Releases the cache at the end of a generation. */
  dispose() {
    this.disposePast();
    this.past = {};
  }
}
