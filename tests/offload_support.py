"""
Fixtures and helpers for the orchestration tests: users with sessions,
devices on the real ASGI application, prompts, and a small model store
whose manifest lets devices fit a variant without any model file.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.testing import HttpCommunicator, WebsocketCommunicator
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
)
from django.contrib.sessions.backends.db import SessionStore

from demo_project.asgi import application
from django_offload.models import Prompt, PromptVersion

MODEL_ID = "smollm2-135m-instruct"
CANARY = "CANARY-7f3e9a21-do-not-leak"
ORIGIN = b"http://localhost"
SHA = "0" * 64
CSRF_TOKEN = "Tok3n" * 6 + "ok"


def capabilities(**changes: Any) -> dict[str, Any]:
    """
    Return probe capabilities of a desktop without WebGPU, with changes.
    """
    value = {
        "webgpu": None,
        "crossOriginIsolated": True,
        "hardwareConcurrency": 4,
        "deviceMemory": 8,
        "storageQuota": 10 * 1024**3,
        "storageUsage": 0,
        "consent": True,
    }
    value.update(changes)
    return value


def write_manifest(store: Path, memory_bytes: int = 500 * 1024**2) -> None:
    """
    Write a manifest for MODEL_ID with one servable wasm variant.
    """
    folder = store / MODEL_ID
    folder.mkdir(parents=True)
    manifest = {
        "format": 1,
        "id": MODEL_ID,
        "task": "text-generation",
        "architecture": "llama",
        "context_length": 8192,
        "license": "Apache-2.0",
        "source": {"package": "p", "version": "1", "file": "m.gguf", "sha256": SHA},
        "config": {
            "num_layers": 30,
            "num_kv_heads": 3,
            "head_dim": 64,
            "vocab_size": 49152,
            "eos_token_ids": [2],
            "bos_token_id": 1,
        },
        "files": {"onnx/model_q4f.onnx": {"bytes": 1000, "sha256": SHA}},
        "variants": {
            "q4f": {
                "file": "onnx/model_q4f.onnx",
                "dtype": "q4f",
                "bytes": 1000,
                "sha256": SHA,
                "memory_bytes": memory_bytes,
                "reference": True,
                "backends": ["native", "wasm"],
                "quality": {"passed": True},
                "servable": True,
            }
        },
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def offload_settings(settings, tmp_path):
    """
    Short timeouts and a model store with one fitting variant.
    """
    write_manifest(tmp_path)
    settings.OFFLOAD = {
        "MODEL_STORE": tmp_path,
        "ACK_TIMEOUT": 0.5,
        "LEASE_TIMEOUT": 2.0,
        "POLL_INTERVAL": 0.05,
        "TASK_TIMEOUT": 10.0,
        "MAX_ATTEMPTS": 2,
        "DEFAULT_FALLBACK": "tests.offload_support.count_fallback",
    }
    return settings.OFFLOAD


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    """
    Give each test its own in-memory layer; queues are bound to one loop.
    """
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


def count_fallback(messages: list[dict[str, str]], params: dict[str, Any]) -> str:
    """
    Fallback policy for tests: describes the request by counts only, so its
    output never contains a variable.
    """
    characters = sum(len(message["content"]) for message in messages)
    return f"{len(messages)} messages, {characters} characters"


@database_sync_to_async
def make_user(name: str) -> tuple[Any, str]:
    """
    Create a user and a signed-in session; return both (session key).
    """
    user = get_user_model().objects.create_user(name, password="x")
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return user, session.session_key


@database_sync_to_async
def make_prompt(
    name: str = "mood",
    template: str = "Mood of this note: {{ note }}",
    evaluators: list[dict[str, Any]] | None = None,
    output_schema: dict[str, Any] | None = None,
    **fields: Any,
) -> PromptVersion:
    """
    Create a prompt with one active version.
    """
    prompt = Prompt.objects.create(name=name)
    return PromptVersion.objects.create(
        prompt=prompt,
        number=1,
        is_active=True,
        template=template,
        system="Answer with one word.",
        evaluators=evaluators or [],
        output_schema=output_schema,
        model_id=MODEL_ID,
        **fields,
    )


class Device:
    """
    A simulated browser tab speaking the protocol over the real ASGI app.
    """

    def __init__(self, session_key: str | None, origin: bytes = ORIGIN) -> None:
        headers = [(b"origin", origin)]
        if session_key:
            headers.append((b"cookie", f"sessionid={session_key}".encode()))
        self.socket = WebsocketCommunicator(application, "/ws/offload/", headers)
        self.sent: list[str] = []
        self.device_id: str | None = None

    async def connect(self) -> bool:
        connected, _ = await self.socket.connect()
        return connected

    async def send(self, message: dict[str, Any] | str) -> None:
        text = message if isinstance(message, str) else json.dumps(message)
        self.sent.append(text)
        await self.socket.send_to(text_data=text)

    async def receive(self, timeout: float = 5.0) -> dict[str, Any]:
        return await self.socket.receive_json_from(timeout=timeout)

    async def receive_type(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """
        Return the next frame of type ``kind``, skipping others.
        """
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            frame = await self.receive(timeout=max(left, 0.01))
            if frame["type"] == kind:
                return frame

    async def hello(self, consent: bool = True, **changes: Any) -> dict[str, Any]:
        message = {
            "v": 1,
            "type": "hello",
            "capabilities": capabilities(consent=consent, **changes),
            "consent": consent,
        }
        if self.device_id:
            message["device_id"] = self.device_id
        await self.send(message)
        welcome = await self.receive_type("welcome")
        self.device_id = welcome["device_id"]
        return welcome

    async def ack(self, task: dict[str, Any]) -> None:
        await self.send(
            {
                "v": 1,
                "type": "ack",
                "task_id": task["task_id"],
                "lease_token": task["lease_token"],
            }
        )

    async def result(
        self, task: dict[str, Any], output: str | None = None, **changes: Any
    ) -> None:
        await self.send(result_frame(task, output, **changes))

    async def close(self) -> None:
        await self.socket.disconnect()


def result_frame(
    task: dict[str, Any], output: str | None = None, **changes: Any
) -> dict[str, Any]:
    """
    Return a well-formed result frame for ``task``.
    """
    frame = {
        "v": 1,
        "type": "result",
        "task_id": task["task_id"],
        "lease_token": task["lease_token"],
        "scores": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3},
        "finish_reason": "stop",
        "latency_ms": 250.0,
        "ttft_ms": 40.0,
        "decode_tps": 20.5,
        "backend": "wasm",
        "threads": 4,
    }
    if output is not None:
        frame["output"] = output
    frame.update(changes)
    return frame


async def connect_device(session_key: str, consent: bool = True) -> Device:
    """
    Connect a device for the session and complete the hello.
    """
    device = Device(session_key)
    assert await device.connect()
    await device.hello(consent=consent)
    return device


async def post(
    path: str,
    data: dict[str, str],
    session_key: str | None,
    device: Device | None = None,
) -> tuple[int, dict[str, Any]]:
    """
    POST a form to the real ASGI application; return the status and the
    JSON body (None when the body is not JSON).
    """
    # A CSRF cookie and the matching header, as offload.run() sends them.
    cookie = f"csrftoken={CSRF_TOKEN}"
    if session_key:
        cookie += f"; sessionid={session_key}"
    headers = [
        (b"host", b"localhost"),
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"cookie", cookie.encode()),
        (b"x-csrftoken", CSRF_TOKEN.encode()),
    ]
    if device is not None and device.device_id:
        headers.append((b"x-offload-device", device.device_id.encode()))
    body = urlencode(data).encode()
    communicator = HttpCommunicator(application, "POST", path, body, headers)
    response = await communicator.get_response(timeout=30)
    try:
        body = json.loads(response["body"])
    except ValueError:
        body = None  # an HTML error page
    return response["status"], body


def new_id() -> str:
    return str(uuid.uuid4())
