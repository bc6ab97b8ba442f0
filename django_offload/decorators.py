"""
``@offloaded``: turn a view into an AI feature that runs on the user's
device.

The decorated view (sync or async) receives the request and URL arguments
and returns the prompt's variables as a dict. An HttpResponse returned
instead (a redirect, a 404, a form error) is passed through unchanged.
The decorator renders the prompt's active version, records a task and
leases it to the requesting page's device (the ``X-Offload-Device`` header
that ``offload.run()`` sends), or to another connected device of the user.

- ``deliver="server"``: the request waits for the output. Without a result
  hook the response is JSON ``{task_id, status, delivery, output, scores,
  usage, finish_reason, fallback}`` plus ``parsed``/``parse_error`` when
  the prompt version has an output schema. ``@view.on_result`` registers
  ``hook(request, result, *args, **kwargs) -> HttpResponse`` to use the
  output instead (store a label, render a template).
- ``deliver="page"``: the response is ``{task_id, status: "leased", ...}``
  at once and the page's own worker produces the output, which never
  reaches the server. When no device can take the task, the fallback runs
  during the request and the response carries its output.

When the fallback is "error" (or fails) the response is HTTP 503 with
``{"error": "offload-unavailable", "reason": ..., "task_id": ...}``.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from inspect import iscoroutinefunction
from typing import Any

from asgiref.sync import async_to_sync, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase

from django_offload import dispatch, leases
from django_offload.fallback import Policy
from django_offload.models import Task
from django_offload.results import OffloadUnavailable, Result

DEVICE_HEADER = "X-Offload-Device"
RUN_HEADER = "X-Offload-Run"
RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

Hook = Callable[..., Any]


@dataclass
class _Options:
    prompt: str
    deliver: str
    timeout: float | None
    fallback: Policy | None
    hook: Hook | None = None


def _device_id(request: HttpRequest) -> str | None:
    value = request.headers.get(DEVICE_HEADER)
    if not value:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _run_id(request: HttpRequest) -> str | None:
    value = request.headers.get(RUN_HEADER)
    return value if value and RUN_ID.fullmatch(value) else None


async def _offload(
    options: _Options,
    request: HttpRequest,
    variables: Any,
    owner: leases.Owner | None,
) -> Result:
    job = await dispatch.prepare(
        options.prompt,
        variables,
        owner=owner,
        delivery=options.deliver,
        timeout=options.timeout,
        fallback=options.fallback,
        device_id=_device_id(request),
        run_id=_run_id(request),
    )
    return await dispatch.run(job)


def _unavailable(exc: OffloadUnavailable) -> HttpResponse:
    return JsonResponse(exc.as_json(), status=503)


def _wrap_sync(options: _Options, view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        variables = view(request, *args, **kwargs)
        if isinstance(variables, HttpResponseBase):
            return variables
        owner = leases.Owner.identify(request.user, request.session)
        try:
            result = async_to_sync(_offload)(options, request, variables, owner)
        except OffloadUnavailable as exc:
            return _unavailable(exc)
        if options.hook is None or options.deliver == Task.Delivery.PAGE:
            return JsonResponse(result.as_json())
        if iscoroutinefunction(options.hook):
            return async_to_sync(options.hook)(request, result, *args, **kwargs)
        return options.hook(request, result, *args, **kwargs)

    return wrapper


def _wrap_async(options: _Options, view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    async def wrapper(
        request: HttpRequest, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        variables = await view(request, *args, **kwargs)
        if isinstance(variables, HttpResponseBase):
            return variables
        user = await request.auser()
        owner = leases.Owner.identify(user, request.session)
        try:
            result = await _offload(options, request, variables, owner)
        except OffloadUnavailable as exc:
            return _unavailable(exc)
        if options.hook is None or options.deliver == Task.Delivery.PAGE:
            return JsonResponse(result.as_json())
        if iscoroutinefunction(options.hook):
            return await options.hook(request, result, *args, **kwargs)
        return await sync_to_async(options.hook)(request, result, *args, **kwargs)

    return markcoroutinefunction(wrapper)


def offloaded(
    prompt: str,
    *,
    deliver: str = "server",
    timeout: float | None = None,
    fallback: Policy | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """
    Decorate a view that returns prompt variables; see the module docstring.

    ``prompt`` names a Prompt with an active version. ``timeout`` (seconds,
    default ``OFFLOAD['TASK_TIMEOUT']``) bounds the wait for a device.
    ``fallback`` is "server", "error", a callable or its dotted path
    (default ``OFFLOAD['DEFAULT_FALLBACK']``).
    """
    if not isinstance(prompt, str) or not prompt:
        raise TypeError(f"prompt must be a prompt name, got {prompt!r}.")
    if deliver not in dispatch.DELIVERIES:
        raise ValueError(f"deliver must be 'server' or 'page', got {deliver!r}.")
    if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
        raise ValueError(
            f"timeout must be a positive number of seconds, got {timeout!r}."
        )

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        options = _Options(prompt, deliver, timeout, fallback)
        if iscoroutinefunction(view):
            wrapper = _wrap_async(options, view)
        else:
            wrapper = _wrap_sync(options, view)

        def on_result(hook: Hook) -> Hook:
            if deliver == Task.Delivery.PAGE:
                raise TypeError(
                    f"on_result needs deliver='server'; the view for {prompt!r} "
                    "delivers to the page, so the server never sees the output."
                )
            options.hook = hook
            return hook

        wrapper.on_result = on_result
        return wrapper

    return decorate
