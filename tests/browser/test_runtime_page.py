"""
Browser tests of the page runtime: consent, download with progress, Cache
Storage reuse and integrity, error reporting, and the WebGPU probe.
"""

import json
import urllib.request

import pytest

from tests.browser.conftest import BROKEN_MODEL

pytestmark = pytest.mark.browser

MODEL = "all-minilm-l6-v2"


def page_url(server, model=MODEL):
    return f"{server}/runtime-page/{model}/"


def events(page, name):
    return page.evaluate(
        "name => window.offloadEvents.filter(e => e.name === name).map(e => e.detail)",
        name,
    )


def wait_for_event(page, name):
    page.wait_for_function(
        "name => window.offloadEvents.some(e => e.name === name)", arg=name
    )
    return events(page, name)


def manifest_of(server, model=MODEL):
    with urllib.request.urlopen(f"{server}/offload/manifest/") as response:
        models = json.load(response)["models"]
    return next(m for m in models if m["id"] == model)


def runtime_value(page, expression):
    """
    Evaluate ``expression`` with ``runtime`` bound to the page's runtime.
    """
    return page.evaluate(
        """async (expression) => {
            const { runtimeReady } = await import("/static/django_offload/offload.js");
            const runtime = await runtimeReady;
            return new Function("runtime", `return (${expression});`)(runtime);
        }""",
        expression,
    )


def cached_urls(page):
    return page.evaluate(
        """async () => {
            const cache = await caches.open("offload-models-v1");
            return (await cache.keys()).map((request) => request.url);
        }"""
    )


def accept(page):
    page.locator("#offload-consent .offload-consent__accept").click()


def test_consent_widget_asks_and_remembers_decline(browser_context, live_server_url):
    context, traffic = browser_context
    page = context.new_page()
    page.goto(page_url(live_server_url))
    widget = page.locator("#offload-consent")
    widget.wait_for()
    assert widget.get_attribute("data-state") == "question"
    assert "MB" in widget.inner_text()

    page.locator(".offload-consent__decline").click()
    assert widget.get_attribute("data-state") == "hidden"
    assert page.evaluate("localStorage.getItem('offload:consent')") == "denied"
    assert events(page, "offload:consent") == [{"consent": False}]

    page.reload()
    page.locator("#offload-consent").wait_for(state="attached")
    assert page.locator("#offload-consent").get_attribute("data-state") == "hidden"
    assert runtime_value(page, "runtime.consent") is False
    assert traffic.model_bytes() == 0


def test_model_download_progress_then_cache(browser_context, live_server_url):
    context, traffic = browser_context
    model = manifest_of(live_server_url)
    page = context.new_page()
    page.goto(page_url(live_server_url))
    accept(page)
    ready = wait_for_event(page, "offload:ready")
    assert events(page, "offload:error") == []

    fit = runtime_value(page, "runtime.fit()")
    variant = model["variants"][fit["variant"]]
    total = variant["bytes"] + sum(f["bytes"] for f in model["files"].values())
    assert ready[0]["variant"] == fit["variant"]
    assert ready[0]["downloadedBytes"] == total
    progress = events(page, "offload:progress")
    loaded = [event["loaded"] for event in progress]
    assert len(progress) > 2
    assert loaded == sorted(loaded)
    assert progress[-1]["loaded"] == total
    assert all(event["total"] == total for event in progress)
    assert traffic.model_bytes() == total
    assert page.locator("#offload-consent").get_attribute("data-state") == "ready"

    # A reload remembers the consent and finds every file in Cache Storage,
    # so no model byte is served.
    served_before = traffic.model_bytes()
    page.reload()
    ready = wait_for_event(page, "offload:ready")
    assert page.evaluate("localStorage.getItem('offload:consent')") == "granted"
    assert runtime_value(page, "runtime.consent") is True
    assert ready[0]["downloadedBytes"] == 0
    assert traffic.model_bytes() == served_before
    assert page.locator("#offload-consent").get_attribute("data-state") == "ready"


CORRUPT = """async ([key, mode]) => {
    const cache = await caches.open("offload-models-v1");
    const stored = new Uint8Array(await (await cache.match(key)).arrayBuffer());
    const half = stored.slice(0, stored.length / 2);
    const broken = mode === "flip" ? stored.slice() : half;
    if (mode === "flip") broken[10] ^= 0xff;
    await cache.put(key, new Response(broken));
    return broken.length;
}"""

FETCH = """async ([path, bytes, sha256, baseUrl]) => {
    const { fetchFile } = await import("/static/django_offload/cache.js");
    const data = await fetchFile(path, { bytes, sha256, baseUrl });
    return data.byteLength;
}"""


@pytest.mark.parametrize("mode", ["flip", "truncate"])
def test_corrupt_cache_entry_refetched(browser_context, live_server_url, mode):
    context, traffic = browser_context
    model = manifest_of(live_server_url)
    record = model["files"]["tokenizer.json"]
    page = context.new_page()
    page.goto(page_url(live_server_url))
    accept(page)
    wait_for_event(page, "offload:ready")
    key = next(u for u in cached_urls(page) if "/tokenizer.json?" in u)
    assert record["sha256"] in key

    page.evaluate(CORRUPT, [key, mode])
    served_before = traffic.model_bytes()
    size = page.evaluate(
        FETCH, ["tokenizer.json", record["bytes"], record["sha256"], model["baseUrl"]]
    )
    assert size == record["bytes"]
    assert traffic.model_bytes() - served_before == record["bytes"]

    # The entry was replaced by a good copy, so a second read is served locally.
    page.evaluate(
        FETCH, ["tokenizer.json", record["bytes"], record["sha256"], model["baseUrl"]]
    )
    assert traffic.model_bytes() - served_before == record["bytes"]


def test_missing_model_file_reports_404(browser_context, live_server_url):
    context, traffic = browser_context
    page = context.new_page()
    page.goto(page_url(live_server_url, BROKEN_MODEL))
    accept(page)
    errors = wait_for_event(page, "offload:error")
    url = f"{live_server_url}/offload/models/{BROKEN_MODEL}/onnx/missing.onnx"
    assert errors[0]["url"] == url
    assert errors[0]["status"] == 404
    assert errors[0]["code"] == "http-status"
    assert url in errors[0]["message"]
    assert "HTTP 404" in errors[0]["message"]
    assert not any("missing.onnx" in u for u in cached_urls(page))
    assert events(page, "offload:ready") == []
    assert page.locator("#offload-consent").get_attribute("data-state") == "error"


def test_html_page_in_place_of_model_is_not_cached(browser_context, live_server_url):
    context, traffic = browser_context
    model = manifest_of(live_server_url)
    page = context.new_page()
    page.goto(page_url(live_server_url))
    variant = runtime_value(page, "runtime.possibleFit().variant")
    weights_url = live_server_url + model["variants"][variant]["url"]
    page.route(
        weights_url,
        lambda route: route.fulfill(
            status=200,
            content_type="text/html; charset=utf-8",
            body="<!doctype html><title>Sign in</title><p>Please sign in</p>",
        ),
    )
    accept(page)
    errors = wait_for_event(page, "offload:error")
    assert errors[0]["code"] == "html-body"
    assert errors[0]["url"] == weights_url
    assert errors[0]["status"] == 200
    assert weights_url in errors[0]["message"]
    assert not any(u.startswith(weights_url) for u in cached_urls(page))
    assert events(page, "offload:ready") == []


def test_probe_marks_swiftshader_as_fallback(webgpu_context, live_server_url):
    context, traffic = webgpu_context
    page = context.new_page()
    page.goto(page_url(live_server_url))
    capabilities = runtime_value(page, "runtime.capabilities")
    webgpu = capabilities["webgpu"]
    assert webgpu is not None, "Chromium exposed no navigator.gpu"
    assert webgpu["adapter"] is True
    assert webgpu["fallback"] is True
    assert capabilities["crossOriginIsolated"] is True
    fit = runtime_value(page, "runtime.possibleFit('smollm2-135m-instruct')")
    assert fit["backend"] != "webgpu"
    fit = runtime_value(page, "runtime.possibleFit()")
    assert fit["backend"] == "wasm"


def test_tabs_elect_one_engine_leader(browser_context, live_server_url):
    context, traffic = browser_context
    first = context.new_page()
    first.goto(page_url(live_server_url))
    accept(first)
    wait_for_event(first, "offload:ready")
    assert runtime_value(first, "runtime.broker.elect()") is True

    second = context.new_page()
    second.goto(page_url(live_server_url))
    assert runtime_value(second, "runtime.consent") is True
    assert runtime_value(second, "runtime.broker.elect()") is False
    assert second.locator("#offload-consent").get_attribute("data-state") == "ready"

    # The waiting tab takes over when the leader's tab closes.
    first.close()
    second.wait_for_function(
        """async () => {
            const { runtimeReady } = await import("/static/django_offload/offload.js");
            return (await runtimeReady).broker.leader;
        }"""
    )
    assert runtime_value(second, "runtime.broker.leader") is True
