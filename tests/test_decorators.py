import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.testing import HttpCommunicator

from demo_project.asgi import application
from django_offload.decorators import offloaded
from django_offload.models import Score, Task
from tests.offload_support import (
    CSRF_TOKEN,
    connect_device,
    fresh_channel_layer,  # noqa: F401
    make_prompt,
    make_user,
    offload_settings,  # noqa: F401
    post,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("offload_settings"),
    pytest.mark.urls("tests.offload_urls"),
]


@database_sync_to_async
def task_row(task_id):
    return Task.objects.get(id=task_id)


async def serve_one(device, output=None):
    """
    Run the next task on the simulated device, as the page's worker does.
    """
    task = await device.receive_type("task")
    await device.ack(task)
    await device.result(task, output=output)
    return task


@pytest.mark.parametrize("path", ["/mood/sync/", "/mood/async/"])
async def test_server_delivery_returns_output(path):
    await make_prompt()
    _, key = await make_user("ann")
    device = await connect_device(key)
    request = asyncio.create_task(post(path, {"note": "sunny"}, key, device))
    task = await serve_one(device, output="happy")
    status, body = await request
    assert status == 200
    assert body["output"] == "happy"
    assert body["task_id"] == task["task_id"]
    assert body["fallback"] is None
    assert body["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 12, "completion_tokens": 3}
    assert "parsed" not in body
    await device.close()


@pytest.mark.parametrize("path", ["/mood/page-sync/", "/mood/page-async/"])
async def test_page_delivery_returns_task_id(path):
    await make_prompt()
    _, key = await make_user("ann")
    device = await connect_device(key)
    status, body = await post(path, {"note": "sunny"}, key, device)
    assert status == 200
    assert body["status"] == "leased"
    assert body["output"] is None
    task = await device.receive_type("task")
    assert task["task_id"] == body["task_id"]
    assert task["delivery"] == "page"
    await device.ack(task)
    await device.result(task)
    for _ in range(100):
        row = await task_row(task["task_id"])
        if row.status == "succeeded":
            break
        await asyncio.sleep(0.02)
    assert row.status == "succeeded"
    assert row.output == ""
    await device.close()


async def test_page_delivery_without_device_header_falls_back():
    await make_prompt()
    _, key = await make_user("ann")
    device = await connect_device(key)
    status, body = await post("/mood/page-sync/", {"note": "sunny"}, key)
    assert status == 200
    assert body["fallback"] == {"kind": "callable", "reason": "no-device"}
    assert body["output"] == "2 messages, 45 characters"
    row = await task_row(body["task_id"])
    assert row.output == ""
    assert await device.socket.receive_nothing(timeout=0.2)
    await device.close()


async def test_page_delivery_late_fallback_pushed_to_page():
    await make_prompt()
    _, key = await make_user("ann")
    device = await connect_device(key)
    status, body = await post("/mood/page-async/", {"note": "sunny"}, key, device)
    assert body["status"] == "leased"
    await device.receive_type("task")
    # The page never acknowledges; its device is the only one allowed.
    output = await device.receive_type("output", timeout=5)
    assert output["task_id"] == body["task_id"]
    assert output["output"] == "2 messages, 45 characters"
    assert output["fallback"] == {"kind": "callable", "reason": "ack-timeout"}
    row = await task_row(body["task_id"])
    assert row.output == ""
    assert row.fallback_reason == "ack-timeout"
    await device.close()


async def test_server_delivery_no_device_falls_back():
    await make_prompt()
    _, key = await make_user("ann")
    status, body = await post("/mood/sync/", {"note": "sunny"}, key)
    assert status == 200
    assert body["fallback"] == {"kind": "callable", "reason": "no-device"}
    row = await task_row(body["task_id"])
    assert row.status == "fell_back"
    assert row.output == body["output"]


async def test_error_fallback_returns_503():
    await make_prompt()
    _, key = await make_user("ann")
    status, body = await post("/mood/error/", {"note": "sunny"}, key)
    assert status == 503
    assert body["error"] == "offload-unavailable"
    assert body["reason"] == "no-device"
    row = await task_row(body["task_id"])
    assert row.fallback_kind == "error"


async def test_result_hook_builds_response():
    await make_prompt()
    _, key = await make_user("ann")
    device = await connect_device(key)
    request = asyncio.create_task(post_text("/mood/hooked/", "note=rain", key, device))
    await serve_one(device, output="gloomy")
    status, body = await request
    assert status == 200
    assert body == b"GLOOMY"
    await device.close()


async def test_view_response_passes_through():
    await make_prompt()
    _, key = await make_user("ann")
    status, body = await post("/mood/hooked/", {}, key)
    assert status == 400
    assert body == {"error": "note missing"}


async def test_wrong_variables_server_error(caplog):
    await make_prompt()
    _, key = await make_user("ann")
    status, _ = await post_text("/mood/wrong/", "", key, None)
    assert status == 500
    assert "unexpected ['extra']" in caplog.text
    assert await database_sync_to_async(Task.objects.count)() == 0


async def test_output_schema_parsed():
    schema = {"type": "object", "properties": {"mood": {"type": "string"}}}
    await make_prompt(output_schema=schema)
    _, key = await make_user("ann")
    device = await connect_device(key)
    request = asyncio.create_task(post("/mood/sync/", {"note": "x"}, key, device))
    task = await device.receive_type("task")
    assert task["output_schema"] == schema
    await device.result(task, output='{"mood": "calm"}')
    _, body = await request
    assert body["parsed"] == {"mood": "calm"}
    assert body["parse_error"] is None
    await device.close()


async def test_output_schema_mismatch_reported():
    schema = {"type": "object", "required": ["mood"]}
    await make_prompt(output_schema=schema)
    _, key = await make_user("ann")
    device = await connect_device(key)
    request = asyncio.create_task(post("/mood/sync/", {"note": "x"}, key, device))
    task = await device.receive_type("task")
    await device.result(task, output="[1]")
    _, body = await request
    assert body["parsed"] is None
    assert body["parse_error"] == "schema-mismatch"
    await device.close()


def test_decorator_rejects_unknown_delivery():
    with pytest.raises(ValueError, match="'email'"):
        offloaded("mood", deliver="email")


def test_decorator_rejects_bad_timeout():
    with pytest.raises(ValueError, match="-1"):
        offloaded("mood", timeout=-1)


def test_on_result_needs_server_delivery():
    view = offloaded("mood", deliver="page")(lambda request: {})
    with pytest.raises(TypeError, match="deliver='server'"):
        view.on_result(lambda request, result: None)


def test_async_view_stays_async():
    async def view(request):
        return {}

    assert asyncio.iscoroutinefunction(offloaded("mood")(view))


async def post_text(path, body, key, device):
    headers = [
        (b"host", b"localhost"),
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"cookie", f"csrftoken={CSRF_TOKEN}; sessionid={key}".encode()),
        (b"x-csrftoken", CSRF_TOKEN.encode()),
    ]
    if device is not None:
        headers.append((b"x-offload-device", device.device_id.encode()))
    communicator = HttpCommunicator(application, "POST", path, body.encode(), headers)
    response = await communicator.get_response(timeout=30)
    return response["status"], response["body"]


async def test_callable_fallback_scored():
    evaluators = [{"name": "words", "type": "word_count", "max": 10}]
    await make_prompt(evaluators=evaluators)
    _, key = await make_user("ann")
    status, body = await post("/mood/sync/", {"note": "sunny"}, key)
    assert status == 200
    assert body["output"] == "2 messages, 45 characters"
    assert body["scores"] == [
        {
            "name": "words",
            "data_type": "numeric",
            "value": 4,
            "label": None,
            "passed": True,
        }
    ]
    scores = await database_sync_to_async(
        lambda: list(Score.objects.values_list("task_id", "name", "value", "passed"))
    )()
    assert [(str(row[0]), *row[1:]) for row in scores] == [
        (body["task_id"], "words", 4.0, True)
    ]
