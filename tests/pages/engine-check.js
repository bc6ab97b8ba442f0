/**
 * @file Test page for tests/test_engine_browser.py: exposes
 * `offloadEngineCheck(config)`, which creates the device engine in the page on
 * one backend, generates greedily from token ids, and returns the result or
 * the error.
 */

import { Engine } from "/static/django_offload/engine.js";

const VENDOR = "/static/django_offload/vendor/onnxruntime-web/";

/**
 * Generates with one backend and returns the outcome.
 * @param {{model: string, variant: string, backend: string,
 *   promptIds: number[], maxNewTokens: number}} config
 * @returns {Promise<object>} `{tokenIds, finishReason, backend}` or
 *   `{errorName, errorMessage, backend}`.
 */
async function offloadEngineCheck(config) {
  const base = `/models/${config.model}/`;
  const manifest = await (await fetch(`${base}manifest.json`)).json();
  const fetchFile = async (path) => new Uint8Array(await (await fetch(base + path)).arrayBuffer());
  let engine;
  try {
    engine = await Engine.create({
      manifest,
      modelBaseUrl: base,
      variant: config.variant,
      backend: config.backend,
      threads: 1,
      fetchFile,
      ortUrls: {
        module: `${VENDOR}ort.webgpu.min.mjs`,
        mjs: `${VENDOR}ort-wasm-simd-threaded.asyncify.mjs`,
        wasm: `${VENDOR}ort-wasm-simd-threaded.asyncify.wasm`,
      },
    });
    const result = await engine.generate({
      promptIds: config.promptIds,
      params: { maxNewTokens: config.maxNewTokens },
    });
    return { tokenIds: result.tokenIds, finishReason: result.finishReason, backend: result.backend };
  } catch (error) {
    return { errorName: error.name, errorMessage: error.message, backend: config.backend };
  } finally {
    await engine?.dispose();
  }
}

globalThis.offloadEngineCheck = offloadEngineCheck;
