/**
 * @file Download and Cache Storage of model files. Every file is keyed by
 * its URL (model id and path) and its SHA-256. It is downloaded as a stream
 * with progress, checked for size and SHA-256 before it is stored, and
 * checked again before it is used. A corrupt or partial entry is deleted and
 * downloaded again; an HTTP error or an HTML page in place of a model file is
 * never stored. Works in pages and in workers (no DOM access).
 * @module django_offload/cache
 */

import { getLogger } from "./log.js";

const log = getLogger("cache");

export const DEFAULT_CACHE_NAME = "offload-models-v1";
const DEFAULT_ATTEMPTS = 3;
/** Progress callbacks run at most this many times per file, plus the last. */
const PROGRESS_STEPS = 200;

/**
 * Error of a model file download, with the URL and HTTP status involved.
 * `code` is one of "http-status", "html-body", "size-mismatch",
 * "sha256-mismatch", "quota", "network", "invalid-argument".
 */
export class OffloadFileError extends Error {
  /**
   * @param {string} message Human-readable message naming the URL.
   * @param {{url?: string, status?: number, code: string}} details
   */
  constructor(message, { url = null, status = null, code }) {
    super(message);
    this.name = "OffloadFileError";
    this.url = url;
    this.status = status;
    this.code = code;
  }
}

/**
 * Returns the hex SHA-256 digest of some bytes.
 * @param {Uint8Array} data Bytes to hash.
 * @returns {Promise<string>} 64 lowercase hex digits.
 */
export async function sha256Hex(data) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/**
 * Builds the Cache Storage key of one file version. The URL already names
 * the model and, for weights, the variant's file, so the digest is added to
 * tell versions of the same file apart.
 * @param {string} url Absolute URL of the file.
 * @param {{sha256: string}} version Expected digest.
 * @returns {string} Key URL with the digest in its query.
 */
export function cacheKey(url, { sha256 }) {
  const key = new URL(url);
  key.searchParams.set("offload-sha256", sha256);
  return key.href;
}

function checkExpected(url, bytes, sha256) {
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    const shown = JSON.stringify(bytes);
    throw new OffloadFileError(
      `Expected size of ${url} must be an integer >= 0, got ${shown}`,
      { url, code: "invalid-argument" },
    );
  }
  if (typeof sha256 !== "string" || !/^[0-9a-f]{64}$/.test(sha256)) {
    const shown = JSON.stringify(sha256);
    throw new OffloadFileError(
      `Expected SHA-256 of ${url} must be 64 hex digits, got ${shown}`,
      { url, code: "invalid-argument" },
    );
  }
}

/**
 * Reads a cached file and checks its size and SHA-256; a mismatching entry
 * is deleted.
 * @param {Cache} cache Open cache.
 * @param {string} key Cache key from `cacheKey`.
 * @param {{bytes: number, sha256: string}} expected Expected size and digest.
 * @returns {Promise<Uint8Array|null>} The bytes, or null when absent or bad.
 */
export async function readCached(cache, key, { bytes, sha256 }) {
  const response = await cache.match(key);
  if (!response) return null;
  let data;
  try {
    data = new Uint8Array(await response.arrayBuffer());
  } catch (error) {
    log.warn("cached file unreadable, dropping it:", key, error?.message);
    await cache.delete(key);
    return null;
  }
  if (data.byteLength === bytes && (await sha256Hex(data)) === sha256) {
    return data;
  }
  log.warn("cached file is corrupt or partial, dropping it:", key);
  await cache.delete(key);
  return null;
}

/**
 * Checks that the origin's storage quota leaves room for a download.
 * @param {number} bytes Bytes about to be stored.
 * @param {string} url File URL, for the error message.
 * @param {StorageManager} [storage] `navigator.storage`.
 * @throws {OffloadFileError} With code "quota" when there is too little room.
 */
export async function checkQuota(bytes, url, storage = globalThis.navigator?.storage) {
  if (!storage?.estimate) return;
  const { quota, usage } = await storage.estimate();
  if (!Number.isFinite(quota)) return;
  const free = quota - (usage ?? 0);
  if (free < bytes) {
    throw new OffloadFileError(
      `Not enough storage for ${url}: it needs ${bytes} bytes but this site ` +
        `may store only ${Math.max(0, free)} more; free some space and reload.`,
      { url, code: "quota" },
    );
  }
}

function fatal(url, status, code, message) {
  return new OffloadFileError(message, { url, status, code });
}

/**
 * Checks one HTTP response and returns the offset its body starts at.
 * Throws a fatal OffloadFileError for anything that is not the model file.
 */
function responseOffset(response, url, bytes, received) {
  const { status } = response;
  const type = response.headers.get("Content-Type") ?? "";
  if (status !== 200 && !(status === 206 && received > 0)) {
    const message = `${url} returned HTTP ${status}, not the model file`;
    throw fatal(url, status, "http-status", message);
  }
  if (/^text\/html\b/i.test(type)) {
    const message = `${url} returned an HTML page (HTTP ${status}) in place of the model file`;
    throw fatal(url, status, "html-body", message);
  }
  const offset = status === 206 ? rangeStart(response, url, bytes) : 0;
  const length = response.headers.get("Content-Length");
  if (length !== null && Number(length) !== bytes - offset) {
    const message =
      `${url} sends ${length} bytes from offset ${offset}, ` +
      `but the manifest lists ${bytes} bytes for the file`;
    throw fatal(url, status, "size-mismatch", message);
  }
  return offset;
}

function rangeStart(response, url, bytes) {
  const header = response.headers.get("Content-Range") ?? "";
  const match = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(header);
  if (!match || Number(match[3]) !== bytes) {
    const message = `${url} sent an unexpected Content-Range ${JSON.stringify(header)}`;
    throw fatal(url, 206, "size-mismatch", message);
  }
  return Number(match[1]);
}

/**
 * Copies a response body into `buffer` from `offset`, keeping
 * `state.received` current so that a broken stream can be resumed from it.
 */
async function readBody(response, url, buffer, offset, state, report) {
  const reader = response.body.getReader();
  state.received = offset;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    if (state.received + value.byteLength > buffer.byteLength) {
      await reader.cancel();
      const message = `${url} is larger than the ${buffer.byteLength} bytes listed in the manifest`;
      throw fatal(url, response.status, "size-mismatch", message);
    }
    buffer.set(value, state.received);
    state.received += value.byteLength;
    report(state.received);
  }
}

function progressReporter(onProgress, total) {
  if (!onProgress) return () => {};
  const step = Math.max(1, Math.floor(total / PROGRESS_STEPS));
  let last = -1;
  return (loaded) => {
    if (loaded === total || last < 0 || loaded - last >= step) {
      last = loaded;
      onProgress({ loaded, total });
    }
  };
}

function rangeHeaders(received, sha256) {
  if (received === 0) return {};
  return { Range: `bytes=${received}-`, "If-Range": `"${sha256}"` };
}

/**
 * Downloads a file as a stream into a buffer of the expected size, resuming
 * with an HTTP Range request when the connection breaks.
 * @param {string} url Absolute URL.
 * @param {object} options
 * @param {number} options.bytes Expected size.
 * @param {string} options.sha256 Expected digest, also sent as If-Range.
 * @param {Function} [options.onProgress] Receives `{loaded, total}`.
 * @param {AbortSignal} [options.signal] Aborts the download.
 * @param {number} [options.attempts] Requests to try before giving up.
 * @returns {Promise<Uint8Array>} The verified bytes.
 * @throws {OffloadFileError} On HTTP errors, HTML bodies, size or digest
 *   mismatches, or when every attempt failed.
 */
export async function download(url, options) {
  const { bytes, sha256, onProgress, signal, attempts = DEFAULT_ATTEMPTS } = options;
  const buffer = new Uint8Array(bytes);
  const report = progressReporter(onProgress, bytes);
  const state = { received: 0 };
  let complete = false;
  let lastError = null;
  for (let attempt = 1; attempt <= attempts && !complete; attempt++) {
    let response;
    try {
      response = await fetch(url, {
        headers: rangeHeaders(state.received, sha256),
        cache: "no-store",
        credentials: "same-origin",
        signal,
      });
    } catch (error) {
      if (signal?.aborted) throw error;
      lastError = error;
      log.warn("download attempt", attempt, "failed for", url, error?.message);
      continue;
    }
    if (response.status >= 500 && attempt < attempts) {
      lastError = fatal(url, response.status, "http-status", `HTTP ${response.status}`);
      continue;
    }
    const offset = responseOffset(response, url, bytes, state.received);
    try {
      await readBody(response, url, buffer, offset, state, report);
    } catch (error) {
      if (error instanceof OffloadFileError || signal?.aborted) throw error;
      lastError = error;
      log.warn("download of", url, "broke at byte", state.received, error?.message);
      continue;
    }
    complete = state.received === bytes;
  }
  if (!complete) {
    const reason = lastError ? ` (${lastError.message})` : "";
    throw new OffloadFileError(
      `${url} could not be downloaded: got ${state.received} of ${bytes} bytes${reason}`,
      { url, status: lastError?.status ?? null, code: "network" },
    );
  }
  if ((await sha256Hex(buffer)) !== sha256) {
    throw new OffloadFileError(
      `${url} does not match the SHA-256 in the manifest; nothing was cached`,
      { url, status: 200, code: "sha256-mismatch" },
    );
  }
  return buffer;
}

async function store(cache, key, data, sha256) {
  const response = new Response(data, {
    headers: {
      "Content-Type": "application/octet-stream",
      "Content-Length": String(data.byteLength),
      "X-Offload-Sha256": sha256,
    },
  });
  try {
    await cache.put(key, response);
  } catch (error) {
    // The file is valid and still returned, so this load works uncached.
    log.warn("could not cache", key, error?.message);
  }
}

function resolveUrl(relativePath, baseUrl) {
  const valid =
    typeof relativePath === "string" &&
    relativePath !== "" &&
    !relativePath.startsWith("/") &&
    !relativePath.split("/").includes("..");
  if (!valid) {
    const shown = JSON.stringify(relativePath);
    throw new OffloadFileError(
      `relativePath must be a relative path inside the model, got ${shown}`,
      { code: "invalid-argument" },
    );
  }
  return new URL(relativePath, new URL(baseUrl ?? "./", globalThis.location.href)).href;
}

/**
 * Returns a model file's bytes from the cache, or downloads, verifies and
 * caches it.
 * @param {string} relativePath Path inside the model folder, e.g.
 *   "onnx/model.onnx".
 * @param {object} options
 * @param {number} options.bytes Expected size from the manifest.
 * @param {string} options.sha256 Expected digest from the manifest.
 * @param {string} options.baseUrl URL of the model folder (manifest's
 *   `baseUrl`).
 * @param {Function} [options.onProgress] Receives `{path, loaded, total,
 *   cached}` while downloading, and once with `cached: true` on a hit.
 * @param {AbortSignal} [options.signal] Aborts the download.
 * @param {string} [options.cacheName] Cache Storage name.
 * @param {number} [options.attempts] Download attempts.
 * @returns {Promise<Uint8Array>} The verified bytes.
 * @throws {OffloadFileError} See `download` and `checkQuota`.
 */
export async function fetchFile(relativePath, options) {
  const { bytes, sha256, baseUrl, onProgress, signal } = options;
  const url = resolveUrl(relativePath, baseUrl);
  checkExpected(url, bytes, sha256);
  const cache = await caches.open(options.cacheName ?? DEFAULT_CACHE_NAME);
  const key = cacheKey(url, { sha256 });
  const cached = await readCached(cache, key, { bytes, sha256 });
  if (cached) {
    onProgress?.({ path: relativePath, loaded: bytes, total: bytes, cached: true });
    return cached;
  }
  await checkQuota(bytes, url);
  const data = await download(url, {
    bytes,
    sha256,
    signal,
    attempts: options.attempts,
    onProgress: (progress) => {
      onProgress?.({ path: relativePath, ...progress, cached: false });
    },
  });
  await store(cache, key, data, sha256);
  return data;
}

/**
 * Binds `fetchFile` to one model folder, giving the
 * `fetchFile(relativePath, {bytes, sha256, onProgress})` function that the
 * engine receives.
 * @param {{baseUrl: string, cacheName?: string, onProgress?: Function}}
 *   defaults Options applied to every call.
 * @returns {Function} The bound function.
 */
export function createFetchFile(defaults) {
  return (relativePath, options = {}) => {
    const onProgress = options.onProgress ?? defaults.onProgress;
    return fetchFile(relativePath, { ...defaults, ...options, onProgress });
  };
}

/**
 * Tells whether a file version is in the cache, without reading it.
 * @param {string} url Absolute URL.
 * @param {{sha256: string, cacheName?: string}} version
 * @returns {Promise<boolean>} True when an entry exists.
 */
export async function isCached(url, version) {
  const { sha256, cacheName = DEFAULT_CACHE_NAME } = version;
  const cache = await caches.open(cacheName);
  return (await cache.match(cacheKey(url, { sha256 }))) !== undefined;
}

/**
 * Deletes every cached model file.
 * @param {string} [cacheName] Cache Storage name.
 * @returns {Promise<boolean>} True when a cache was deleted.
 */
export function deleteModelCache(cacheName = DEFAULT_CACHE_NAME) {
  return caches.delete(cacheName);
}
