/**
 * @file Entry of the engine's module Web Worker: serves `Engine` with the
 * request protocol described in `engine-host.js`, reading model files through
 * the Cache Storage of `cache.js`. Start it with
 * `new Worker(url, {type: "module"})`.
 * @module worker
 */

import { createFetchFile } from "./cache.js";
import { serveEngine } from "./engine-host.js";

serveEngine(globalThis, { createFetchFile });
