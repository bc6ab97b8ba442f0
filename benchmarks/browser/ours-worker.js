/**
 * @file Benchmark worker for django-offload's engine: loads one variant with
 * the WASM backend, runs one warm-up generation and `runs` measured ones, and
 * posts the timings back. Files are read with plain fetch, without the
 * runtime's cache, so every load pays the download from the local server.
 */

import { Engine } from "/static/django_offload/engine.js";

const VENDOR = "/static/django_offload/vendor/onnxruntime-web/";

/**
 * Runs the configured measurement.
 * @param {object} config See page.js.
 * @returns {Promise<object>}
 */
async function measure(config) {
  const base = `/models/${config.model}/`;
  const manifest = await (await fetch(`${base}manifest.json`)).json();
  const fetchFile = async (path) => {
    const response = await fetch(base + path);
    if (!response.ok) throw new Error(`${base}${path}: HTTP ${response.status}`);
    return new Uint8Array(await response.arrayBuffer());
  };
  const engine = await Engine.create({
    manifest,
    modelBaseUrl: base,
    variant: config.variant,
    backend: "wasm",
    threads: config.threads,
    fetchFile,
    ortUrls: {
      module: `${VENDOR}ort.wasm.min.mjs`,
      mjs: `${VENDOR}ort-wasm-simd-threaded.mjs`,
      wasm: `${VENDOR}ort-wasm-simd-threaded.wasm`,
    },
  });
  const runs = [];
  for (let index = 0; index <= config.runs; index++) {
    const result = await engine.generate({
      messages: config.messages,
      params: { maxNewTokens: config.maxNewTokens },
    });
    // The first generation warms the session up and is not measured.
    if (index > 0) {
      runs.push({
        ttftMs: result.timings.ttftMs,
        prefillMs: result.timings.prefillMs,
        decodeTokensPerSecond: result.timings.decodeTokensPerSecond,
        promptTokens: result.usage.promptTokens,
        completionTokens: result.usage.completionTokens,
        tokenIds: result.tokenIds,
      });
    }
  }
  await engine.dispose();
  return {
    sessionMs: engine.sessionMs,
    threads: engine.threads,
    isolated: globalThis.crossOriginIsolated,
    runs,
  };
}

globalThis.addEventListener("message", async (event) => {
  try {
    globalThis.postMessage(await measure(event.data));
  } catch (error) {
    globalThis.postMessage({ error: `${error.name}: ${error.message}` });
  }
});
