import asyncio
import json
import logging

import pytest
from channels.db import database_sync_to_async
from django.forms.models import model_to_dict

from django_offload.api import offload
from django_offload.models import Device as DeviceRow
from django_offload.models import Score, Task
from tests.offload_support import (
    Device,
    connect_device,
    fresh_channel_layer,  # noqa: F401
    make_prompt,
    make_user,
    new_id,
    offload_settings,  # noqa: F401
    result_frame,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("offload_settings"),
]


@database_sync_to_async
def task_row(task_id):
    return model_to_dict(Task.objects.get(id=task_id))


@database_sync_to_async
def device_row(device_id):
    return DeviceRow.objects.get(id=device_id)


@database_sync_to_async
def score_count():
    return Score.objects.count()


async def start_offload(user, note="a calm day", **options):
    return asyncio.create_task(
        offload("mood", user=user, variables={"note": note}, **options)
    )


async def assert_alive(device):
    await device.send({"v": 1, "type": "heartbeat"})
    assert (await device.receive_type("heartbeat"))["type"] == "heartbeat"


async def test_hello_welcome_with_model():
    await make_prompt()
    user, key = await make_user("ann")
    device = Device(key)
    assert await device.connect()
    welcome = await device.hello()
    assert welcome["model"] == {
        "id": "smollm2-135m-instruct",
        "variant": "q4f",
        "backend": "wasm",
        "threads": 4,
    }
    assert welcome["reason"] is None
    row = await device_row(welcome["device_id"])
    assert row.user_id == user.pk
    assert row.connected
    assert row.consent
    await device.close()


async def test_hello_declined_consent_no_model():
    _, key = await make_user("ann")
    device = Device(key)
    await device.connect()
    welcome = await device.hello(consent=False)
    assert welcome["model"] is None
    assert welcome["reason"] == "no-consent"
    await device.close()


async def test_hello_too_little_memory():
    _, key = await make_user("ann")
    device = Device(key)
    await device.connect()
    welcome = await device.hello(deviceMemory=0.5)
    assert welcome["model"] is None
    assert welcome["reason"] == "too-little-memory"
    await device.close()


async def test_hello_resumes_device_id():
    _, key = await make_user("ann")
    first = await connect_device(key)
    device_id = first.device_id
    await first.close()
    second = Device(key)
    second.device_id = device_id
    await second.connect()
    welcome = await second.hello()
    assert welcome["device_id"] == device_id
    await second.close()


async def test_hello_other_users_device_id_not_resumed():
    _, key_a = await make_user("ann")
    _, key_b = await make_user("bob")
    ann = await connect_device(key_a)
    bob = Device(key_b)
    bob.device_id = ann.device_id
    await bob.connect()
    welcome = await bob.hello()
    assert welcome["device_id"] != ann.device_id
    await ann.close()
    await bob.close()


async def test_hello_invalid_capabilities():
    _, key = await make_user("ann")
    device = Device(key)
    await device.connect()
    message = {"v": 1, "type": "hello", "capabilities": {"gpu": 1}, "consent": True}
    await device.send(message)
    error = await device.receive_type("error")
    assert error["code"] == "invalid-value"
    assert error["field"] == "capabilities"
    await device.hello()
    await device.close()


@pytest.mark.parametrize(
    ("text", "code", "field"),
    [
        ("{oops", "invalid-json", None),
        ('{"v": 1, "type": "teleport"}', "unknown-type", "type"),
        (
            json.dumps({"v": 1, "type": "ack", "task_id": new_id()}),
            "missing-field",
            "lease_token",
        ),
        (
            '{"v": 1, "type": "ack", "task_id": 5, "lease_token": 5}',
            "invalid-type",
            "task_id",
        ),
        ('{"v": 1, "type": "heartbeat", "extra": 1}', "unknown-field", "extra"),
        ('{"v": 9, "type": "heartbeat"}', "unsupported-version", "v"),
        (
            json.dumps({"v": 1, "type": "heartbeat", "pad": "x" * 70000}),
            "too-large",
            None,
        ),
    ],
)
async def test_bad_frame_error_connection_survives(text, code, field):
    _, key = await make_user("ann")
    device = await connect_device(key)
    await device.send(text)
    error = await device.receive_type("error")
    assert error["code"] == code
    assert error["field"] == field
    await assert_alive(device)
    await device.close()


async def test_binary_frame_rejected():
    _, key = await make_user("ann")
    device = await connect_device(key)
    await device.socket.send_to(bytes_data=b"\x00\x01")
    error = await device.receive_type("error")
    assert error["code"] == "invalid-frame"
    await assert_alive(device)
    await device.close()


async def test_message_before_hello_rejected():
    _, key = await make_user("ann")
    device = Device(key)
    await device.connect()
    await device.send({"v": 1, "type": "heartbeat"})
    error = await device.receive_type("error")
    assert error["code"] == "hello-required"
    await device.hello()
    await device.close()


async def test_connect_without_session_closed():
    device = Device(None)
    await device.connect()
    error = await device.receive_type("error")
    assert error["code"] == "no-session"
    output = await device.socket.receive_output(timeout=1)
    assert output["type"] == "websocket.close"
    assert output["code"] == 4403


async def test_rejected_origin_logged(caplog):
    _, key = await make_user("ann")
    device = Device(key, origin=b"http://evil.example")
    with caplog.at_level(logging.WARNING, logger="django_offload.security"):
        connected = await device.connect()
    assert not connected
    assert "http://evil.example" in caplog.text


async def test_ack_and_result_complete_task():
    await make_prompt()
    user, key = await make_user("ann")
    device = await connect_device(key)
    pending = await start_offload(user)
    task = await device.receive_type("task")
    assert task["delivery"] == "server"
    assert task["messages"][-1] == {
        "role": "user",
        "content": "Mood of this note: a calm day",
    }
    assert task["params"]["max_new_tokens"] == 128
    await device.ack(task)
    await device.result(task, output="calm")
    result = await asyncio.wait_for(pending, 10)
    assert result.output == "calm"
    assert result.fallback is None
    assert result.usage == {"prompt_tokens": 12, "completion_tokens": 3}
    row = await task_row(task["task_id"])
    assert row["status"] == "succeeded"
    assert row["output"] == "calm"
    assert row["backend"] == "wasm"
    assert row["decode_tps"] == 20.5
    assert row["lease_token"] is None
    await device.close()


async def test_result_without_ack_accepted():
    await make_prompt()
    user, key = await make_user("ann")
    device = await connect_device(key)
    pending = await start_offload(user)
    task = await device.receive_type("task")
    await device.result(task, output="calm")
    result = await asyncio.wait_for(pending, 10)
    assert result.output == "calm"
    await device.close()


async def test_result_from_other_users_device_rejected():
    await make_prompt()
    ann, key_a = await make_user("ann")
    _, key_b = await make_user("bob")
    ann_device = await connect_device(key_a)
    bob_device = await connect_device(key_b)
    pending = await start_offload(ann)
    task = await ann_device.receive_type("task")
    await ann_device.ack(task)
    await assert_alive(ann_device)  # the ack is handled before the reply
    before = await task_row(task["task_id"])
    await bob_device.result(task, output="stolen")
    error = await bob_device.receive_type("error")
    assert error["code"] == "stale-lease"
    assert await task_row(task["task_id"]) == before
    await ann_device.result(task, output="calm")
    assert (await asyncio.wait_for(pending, 10)).output == "calm"
    await ann_device.close()
    await bob_device.close()


async def test_result_forged_task_id_rejected():
    await make_prompt()
    user, key = await make_user("ann")
    device = await connect_device(key)
    pending = await start_offload(user)
    task = await device.receive_type("task")
    before = await task_row(task["task_id"])
    forged = dict(task, task_id=new_id())
    await device.result(forged, output="calm")
    error = await device.receive_type("error")
    assert error["code"] == "stale-lease"
    assert error["task_id"] == forged["task_id"]
    assert await task_row(task["task_id"]) == before
    await device.result(task, output="calm")
    await asyncio.wait_for(pending, 10)
    await device.close()


async def test_result_forged_token_rejected():
    await make_prompt()
    user, key = await make_user("ann")
    device = await connect_device(key)
    pending = await start_offload(user)
    task = await device.receive_type("task")
    await device.result(dict(task, lease_token=new_id()), output="calm")
    assert (await device.receive_type("error"))["code"] == "stale-lease"
    await device.result(task, output="calm")
    await asyncio.wait_for(pending, 10)
    await device.close()


async def test_replayed_result_changes_nothing():
    await make_prompt(evaluators=[])
    user, key = await make_user("ann")
    device = await connect_device(key)
    pending = await start_offload(user)
    task = await device.receive_type("task")
    await device.result(task, output="calm")
    await asyncio.wait_for(pending, 10)
    after_first = await task_row(task["task_id"])
    await device.result(task, output="angry", latency_ms=999.0)
    error = await device.receive_type("error")
    assert error["code"] == "stale-lease"
    assert await task_row(task["task_id"]) == after_first
    await device.close()


async def test_late_result_after_release_rejected():
    await make_prompt()
    user, key_a = await make_user("ann")
    slow = await connect_device(key_a)
    pending = await start_offload(user)
    first = await slow.receive_type("task")
    # The slow device never acknowledges; a second device appears.
    fast = await connect_device(key_a)
    cancel = await slow.receive_type("cancel", timeout=5)
    assert cancel["reason"] == "ack-timeout"
    second = await fast.receive_type("task", timeout=5)
    assert second["task_id"] == first["task_id"]
    assert second["lease_token"] != first["lease_token"]
    await slow.result(first, output="late")
    assert (await slow.receive_type("error"))["code"] == "stale-lease"
    await fast.ack(second)
    await fast.result(second, output="calm")
    result = await asyncio.wait_for(pending, 10)
    assert result.output == "calm"
    row = await task_row(first["task_id"])
    assert row["attempts"] == 2
    assert row["output"] == "calm"
    await slow.close()
    await fast.close()


async def test_never_acked_falls_back():
    await make_prompt()
    user, key = await make_user("ann")
    device = await connect_device(key)
    pending = await start_offload(user)
    task = await device.receive_type("task")
    result = await asyncio.wait_for(pending, 10)
    assert result.fallback == {"kind": "callable", "reason": "ack-timeout"}
    assert result.output == "2 messages, 50 characters"
    row = await task_row(task["task_id"])
    assert row["status"] == "fell_back"
    assert row["fallback_reason"] == "ack-timeout"
    assert row["fallback_kind"] == "callable"
    await device.close()


async def test_disconnect_mid_task_retried_on_other_device():
    await make_prompt()
    user, key = await make_user("ann")
    first = await connect_device(key)
    second = await connect_device(key)
    pending = await start_offload(user)
    # The newest device is offered the task first.
    task = await second.receive_type("task")
    await second.ack(task)
    await second.close()
    retry = await first.receive_type("task", timeout=5)
    assert retry["task_id"] == task["task_id"]
    await first.ack(retry)
    await first.result(retry, output="calm")
    result = await asyncio.wait_for(pending, 10)
    assert result.output == "calm"
    assert result.fallback is None
    await first.close()


async def test_disconnect_mid_task_falls_back():
    await make_prompt()
    user, key = await make_user("ann")
    device = await connect_device(key)
    pending = await start_offload(user)
    task = await device.receive_type("task")
    await device.ack(task)
    await device.close()
    result = await asyncio.wait_for(pending, 10)
    assert result.fallback == {"kind": "callable", "reason": "device-lost"}
    assert result.output


async def test_reconnected_device_gets_task_again():
    await make_prompt()
    user, key = await make_user("ann")
    device = await connect_device(key)
    pending = await start_offload(user)
    task = await device.receive_type("task")
    await device.close()
    again = Device(key)
    again.device_id = device.device_id
    await again.connect()
    await again.hello()
    retry = await again.receive_type("task", timeout=5)
    assert retry["task_id"] == task["task_id"]
    await again.result(retry, output="calm")
    assert (await asyncio.wait_for(pending, 10)).output == "calm"
    await again.close()


async def test_device_error_falls_back_with_reason():
    await make_prompt()
    user, key = await make_user("ann")
    device = await connect_device(key)
    pending = await start_offload(user)
    task = await device.receive_type("task")
    await device.send(
        {
            "v": 1,
            "type": "error",
            "task_id": task["task_id"],
            "lease_token": task["lease_token"],
            "code": "out-of-memory",
        }
    )
    result = await asyncio.wait_for(pending, 10)
    assert result.fallback["reason"] == "device-error"
    row = await task_row(task["task_id"])
    assert row["error_code"] == "out-of-memory"
    await device.close()


async def test_declined_consent_every_task_falls_back():
    await make_prompt()
    user, key = await make_user("ann")
    device = await connect_device(key, consent=False)
    for _ in range(2):
        result = await asyncio.wait_for(await start_offload(user), 10)
        assert result.fallback == {"kind": "callable", "reason": "no-consent"}
    assert await device.socket.receive_nothing(timeout=0.3)
    await device.close()


async def test_no_device_falls_back_at_once():
    await make_prompt()
    user, _ = await make_user("ann")
    result = await offload("mood", user=user, variables={"note": "x"})
    assert result.fallback == {"kind": "callable", "reason": "no-device"}


async def test_page_result_with_output_rejected():
    await make_prompt()
    user, key = await make_user("ann")
    device = await connect_device(key)
    result = await offload(
        "mood",
        user=user,
        variables={"note": "x"},
        deliver="page",
        device_id=device.device_id,
    )
    assert result.status == "leased"
    task = await device.receive_type("task")
    assert task["delivery"] == "page"
    before = await task_row(task["task_id"])
    await device.result(task, output="secret summary")
    error = await device.receive_type("error")
    assert error["code"] == "output-not-allowed"
    assert error["field"] == "output"
    assert await task_row(task["task_id"]) == before
    await device.result(task)
    await asyncio.sleep(0.2)
    row = await task_row(task["task_id"])
    assert row["status"] == "succeeded"
    assert row["output"] == ""
    await device.close()


async def test_server_result_without_output_rejected():
    await make_prompt()
    user, key = await make_user("ann")
    device = await connect_device(key)
    pending = await start_offload(user)
    task = await device.receive_type("task")
    await device.send(result_frame(task))
    error = await device.receive_type("error")
    assert error["code"] == "missing-field"
    assert error["field"] == "output"
    await device.result(task, output="calm")
    await asyncio.wait_for(pending, 10)
    await device.close()


@database_sync_to_async
def add_stale_device(user, channel_name):
    """
    Store a device that looks connected but whose server process is gone:
    nothing reads its channel, as after a crash without disconnect.
    """
    return DeviceRow.objects.create(
        user=user,
        channel_name=channel_name,
        connected=True,
        consent=True,
        model_id="smollm2-135m-instruct",
        variant="q4f",
        backend="wasm",
    )


async def test_stale_device_task_released_to_live_device():
    from channels.layers import get_channel_layer

    await make_prompt()
    user, key = await make_user("ann")
    live = await connect_device(key)
    # Created last, the stale device is the first choice.
    dead_channel = await get_channel_layer().new_channel()
    stale = await add_stale_device(user, dead_channel)
    pending = await start_offload(user)
    task = await live.receive_type("task", timeout=5)
    row = await task_row(task["task_id"])
    assert row["attempts"] == 2
    assert row["device"] != stale.id
    await live.result(task, output="calm")
    result = await asyncio.wait_for(pending, 10)
    assert result.output == "calm"
    assert result.fallback is None
    await live.close()


async def test_result_found_without_wake_message():
    from django_offload import leases

    await make_prompt()
    user, key = await make_user("ann")
    device = await connect_device(key)
    pending = await start_offload(user)
    task = await device.receive_type("task")
    # Complete the lease in the database only, as if the consumer's wake
    # message to the waiting side had been dropped.
    message = result_frame(task, output="calm")
    await leases.acomplete_lease(device.device_id, message)
    result = await asyncio.wait_for(pending, 10)
    assert result.output == "calm"
    await device.close()


async def test_signed_in_rows_store_no_session_key():
    await make_prompt()
    user, key = await make_user("ann")
    device = await connect_device(key)
    pending = await start_offload(user)
    task = await device.receive_type("task")
    await device.result(task, output="calm")
    await asyncio.wait_for(pending, 10)
    assert (await device_row(device.device_id)).session_key == ""
    assert (await task_row(task["task_id"]))["session_key"] == ""
    await device.close()


async def test_anonymous_session_device_gets_tasks():
    from django.contrib.sessions.backends.db import SessionStore

    from django_offload import dispatch, leases

    await make_prompt()

    @database_sync_to_async
    def anonymous_session():
        session = SessionStore()
        session["visited"] = True
        session.create()
        return session.session_key

    key = await anonymous_session()
    device = await connect_device(key)
    owner = leases.Owner(user_id=None, session_key=key)
    job = await dispatch.prepare(
        "mood",
        {"note": "x"},
        owner=owner,
        delivery="server",
        timeout=None,
        fallback=None,
    )
    pending = asyncio.create_task(dispatch.run(job))
    task = await device.receive_type("task")
    await device.result(task, output="calm")
    assert (await asyncio.wait_for(pending, 10)).output == "calm"
    assert (await device_row(device.device_id)).user_id is None
    await device.close()
