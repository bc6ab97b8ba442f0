"""
Result of an offloaded task, and the error raised when it has no output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import jsonschema


class OffloadUnavailable(Exception):
    """
    No device and no fallback produced an output: the fallback policy is
    "error", or the fallback itself failed. ``reason`` is a code such as
    "no-device" or "fallback-failed".
    """

    def __init__(self, reason: str, task_id: str | None) -> None:
        super().__init__(f"Offloaded task {task_id} has no output: {reason}.")
        self.reason = reason
        self.task_id = task_id

    def as_json(self) -> dict[str, Any]:
        """
        Return the JSON body of the HTTP 503 response.
        """
        return {
            "error": "offload-unavailable",
            "reason": self.reason,
            "task_id": self.task_id,
        }


_NO_VALUE = object()


@dataclass
class Result:
    """
    Outcome of one task. ``output`` is None for page-delivery tasks that a
    device ran (the text stays on the page). ``fallback`` is None when a
    device ran the task, otherwise ``{"kind": ..., "reason": ...}``.
    ``parsed`` is the output decoded as JSON when the prompt version has
    an output schema and the output matches it; otherwise None, with
    ``parse_error`` naming why.
    """

    task_id: str
    status: str
    delivery: str
    output: str | None = None
    scores: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int | None] | None = None
    finish_reason: str | None = None
    fallback: dict[str, str] | None = None
    output_schema: dict[str, Any] | None = None
    parsed: Any = None
    parse_error: str | None = None

    def __post_init__(self) -> None:
        if self.output is not None and self.output_schema is not None:
            self.parsed, self.parse_error = parse_output(
                self.output, self.output_schema
            )

    def as_json(self) -> dict[str, Any]:
        """
        Return the JSON body a decorated view responds with.
        """
        body: dict[str, Any] = {
            "task_id": self.task_id,
            "status": self.status,
            "delivery": self.delivery,
            "output": self.output,
            "scores": self.scores,
            "usage": self.usage,
            "finish_reason": self.finish_reason,
            "fallback": self.fallback,
        }
        if self.output_schema is not None:
            body["parsed"] = self.parsed
            body["parse_error"] = self.parse_error
        return body


def parse_output(output: str, schema: dict[str, Any]) -> tuple[Any, str | None]:
    """
    Decode ``output`` as JSON and check it against ``schema``.

    Returns (value, None) on success, or (None, code) with code
    "invalid-json" or "schema-mismatch". The output's text never appears in
    the code, so the code is safe to log.
    """
    try:
        value = json.loads(output)
    except ValueError:
        return None, "invalid-json"
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError:
        return None, "schema-mismatch"
    return value, None
