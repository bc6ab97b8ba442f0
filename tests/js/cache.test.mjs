/**
 * @file Tests of the model file download in `cache.js` against a real HTTP
 * server on 127.0.0.1: progress, resuming a broken download with a Range
 * request, and the errors for HTTP statuses, HTML bodies, wrong sizes and
 * wrong digests. Cache Storage itself is covered by the browser tests.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createServer } from "node:http";
import { after, before, describe, test } from "node:test";

import { download, OffloadFileError, sha256Hex } from "../../django_offload/static/django_offload/cache.js";
import { setLevel } from "../../django_offload/static/django_offload/log.js";

const BODY = Buffer.alloc(300_000, 0);
for (let i = 0; i < BODY.length; i++) BODY[i] = (i * 31) % 251;
const SHA256 = createHash("sha256").update(BODY).digest("hex");

let server;
let base;
const requests = [];

/** Serves the test routes; see each test for what its route does. */
function handle(request, response) {
  const range = request.headers.range ?? null;
  requests.push({ url: request.url, range, ifRange: request.headers["if-range"] ?? null });
  const send = (status, headers, body) => {
    response.writeHead(status, headers);
    response.end(body);
  };
  switch (request.url) {
    case "/ok":
      return send(200, { "Content-Type": "application/octet-stream", "Content-Length": BODY.length }, BODY);
    case "/broken": {
      if (range) {
        const start = Number(/bytes=(\d+)-/.exec(range)[1]);
        return send(
          206,
          { "Content-Range": `bytes ${start}-${BODY.length - 1}/${BODY.length}`, "Content-Length": BODY.length - start },
          BODY.subarray(start),
        );
      }
      // Sends half of the body, then drops the connection.
      response.writeHead(200, { "Content-Length": BODY.length });
      response.write(BODY.subarray(0, BODY.length / 2), () => response.socket.destroy());
      return undefined;
    }
    case "/missing":
      return send(404, { "Content-Type": "text/plain" }, "not found");
    case "/login":
      return send(200, { "Content-Type": "text/html; charset=utf-8" }, "<html>Sign in</html>");
    case "/short-header":
      return send(200, { "Content-Length": 10 }, BODY.subarray(0, 10));
    case "/too-long":
      response.writeHead(200);
      return response.end(Buffer.concat([BODY, Buffer.from("extra")]));
    default:
      return send(500, {}, "no such route");
  }
}

before(async () => {
  setLevel("silent");
  server = createServer(handle);
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${server.address().port}`;
});

after(() => server.close());

async function rejection(promise) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail("the promise resolved");
}

describe("download", () => {
  test("returns the verified bytes with progress", async () => {
    const progress = [];
    const data = await download(`${base}/ok`, {
      bytes: BODY.length,
      sha256: SHA256,
      onProgress: (update) => progress.push(update),
    });
    assert.equal(Buffer.compare(Buffer.from(data), BODY), 0);
    assert.ok(progress.length >= 1);
    assert.deepEqual(progress.at(-1), { loaded: BODY.length, total: BODY.length });
    const loaded = progress.map((update) => update.loaded);
    assert.deepEqual(loaded, [...loaded].sort((a, b) => a - b));
  });

  test("resumes a broken download with a Range request", async () => {
    requests.length = 0;
    const data = await download(`${base}/broken`, { bytes: BODY.length, sha256: SHA256 });
    assert.equal(await sha256Hex(data), SHA256);
    assert.equal(requests.length, 2);
    assert.equal(requests[0].range, null);
    assert.match(requests[1].range, /^bytes=\d+-$/);
    assert.ok(Number(/\d+/.exec(requests[1].range)[0]) > 0);
    assert.equal(requests[1].ifRange, `"${SHA256}"`);
  });

  test("reports an HTTP error with the URL and status", async () => {
    const error = await rejection(download(`${base}/missing`, { bytes: 10, sha256: SHA256 }));
    assert.ok(error instanceof OffloadFileError);
    assert.equal(error.code, "http-status");
    assert.equal(error.status, 404);
    assert.equal(error.url, `${base}/missing`);
    assert.match(error.message, /missing returned HTTP 404/);
  });

  test("rejects an HTML page in place of the file", async () => {
    const error = await rejection(download(`${base}/login`, { bytes: 20, sha256: SHA256 }));
    assert.equal(error.code, "html-body");
    assert.equal(error.status, 200);
    assert.match(error.message, /HTML page/);
  });

  test("rejects a Content-Length that differs from the manifest", async () => {
    const error = await rejection(download(`${base}/short-header`, { bytes: BODY.length, sha256: SHA256 }));
    assert.equal(error.code, "size-mismatch");
  });

  test("rejects a body longer than the manifest says", async () => {
    const error = await rejection(download(`${base}/too-long`, { bytes: BODY.length, sha256: SHA256 }));
    assert.equal(error.code, "size-mismatch");
  });

  test("rejects bytes whose SHA-256 differs", async () => {
    const error = await rejection(download(`${base}/ok`, { bytes: BODY.length, sha256: "0".repeat(64) }));
    assert.equal(error.code, "sha256-mismatch");
  });
});
