"""
The waiting side of the lease protocol: one ``Supervisor`` per task leases
it to a device, watches the Task row and runs the fallback.

Channel-layer messages only wake the supervisor early; every decision is
taken from the Task and Device rows, re-read at least every
``OFFLOAD['POLL_INTERVAL']`` seconds. So, while the supervising process
runs, a dropped message delays a task but does not lose it, and a device
that reconnects to another server process gets the task again. A task
whose supervising process stopped is expired by
``leases.expire_orphaned_tasks``.

The rendered prompt exists only in the supervisor's memory and in the
``task`` frame sent to the device; it is never written to the database.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from django_offload import fallback as fallbacks
from django_offload import leases, protocol
from django_offload.conf import offload_settings
from django_offload.models import PromptVersion, Score, Task
from django_offload.prompts import PLACEHOLDER, render_prompt
from django_offload.results import OffloadUnavailable, Result

logger = logging.getLogger(__name__)

DELIVERIES = (Task.Delivery.SERVER, Task.Delivery.PAGE)
# Supervisors running after their request returned (page delivery); kept
# here so the event loop does not garbage-collect them.
_background: set[asyncio.Task] = set()


class PromptVariablesError(ValueError):
    """
    The variables returned for a prompt miss some of its placeholders or
    add names it does not use.
    """


def expected_variables(version: PromptVersion) -> set[str]:
    """
    Return the variable names any text of the version uses, per-model
    variants included, so one set of variables renders for every model.
    """
    texts = [version.template, version.system]
    texts += [str(message.get("content", "")) for message in version.messages or []]
    for override in (version.model_variants or {}).values():
        if isinstance(override, dict):
            texts += [str(text) for text in override.values()]
    return {name for text in texts for name in PLACEHOLDER.findall(text)}


def check_variables(version: PromptVersion, variables: Any) -> dict[str, Any]:
    """
    Raise PromptVariablesError unless ``variables`` is a dict naming
    exactly the version's placeholders. The message names variables, never
    their values.
    """
    label = f"Prompt {version.prompt.name!r} v{version.number}"
    if not isinstance(variables, dict):
        raise PromptVariablesError(
            f"{label}: the view must return a dict of variables (or an "
            f"HttpResponse), got {type(variables).__name__}."
        )
    expected = expected_variables(version)
    missing = sorted(expected - set(variables))
    extra = sorted(set(variables) - expected)
    if missing or extra:
        raise PromptVariablesError(
            f"{label} uses the variables {sorted(expected)!r}; missing {missing!r}, "
            f"unexpected {extra!r}. Return exactly these names."
        )
    return variables


@dataclass
class Job:
    """
    One task in its supervisor's memory: the row's id, the variables (never
    stored) and the caller's options.
    """

    task_id: uuid.UUID
    version: PromptVersion
    variables: dict[str, Any]
    owner: leases.Owner | None
    delivery: str
    policy: fallbacks.Policy
    deadline: float
    device_id: str | None
    run_id: str | None

    def messages(self, model_id: str) -> list[dict[str, str]]:
        """
        Render the prompt for ``model_id``.
        """
        return render_prompt(self.version, self.variables, model_id)


@dataclass(frozen=True)
class Lease:
    """
    The lease this supervisor holds: token, device and the channel it was
    sent to.
    """

    token: uuid.UUID
    device_id: str
    channel_name: str


def get_active_version(prompt: str | PromptVersion) -> PromptVersion:
    """
    Return the active version of the prompt named ``prompt``, or reload the
    given PromptVersion with its prompt.

    Raises ImproperlyConfigured when the prompt has no active version.
    """
    versions = PromptVersion.objects.select_related("prompt")
    if isinstance(prompt, PromptVersion):
        return versions.get(pk=prompt.pk)
    if not isinstance(prompt, str) or not prompt:
        raise TypeError(f"prompt must be a prompt name, got {prompt!r}.")
    version = versions.filter(prompt__name=prompt, is_active=True).first()
    if version is None:
        raise ImproperlyConfigured(
            f"Prompt {prompt!r} has no active version; create it and mark one "
            "version active in the admin or in a data migration."
        )
    return version


def generation_params(version: PromptVersion) -> dict[str, Any]:
    """
    Return the version's generation parameters as sent in task frames.
    """
    return {
        "max_new_tokens": version.max_new_tokens,
        "temperature": version.temperature,
        "top_k": version.top_k,
        "top_p": version.top_p,
        "seed": version.seed,
        "stop": list(version.stop or []),
    }


async def prepare(
    prompt: str | PromptVersion,
    variables: Any,
    *,
    owner: leases.Owner | None,
    delivery: str,
    timeout: float | None,
    fallback: fallbacks.Policy | None,
    device_id: str | None = None,
    run_id: str | None = None,
) -> Job:
    """
    Validate the request, check the variables against the active prompt
    version and record a PENDING task.
    """
    if delivery not in DELIVERIES:
        raise ValueError(f"deliver must be 'server' or 'page', got {delivery!r}.")
    version = await database_sync_to_async(get_active_version)(prompt)
    check_variables(version, variables)
    # Rendering once here raises for bad values before any row is written.
    render_prompt(version, variables, version.model_id)
    policy = fallbacks.resolve_policy(fallback)
    seconds = offload_settings.TASK_TIMEOUT if timeout is None else timeout
    if not isinstance(seconds, int | float) or seconds <= 0:
        raise ValueError(
            f"timeout must be a positive number of seconds, got {seconds!r}."
        )
    task = await leases.acreate_task(version, owner, delivery)
    logger.info("Task %s created for prompt version %s", task.id, version.pk)
    return Job(
        task_id=task.id,
        version=version,
        variables=dict(variables),
        owner=owner,
        delivery=delivery,
        policy=policy,
        deadline=asyncio.get_running_loop().time() + float(seconds),
        device_id=device_id,
        run_id=run_id,
    )


class Supervisor:
    """
    Leases one task, re-leases it when the lease is lost, and runs the
    fallback when no device is left or the time is up.
    """

    def __init__(self, job: Job) -> None:
        self.job = job
        self.layer = get_channel_layer()
        self.channel: str | None = None
        self.lease: Lease | None = None
        self.tried: set[tuple[str, str]] = set()
        self.last_reason = ""
        self.wait_for_device_until: float | None = None

    # Wake-ups

    async def subscribe(self) -> None:
        """
        Join the task's group and the owner's group on a fresh channel.
        """
        if self.layer is None:
            return
        self.channel = await self.layer.new_channel()
        await self.layer.group_add(leases.task_group(self.job.task_id), self.channel)
        if self.job.owner is not None:
            await self.layer.group_add(self.job.owner.group, self.channel)

    async def unsubscribe(self) -> None:
        """
        Leave the groups joined by subscribe.
        """
        if self.layer is None or self.channel is None:
            return
        await self.layer.group_discard(
            leases.task_group(self.job.task_id), self.channel
        )
        if self.job.owner is not None:
            await self.layer.group_discard(self.job.owner.group, self.channel)
        self.channel = None

    async def _wait(self, seconds: float) -> None:
        if self.layer is None or self.channel is None:
            await asyncio.sleep(seconds)
            return
        try:
            await asyncio.wait_for(self.layer.receive(self.channel), seconds)
        except TimeoutError:
            pass

    async def _send(self, channel_name: str, frame: dict[str, Any]) -> bool:
        if self.layer is None:
            return False
        try:
            await self.layer.send(
                channel_name, {"type": "offload.frame", "frame": frame}
            )
        except ChannelFull:
            logger.warning(
                "Channel of task %s is full; frame dropped", self.job.task_id
            )
            return False
        return True

    def _remaining(self) -> float:
        return self.job.deadline - asyncio.get_running_loop().time()

    # Leasing

    async def try_lease(self, task: Task) -> str:
        """
        Lease the task to the best device; return "" on success or the
        reason no device took it.
        """
        only = self.job.device_id if self.job.delivery == Task.Delivery.PAGE else None
        if self.job.owner is None:
            return "no-device"
        if self.job.delivery == Task.Delivery.PAGE and only is None:
            return "no-device"

        device, reason = await leases.apick_device(
            self.job.owner,
            self.job.version.model_id,
            exclude=frozenset(self.tried),
            only_device=only,
            prefer_device=self.job.device_id,
        )
        if device is None:
            return reason
        token = await leases.alease_task(task.id, device, task.attempts)
        if token is None:
            return "lease-lost"

        self.lease = Lease(token, str(device.id), device.channel_name)
        self.tried.add((str(device.id), device.channel_name))
        self.wait_for_device_until = None

        ack_deadline = timezone.now() + timedelta(seconds=offload_settings.ACK_TIMEOUT)
        sent = await self._send(
            device.channel_name, self._task_frame(token, device.model_id, ack_deadline)
        )
        logger.info(
            "Task %s leased to device %s (attempt %s)",
            task.id,
            device.id,
            task.attempts + 1,
        )
        if not sent:
            await self.drop_lease("device-lost")
        return ""

    def _task_frame(
        self, token: uuid.UUID, model_id: str, ack_deadline: datetime
    ) -> dict[str, Any]:
        version = self.job.version
        return protocol.task(
            task_id=str(self.job.task_id),
            lease_token=str(token),
            ack_deadline=ack_deadline,
            messages=self.job.messages(model_id),
            params=generation_params(version),
            delivery=self.job.delivery,
            evaluators=list(version.evaluators or []),
            output_schema=version.output_schema,
            model_id=model_id,
            run_id=self.job.run_id,
        )

    async def drop_lease(self, reason: str) -> None:
        """
        Take the current lease back, tell its device to stop, and remember
        why for the fallback reason.
        """
        lease = self.lease
        if lease is None:
            return
        self.lease = None
        self.last_reason = reason
        await leases.arelease_lease(self.job.task_id, lease.token, reason)
        await self._send(
            lease.channel_name, protocol.cancel(str(self.job.task_id), reason)
        )
        logger.info(
            "Task %s: lease on device %s dropped (%s)",
            self.job.task_id,
            lease.device_id,
            reason,
        )

    async def check_lease(self, task: Task) -> None:
        """
        Drop the lease when its device left, reported an error, or let a
        deadline pass.
        """
        lease = self.lease
        if lease is None:
            return
        if task.lease_token != lease.token:
            # The device reported an error and the row went back to PENDING.
            self.lease = None
            self.last_reason = "device-error" if task.error_code else "lease-lost"
            return
        device = await leases.aget_device(lease.device_id)
        if (
            device is None
            or not device.connected
            or device.channel_name != lease.channel_name
        ):
            await self.drop_lease("device-lost")
            return
        if task.lease_deadline is not None and task.lease_deadline <= timezone.now():
            expired = (
                "ack-timeout" if task.status == Task.Status.LEASED else "lease-expired"
            )
            await self.drop_lease(expired)

    def _next_wait(self, task: Task) -> float:
        waits = [offload_settings.POLL_INTERVAL, self._remaining()]
        if task.lease_deadline is not None:
            waits.append((task.lease_deadline - timezone.now()).total_seconds())
        if self.wait_for_device_until is not None:
            now = asyncio.get_running_loop().time()
            waits.append(self.wait_for_device_until - now)
        return max(0.01, min(waits))

    # Main loops

    async def start(self) -> str:
        """
        Offer the new task to a device; return "" when leased, otherwise
        the reason (the caller then runs the fallback).
        """
        task = await leases.aget_task(self.job.task_id)
        return await self.try_lease(task)

    async def follow(self, *, push_to_page: bool = False) -> Result:
        """
        Watch the leased task until a device completes it, or run the
        fallback when leases run out or the deadline passes.
        """
        while True:
            task = await leases.aget_task(self.job.task_id)
            if task.status in leases.TERMINAL:
                return await self.finish(task)
            await self.check_lease(task)
            if self._remaining() <= 0:
                return await self.fall_back("timeout", push_to_page=push_to_page)
            if self.lease is None:
                task = await leases.aget_task(self.job.task_id)
                if task.status in leases.TERMINAL:
                    return await self.finish(task)
                if task.attempts >= offload_settings.MAX_ATTEMPTS:
                    reason = self.last_reason or "no-device"
                    return await self.fall_back(reason, push_to_page=push_to_page)
                reason = await self.try_lease(task)
                if reason and await self._stop_waiting_for_device():
                    reason = self.last_reason or reason
                    return await self.fall_back(reason, push_to_page=push_to_page)
                task = await leases.aget_task(self.job.task_id)
            await self._wait(self._next_wait(task))

    async def _stop_waiting_for_device(self) -> bool:
        # After a lost lease, give a device ACK_TIMEOUT seconds to (re)connect.
        now = asyncio.get_running_loop().time()
        if self.wait_for_device_until is None:
            self.wait_for_device_until = now + offload_settings.ACK_TIMEOUT
            return False
        return now >= self.wait_for_device_until

    async def finish(self, task: Task) -> Result:
        """
        Build the Result of a task that reached a terminal state.
        """
        if task.status != Task.Status.SUCCEEDED:
            raise OffloadUnavailable(task.error_code or task.status, str(task.id))
        scores = await database_sync_to_async(_score_dicts)(task.id)
        output = task.output if task.delivery == Task.Delivery.SERVER else None
        logger.info("Task %s succeeded on device %s", task.id, task.device_id)
        return Result(
            task_id=str(task.id),
            status=task.status,
            delivery=task.delivery,
            output=output,
            scores=scores,
            usage={
                "prompt_tokens": task.prompt_tokens,
                "completion_tokens": task.completion_tokens,
            },
            finish_reason=task.finish_reason,
            output_schema=self.job.version.output_schema,
        )

    async def fall_back(self, reason: str, *, push_to_page: bool = False) -> Result:
        """
        Claim the task for the fallback, run the policy and record it.
        """
        job = self.job
        claimed = False
        for _ in range(3):
            task = await leases.aget_task(job.task_id)
            if task.status in leases.TERMINAL:
                return await self.finish(task)
            claimed = await leases.aclaim_fallback(
                job.task_id, task.lease_token, reason
            )
            if claimed:
                break
        if not claimed:
            raise OffloadUnavailable("lease-lost", str(job.task_id))
        if self.lease is not None:
            await self._send(
                self.lease.channel_name, protocol.cancel(str(job.task_id), reason)
            )
            self.lease = None

        kind = fallbacks.policy_kind(job.policy)
        logger.info("Task %s falls back to %s (%s)", job.task_id, kind, reason)
        if kind == fallbacks.ERROR:
            await leases.arecord_fallback(job.task_id, kind, {}, [], "")
            await self._push_error(push_to_page, reason)
            raise OffloadUnavailable(reason, str(job.task_id))
        try:
            generated = await fallbacks.generate(
                job.policy,
                job.messages(job.version.model_id),
                generation_params(job.version),
                job.version.model_id,
            )
            scores = await fallbacks.score(
                list(job.version.evaluators or []), generated
            )
        except Exception as exc:  # noqa: BLE001  (any fallback failure ends the task)
            # Only the type is logged: a message could quote the prompt.
            logger.error(
                "Fallback %s of task %s failed: %s",
                kind,
                job.task_id,
                type(exc).__name__,
            )
            await leases.afail_fallback(job.task_id, kind, "fallback-failed")
            await self._push_error(push_to_page, "fallback-failed")
            raise OffloadUnavailable("fallback-failed", str(job.task_id)) from None

        stored = generated.text if job.delivery == Task.Delivery.SERVER else ""
        await leases.arecord_fallback(
            job.task_id, kind, generated.figures(), scores, stored
        )
        if push_to_page:
            await self._push_output(generated.text, kind, reason)
        return Result(
            task_id=str(job.task_id),
            status=Task.Status.FELL_BACK,
            delivery=job.delivery,
            output=generated.text,
            scores=scores,
            usage={
                "prompt_tokens": generated.prompt_tokens,
                "completion_tokens": generated.completion_tokens,
            },
            finish_reason=generated.finish_reason,
            fallback={"kind": kind, "reason": reason},
            output_schema=job.version.output_schema,
        )

    async def _page_channel(self) -> str | None:
        if self.job.device_id is None:
            return None
        device = await leases.aget_device(self.job.device_id)
        if device is None or not device.connected:
            return None
        return device.channel_name

    async def _push_output(self, text: str, kind: str, reason: str) -> None:
        channel = await self._page_channel()
        if channel is None:
            logger.info(
                "Task %s: page left before its fallback output", self.job.task_id
            )
            return
        frame = protocol.output(
            str(self.job.task_id), text=text, fallback_kind=kind, fallback_reason=reason
        )
        await self._send(channel, frame)

    async def _push_error(self, push_to_page: bool, reason: str) -> None:
        channel = await self._page_channel() if push_to_page else None
        if channel is not None:
            frame = protocol.error(
                "offload-unavailable", None, reason, task_id=str(self.job.task_id)
            )
            await self._send(channel, frame)


def _score_dicts(task_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = Score.objects.filter(task_id=task_id).order_by("id")
    return [
        {
            "name": row.name,
            "data_type": row.data_type,
            "value": row.value,
            "label": row.label or None,
            "passed": row.passed,
        }
        for row in rows
    ]


def _keep_running(coroutine: Any) -> None:
    task = asyncio.get_running_loop().create_task(coroutine)
    _background.add(task)
    task.add_done_callback(_forget)


def _forget(task: asyncio.Task) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        if not isinstance(exc, OffloadUnavailable):
            logger.error("Background supervisor failed: %s", type(exc).__name__)


async def _follow_then_unsubscribe(supervisor: Supervisor) -> None:
    try:
        await supervisor.follow(push_to_page=True)
    finally:
        await supervisor.unsubscribe()


async def run(job: Job) -> Result:
    """
    Run one prepared job. Server delivery waits for the output. Page
    delivery returns a pending Result as soon as the task is leased, and
    supervises it further in the background. When no device takes the task
    at the start, both run the fallback at once.
    """
    supervisor = Supervisor(job)
    await supervisor.subscribe()
    detached = False
    try:
        reason = await supervisor.start()
        if reason:
            return await supervisor.fall_back(reason)
        if job.delivery == Task.Delivery.PAGE:
            _keep_running(_follow_then_unsubscribe(supervisor))
            detached = True
            return Result(
                task_id=str(job.task_id),
                status=Task.Status.LEASED,
                delivery=job.delivery,
            )
        return await supervisor.follow()
    finally:
        if not detached:
            await supervisor.unsubscribe()
