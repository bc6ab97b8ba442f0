import json

import pytest

from django_offload import protocol
from django_offload.protocol import ProtocolError, parse_frame

TASK = "3f2b8c1e-8d4a-4b7e-9c55-0a1b2c3d4e5f"
TOKEN = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
LIMIT = 64 * 1024


def frame(**fields):
    return json.dumps({"v": 1, **fields})


def error_of(text, limit=LIMIT):
    with pytest.raises(ProtocolError) as caught:
        parse_frame(text, None, limit)
    return caught.value.code, caught.value.field


def ack(**changes):
    message = {"type": "ack", "task_id": TASK, "lease_token": TOKEN}
    message.update(changes)
    return frame(**message)


def test_parse_ack_valid():
    assert parse_frame(ack(), None, LIMIT) == {
        "v": 1,
        "type": "ack",
        "task_id": TASK,
        "lease_token": TOKEN,
    }


def test_parse_heartbeat_valid():
    assert parse_frame(frame(type="heartbeat"), None, LIMIT)["type"] == "heartbeat"


def test_parse_invalid_json():
    assert error_of("{not json") == ("invalid-json", None)


def test_parse_binary_frame():
    with pytest.raises(ProtocolError) as caught:
        parse_frame(None, b"\x00", LIMIT)
    assert caught.value.code == "invalid-frame"


def test_parse_not_an_object():
    assert error_of("[1, 2]") == ("not-an-object", None)


def test_parse_oversized_frame():
    text = frame(type="heartbeat", padding="x" * 200)
    assert error_of(text, limit=100) == ("too-large", None)


def test_parse_missing_version():
    assert error_of(json.dumps({"type": "heartbeat"})) == ("missing-field", "v")


def test_parse_wrong_version():
    assert error_of(json.dumps({"v": 2, "type": "heartbeat"})) == (
        "unsupported-version",
        "v",
    )


def test_parse_version_true_rejected():
    assert error_of(json.dumps({"v": True, "type": "heartbeat"}))[0] == (
        "unsupported-version"
    )


def test_parse_unknown_type():
    assert error_of(frame(type="steal")) == ("unknown-type", "type")


def test_parse_missing_type():
    assert error_of(frame()) == ("missing-field", "type")


def test_parse_missing_field():
    assert error_of(frame(type="ack", task_id=TASK)) == ("missing-field", "lease_token")


def test_parse_unknown_field():
    assert error_of(ack(extra=1)) == ("unknown-field", "extra")


def test_parse_wrong_type():
    assert error_of(ack(task_id=7)) == ("invalid-type", "task_id")


def test_parse_invalid_uuid():
    assert error_of(ack(lease_token="not-a-uuid")) == ("invalid-value", "lease_token")


def result(**changes):
    message = {
        "type": "result",
        "task_id": TASK,
        "lease_token": TOKEN,
        "scores": [],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2},
        "finish_reason": "stop",
        "latency_ms": 10,
        "backend": "wasm",
        "threads": 1,
    }
    message.update(changes)
    return frame(**message)


def test_parse_result_valid():
    parsed = parse_frame(result(ttft_ms=None, decode_tps=3.5), None, LIMIT)
    assert parsed["usage"] == {"prompt_tokens": 1, "completion_tokens": 2}
    assert parsed["ttft_ms"] is None
    assert parsed["latency_ms"] == 10.0


def test_parse_result_nested_unknown_field():
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "text": "x"}
    assert error_of(result(usage=usage)) == ("unknown-field", "usage.text")


def test_parse_result_nested_wrong_type():
    usage = {"prompt_tokens": "1", "completion_tokens": 2}
    assert error_of(result(usage=usage)) == ("invalid-type", "usage.prompt_tokens")


def test_parse_result_bad_finish_reason():
    assert error_of(result(finish_reason="done")) == ("invalid-value", "finish_reason")


def test_parse_result_negative_latency():
    assert error_of(result(latency_ms=-1)) == ("invalid-value", "latency_ms")


def test_parse_result_nan_latency():
    text = result().replace('"latency_ms": 10', '"latency_ms": NaN')
    assert error_of(text) == ("invalid-value", "latency_ms")


def test_parse_result_score_not_object():
    assert error_of(result(scores=["good"])) == ("invalid-type", "scores[0]")


def test_parse_result_too_many_scores():
    scores = [{}] * (protocol.MAX_SCORES + 1)
    assert error_of(result(scores=scores)) == ("too-long", "scores")


def test_parse_error_free_text_code_rejected():
    text = frame(type="error", task_id=TASK, lease_token=TOKEN, code="my text")
    assert error_of(text) == ("invalid-value", "code")


def test_parse_hello_capabilities_too_large():
    capabilities = {"padding": "x" * (protocol.MAX_CAPABILITIES_BYTES + 1)}
    text = frame(type="hello", capabilities=capabilities, consent=True)
    assert error_of(text) == ("too-long", "capabilities")


def test_parse_hello_consent_must_be_bool():
    text = frame(type="hello", capabilities={}, consent="yes")
    assert error_of(text) == ("invalid-type", "consent")


def test_task_frame_has_version():
    message = protocol.cancel(TASK, "ack-timeout")
    assert message == {
        "v": 1,
        "type": "cancel",
        "task_id": TASK,
        "reason": "ack-timeout",
    }
