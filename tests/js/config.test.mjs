/**
 * @file Tests of the runtime's configuration and logger modules.
 */

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { DEFAULTS, mergeConfig, socketUrl } from "../../django_offload/static/django_offload/config.js";
import { setLevel } from "../../django_offload/static/django_offload/log.js";

describe("config", () => {
  test("mergeConfig keeps defaults and merges text", () => {
    const config = mergeConfig({ model: "all-minilm-l6-v2", text: { accept: "Oui" } });
    assert.equal(config.model, "all-minilm-l6-v2");
    assert.equal(config.logLevel, DEFAULTS.logLevel);
    assert.equal(config.text.accept, "Oui");
    assert.equal(config.text.decline, DEFAULTS.text.decline);
    assert.ok(Object.isFrozen(config));
  });

  test("mergeConfig rejects unknown keys", () => {
    assert.throws(() => mergeConfig({ modle: "x" }), /unknown config key "modle"/);
  });

  test("socketUrl follows the page's scheme", () => {
    const config = mergeConfig({ socketPath: "/ws/offload/" });
    const https = { protocol: "https:", host: "example.org" };
    const http = { protocol: "http:", host: "127.0.0.1:8000" };
    assert.equal(socketUrl(config, https), "wss://example.org/ws/offload/");
    assert.equal(socketUrl(config, http), "ws://127.0.0.1:8000/ws/offload/");
    assert.equal(socketUrl(mergeConfig({}), http), null);
  });

  test("setLevel rejects unknown levels", () => {
    assert.throws(() => setLevel("verbose"), /unknown log level "verbose"/);
    setLevel("warn");
  });
});
