"""
A canary string passed as a prompt variable must appear in no database row,
no log record and, for page delivery, no device-to-server frame.
"""

import asyncio
import logging

import pytest
from channels.db import database_sync_to_async
from django.db import connection

from demo_project.settings import OFFLOAD as DEMO_OFFLOAD
from django_offload.api import offload
from django_offload.dispatch import PromptVariablesError, check_variables
from tests.offload_support import (
    CANARY,
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
def dump_database() -> str:
    """
    Return every row of every table as text.
    """
    lines = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            lines += [repr(row) for row in cursor.fetchall()]
    return "\n".join(lines)


def logged_text(records) -> str:
    return "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in records)


async def wait_for_status(task_id, status):
    from django_offload.models import Task

    for _ in range(200):
        row = await database_sync_to_async(Task.objects.get)(id=task_id)
        if row.status == status:
            return row
        await asyncio.sleep(0.02)
    raise AssertionError(f"task {task_id} stayed {row.status}")


async def test_page_delivery_canary_stays_on_page(caplog):
    caplog.set_level(logging.DEBUG)
    await make_prompt()
    _, key = await make_user("ann")
    device = await connect_device(key)
    status, body = await post("/mood/page-sync/", {"note": CANARY}, key, device)
    assert status == 200
    task = await device.receive_type("task")
    # The rendered prompt reaches the page's device, and only it.
    assert CANARY in task["messages"][-1]["content"]
    await device.ack(task)
    await device.send(
        {
            "v": 1,
            "type": "progress",
            "task_id": task["task_id"],
            "lease_token": task["lease_token"],
            "stage": "decoding",
            "tokens": 3,
        }
    )
    await device.result(task)
    await wait_for_status(body["task_id"], "succeeded")
    await device.close()

    assert not any(CANARY in frame for frame in device.sent)
    assert CANARY not in await dump_database()
    assert CANARY not in logged_text(caplog.records)


async def test_page_delivery_fallback_canary_not_stored(caplog):
    caplog.set_level(logging.DEBUG)
    await make_prompt(template="Summarise: {{ note }}")
    _, key = await make_user("ann")
    device = await connect_device(key, consent=False)
    status, body = await post("/mood/page-async/", {"note": CANARY}, key, device)
    assert status == 200
    assert body["fallback"]["reason"] == "no-consent"
    await device.close()

    assert CANARY not in await dump_database()
    assert CANARY not in logged_text(caplog.records)


async def test_server_delivery_stores_only_output(caplog):
    caplog.set_level(logging.DEBUG)
    await make_prompt()
    user, key = await make_user("ann")
    device = await connect_device(key)
    pending = asyncio.create_task(
        offload("mood", user=user, variables={"note": CANARY})
    )
    task = await device.receive_type("task")
    await device.ack(task)
    await device.result(task, output="calm")
    result = await asyncio.wait_for(pending, 10)
    assert result.output == "calm"
    await device.close()

    dump = await dump_database()
    assert CANARY not in dump
    assert "calm" in dump
    assert CANARY not in logged_text(caplog.records)


async def test_device_error_and_timeouts_log_no_canary(caplog):
    caplog.set_level(logging.DEBUG)
    await make_prompt()
    user, key = await make_user("ann")
    device = await connect_device(key)
    pending = asyncio.create_task(
        offload("mood", user=user, variables={"note": CANARY})
    )
    await device.receive_type("task")
    # No ack: the lease times out and the fallback runs.
    result = await asyncio.wait_for(pending, 10)
    assert result.fallback["reason"] == "ack-timeout"
    await device.close()

    assert CANARY not in await dump_database()
    assert CANARY not in logged_text(caplog.records)


async def test_variable_errors_name_no_value():
    version = await make_prompt()
    version = await database_sync_to_async(
        lambda: type(version).objects.select_related("prompt").get(pk=version.pk)
    )()
    with pytest.raises(PromptVariablesError) as caught:
        check_variables(version, {"note": "x", "other": CANARY})
    assert CANARY not in str(caught.value)
    assert "'other'" in str(caught.value)


@pytest.mark.models
async def test_server_engine_fallback_keeps_canary_out(caplog, settings):
    settings.OFFLOAD = {
        **settings.OFFLOAD,
        "MODEL_STORE": DEMO_OFFLOAD["MODEL_STORE"],
        "DEFAULT_FALLBACK": "server",
    }
    caplog.set_level(logging.DEBUG)
    await make_prompt(
        template="Repeat exactly: {{ note }}",
        evaluators=[{"name": "words", "type": "word_count", "max": 50}],
        max_new_tokens=16,
    )
    _, key = await make_user("ann")
    device = await connect_device(key, consent=False)
    status, body = await post("/mood/page-sync/", {"note": CANARY}, key, device)
    assert status == 200
    assert body["fallback"] == {"kind": "server", "reason": "no-consent"}
    assert body["scores"][0]["name"] == "words"
    await device.close()

    assert CANARY not in await dump_database()
    assert CANARY not in logged_text(caplog.records)
