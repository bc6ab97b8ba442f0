/**
 * @file Benchmark page: runs one measurement in a module Web Worker and
 * exposes `offloadBench(config)` for the Playwright driver in
 * benchmarks/browser_runtime.py.
 */

/**
 * Runs one benchmark configuration in a fresh worker.
 * @param {{runner: ("ours"|"tjs"), model: string, variant: string,
 *   threads: number, runs: number, maxNewTokens: number,
 *   messages: object[]}} config
 * @returns {Promise<object>} The worker's measurements, or `{error}`.
 */
async function offloadBench(config) {
  const script = config.runner === "ours" ? "ours-worker.js" : "tjs-worker.js";
  const worker = new Worker(new URL(script, import.meta.url), { type: "module" });
  const status = document.getElementById("offload-bench-status");
  status.textContent = `running ${config.runner} ${config.variant}`;
  try {
    return await new Promise((resolve) => {
      worker.addEventListener("message", (event) => resolve(event.data));
      worker.addEventListener("error", (event) => resolve({ error: event.message }));
      worker.postMessage({ ...config, pageIsolated: globalThis.crossOriginIsolated });
    });
  } finally {
    worker.terminate();
    status.textContent = "idle";
  }
}

globalThis.offloadBench = offloadBench;
