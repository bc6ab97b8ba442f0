"""
End-to-end tests of the notes demo in headless Chromium against a live
Daphne server: page delivery keeps the summary in the page, server delivery
stores the mood, and declining consent falls back to the server engine.
A canary in the note proves that no frame from the page, no django_offload
row and no server log line carries the note's text.
"""

import csv
import io
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser.conftest import (
    CHROMIUM,
    ROOT,
    SOURCE_STORE,
    free_port,
    open_context,
    wait_for_server,
)
from tests.offload_support import CANARY

pytestmark = [pytest.mark.browser, pytest.mark.models]

USER = "reader"
PASSWORD = "reader-password"
# Model loading and generation on two shared cores; generous on purpose.
TASK_TIMEOUT_MS = 300_000


def manage(env, *args):
    subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def notes_store(tmp_path_factory):
    """
    A model store linking the real models only.
    """
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing; install Debian's chromium package")
    manifests = sorted(SOURCE_STORE.glob("*/manifest.json"))
    if not manifests:
        pytest.skip(f"no model in {SOURCE_STORE}; run manage.py offload_models build")
    store = tmp_path_factory.mktemp("notes-store")
    for manifest in manifests:
        (store / manifest.parent.name).symlink_to(manifest.parent)
    return store


class NotesServer:
    """
    A Daphne process serving the demo on a fixed port; it can be restarted
    on the same port and database, as after a deployment.
    """

    def __init__(self, env: dict, workdir: Path) -> None:
        self.env = env
        self.database = Path(env["DEMO_SQLITE_PATH"])
        self.log_path = workdir / "daphne.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = None

    def start(self) -> None:
        self.log = self.log_path.open("a")
        daphne = shutil.which("daphne", path=str(Path(sys.executable).parent))
        self.process = subprocess.Popen(
            [
                daphne,
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "demo_project.asgi:application",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for_server(self.url + "/offload/manifest/", self.process)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.close()


@pytest.fixture(scope="module")
def notes_server(notes_store, tmp_path_factory):
    """
    Start Daphne with the demo's migrations and one user.
    """
    workdir = tmp_path_factory.mktemp("notes-server")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.browser.notes_settings",
        "DEMO_SQLITE_PATH": str(workdir / "db.sqlite3"),
        "OFFLOAD_MODEL_STORE": str(notes_store),
        "PYTHONPATH": str(ROOT),
    }
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(
        env,
        "shell",
        "-c",
        "from django.contrib.auth.models import User; "
        f"User.objects.create_user({USER!r}, password={PASSWORD!r})",
    )
    server = NotesServer(env, workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def notes_context(playwright_instance, notes_server, tmp_path):
    """
    A fresh Chromium profile whose requests must stay on 127.0.0.1.
    """
    context, traffic = open_context(playwright_instance, tmp_path / "profile")
    context.set_default_timeout(120_000)
    yield context
    context.close()
    assert traffic.outside == []


def offload_rows(database: Path) -> str:
    """
    Return every row of every django_offload table as text.
    """
    with sqlite3.connect(database) as connection:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type='table' "
                "AND name LIKE 'django_offload_%'"
            )
        ]
        rows = [
            repr(row)
            for table in tables
            for row in connection.execute(f'SELECT * FROM "{table}"')
        ]
    return "\n".join(rows)


def task_rows(database: Path) -> list[tuple]:
    with sqlite3.connect(database) as connection:
        return list(
            connection.execute(
                "SELECT t.status, t.delivery, t.fallback_reason, t.backend, "
                "t.output, p.name FROM django_offload_task t "
                "JOIN django_offload_promptversion v ON v.id = t.prompt_version_id "
                "JOIN django_offload_prompt p ON p.id = v.prompt_id "
                "ORDER BY t.created_at"
            )
        )


def last_task_when_done(page, database: Path) -> tuple:
    """
    Return the newest task row once it left the open states: the page shows
    its own output before the server has stored the result frame.
    """
    for _ in range(120):
        row = task_rows(database)[-1]
        if row[0] not in ("pending", "leased", "running"):
            return row
        page.wait_for_timeout(250)
    raise AssertionError(f"task still {row[0]!r} after 30 s")


def sign_in(page, url):
    page.goto(f"{url}/accounts/login/?next=/")
    page.fill("input[name=username]", USER)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")


def sign_in_with_consent(page, url):
    """
    Sign in, accept the consent widget and wait until the model is ready.
    """
    sign_in(page, url)
    page.locator("#offload-consent .offload-consent__accept").click()
    wait_ready(page)


def click_and_wait_answer(page, button):
    """
    Click a note action and return the status line once it is answered.
    """
    page.click(button)
    status = page.locator("#notes-status")
    status.filter(has_text="Answered").wait_for(timeout=TASK_TIMEOUT_MS)
    return status


def write_note(page, body):
    page.fill("input[name=title]", "Lake day")
    page.fill("textarea[name=body]", body)
    page.click(".notes-form button[type=submit]")
    page.wait_for_url("**/notes/*/")


def record_sent_frames(page):
    frames = []
    page.on(
        "websocket",
        lambda socket: socket.on("framesent", lambda payload: frames.append(payload)),
    )
    return frames


RECORD_CONNECTED = """
window.offloadConnected = [];
window.offloadTokens = [];
document.addEventListener("offload:connected", (event) => {
  window.offloadConnected.push(event.detail);
});
document.addEventListener("offload:token", (event) => {
  window.offloadTokens.push(event.detail.token);
});
"""


def open_page(context):
    page = context.new_page()
    page.add_init_script(RECORD_CONNECTED)
    return page


def wait_ready(page):
    """
    Wait until the model is loaded and the socket has its welcome.
    """
    page.wait_for_function(
        "() => window.offloadEvents.some(e => e.name === 'offload:ready')",
        timeout=TASK_TIMEOUT_MS,
    )
    wait_welcomed(page)


def wait_welcomed(page):
    page.wait_for_function("() => window.offloadConnected.length > 0")


def test_summary_stays_on_page(notes_context, notes_server):
    context = notes_context
    url, database, log_path = (
        notes_server.url,
        notes_server.database,
        notes_server.log_path,
    )
    page = open_page(context)
    frames = record_sent_frames(page)
    sign_in_with_consent(page, url)
    body = f"Sat by the lake with a book. {CANARY} Quiet afternoon."
    write_note(page, body)
    wait_ready(page)

    status = click_and_wait_answer(page, "#notes-summarise")
    assert status.inner_text() == "Answered on this device."
    assert page.locator("#notes-summary").inner_text().strip() != ""
    # Loading the embedding model for the evaluators leaves the widget ready.
    widget = page.locator("#offload-consent")
    assert widget.get_attribute("data-state") == "ready"

    row = last_task_when_done(page, database)
    assert row[:2] == ("succeeded", "page")
    assert row[3] in ("wasm", "webgpu")
    assert row[4] == ""
    assert any(
        '"type": "result"' in frame or '"type":"result"' in frame for frame in frames
    )
    assert not any(CANARY in frame for frame in frames)
    assert CANARY not in offload_rows(database)
    assert CANARY not in log_path.read_text()
    scores = score_rows(database)
    assert scores["summary_words"][0] == "numeric"
    # The device embedded the summary and the reference with all-MiniLM-L6-v2.
    kind, value = scores["reads_as_summary"]
    assert kind == "numeric"
    assert value is not None
    assert -1.0 <= value <= 1.0


def score_rows(database: Path) -> dict[str, tuple]:
    """
    Return the newest task's scores as {name: (data type, value)}.
    """
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT s.name, s.data_type, s.value FROM django_offload_score s "
            "WHERE s.task_id = (SELECT id FROM django_offload_task "
            "ORDER BY created_at DESC LIMIT 1)"
        )
        return {name: (kind, value) for name, kind, value in rows}


def test_mood_stored_from_device(notes_context, notes_server):
    context = notes_context
    url, database = notes_server.url, notes_server.database
    page = open_page(context)
    sign_in_with_consent(page, url)
    write_note(page, "We won the final, best night ever!")
    wait_ready(page)

    status = click_and_wait_answer(page, "#notes-detect-mood")
    assert status.inner_text() == "Answered on this device."
    shown = page.locator("#notes-mood").inner_text()
    rows = task_rows(database)
    assert rows[-1][:2] == ("succeeded", "server")
    assert rows[-1][5] == "note-mood"
    # The stored output is the device's; the page shows it when it is
    # one of the labels.
    assert shown == (
        rows[-1][4]
        if rows[-1][4] in ("happy", "sad", "angry", "calm", "anxious")
        else "unclear"
    )


def test_declined_consent_uses_server(notes_context, notes_server):
    context = notes_context
    url, database = notes_server.url, notes_server.database
    page = open_page(context)
    sign_in(page, url)
    page.locator("#offload-consent .offload-consent__decline").click()
    write_note(page, "My heart races before the interview.")
    wait_welcomed(page)

    status = click_and_wait_answer(page, "#notes-detect-mood")
    assert status.inner_text() == "Answered by the server (no-consent)."
    rows = task_rows(database)
    assert rows[-1][:4] == ("fell_back", "server", "no-consent", "native")


def test_chat_streams_tokens(notes_context, notes_server):
    context = notes_context
    url, database, log_path = (
        notes_server.url,
        notes_server.database,
        notes_server.log_path,
    )
    page = open_page(context)
    frames = record_sent_frames(page)
    sign_in_with_consent(page, url)

    page.fill("#notes-chat-input", f"What is the capital of France? {CANARY}")
    page.click("#notes-chat-form button[type=submit]")
    answer = page.locator("#notes-chat-log p").nth(1)
    page.wait_for_function(
        "() => document.querySelectorAll('#notes-chat-log p').length === 2 "
        "&& window.offloadTokens.length > 0",
        timeout=TASK_TIMEOUT_MS,
    )
    row = last_task_when_done(page, database)
    assert row[:2] == ("succeeded", "page")
    assert row[5] == "note-chat"
    tokens = page.evaluate("window.offloadTokens")
    assert len(tokens) > 1
    assert answer.inner_text().strip() != ""
    assert not any(CANARY in frame for frame in frames)
    assert CANARY not in offload_rows(database)
    assert CANARY not in log_path.read_text()


def test_page_reconnects_after_server_restart(notes_context, notes_server):
    context = notes_context
    url, database = notes_server.url, notes_server.database
    page = open_page(context)
    sign_in_with_consent(page, url)
    write_note(page, "Tea in the garden, birds singing.")
    wait_ready(page)
    first = page.evaluate("window.offloadConnected[0].deviceId")

    notes_server.stop()
    notes_server.start()
    # The page reconnects with backoff and keeps its device id.
    page.wait_for_function(
        "() => window.offloadConnected.length > 1", timeout=TASK_TIMEOUT_MS
    )
    assert page.evaluate("window.offloadConnected[1].deviceId") == first

    status = click_and_wait_answer(page, "#notes-summarise")
    assert status.inner_text() == "Answered on this device."
    assert last_task_when_done(page, database)[:2] == ("succeeded", "page")


def make_staff(database: Path) -> None:
    with sqlite3.connect(database) as connection:
        connection.execute(
            "UPDATE auth_user SET is_staff = 1, is_superuser = 1 WHERE username = ?",
            (USER,),
        )


def test_dashboard_shows_device_scores(notes_context, notes_server):
    context = notes_context
    url, database = notes_server.url, notes_server.database
    page = open_page(context)
    sign_in_with_consent(page, url)
    write_note(page, "Long walk in the rain, then soup with friends.")
    wait_ready(page)
    click_and_wait_answer(page, "#notes-summarise")
    assert last_task_when_done(page, database)[:2] == ("succeeded", "page")
    make_staff(database)

    dashboard = f"{url}/admin/django_offload/prompt/dashboard/"
    response = page.request.get(dashboard + "?format=csv")
    assert response.status == 200
    rows = list(csv.DictReader(io.StringIO(response.text())))
    summary = [
        row
        for row in rows
        if row.get("prompt") == "note-summary" and row["backend"] in ("wasm", "webgpu")
    ]
    assert len(summary) == 1
    row = summary[0]
    assert int(row["succeeded"]) >= 1
    assert "summary_words=" in row["evaluator_pass_rates"]
    assert "reads_as_summary=" in row["evaluator_means"]
    assert float(row["decode_tps_median"]) > 0

    page.goto(dashboard)
    table = page.locator("table").filter(has_text="note-summary").first
    assert "summary_words" in table.inner_text()
    assert page.locator("svg").count() >= 1
