/**
 * @file Tests of the engine's worker protocol over a real MessageChannel, with
 * the SmolLM2 fp32 model on onnxruntime-web's WASM build in Node.
 *
 * The model tests skip with the reason when the model store lacks the model.
 */

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

import { serveEngine } from "../../django_offload/static/django_offload/engine-host.js";

const STATIC = fileURLToPath(new URL("../../django_offload/static/django_offload/", import.meta.url));
const ORT = join(STATIC, "vendor", "onnxruntime-web");
const STORE =
  process.env.OFFLOAD_MODEL_STORE || fileURLToPath(new URL("../../offload_models", import.meta.url));
const MODEL_DIR = join(STORE, "smollm2-135m-instruct");
const skip = !existsSync(join(MODEL_DIR, "manifest.json")) &&
  `model store has no smollm2-135m-instruct manifest under ${STORE}`;

/**
 * Builds `fetchFile` for a model folder on disk, reporting progress as the
 * runtime's cache does.
 */
function createStoreFetchFile({ baseUrl, onProgress }) {
  const folder = fileURLToPath(baseUrl);
  return async (relativePath, { bytes }) => {
    const data = new Uint8Array(await readFile(join(folder, relativePath)));
    onProgress({ path: relativePath, loaded: data.byteLength, total: bytes, cached: true });
    return data;
  };
}

/** A page-side end of the channel that collects replies per request id. */
class TestClient {
  constructor() {
    const channel = new MessageChannel();
    this.host = serveEngine(channel.port1, { createFetchFile: createStoreFetchFile });
    this.port = channel.port2;
    this.replies = new Map();
    this.waiters = new Map();
    this.nextId = 1;
    this.port.addEventListener("message", (event) => this.collect(event.data));
    this.port.start();
  }

  collect(message) {
    const list = this.replies.get(message.id) ?? [];
    list.push(message);
    this.replies.set(message.id, list);
    if (message.type === "result" || message.type === "error") {
      this.waiters.get(message.id)?.(list);
    }
  }

  /** Sends a request and returns its id and a promise of all its replies. */
  send(type, fields = {}) {
    const id = this.nextId++;
    const done = new Promise((resolve) => this.waiters.set(id, resolve));
    this.port.postMessage({ ...fields, id, type });
    return { id, done };
  }

  /** Sends a request and waits for its final reply. */
  async call(type, fields = {}) {
    const replies = await this.send(type, fields).done;
    return { final: replies.at(-1), replies };
  }

  close() {
    this.port.close();
  }
}

function loadFields(changes = {}) {
  const ortUrl = (name) => pathToFileURL(join(ORT, name)).href;
  return {
    manifest: JSON.parse(readFileSync(join(MODEL_DIR, "manifest.json"), "utf8")),
    modelBaseUrl: pathToFileURL(`${MODEL_DIR}/`).href,
    variant: "fp32",
    backend: "wasm",
    threads: 1,
    ortUrls: {
      module: ortUrl("ort.wasm.min.mjs"),
      mjs: ortUrl("ort-wasm-simd-threaded.mjs"),
      wasm: ortUrl("ort-wasm-simd-threaded.wasm"),
    },
    ...changes,
  };
}

const QUESTION = [{ role: "user", content: "What is the capital of France?" }];

describe("engine host without a model", () => {
  test("host_invalid_requests_answered_with_errors", async () => {
    const client = new TestClient();
    try {
      const unknown = await client.call("train");
      assert.equal(unknown.final.type, "error");
      assert.equal(unknown.final.error.code, "invalid-request");
      assert.match(unknown.final.error.message, /got "train"/);

      const early = await client.call("generate", { messages: QUESTION });
      assert.equal(early.final.error.code, "invalid-request");
      assert.match(early.final.error.message, /No text-generation model is loaded/);

      const extra = await client.call("embed", { texts: ["a"], colour: "red" });
      assert.match(extra.final.error.message, /unknown fields \["colour"\]/);

      const badLoad = await client.call("load", { ...loadFields(), threads: 0 });
      assert.equal(badLoad.final.error.code, "invalid-argument");
      assert.match(badLoad.final.error.message, /threads must be .* got 0\./);
    } finally {
      client.close();
    }
  });

  test("host_message_without_id_rejected", async () => {
    const channel = new MessageChannel();
    serveEngine(channel.port1, { createFetchFile: createStoreFetchFile });
    const reply = new Promise((resolve) =>
      channel.port2.addEventListener("message", (event) => resolve(event.data), { once: true }),
    );
    channel.port2.start();
    channel.port2.postMessage({ type: "dispose" });
    const message = await reply;
    assert.equal(message.id, null);
    assert.equal(message.type, "error");
    assert.match(message.error.message, /number or string id/);
    channel.port2.close();
  });

  test("host_needs_create_fetch_file", () => {
    const channel = new MessageChannel();
    assert.throws(() => serveEngine(channel.port1, {}), /deps\.createFetchFile must be a function/);
    channel.port1.close();
  });
});

describe("engine host with smollm2 fp32", { skip }, () => {
  let client;
  let loaded;
  before(async () => {
    client = new TestClient();
    loaded = await client.call("load", loadFields());
  });
  after(() => client?.close());

  test("load_reports_progress_and_engine", () => {
    const { final, replies } = loaded;
    assert.equal(final.type, "result", JSON.stringify(final));
    assert.equal(final.result.modelId, "smollm2-135m-instruct");
    assert.equal(final.result.backend, "wasm");
    assert.equal(final.result.threads, 1);
    const paths = replies.filter((reply) => reply.type === "progress").map((reply) => reply.path);
    assert.deepEqual(paths.sort(), ["onnx/model.onnx", "tokenizer.json", "tokenizer_config.json"]);
  });

  test("generate_streams_tokens_then_result", async () => {
    const { final, replies } = await client.call("generate", {
      messages: QUESTION,
      params: { maxNewTokens: 12 },
    });
    assert.equal(final.type, "result", JSON.stringify(final));
    const pieces = replies.filter((reply) => reply.type === "token").map((reply) => reply.piece);
    assert.ok(pieces.length > 1, `${pieces.length} pieces`);
    assert.equal(pieces.join(""), final.result.text);
    assert.match(final.result.text, /Paris/);
  });

  test("abort_ends_running_and_queued_requests", async () => {
    const running = client.send("generate", {
      prompt: "<|im_start|>user\nCount to fifty.<|im_end|>\n<|im_start|>assistant\n",
      params: { maxNewTokens: 64 },
    });
    const queued = client.send("generate", { messages: QUESTION, params: { maxNewTokens: 4 } });
    const next = client.send("generate", { messages: QUESTION, params: { maxNewTokens: 3 } });
    client.port.postMessage({ id: queued.id, type: "abort" });
    // Abort the running request once it has streamed a token.
    const firstToken = new Promise((resolve) => {
      const listener = (event) => {
        if (event.data.id === running.id && event.data.type === "token") {
          client.port.removeEventListener("message", listener);
          resolve();
        }
      };
      client.port.addEventListener("message", listener);
    });
    await firstToken;
    client.port.postMessage({ id: running.id, type: "abort" });

    const runningResult = (await running.done).at(-1).result;
    assert.equal(runningResult.finishReason, "abort");
    assert.ok(runningResult.tokenIds.length < 64, `${runningResult.tokenIds.length} tokens`);
    const queuedResult = (await queued.done).at(-1).result;
    assert.equal(queuedResult.finishReason, "abort");
    assert.deepEqual(queuedResult.tokenIds, []);
    const nextResult = (await next.done).at(-1).result;
    assert.equal(nextResult.finishReason, "length");
    assert.equal(nextResult.tokenIds.length, 3);
  });

  test("generate_invalid_params_named", async () => {
    const { final } = await client.call("generate", {
      messages: QUESTION,
      params: { temperature: -1 },
    });
    assert.equal(final.type, "error");
    assert.equal(final.error.code, "invalid-argument");
    assert.match(final.error.message, /params\.temperature .* got -1\./);
  });

  test("embed_without_embedding_model_rejected", async () => {
    const { final } = await client.call("embed", { texts: ["a"] });
    assert.match(final.error.message, /No feature-extraction model is loaded/);
  });

  test("dispose_releases_loaded_model", async () => {
    const { final } = await client.call("dispose");
    assert.deepEqual(final.result.disposed, ["smollm2-135m-instruct"]);
    const after = await client.call("generate", { messages: QUESTION });
    assert.match(after.final.error.message, /No text-generation model is loaded/);
  });
});

describe("engine host backend fallback", { skip }, () => {
  test("load_webgpu_unavailable_has_code", async () => {
    const client = new TestClient();
    try {
      const ortUrl = (name) => pathToFileURL(join(ORT, name)).href;
      const { final } = await client.call("load", loadFields({
        backend: "webgpu",
        ortUrls: {
          module: ortUrl("ort.webgpu.min.mjs"),
          mjs: ortUrl("ort-wasm-simd-threaded.asyncify.mjs"),
          wasm: ortUrl("ort-wasm-simd-threaded.asyncify.wasm"),
        },
      }));
      assert.equal(final.type, "error");
      assert.equal(final.error.code, "backend-unavailable");
      assert.equal(final.error.name, "BackendUnavailableError");
      assert.equal(final.error.backend, "webgpu");
    } finally {
      client.close();
    }
  });
});
