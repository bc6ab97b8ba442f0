/**
 * @file Tests of `Engine.embed` on the real all-MiniLM-L6-v2 model with
 * onnxruntime-web's WASM build in Node.
 *
 * When OFFLOAD_PYTHON names a Python with numpy, tokenizers and onnxruntime
 * (tests/test_js.py passes its own), the embeddings are compared with the
 * same model run by native onnxruntime and the Rust tokenizer. The tests
 * skip with the reason when the model store lacks the model.
 */

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

import { Engine } from "../../django_offload/static/django_offload/engine.js";

const STATIC = fileURLToPath(new URL("../../django_offload/static/django_offload/", import.meta.url));
const ORT = join(STATIC, "vendor", "onnxruntime-web");
const STORE =
  process.env.OFFLOAD_MODEL_STORE || fileURLToPath(new URL("../../offload_models", import.meta.url));
const MODEL_DIR = join(STORE, "all-minilm-l6-v2");
const skip = !existsSync(join(MODEL_DIR, "manifest.json")) &&
  `model store has no all-minilm-l6-v2 manifest under ${STORE}`;

const TEXTS = [
  "The cat sits on the mat.",
  "A feline rests on a rug.",
  "Stock prices fell sharply today. Ünïcödé 世界",
  // Longer than the model's 256-token context, so it is truncated.
  "word ".repeat(400),
];

// Embeds TEXTS (JSON on stdin) with native onnxruntime: mean pooling over the
// attention mask, then L2 normalisation, one text per run.
const NATIVE_SCRIPT = `
import json, sys
import numpy as np, onnxruntime as ort
from tokenizers import Tokenizer
folder, variant_file = sys.argv[1], sys.argv[2]
tokenizer = Tokenizer.from_file(folder + "/tokenizer.json")
tokenizer.no_padding()
session = ort.InferenceSession(folder + "/" + variant_file)
names = [node.name for node in session.get_inputs()]
rows = []
for text in json.load(sys.stdin):
    ids = np.array([tokenizer.encode(text).ids], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    if "token_type_ids" in names:
        feeds["token_type_ids"] = np.zeros_like(ids)
    vector = session.run(None, feeds)[0][0].mean(axis=0)
    rows.append((vector / np.linalg.norm(vector)).tolist())
print(json.dumps(rows))
`;

function dot(a, b) {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i] * b[i];
  return sum;
}

describe("engine embeddings on all-minilm-l6-v2", { skip }, () => {
  let engine;
  let manifest;
  before(async () => {
    manifest = JSON.parse(readFileSync(join(MODEL_DIR, "manifest.json"), "utf8"));
    const ortUrl = (name) => pathToFileURL(join(ORT, name)).href;
    engine = await Engine.create({
      manifest,
      modelBaseUrl: pathToFileURL(`${MODEL_DIR}/`).href,
      variant: "fp32",
      backend: "wasm",
      threads: 1,
      fetchFile: async (path) => new Uint8Array(await readFile(join(MODEL_DIR, path))),
      ortUrls: {
        module: ortUrl("ort.wasm.min.mjs"),
        mjs: ortUrl("ort-wasm-simd-threaded.mjs"),
        wasm: ortUrl("ort-wasm-simd-threaded.wasm"),
      },
    });
  });
  after(async () => {
    await engine?.dispose();
  });

  test("embed_vectors_unit_length", async () => {
    const vectors = await engine.embed(TEXTS);
    assert.equal(vectors.length, TEXTS.length);
    for (const vector of vectors) {
      assert.equal(vector.length, manifest.config.hidden_size);
      assert.ok(Math.abs(dot(vector, vector) - 1) < 1e-5, String(dot(vector, vector)));
    }
  });

  test("embed_paraphrase_closer_than_unrelated", async () => {
    const [cat, feline, stocks] = await engine.embed(TEXTS.slice(0, 3));
    assert.ok(dot(cat, feline) > dot(cat, stocks) + 0.2, `${dot(cat, feline)} ${dot(cat, stocks)}`);
  });

  test("embed_batch_equals_single_texts", async () => {
    const batch = await engine.embed(TEXTS);
    for (const [index, text] of TEXTS.entries()) {
      const [single] = await engine.embed([text]);
      assert.ok(dot(single, batch[index]) > 0.99999, `text ${index}`);
    }
  });

  test("embed_matches_native_onnxruntime", {
    skip: !process.env.OFFLOAD_PYTHON && "OFFLOAD_PYTHON is not set",
  }, async () => {
    const output = execFileSync(
      process.env.OFFLOAD_PYTHON,
      ["-c", NATIVE_SCRIPT, MODEL_DIR, manifest.variants.fp32.file],
      { input: JSON.stringify(TEXTS), encoding: "utf8", timeout: 120000 },
    );
    const native = JSON.parse(output);
    const ours = await engine.embed(TEXTS);
    for (const [index, vector] of ours.entries()) {
      const worst = Math.max(...vector.map((value, i) => Math.abs(value - native[index][i])));
      assert.ok(worst < 1e-5, `text ${index}: max difference ${worst}`);
    }
  });

  test("embed_invalid_texts_named", async () => {
    await assert.rejects(engine.embed([]), /texts must be a non-empty array/);
    await assert.rejects(engine.embed(["ok", 3]), /texts\[1\] must be a string, got number\./);
  });

  test("generate_on_embedding_model_rejected", async () => {
    await assert.rejects(engine.generate({ prompt: "x" }), /needs a text-generation model/);
  });
});
