"""
Fallback policies: what runs when no device produces a task's output.

- ``"server"`` runs the same model on the server with ``django_offload.engine``.
- A callable, or the dotted path of one, receives the rendered chat messages
  and the generation parameters and returns the output text (a cloud API
  client, for instance). It may be a plain function or a coroutine function.
- ``"error"`` produces no output, and the view responds with HTTP 503.

Both producing policies also run the prompt version's evaluators on the
output, so fallback tasks get the same scores as device tasks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from inspect import iscoroutinefunction
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from django_offload.conf import offload_settings
from django_offload.evaluators import evaluate as run_evaluators
from django_offload.evaluators import validate_scores

SERVER = "server"
ERROR = "error"
CALLABLE = "callable"

Policy = str | Callable[..., Any]


@dataclass(frozen=True)
class Generated:
    """
    Output and figures of one fallback generation.
    """

    text: str
    finish_reason: str
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float
    ttft_ms: float | None
    decode_tps: float | None
    backend: str
    threads: int | None

    def figures(self) -> dict[str, Any]:
        """
        Return the Task fields this generation fills.
        """
        return {
            "finish_reason": self.finish_reason,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_ms": self.latency_ms,
            "ttft_ms": self.ttft_ms,
            "decode_tps": self.decode_tps,
            "backend": self.backend,
            "threads": self.threads,
        }


def resolve_policy(policy: Policy | None) -> Policy:
    """
    Return "server", "error" or a callable for ``policy``; None means
    ``OFFLOAD['DEFAULT_FALLBACK']``.

    Raises ImproperlyConfigured for anything else, naming the value.
    """
    if policy is None:
        policy = offload_settings.DEFAULT_FALLBACK
    if callable(policy) or policy in (SERVER, ERROR):
        return policy
    if isinstance(policy, str) and "." in policy:
        try:
            function = import_string(policy)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"Fallback {policy!r} cannot be imported ({exc}); give 'server', "
                "'error' or the dotted path of a callable."
            ) from None
        if not callable(function):
            raise ImproperlyConfigured(f"Fallback {policy!r} is not callable.")
        return function
    raise ImproperlyConfigured(
        f"Fallback {policy!r} is invalid; give 'server', 'error' or a callable "
        "(or its dotted path)."
    )


def policy_kind(policy: Policy) -> str:
    """
    Return the kind recorded in ``Task.fallback_kind``.
    """
    return policy if isinstance(policy, str) else CALLABLE


def _run_engine(
    messages: list[dict[str, str]], params: dict[str, Any], model_id: str
) -> Generated:
    from django_offload.engine import GenerationParams, get_text_model

    model = get_text_model(model_id)
    started = time.perf_counter()
    result = model.generate(
        messages,
        GenerationParams(
            max_new_tokens=params["max_new_tokens"],
            temperature=params["temperature"],
            top_k=params["top_k"],
            top_p=params["top_p"],
            seed=params["seed"],
            stop=tuple(params["stop"]),
        ),
    )
    latency_ms = (time.perf_counter() - started) * 1000.0
    timings = result.timings
    ttft = timings.get("ttft_s")
    return Generated(
        text=result.text,
        finish_reason=result.finish_reason,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        latency_ms=latency_ms,
        ttft_ms=None if ttft is None else ttft * 1000.0,
        decode_tps=timings.get("decode_tokens_per_s"),
        backend="native",
        threads=offload_settings.ENGINE_THREADS or None,
    )


async def _run_callable(
    function: Callable[..., Any],
    messages: list[dict[str, str]],
    params: dict[str, Any],
) -> Generated:
    started = time.perf_counter()
    if iscoroutinefunction(function):
        text = await function(messages, dict(params))
    else:
        text = await sync_to_async(function, thread_sensitive=False)(
            messages, dict(params)
        )
    if not isinstance(text, str):
        raise TypeError(
            f"Fallback callable {function!r} must return str, "
            f"got {type(text).__name__}."
        )
    return Generated(
        text=text,
        # A callable reports no finish reason; "stop" means it returned normally.
        finish_reason="stop",
        prompt_tokens=None,
        completion_tokens=None,
        latency_ms=(time.perf_counter() - started) * 1000.0,
        ttft_ms=None,
        decode_tps=None,
        backend="",
        threads=None,
    )


async def generate(
    policy: Policy,
    messages: list[dict[str, str]],
    params: dict[str, Any],
    model_id: str,
) -> Generated:
    """
    Produce the output with a "server" or callable policy. The server engine
    runs in a worker thread, so the event loop keeps serving.
    """
    if policy == SERVER:
        run = sync_to_async(_run_engine, thread_sensitive=False)
        return await run(messages, params, model_id)
    if callable(policy):
        return await _run_callable(policy, messages, params)
    raise ValueError(f"Fallback policy {policy!r} produces no output.")


async def score(
    specs: list[dict[str, Any]], generated: Generated
) -> list[dict[str, Any]]:
    """
    Run the evaluators on a fallback output and validate their scores the
    same way as a device's.
    """
    context = {
        "finish_reason": generated.finish_reason,
        "latency_ms": generated.latency_ms,
        "ttft_ms": generated.ttft_ms,
        "tokens_per_second": generated.decode_tps,
    }

    def evaluate_and_check() -> list[dict[str, Any]]:
        scores = run_evaluators(specs, generated.text, context)
        return validate_scores(specs, scores)

    return await sync_to_async(evaluate_and_check, thread_sensitive=False)()
