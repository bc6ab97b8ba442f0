"""
Run the device engine in headless Chromium on both backends and compare.

The page in ``tests/pages`` creates the engine in the page itself from the
static files and the model store, served by a small HTTP server on
127.0.0.1. WASM must produce the greedy reference tokens. Where Chromium
offers a WebGPU adapter, WebGPU must produce the same tokens with the KV
cache kept in GPU buffers. Headless Chromium here offers only SwiftShader, a
software renderer that is slow but computes the same numbers. Where it
offers no adapter, creating the engine must raise ``BackendUnavailableError``
so that the runtime can retry on WASM.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import threading
from pathlib import Path

import pytest

from tests.browser.conftest import CHROMIUM
from tests.browser.conftest import CHROMIUM_ARGS as BROWSER_ARGS

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "django_offload" / "static"
PAGES = Path(__file__).resolve().parent / "pages"
STORE = Path(os.environ.get("OFFLOAD_MODEL_STORE", ROOT / "offload_models"))
MODEL_ID = "smollm2-135m-instruct"
CHROMIUM_ARGS = [*BROWSER_ARGS, "--enable-unsafe-webgpu"]
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".json": "application/json",
    ".wasm": "application/wasm",
}
# Greedy output ids recorded with PyTorch from the same weights.
REFERENCE = ROOT / "tests" / "data" / "smollm2_reference.json"
NEW_TOKENS = 3
# SwiftShader runs the 135M-parameter model about 160 times slower than WASM.
PAGE_TIMEOUT_MS = 600_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.models,
    pytest.mark.skipif(
        not (STORE / MODEL_ID / "manifest.json").exists(),
        reason=f"model store has no {MODEL_ID} manifest under {STORE}",
    ),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}"
    ),
]


class _Handler(http.server.SimpleHTTPRequestHandler):
    roots: dict[str, Path] = {}

    def translate_path(self, path: str) -> str:
        path = path.split("?", 1)[0]
        for prefix, root in self.roots.items():
            if path.startswith(prefix):
                target = (root / path[len(prefix) :]).resolve()
                if root in target.parents:
                    return str(target)
        return str(PAGES / "missing")

    def guess_type(self, path: str) -> str:
        return CONTENT_TYPES.get(Path(path).suffix, "application/octet-stream")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base_url():
    """
    Serve the static files, the model store and the test page on 127.0.0.1.
    """
    roots = {"/static/": STATIC, "/models/": STORE.resolve(), "/pages/": PAGES}
    handler = type("EngineCheckHandler", (_Handler,), {"roots": roots})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def page(base_url):
    """
    Open the engine check page in headless Chromium.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        with contextlib.closing(browser):
            page = browser.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.goto(f"{base_url}/pages/engine-check.html")
            page.wait_for_function(
                "typeof globalThis.offloadEngineCheck === 'function'"
            )
            yield page


def _check(page, backend: str, prompt_ids: list[int]) -> dict:
    config = {
        "model": MODEL_ID,
        "variant": "fp32",
        "backend": backend,
        "promptIds": prompt_ids,
        "maxNewTokens": NEW_TOKENS,
    }
    return page.evaluate("(config) => offloadEngineCheck(config)", config)


@pytest.fixture(scope="module")
def reference_case() -> dict:
    """
    Return the first greedy reference case, recorded with PyTorch.
    """
    return json.loads(REFERENCE.read_text(encoding="utf-8"))["cases"][0]


def test_engine_wasm_matches_reference(page, reference_case):
    result = _check(page, "wasm", reference_case["prompt_ids"])
    assert "errorMessage" not in result, result
    assert result["tokenIds"] == reference_case["output_ids"][:NEW_TOKENS]
    assert result["backend"] == "wasm"


def test_engine_webgpu_matches_wasm_or_is_unavailable(page, reference_case):
    has_adapter = page.evaluate(
        "async () => Boolean(await navigator.gpu?.requestAdapter())"
    )
    result = _check(page, "webgpu", reference_case["prompt_ids"])
    if has_adapter:
        assert "errorMessage" not in result, result
        assert result["tokenIds"] == reference_case["output_ids"][:NEW_TOKENS]
        assert result["backend"] == "webgpu"
    else:
        assert result.get("errorName") == "BackendUnavailableError", result
