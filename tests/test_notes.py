import asyncio
import importlib

import pytest
from channels.db import database_sync_to_async
from django.apps import apps

from demo_project.notes.models import Note
from demo_project.settings import OFFLOAD as DEMO_OFFLOAD
from django_offload.models import Score, Task
from tests.offload_support import (
    connect_device,
    fresh_channel_layer,  # noqa: F401
    make_user,
    offload_settings,  # noqa: F401
    post,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("offload_settings", "demo_prompts"),
]

demo_migration = importlib.import_module(
    "demo_project.notes.migrations.0002_demo_prompts"
)


@pytest.fixture
def demo_prompts():
    """
    Create the demo prompts again: transactional tests flush migration data.
    """
    demo_migration.create_demo_prompts(apps)


@database_sync_to_async
def make_note(user, body="Sat by the lake with a book."):
    return Note.objects.create(owner=user, title="Lake", body=body)


@database_sync_to_async
def reload(note):
    note.refresh_from_db()
    return note


def mood_scores(label):
    return [
        {
            "name": "mood_label",
            "data_type": "categorical",
            "value": None,
            "label": label,
            "passed": True,
        },
        {
            "name": "finished",
            "data_type": "categorical",
            "value": None,
            "label": "stop",
            "passed": True,
        },
    ]


def test_home_asks_visitors_to_sign_in(client):
    page = client.get("/").content.decode()
    assert "Sign in" in page
    assert 'id="offload-config"' in page


def test_detail_requires_login(client, django_user_model):
    bob = django_user_model.objects.create_user("bob", password="x")
    note = Note.objects.create(owner=bob, title="Bob's", body="b")
    response = client.get(f"/notes/{note.pk}/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_home_lists_own_notes_only(client, django_user_model):
    ann = django_user_model.objects.create_user("ann", password="x")
    bob = django_user_model.objects.create_user("bob", password="x")
    Note.objects.create(owner=ann, title="Ann's note", body="a")
    Note.objects.create(owner=bob, title="Bob's note", body="b")
    client.force_login(ann)
    page = client.get("/").content.decode()
    assert "Ann&#x27;s note" in page
    assert "Bob" not in page
    assert 'id="offload-config"' in page


def test_note_created_and_shown(client, django_user_model):
    ann = django_user_model.objects.create_user("ann", password="x")
    client.force_login(ann)
    response = client.post("/", {"title": "Walk", "body": "Long walk."})
    note = Note.objects.get(owner=ann)
    assert response["Location"] == f"/notes/{note.pk}/"
    page = client.get(response["Location"]).content.decode()
    assert "Long walk." in page
    assert "Detect mood" in page


def test_other_users_note_not_found(client, django_user_model):
    ann = django_user_model.objects.create_user("ann", password="x")
    bob = django_user_model.objects.create_user("bob", password="x")
    note = Note.objects.create(owner=bob, title="Bob's", body="b")
    client.force_login(ann)
    assert client.get(f"/notes/{note.pk}/").status_code == 404


async def test_detect_mood_stores_label_and_scores():
    user, key = await make_user("ann")
    note = await make_note(user)
    device = await connect_device(key)
    request = asyncio.create_task(post(f"/notes/{note.pk}/mood/", {}, key, device))
    task = await device.receive_type("task")
    assert task["messages"][-1] == {
        "role": "user",
        "content": "Note: Sat by the lake with a book.",
    }
    assert task["evaluators"][0]["type"] == "one_of"
    await device.ack(task)
    await device.result(task, output="calm", scores=mood_scores("calm"))
    status, body = await request
    assert status == 200
    assert body["mood"] == "calm"
    assert body["fallback"] is None
    assert (await reload(note)).mood == "calm"
    labels = await database_sync_to_async(
        lambda: sorted(Score.objects.values_list("name", "label"))
    )()
    assert labels == [("finished", "stop"), ("mood_label", "calm")]
    await device.close()


async def test_detect_mood_invalid_score_rejected():
    user, key = await make_user("ann")
    note = await make_note(user)
    device = await connect_device(key)
    request = asyncio.create_task(post(f"/notes/{note.pk}/mood/", {}, key, device))
    task = await device.receive_type("task")
    # "furious" is not in the evaluator's declared labels.
    await device.result(task, output="calm", scores=mood_scores("furious"))
    error = await device.receive_type("error")
    assert error["code"] == "invalid-score"
    assert error["field"] == "scores"
    await device.result(task, output="calm", scores=mood_scores("calm"))
    status, body = await request
    assert body["mood"] == "calm"
    await device.close()


async def test_detect_mood_unknown_answer_not_stored():
    user, key = await make_user("ann")
    note = await make_note(user)
    device = await connect_device(key)
    request = asyncio.create_task(post(f"/notes/{note.pk}/mood/", {}, key, device))
    task = await device.receive_type("task")
    scores = mood_scores(None)
    scores[0]["passed"] = False
    await device.result(task, output="terrifying", scores=scores)
    status, body = await request
    assert body["mood"] is None
    assert (await reload(note)).mood == ""
    await device.close()


async def test_summarise_page_delivery():
    user, key = await make_user("ann")
    note = await make_note(user)
    device = await connect_device(key)
    status, body = await post(f"/notes/{note.pk}/summarise/", {}, key, device)
    assert status == 200
    assert body["status"] == "leased"
    task = await device.receive_type("task")
    assert task["delivery"] == "page"
    await device.close()


async def test_summarise_other_users_note_not_found():
    ann, key = await make_user("ann")
    bob, _ = await make_user("bob")
    note = await make_note(bob)
    status, _ = await post(f"/notes/{note.pk}/summarise/", {}, key)
    assert status == 404
    assert await database_sync_to_async(Task.objects.count)() == 0


async def test_chat_rejects_empty_message():
    _, key = await make_user("ann")
    status, body = await post("/chat/", {"message": " "}, key)
    assert status == 400
    assert "message" in body["error"]


@pytest.mark.models
async def test_declined_consent_uses_server_engine(settings):
    settings.OFFLOAD = {
        **settings.OFFLOAD,
        "MODEL_STORE": DEMO_OFFLOAD["MODEL_STORE"],
        "DEFAULT_FALLBACK": "server",
    }
    user, key = await make_user("ann")
    note = await make_note(user, "We won the final, best night ever!")
    device = await connect_device(key, consent=False)
    status, body = await post(f"/notes/{note.pk}/mood/", {}, key, device)
    assert status == 200
    assert body["fallback"] == {"kind": "server", "reason": "no-consent"}
    assert [score["name"] for score in body["scores"]] == ["mood_label", "finished"]
    row = await database_sync_to_async(Task.objects.get)(id=body["task_id"])
    assert row.backend == "native"
    assert row.completion_tokens >= 1
    await device.close()
