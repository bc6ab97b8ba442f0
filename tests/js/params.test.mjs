/**
 * @file Tests of the validation of generation parameters, prompts and engine
 * options: each error names the parameter and shows the value.
 */

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  DEFAULT_PARAMS,
  validateCreateOptions,
  validateGenerateRequest,
  validateMessages,
  validateParams,
  validatePromptIds,
  validateTexts,
} from "../../django_offload/static/django_offload/params.js";

test("params_defaults_filled_in", () => {
  assert.deepEqual(validateParams({}), { ...DEFAULT_PARAMS, stop: [] });
  assert.deepEqual(validateParams(undefined), { ...DEFAULT_PARAMS, stop: [] });
});

test("params_valid_values_kept", () => {
  const params = { maxNewTokens: 5, temperature: 0.7, topK: 40, topP: 0.9, seed: 0, stop: "x" };
  assert.deepEqual(validateParams(params), { ...params, stop: ["x"] });
});

test("params_invalid_values_named", () => {
  const cases = [
    [{ maxNewTokens: 0 }, /params\.maxNewTokens .* got 0\./],
    [{ maxNewTokens: 2.5 }, /params\.maxNewTokens .* got 2\.5\./],
    [{ maxNewTokens: "5" }, /params\.maxNewTokens .* got "5"\./],
    [{ temperature: -0.1 }, /params\.temperature .* got -0\.1\./],
    [{ temperature: Infinity }, /params\.temperature .* got Infinity\./],
    [{ temperature: NaN }, /params\.temperature .* got NaN\./],
    [{ topK: -1 }, /params\.topK .* got -1\./],
    [{ topP: 0 }, /params\.topP .* got 0\./],
    [{ topP: 1.5 }, /params\.topP .* got 1\.5\./],
    [{ seed: -1 }, /params\.seed .* got -1\./],
    [{ seed: 2 ** 32 }, /params\.seed .* got 4294967296\./],
    [{ stop: 3 }, /params\.stop must be .* got 3\./],
    [{ stop: ["ok", ""] }, /params\.stop\[1\] must be a non-empty string, got ""\./],
    [{ stop: Array(17).fill("s") }, /params\.stop accepts at most 16 strings, got 17/],
    [{ stop: ["y".repeat(257)] }, /params\.stop\[0\] is 257 characters long/],
    [{ topk: 3 }, /params has unknown keys \["topk"\]/],
    ["greedy", /params must be an object, got "greedy"\./],
  ];
  for (const [params, pattern] of cases) {
    assert.throws(() => validateParams(params), pattern, JSON.stringify(params));
  }
});

test("messages_invalid_shape_named", () => {
  assert.throws(() => validateMessages([]), /messages must be a non-empty array/);
  assert.throws(
    () => validateMessages([{ role: "robot", content: "x" }]),
    /messages\[0\]\.role must be one of .* got "robot"\./,
  );
  assert.throws(
    () => validateMessages([{ role: "user", content: 3 }]),
    /messages\[0\]\.content must be a string, got number\./,
  );
  assert.throws(
    () => validateMessages([{ role: "user", content: "x", name: "n" }]),
    /messages\[0\] has unknown keys \["name"\]/,
  );
});

test("messages_errors_hide_user_text", () => {
  const secret = "canary-4f1d";
  for (const bad of [secret, [secret], [{ role: "user", content: [secret] }]]) {
    try {
      validateMessages(bad);
      assert.fail("validateMessages accepted an invalid value");
    } catch (error) {
      assert.ok(!error.message.includes(secret), error.message);
    }
  }
});

test("prompt_ids_out_of_vocab_named", () => {
  assert.deepEqual(validatePromptIds([0, 9], 10), [0, 9]);
  assert.throws(() => validatePromptIds([1, 10], 10), /promptIds\[1\] .* 0 to 9, got 10\./);
  assert.throws(() => validatePromptIds([1, -2], 10), /promptIds\[1\] .* got -2\./);
  assert.throws(() => validatePromptIds([], 10), /promptIds must be a non-empty array/);
});

test("generate_request_needs_one_prompt_kind", () => {
  assert.throws(() => validateGenerateRequest({}, 10), /exactly one of .* got \[\]\./);
  assert.throws(
    () => validateGenerateRequest({ prompt: "a", promptIds: [1] }, 10),
    /exactly one of .* got \["prompt","promptIds"\]\./,
  );
  assert.throws(() => validateGenerateRequest({ prompt: "" }, 10), /prompt must be a non-empty/);
  assert.throws(
    () => validateGenerateRequest({ prompt: "a", onToken: "f" }, 10),
    /onToken must be a function or null, got "f"\./,
  );
  assert.throws(
    () => validateGenerateRequest({ prompt: "a", signal: 1 }, 10),
    /signal must be an AbortSignal or null, got 1\./,
  );
  assert.throws(() => validateGenerateRequest({ prompt: "a", extra: 1 }, 10), /unknown keys/);
});

test("generate_request_valid_kept", () => {
  const signal = new AbortController().signal;
  const checked = validateGenerateRequest({ promptIds: [1, 2], signal, params: { topK: 2 } }, 10);
  assert.equal(checked.kind, "promptIds");
  assert.deepEqual(checked.value, [1, 2]);
  assert.equal(checked.signal, signal);
  assert.equal(checked.params.topK, 2);
});

test("texts_invalid_named", () => {
  assert.deepEqual(validateTexts(["a", ""]), ["a", ""]);
  assert.throws(() => validateTexts("a"), /texts must be a non-empty array/);
  assert.throws(() => validateTexts(["a", 2]), /texts\[1\] must be a string, got number\./);
});

/** Returns a minimal manifest in the store's format. */
function manifest() {
  return {
    id: "tiny",
    task: "text-generation",
    context_length: 64,
    config: { num_layers: 1, num_kv_heads: 1, head_dim: 4, vocab_size: 10, eos_token_ids: [2] },
    files: {},
    variants: { fp32: { file: "onnx/model.onnx", backends: ["native", "wasm"] } },
  };
}

/** Returns valid create options, with `changes` applied. */
function createOptions(changes = {}) {
  return {
    manifest: manifest(),
    modelBaseUrl: "/offload/models/tiny/",
    variant: "fp32",
    backend: "wasm",
    threads: 1,
    fetchFile: async () => new Uint8Array(),
    ortUrls: { module: "/ort.mjs", mjs: "/w.mjs", wasm: "/w.wasm" },
    ...changes,
  };
}

test("create_options_valid_kept", () => {
  const checked = validateCreateOptions(createOptions());
  assert.equal(checked.variant, "fp32");
  assert.equal(checked.variantInfo.file, "onnx/model.onnx");
});

test("create_options_invalid_named", () => {
  const cases = [
    [{ variant: "q4" }, /variant must be one of \["fp32"\] for "tiny", got "q4"\./],
    [{ backend: "webgl" }, /backend must be one of \["webgpu","wasm"\], got "webgl"\./],
    [{ backend: "webgpu" }, /backend "webgpu" is not listed for variant "fp32"/],
    [{ threads: 0 }, /threads must be an integer from 1 to 64, got 0\./],
    [{ fetchFile: "x" }, /fetchFile must be a function, got "x"\./],
    [{ ortUrls: { module: "/a" } }, /ortUrls\.mjs must be a non-empty string, got undefined\./],
    [{ modelBaseUrl: "" }, /modelBaseUrl must be a non-empty string, got ""\./],
    [{ manifest: { ...manifest(), task: "chat" } }, /manifest\.task of "tiny" .* got "chat"\./],
    [{ cache: true }, /Engine\.create\(\) options has unknown keys \["cache"\]/],
  ];
  for (const [changes, pattern] of cases) {
    assert.throws(() => validateCreateOptions(createOptions(changes)), pattern);
  }
  const broken = manifest();
  broken.config.num_layers = 0;
  assert.throws(
    () => validateCreateOptions(createOptions({ manifest: broken })),
    /manifest\.config\.num_layers of "tiny" must be a positive integer, got 0\./,
  );
});
