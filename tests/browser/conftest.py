"""
Fixtures of the browser tests: a model store, a Daphne server on a free
127.0.0.1 port with a temporary SQLite database, and a headless Chromium
context whose every request is routed and checked to stay on 127.0.0.1.
"""

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# The store that scripts/bootstrap builds, unless OFFLOAD_MODEL_STORE names another.
SOURCE_STORE = Path(os.environ.get("OFFLOAD_MODEL_STORE", ROOT / "offload_models"))
SERVER_START_SECONDS = 60
BROKEN_MODEL = "broken-model"
GPU_ONLY_MODEL = "gpu-only-model"
# Recorded in the page before any script runs: every offload:* event.
RECORD_EVENTS = """
window.offloadEvents = [];
for (const name of ["offload:consent", "offload:progress", "offload:ready",
                    "offload:error", "offload:leader"]) {
  document.addEventListener(name, (event) => {
    window.offloadEvents.push({ name, detail: event.detail });
  });
}
"""

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_broken_model(store: Path) -> None:
    """
    Write a model whose manifest lists a weights file that is not on disk,
    so the server returns 404 for it.
    """
    model_dir = store / BROKEN_MODEL
    model_dir.mkdir()
    tokenizer = b'{"model": {"type": "BPE"}}'
    (model_dir / "tokenizer.json").write_bytes(tokenizer)
    missing = {"bytes": 1000, "sha256": "0" * 64}
    manifest = {
        "format": 1,
        "id": BROKEN_MODEL,
        "task": "feature-extraction",
        "architecture": "bert",
        "context_length": 128,
        "license": "Apache-2.0",
        "source": {
            "package": "none",
            "version": "0",
            "file": "none",
            "sha256": "1" * 64,
        },
        "config": {"hidden_size": 8, "max_length": 128},
        "files": {
            "tokenizer.json": {
                "bytes": len(tokenizer),
                "sha256": hashlib.sha256(tokenizer).hexdigest(),
            },
            "onnx/missing.onnx": missing,
        },
        "variants": {
            "fp32": {
                "file": "onnx/missing.onnx",
                "dtype": "fp32",
                **missing,
                "memory_bytes": 1_000_000,
                "reference": True,
                "backends": ["wasm"],
                "quality": {"passed": True},
                "servable": True,
            }
        },
    }
    (model_dir / "manifest.json").write_text(json.dumps(manifest))


def write_gpu_only_model(store: Path) -> None:
    """
    Write a model whose only variant needs WebGPU, which headless Chromium
    lacks (or has only as a fallback adapter), so no device here fits it.
    """
    source = store / BROKEN_MODEL / "manifest.json"
    manifest = json.loads(source.read_text())
    manifest["id"] = GPU_ONLY_MODEL
    manifest["variants"]["fp32"]["backends"] = ["webgpu"]
    model_dir = store / GPU_ONLY_MODEL
    model_dir.mkdir()
    shutil.copy(store / BROKEN_MODEL / "tokenizer.json", model_dir)
    (model_dir / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture(scope="session")
def model_store(tmp_path_factory):
    """
    A store with the real models (linked) and a broken one.
    """
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing; install Debian's chromium package")
    store = tmp_path_factory.mktemp("store")
    for manifest in sorted(SOURCE_STORE.glob("*/manifest.json")):
        (store / manifest.parent.name).symlink_to(manifest.parent)
    write_broken_model(store)
    write_gpu_only_model(store)
    return store


def wait_for_server(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"daphne did not answer {url} in {SERVER_START_SECONDS} s")


@contextlib.contextmanager
def run_server(store: Path, workdir: Path):
    """
    Run Daphne with the demo project on a free 127.0.0.1 port, serving
    ``store``, with a new SQLite database in ``workdir``; yield its URL.
    """
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.browser.settings",
        "DEMO_SQLITE_PATH": str(workdir / "db.sqlite3"),
        "OFFLOAD_MODEL_STORE": str(store),
        "PYTHONPATH": str(ROOT),
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    port = free_port()
    daphne = shutil.which("daphne", path=str(Path(sys.executable).parent))
    command = [daphne, "-b", "127.0.0.1", "-p", str(port)]
    command.append("demo_project.asgi:application")
    with (workdir / "daphne.log").open("w") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for_server(url + "/offload/manifest/", process)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture(scope="session")
def live_server_url(model_store, tmp_path_factory):
    """
    The URL of a Daphne server that runs for the whole test session.
    """
    with run_server(model_store, tmp_path_factory.mktemp("server")) as url:
        yield url


@pytest.fixture(scope="module")
def playwright_instance():
    """
    Playwright's sync API, stopped after each module: it cannot start while
    another instance runs in the same thread, and other test modules start
    their own.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


class Traffic:
    """
    Requests seen by one browser context: model bytes the server sent and
    any request that tried to leave 127.0.0.1.
    """

    def __init__(self) -> None:
        self.outside: list[str] = []
        self.model_responses: list[tuple[str, int, int]] = []

    def model_bytes(self) -> int:
        return sum(size for _, status, size in self.model_responses if status < 300)


def open_context(playwright, user_data_dir: Path, extra_args=()):
    traffic = Traffic()
    context = playwright.chromium.launch_persistent_context(
        str(user_data_dir),
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS + list(extra_args),
    )

    def guard(route):
        host = urlsplit(route.request.url).hostname
        if host != "127.0.0.1":
            traffic.outside.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    def count(response):
        if "/offload/models/" in response.url:
            size = int(response.headers.get("content-length", "0"))
            traffic.model_responses.append((response.url, response.status, size))

    def check_socket(websocket):
        if urlsplit(websocket.url).hostname != "127.0.0.1":
            traffic.outside.append(websocket.url)

    context.route("**/*", guard)
    context.on("response", count)
    context.on("websocket", check_socket)
    context.add_init_script(RECORD_EVENTS)
    return context, traffic


@pytest.fixture
def browser_context(playwright_instance, live_server_url, tmp_path):
    """
    A fresh Chromium profile (empty Cache Storage and localStorage) and its
    traffic record; fails the test if a request left 127.0.0.1.
    """
    context, traffic = open_context(playwright_instance, tmp_path / "profile")
    context.set_default_timeout(120_000)
    yield context, traffic
    context.close()
    assert traffic.outside == []


@pytest.fixture
def webgpu_context(playwright_instance, live_server_url, tmp_path):
    """
    Like browser_context, with WebGPU enabled (SwiftShader in headless runs).
    """
    context, traffic = open_context(
        playwright_instance, tmp_path / "profile", ["--enable-unsafe-webgpu"]
    )
    context.set_default_timeout(120_000)
    yield context, traffic
    context.close()
    assert traffic.outside == []
