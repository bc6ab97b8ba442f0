/**
 * @file Entry module of the browser runtime, loaded by the
 * `{% offload_runtime %}` template tag. It reads the JSON config, starts the
 * runtime, mounts the consent widget and, when the config names a socket
 * and the client module is installed, connects it with `connect(runtime,
 * config)`. Page scripts get the runtime with
 * `import { runtimeReady } from ".../offload.js"`.
 * @module django_offload/offload
 */

import { readConfig } from "./config.js";
import { ConsentWidget } from "./consent.js";
import { getLogger } from "./log.js";
import { startRuntime } from "./runtime.js";

const log = getLogger("offload");

async function main() {
  const config = readConfig(document);
  const runtime = await startRuntime(config);
  new ConsentWidget(runtime).mount();
  if (config.socketPath && config.clientUrl) {
    const client = await import(config.clientUrl);
    await client.connect(runtime, config);
  }
  return runtime;
}

/**
 * Promise of the started runtime; rejects (after an `offload:error` event)
 * when the runtime could not start.
 * @type {Promise<import("./runtime.js").Runtime>}
 */
export const runtimeReady = main();

runtimeReady.catch((error) => {
  log.error("runtime failed to start:", error?.message);
  const detail = { model: null, message: error?.message ?? String(error), code: "start" };
  document.dispatchEvent(new CustomEvent("offload:error", { detail }));
});
