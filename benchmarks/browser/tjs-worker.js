/**
 * @file Benchmark worker for transformers.js 4.3.1, installed by
 * benchmarks/browser_runtime.py and served under /tjs/: loads the same model
 * files from /models/ (remote models off), runs one warm-up generation and
 * `runs` measured greedy ones, and posts the timings back.
 */

import {
  AutoModelForCausalLM,
  AutoTokenizer,
  env,
} from "/tjs/node_modules/@huggingface/transformers/dist/transformers.min.js";

const ORT_DIST = "/tjs/node_modules/onnxruntime-web/dist/";

// transformers.js names files onnx/<model_file_name><dtype suffix>.onnx.
const FILES = {
  fp32: { model_file_name: "model", dtype: "fp32" },
  q4: { model_file_name: "model", dtype: "q4" },
  q4f: { model_file_name: "model_q4f", dtype: "fp32" },
};

/**
 * Returns a streamer that records when each generated token arrives.
 * @param {number[]} times
 * @returns {{put: function(*): void, end: function(): void}}
 */
function timingStreamer(times) {
  let first = true;
  return {
    put() {
      // The first call carries the prompt, not a generated token.
      if (first) first = false;
      else times.push(performance.now());
    },
    end() {},
  };
}

/**
 * Runs the configured measurement.
 * @param {object} config See page.js.
 * @returns {Promise<object>}
 */
async function measure(config) {
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = "/models/";
  env.useBrowserCache = false;
  env.backends.onnx.wasm.numThreads = config.threads;
  env.backends.onnx.wasm.wasmPaths = {
    mjs: `${ORT_DIST}ort-wasm-simd-threaded.asyncify.mjs`,
    wasm: `${ORT_DIST}ort-wasm-simd-threaded.asyncify.wasm`,
  };
  const started = performance.now();
  const tokenizer = await AutoTokenizer.from_pretrained(config.model);
  const model = await AutoModelForCausalLM.from_pretrained(config.model, {
    device: "wasm",
    ...FILES[config.variant],
  });
  const sessionMs = performance.now() - started;
  const inputs = tokenizer.apply_chat_template(config.messages, {
    add_generation_prompt: true,
    return_dict: true,
  });
  const promptTokens = inputs.input_ids.dims[1];
  const runs = [];
  for (let index = 0; index <= config.runs; index++) {
    const times = [];
    const callStarted = performance.now();
    const output = await model.generate({
      ...inputs,
      max_new_tokens: config.maxNewTokens,
      do_sample: false,
      streamer: timingStreamer(times),
    });
    if (index === 0) continue;
    const tokenIds = Array.from(output.data.slice(promptTokens), Number);
    const decodeMs = times.at(-1) - times[0];
    runs.push({
      ttftMs: times[0] - callStarted,
      decodeTokensPerSecond: times.length > 1 ? ((times.length - 1) * 1000) / decodeMs : 0,
      promptTokens,
      completionTokens: tokenIds.length,
      tokenIds,
    });
  }
  await model.dispose();
  return {
    sessionMs,
    threads: config.threads,
    isolated: globalThis.crossOriginIsolated,
    ortVersion: env.backends.onnx.versions?.web ?? null,
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
