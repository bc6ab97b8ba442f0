"""
Measure the page runtime's model download in headless Chromium: the time
from consent to ``offload:ready`` with an empty cache (download, SHA-256 and
Cache Storage write), the same after a reload (cache lookups only), and the
time ``fetchFile`` takes to read and verify the cached weights file.

Usage: ``python benchmarks/runtime_download.py [MODEL ...]`` with
``OFFLOAD_MODEL_STORE`` pointing at the store. Prints one JSON line per
model. The server and the browser run on this machine over 127.0.0.1, so the
numbers show the runtime's own cost, not a network's.
"""

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.browser.conftest import open_context, run_server  # noqa: E402

VERIFY = """async ([path, bytes, sha256, baseUrl]) => {
    const { fetchFile } = await import("/static/django_offload/cache.js");
    const started = performance.now();
    await fetchFile(path, { bytes, sha256, baseUrl });
    return performance.now() - started;
}"""
READY = "() => window.offloadEvents.some((e) => e.name === 'offload:ready')"
RUNTIME_FIT = """async () => {
    const { runtimeReady } = await import("/static/django_offload/offload.js");
    const runtime = await runtimeReady;
    return [runtime.fit(), runtime.model()];
}"""


def measure(playwright, url: str, model_id: str, profile: Path) -> dict:
    context, traffic = open_context(playwright, profile)
    context.set_default_timeout(600_000)
    try:
        page = context.new_page()
        page.goto(f"{url}/offload/manifest/")
        page.evaluate("localStorage.setItem('offload:consent', 'granted')")

        started = time.perf_counter()
        page.goto(f"{url}/runtime-page/{model_id}/")
        page.wait_for_function(READY)
        cold = time.perf_counter() - started
        served = traffic.model_bytes()

        started = time.perf_counter()
        page.reload()
        page.wait_for_function(READY)
        warm = time.perf_counter() - started

        fit, model = page.evaluate(RUNTIME_FIT)
        weights = model["variants"][fit["variant"]]
        verify_ms = page.evaluate(
            VERIFY,
            [weights["file"], weights["bytes"], weights["sha256"], model["baseUrl"]],
        )
        return {
            "model": model_id,
            "variant": fit["variant"],
            "backend": fit["backend"],
            "bytes_served": served,
            "cold_ready_s": round(cold, 2),
            "cold_mb_per_s": round(served / cold / 1e6, 1),
            "warm_ready_s": round(warm, 2),
            "verify_weights_ms": round(verify_ms),
            "outside_requests": traffic.outside,
        }
    finally:
        context.close()


def main(models: list[str]) -> None:
    store = Path(os.environ.get("OFFLOAD_MODEL_STORE", ROOT / "offload_models"))
    with tempfile.TemporaryDirectory(prefix="offload-bench-") as tmp:
        with run_server(store, Path(tmp)) as url, sync_playwright() as playwright:
            for index, model_id in enumerate(models):
                profile = Path(tmp) / f"profile-{index}"
                print(json.dumps(measure(playwright, url, model_id, profile)))


if __name__ == "__main__":
    main(sys.argv[1:] or ["all-minilm-l6-v2", "smollm2-135m-instruct"])
