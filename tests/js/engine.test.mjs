/**
 * @file Tests of the device engine on the real SmolLM2 fp32 model with
 * onnxruntime-web's WASM build in Node.
 *
 * They need the model store (OFFLOAD_MODEL_STORE, default offload_models/) with
 * smollm2-135m-instruct and skip with the reason when it is absent. Greedy
 * output ids are compared with tests/data/smollm2_reference.json, recorded
 * from the same GGUF weights with PyTorch.
 */

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

import { BackendUnavailableError, Engine } from "../../django_offload/static/django_offload/engine.js";

const STATIC = fileURLToPath(new URL("../../django_offload/static/django_offload/", import.meta.url));
const ORT = join(STATIC, "vendor", "onnxruntime-web");
const STORE =
  process.env.OFFLOAD_MODEL_STORE || fileURLToPath(new URL("../../offload_models", import.meta.url));
const MODEL_DIR = join(STORE, "smollm2-135m-instruct");
const REFERENCE = new URL("../data/smollm2_reference.json", import.meta.url);

let skip = false;
if (!existsSync(join(MODEL_DIR, "manifest.json"))) {
  skip = `model store has no smollm2-135m-instruct manifest under ${STORE}`;
}

/** Reads files of a model folder the way the runtime's cache would. */
function storeFetcher(modelDir) {
  return async (relativePath) => new Uint8Array(await readFile(join(modelDir, relativePath)));
}

/** URLs of one onnxruntime-web build in the vendor folder. */
function ortUrls(module, runtime) {
  const url = (name) => pathToFileURL(join(ORT, name)).href;
  return { module: url(module), mjs: url(`${runtime}.mjs`), wasm: url(`${runtime}.wasm`) };
}

/** Create options for the store's model. */
function createOptions(changes = {}) {
  const manifest = JSON.parse(readFileSync(join(MODEL_DIR, "manifest.json"), "utf8"));
  return {
    manifest,
    modelBaseUrl: pathToFileURL(`${MODEL_DIR}/`).href,
    variant: "fp32",
    backend: "wasm",
    threads: 1,
    fetchFile: storeFetcher(MODEL_DIR),
    ortUrls: ortUrls("ort.wasm.min.mjs", "ort-wasm-simd-threaded"),
    ...changes,
  };
}

describe("engine on smollm2 fp32", { skip }, () => {
  let engine;
  before(async () => {
    engine = await Engine.create(createOptions());
  });
  after(async () => {
    await engine?.dispose();
  });

  test("greedy_ids_match_reference", { skip: !existsSync(REFERENCE) && "no reference file" }, async () => {
    const reference = JSON.parse(readFileSync(REFERENCE, "utf8"));
    const maxNewTokens = reference.generation.max_new_tokens;
    for (const item of reference.cases) {
      const text = engine.renderChat(item.messages);
      assert.deepEqual(engine.encode(text), item.prompt_ids, "prompt ids");
      const result = await engine.generate({ messages: item.messages, params: { maxNewTokens } });
      assert.deepEqual(result.tokenIds, item.output_ids, JSON.stringify(item.messages));
    }
  });

  test("generate_reports_usage_and_timings", async () => {
    const pieces = [];
    const result = await engine.generate({
      messages: [{ role: "user", content: "What is the capital of France?" }],
      params: { maxNewTokens: 6 },
      onToken: (piece) => pieces.push(piece),
    });
    assert.equal(result.finishReason, "length");
    assert.equal(result.tokenIds.length, 6);
    assert.equal(result.usage.completionTokens, 6);
    assert.equal(result.usage.promptTokens, 37);
    assert.equal(pieces.join(""), result.text);
    assert.equal(result.backend, "wasm");
    assert.equal(result.threads, 1);
    for (const key of ["sessionMs", "prefillMs", "ttftMs", "decodeMs", "decodeTokensPerSecond"]) {
      assert.ok(result.timings[key] > 0, `${key} = ${result.timings[key]}`);
    }
  });

  test("generate_eos_finishes_with_stop", async () => {
    const result = await engine.generate({
      messages: [{ role: "user", content: "What is the capital of France?" }],
      params: { maxNewTokens: 32 },
    });
    assert.equal(result.finishReason, "stop");
    assert.equal(result.tokenIds.at(-1), 2);
    assert.ok(!result.text.includes("<|im_end|>"), result.text);
  });

  test("generate_stop_string_cut", async () => {
    const request = {
      messages: [{ role: "user", content: "What is the capital of France?" }],
      params: { maxNewTokens: 16 },
    };
    const full = await engine.generate(request);
    const word = full.text.split(" ")[2];
    assert.ok(word, full.text);
    const pieces = [];
    const cut = await engine.generate({
      ...request,
      params: { maxNewTokens: 16, stop: [word] },
      onToken: (piece) => pieces.push(piece),
    });
    assert.equal(cut.finishReason, "stop");
    assert.equal(cut.text, full.text.slice(0, full.text.indexOf(word)));
    assert.equal(pieces.join(""), cut.text);
  });

  test("generate_same_seed_same_output", async () => {
    const request = {
      prompt: "<|im_start|>user\nTell me a story.<|im_end|>\n<|im_start|>assistant\n",
      params: { maxNewTokens: 12, temperature: 0.9, topK: 50, topP: 0.95, seed: 1234 },
    };
    const first = await engine.generate(request);
    const second = await engine.generate(request);
    assert.deepEqual(first.tokenIds, second.tokenIds);
    assert.equal(first.seed, 1234);
  });

  test("generate_prompt_ids_equal_messages", async () => {
    const messages = [{ role: "user", content: "Name a colour." }];
    const promptIds = engine.encode(engine.renderChat(messages));
    const fromMessages = await engine.generate({ messages, params: { maxNewTokens: 4 } });
    const fromIds = await engine.generate({ promptIds, params: { maxNewTokens: 4 } });
    assert.deepEqual(fromIds.tokenIds, fromMessages.tokenIds);
  });

  test("generate_abort_finishes_with_abort", async () => {
    const controller = new AbortController();
    const result = await engine.generate({
      prompt: "<|im_start|>user\nCount to fifty.<|im_end|>\n<|im_start|>assistant\n",
      params: { maxNewTokens: 64 },
      signal: controller.signal,
      onToken: () => controller.abort(),
    });
    assert.equal(result.finishReason, "abort");
    assert.ok(result.tokenIds.length >= 1 && result.tokenIds.length < 64, `${result.tokenIds.length}`);
  });

  test("generate_concurrent_call_rejected", async () => {
    const first = engine.generate({ prompt: "Hello", params: { maxNewTokens: 2 } });
    await assert.rejects(
      engine.generate({ prompt: "Hello", params: { maxNewTokens: 2 } }),
      /already running/,
    );
    await first;
  });

  test("long_prompt_chunked_prefill_matches_single_run", async () => {
    const sentence = engine.encode("The quick brown fox jumps over the lazy dog. ");
    const promptIds = Array.from({ length: 600 }, (_, i) => sentence[i % sentence.length]);
    const params = { maxNewTokens: 6 };
    const chunked = await engine.generate({ promptIds, params });
    engine.prefillChunk = Number.MAX_SAFE_INTEGER;
    try {
      const single = await engine.generate({ promptIds, params });
      assert.deepEqual(chunked.tokenIds, single.tokenIds);
    } finally {
      engine.prefillChunk = 256;
    }
    assert.equal(chunked.usage.promptTokens, 600);
  });

  test("prompt_longer_than_context_rejected", async () => {
    const promptIds = new Array(engine.manifest.context_length).fill(28);
    await assert.rejects(engine.generate({ promptIds }), /The prompt has 8192 tokens/);
  });

  test("embed_on_text_model_rejected", async () => {
    await assert.rejects(engine.embed(["x"]), /needs a feature-extraction model/);
  });
});

describe("engine backend selection", { skip }, () => {
  test("webgpu_without_adapter_raises_typed_error", async () => {
    // Node has no navigator.gpu, so the WebGPU provider cannot start.
    const options = createOptions({
      backend: "webgpu",
      ortUrls: ortUrls("ort.webgpu.min.mjs", "ort-wasm-simd-threaded.asyncify"),
    });
    await assert.rejects(Engine.create(options), (error) => {
      assert.ok(error instanceof BackendUnavailableError, String(error));
      assert.equal(error.backend, "webgpu");
      return true;
    });
  });
});
