"""
Browser test of the engine behind the page runtime: greedy generation in the
page gives the server engine's token ids, a second tab reuses the first tab's
engine through the leader election, and takes it over when the first closes.
"""

import pytest

from tests.browser.conftest import SOURCE_STORE
from tests.browser.test_runtime_page import accept, page_url, wait_for_event

pytestmark = [pytest.mark.browser, pytest.mark.models]

TEXT_MODEL = "smollm2-135m-instruct"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
MAX_NEW_TOKENS = 12

GENERATE = """async ([messages, maxNewTokens]) => {
    const { runtimeReady } = await import("/static/django_offload/offload.js");
    const runtime = await runtimeReady;
    const engine = await runtime.engine();
    const pieces = [];
    const result = await engine.generate({
        messages,
        params: { maxNewTokens, temperature: 0 },
        onToken: (piece) => pieces.push(piece),
    });
    return { result, pieces, leader: runtime.broker.leader };
}"""


@pytest.fixture(scope="module")
def server_result():
    """
    Greedy ids of the server engine for the same prompt, on the fp32
    reference variant.
    """
    engine = pytest.importorskip("django_offload.engine")
    model = engine.TextModel.load(SOURCE_STORE / TEXT_MODEL, variant="fp32")
    params = engine.GenerationParams(max_new_tokens=MAX_NEW_TOKENS, temperature=0.0)
    return model.generate(MESSAGES, params)


def test_page_greedy_ids_match_server(browser_context, live_server_url, server_result):
    context, traffic = browser_context
    first = context.new_page()
    first.goto(page_url(live_server_url, TEXT_MODEL))
    accept(first)
    wait_for_event(first, "offload:ready")

    page_run = first.evaluate(GENERATE, [MESSAGES, MAX_NEW_TOKENS])
    result = page_run["result"]
    assert page_run["leader"] is True
    assert result["tokenIds"] == list(server_result.token_ids)
    assert result["text"] == server_result.text
    assert result["finishReason"] == server_result.finish_reason
    assert result["usage"]["promptTokens"] == server_result.prompt_tokens
    assert "".join(page_run["pieces"]) == result["text"]

    # A second tab gets the same token ids from the first tab's engine and
    # starts no worker of its own.
    second = context.new_page()
    second.goto(page_url(live_server_url, TEXT_MODEL))
    follower_run = second.evaluate(GENERATE, [MESSAGES, MAX_NEW_TOKENS])
    assert follower_run["leader"] is False
    assert follower_run["result"]["tokenIds"] == result["tokenIds"]
    assert "".join(follower_run["pieces"]) == result["text"]
    assert second.workers == []

    # When the first tab closes, the second one takes over and loads the
    # engine itself.
    first.close()
    wait_for_event(second, "offload:leader")
    leader_run = second.evaluate(GENERATE, [MESSAGES, MAX_NEW_TOKENS])
    assert leader_run["leader"] is True
    assert leader_run["result"]["tokenIds"] == result["tokenIds"]
    assert second.workers != []


# A page-side WebGPU adapter that passes the probe: not a fallback adapter,
# and requestDevice succeeds. The engine's worker has no WebGPU in this
# Chromium (no --enable-unsafe-webgpu), so creating the session there fails.
FAKE_GPU = """
if (typeof Navigator !== "undefined") {
  const adapter = {
    features: new Set(),
    limits: {},
    info: { vendor: "test", architecture: "test", description: "test" },
    isFallbackAdapter: false,
    requestDevice: async () => ({ destroy() {} }),
  };
  Object.defineProperty(Navigator.prototype, "gpu", {
    configurable: true,
    get: () => ({ requestAdapter: async () => adapter }),
  });
}
"""

FIT_AND_GENERATE = """async ([messages, maxNewTokens]) => {
    const { runtimeReady } = await import("/static/django_offload/offload.js");
    const runtime = await runtimeReady;
    const before = runtime.fit().backend;
    const engine = await runtime.engine();
    const result = await engine.generate({
        messages,
        params: { maxNewTokens, temperature: 0 },
    });
    return { before, after: runtime.fit(), result };
}"""


def test_webgpu_session_failure_runs_on_wasm(
    browser_context, live_server_url, server_result
):
    context, _ = browser_context
    page = context.new_page()
    page.add_init_script(FAKE_GPU)
    page.goto(page_url(live_server_url, TEXT_MODEL))
    accept(page)

    run = page.evaluate(FIT_AND_GENERATE, [MESSAGES, MAX_NEW_TOKENS])
    assert run["before"] == "webgpu"
    assert run["after"]["backend"] == "wasm"
    assert run["result"]["backend"] == "wasm"
    assert run["result"]["tokenIds"] == list(server_result.token_ids)
