"""
The device protocol: versioned JSON messages over one WebSocket.

Every frame is a JSON object with ``"v": 1`` and a ``"type"``. Frames from
devices are untrusted: ``parse_frame`` checks the size, the JSON, the type,
every required field, each field's type and range, and rejects unknown
fields. A failure raises ``ProtocolError`` carrying an error code and the
field at fault, which the consumer sends back in an ``error`` frame.
docs/protocol.md lists every message and error code.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

PROTOCOL_VERSION = 1

# Stages a device reports in ``progress`` frames.
PROGRESS_STAGES = ("loading", "prefill", "decoding", "evaluating")
# Finish reasons the engines report.
FINISH_REASONS = ("stop", "length")
BACKENDS = ("webgpu", "wasm")
# Codes a device may report in an ``error`` frame. A fixed set, so an error
# frame can never carry free text (which could contain user data).
DEVICE_ERROR_CODES = (
    "load-failed",
    "generation-failed",
    "out-of-memory",
    "aborted",
    "unsupported-model",
    "evaluation-failed",
    "busy",
)
# Largest ``hello.capabilities`` object accepted, in bytes of JSON.
MAX_CAPABILITIES_BYTES = 8 * 1024
# Most scores one result may carry.
MAX_SCORES = 64


class ProtocolError(ValueError):
    """
    A frame that breaks the protocol; ``code`` and ``field`` go back to the
    device in an ``error`` frame.
    """

    def __init__(self, code: str, field: str | None, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.field = field
        self.detail = detail


Validator = Callable[[Any, str], Any]


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _string(max_length: int, choices: tuple[str, ...] | None = None) -> Validator:
    def check(value: Any, field: str) -> str:
        if not isinstance(value, str):
            raise ProtocolError(
                "invalid-type",
                field,
                f"{field} must be a string, got {_type_name(value)}.",
            )
        if len(value) > max_length:
            raise ProtocolError(
                "too-long", field, f"{field} is longer than {max_length} characters."
            )
        if choices is not None and value not in choices:
            raise ProtocolError(
                "invalid-value",
                field,
                f"{field} must be one of {list(choices)!r}, got {value!r}.",
            )
        return value

    return check


def _uuid(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise ProtocolError(
            "invalid-type",
            field,
            f"{field} must be a UUID string, got {_type_name(value)}.",
        )
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ProtocolError(
            "invalid-value", field, f"{field} is not a valid UUID."
        ) from None


def _boolean(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise ProtocolError(
            "invalid-type",
            field,
            f"{field} must be true or false, got {_type_name(value)}.",
        )
    return value


def _integer(minimum: int, maximum: int) -> Validator:
    def check(value: Any, field: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProtocolError(
                "invalid-type",
                field,
                f"{field} must be an integer, got {_type_name(value)}.",
            )
        if not minimum <= value <= maximum:
            raise ProtocolError(
                "invalid-value",
                field,
                f"{field} must be between {minimum} and {maximum}, got {value!r}.",
            )
        return value

    return check


def _number(minimum: float, maximum: float) -> Validator:
    def check(value: Any, field: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ProtocolError(
                "invalid-type",
                field,
                f"{field} must be a number, got {_type_name(value)}.",
            )
        # NaN fails both comparisons, so it is rejected here too.
        if not minimum <= value <= maximum:
            raise ProtocolError(
                "invalid-value",
                field,
                f"{field} must be between {minimum} and {maximum}, got {value!r}.",
            )
        return float(value)

    return check


def _nullable(check: Validator) -> Validator:
    def nullable(value: Any, field: str) -> Any:
        return None if value is None else check(value, field)

    return nullable


def _json_object(max_bytes: int) -> Validator:
    def check(value: Any, field: str) -> dict:
        if not isinstance(value, dict):
            raise ProtocolError(
                "invalid-type",
                field,
                f"{field} must be an object, got {_type_name(value)}.",
            )
        if len(json.dumps(value).encode()) > max_bytes:
            raise ProtocolError(
                "too-long", field, f"{field} is larger than {max_bytes} bytes of JSON."
            )
        return value

    return check


def _object_list(max_items: int) -> Validator:
    def check(value: Any, field: str) -> list:
        if not isinstance(value, list):
            raise ProtocolError(
                "invalid-type",
                field,
                f"{field} must be a list, got {_type_name(value)}.",
            )
        if len(value) > max_items:
            raise ProtocolError(
                "too-long", field, f"{field} has more than {max_items} items."
            )
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise ProtocolError(
                    "invalid-type",
                    f"{field}[{index}]",
                    f"{field}[{index}] must be an object, got {_type_name(item)}.",
                )
        return value

    return check


class _Shape:
    """
    Required and optional fields of one JSON object.
    """

    def __init__(
        self,
        required: dict[str, Validator],
        optional: dict[str, Validator] | None = None,
    ) -> None:
        self.required = required
        self.optional = optional or {}

    def __call__(self, value: Any, field: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ProtocolError(
                "invalid-type",
                field,
                f"{field} must be an object, got {_type_name(value)}.",
            )
        return self.validate(value, prefix=f"{field}.")

    def validate(self, data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        known = self.required.keys() | self.optional.keys()
        for name in sorted(data):
            if name not in known:
                # The name itself is echoed only if it is short and printable.
                shown = name if len(name) <= 64 and name.isprintable() else "?"
                raise ProtocolError(
                    "unknown-field",
                    prefix + shown,
                    f"Unknown field {prefix + shown!r}.",
                )
        clean: dict[str, Any] = {}
        for name, check in self.required.items():
            if name not in data:
                raise ProtocolError(
                    "missing-field", prefix + name, f"Missing field {prefix + name!r}."
                )
            clean[name] = check(data[name], prefix + name)
        for name, check in self.optional.items():
            if name in data:
                clean[name] = check(data[name], prefix + name)
        return clean


_TASK_ID = {"task_id": _uuid, "lease_token": _uuid}
_USAGE = _Shape(
    {
        "prompt_tokens": _integer(0, 10_000_000),
        "completion_tokens": _integer(0, 10_000_000),
    }
)
_MILLISECONDS = _number(0.0, 86_400_000.0)

# Fields of each device-to-server message, besides "v" and "type".
DEVICE_MESSAGES: dict[str, _Shape] = {
    "hello": _Shape(
        {
            "capabilities": _json_object(MAX_CAPABILITIES_BYTES),
            "consent": _boolean,
        },
        {"device_id": _nullable(_uuid), "client": _string(64)},
    ),
    "ack": _Shape(dict(_TASK_ID)),
    "progress": _Shape(
        {**_TASK_ID, "stage": _string(20, PROGRESS_STAGES)},
        {"fraction": _number(0.0, 1.0), "tokens": _integer(0, 10_000_000)},
    ),
    "result": _Shape(
        {
            **_TASK_ID,
            "scores": _object_list(MAX_SCORES),
            "usage": _USAGE,
            "finish_reason": _string(20, FINISH_REASONS),
            "latency_ms": _MILLISECONDS,
            "backend": _string(10, BACKENDS),
            "threads": _integer(1, 1024),
        },
        {
            "ttft_ms": _nullable(_MILLISECONDS),
            "decode_tps": _nullable(_number(0.0, 1_000_000.0)),
            # Allowed only for server-delivery tasks; leases.complete_lease
            # rejects it for page-delivery tasks.
            "output": _string(10_000_000),
        },
    ),
    "error": _Shape({**_TASK_ID, "code": _string(40, DEVICE_ERROR_CODES)}),
    "heartbeat": _Shape({}),
}


def parse_frame(text: str | None, bytes_data: bytes | None, max_bytes: int) -> dict:
    """
    Decode and validate one frame from a device.

    Returns the message with ``v`` and ``type`` and the validated fields.
    Raises ProtocolError naming the code and the field at fault.
    """
    if text is None:
        raise ProtocolError(
            "invalid-frame", None, "Binary frames are not part of the protocol."
        )
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise ProtocolError(
            "too-large",
            None,
            f"Frame of {size} bytes exceeds the limit of {max_bytes}.",
        )
    try:
        data = json.loads(text)
    except ValueError:
        raise ProtocolError("invalid-json", None, "Frame is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ProtocolError(
            "not-an-object",
            None,
            f"Frame must be a JSON object, got {_type_name(data)}.",
        )
    return validate_message(data)


def validate_message(data: dict[str, Any]) -> dict[str, Any]:
    """
    Validate a decoded device message; see parse_frame.
    """
    version = data.get("v")
    if "v" not in data:
        raise ProtocolError("missing-field", "v", "Missing field 'v'.")
    if isinstance(version, bool) or version != PROTOCOL_VERSION:
        raise ProtocolError(
            "unsupported-version",
            "v",
            f"Protocol version {PROTOCOL_VERSION} is supported, got {version!r}.",
        )
    if "type" not in data:
        raise ProtocolError("missing-field", "type", "Missing field 'type'.")
    kind = data["type"]
    if not isinstance(kind, str) or kind not in DEVICE_MESSAGES:
        shown = kind if isinstance(kind, str) and len(kind) <= 40 else "?"
        raise ProtocolError(
            "unknown-type",
            "type",
            f"Unknown message type {shown!r}; known: {sorted(DEVICE_MESSAGES)!r}.",
        )
    body = {key: value for key, value in data.items() if key not in ("v", "type")}
    clean = DEVICE_MESSAGES[kind].validate(body)
    return {"v": PROTOCOL_VERSION, "type": kind, **clean}


# Server-to-device messages. Builders keep their shape in one place.


def welcome(
    device_id: str,
    *,
    model: dict[str, Any] | None,
    reason: str | None,
    heartbeat_interval: float,
) -> dict[str, Any]:
    """
    Build a ``welcome``: the device's id and the model it should load, or
    ``model: null`` with the reason.
    """
    return {
        "v": PROTOCOL_VERSION,
        "type": "welcome",
        "device_id": device_id,
        "model": model,
        "reason": reason,
        "heartbeat_interval": heartbeat_interval,
    }


def task(
    *,
    task_id: str,
    lease_token: str,
    ack_deadline: datetime,
    messages: list[dict[str, str]],
    params: dict[str, Any],
    delivery: str,
    evaluators: list[dict[str, Any]],
    output_schema: dict[str, Any] | None,
    model_id: str,
    run_id: str | None,
) -> dict[str, Any]:
    """
    Build a ``task``: everything the device needs to run one lease.
    """
    return {
        "v": PROTOCOL_VERSION,
        "type": "task",
        "task_id": task_id,
        "lease_token": lease_token,
        "ack_deadline": ack_deadline.isoformat(),
        "messages": messages,
        "params": params,
        "delivery": delivery,
        "evaluators": evaluators,
        "output_schema": output_schema,
        "model_id": model_id,
        "run_id": run_id,
    }


def cancel(task_id: str, reason: str) -> dict[str, Any]:
    """
    Build a ``cancel``: the device stops the task and sends nothing more.
    """
    return {
        "v": PROTOCOL_VERSION,
        "type": "cancel",
        "task_id": task_id,
        "reason": reason,
    }


def output(
    task_id: str, *, text: str, fallback_kind: str, fallback_reason: str
) -> dict[str, Any]:
    """
    Build an ``output``: the text a fallback produced for a page-delivery
    task, sent to the page that requested it.
    """
    return {
        "v": PROTOCOL_VERSION,
        "type": "output",
        "task_id": task_id,
        "output": text,
        "fallback": {"kind": fallback_kind, "reason": fallback_reason},
    }


def error(
    code: str,
    field: str | None,
    detail: str,
    *,
    task_id: str | None = None,
) -> dict[str, Any]:
    """
    Build an ``error`` naming the code and the field at fault.
    """
    return {
        "v": PROTOCOL_VERSION,
        "type": "error",
        "code": code,
        "field": field,
        "detail": detail,
        "task_id": task_id,
    }


def heartbeat() -> dict[str, Any]:
    """
    Build a ``heartbeat`` reply.
    """
    return {"v": PROTOCOL_VERSION, "type": "heartbeat"}
