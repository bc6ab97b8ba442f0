"""
``offload()``: run a managed prompt on one of a user's devices from code
outside a request (a management command, a background job, a consumer).
"""

from __future__ import annotations

from typing import Any

from django_offload import dispatch, leases
from django_offload.fallback import Policy
from django_offload.models import PromptVersion
from django_offload.results import OffloadUnavailable, Result

__all__ = ["OffloadUnavailable", "Result", "offload"]


async def offload(
    prompt: str | PromptVersion,
    *,
    user: Any = None,
    variables: dict[str, Any],
    deliver: str = "server",
    timeout: float | None = None,
    fallback: Policy | None = None,
    device_id: str | None = None,
) -> Result:
    """
    Render the active version of ``prompt`` with ``variables``, lease the
    task to a connected device of ``user`` and return its Result.

    ``deliver="server"`` waits for the output (or the fallback's).
    ``deliver="page"`` needs ``device_id``, the page's device, and returns
    as soon as that device has the lease. The output stays on the page.
    With ``user`` None no device is asked and the fallback runs at once.
    ``timeout`` defaults to ``OFFLOAD['TASK_TIMEOUT']`` seconds; ``fallback``
    to ``OFFLOAD['DEFAULT_FALLBACK']``.

    Raises OffloadUnavailable when the fallback is "error" or fails,
    ImproperlyConfigured for an unknown prompt or fallback, and
    dispatch.PromptVariablesError for missing or unexpected variables.
    """
    owner = None
    if user is not None and getattr(user, "is_authenticated", False):
        owner = leases.Owner(user_id=user.pk, session_key="")
    job = await dispatch.prepare(
        prompt,
        variables,
        owner=owner,
        delivery=deliver,
        timeout=timeout,
        fallback=fallback,
        device_id=device_id,
    )
    return await dispatch.run(job)
