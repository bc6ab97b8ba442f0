import json
import math
import shutil
from pathlib import Path

import pytest

VECTORS = json.loads(
    (Path(__file__).parent / "data" / "evaluator_vectors.json").read_text("utf-8")
)
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

# Runs in the page: imports the module from the live server and returns, per
# case, either the scores or the validation error message.
RUN_CASES = """
async (cases) => {
  const { evaluate, validateSpecs } = await import(
    "/static/django_offload/evaluators.js");
  const results = [];
  for (const item of cases) {
    if (item.error !== undefined) {
      try { validateSpecs(item.specs); results.push({ error: null }); }
      catch (error) { results.push({ error: error.message }); }
      continue;
    }
    const c = item.context || {};
    const context = { finishReason: c.finish_reason, latencyMs: c.latency_ms,
      ttftMs: c.ttft_ms, tokensPerSecond: c.tokens_per_second };
    if (item.embeddings) {
      context.embed = async (texts) => texts.map((t) => item.embeddings[t]);
    }
    results.push({ scores: await evaluate(item.specs, item.output, context) });
  }
  return results;
}
"""


@pytest.mark.browser
@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Chromium is not installed")
def test_evaluators_js_vectors_in_chromium(live_server):
    from playwright.sync_api import sync_playwright

    cases = VECTORS["cases"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{live_server.url}/static/django_offload/evaluators.js")
            results = page.evaluate(RUN_CASES, cases)
        finally:
            browser.close()

    assert len(results) == len(cases)
    for case, result in zip(cases, results, strict=True):
        if "error" in case:
            assert result["error"] is not None, case["name"]
            assert result["error"].startswith(case["error"] + ":"), case["name"]
            continue
        for got, want in zip(result["scores"], case["expected"], strict=True):
            assert got["name"] == want["name"], case["name"]
            assert got["label"] == want["label"], case["name"]
            assert got["passed"] == want["passed"], case["name"]
            if isinstance(want["value"], float):
                assert math.isclose(got["value"], want["value"], abs_tol=1e-12)
            else:
                assert got["value"] == want["value"], case["name"]
