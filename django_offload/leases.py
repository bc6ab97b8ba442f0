"""
The lease protocol's database side. The Task row is the source of truth.

A task moves PENDING -> LEASED (sent to one device channel with a fresh
``lease_token``) -> RUNNING (acknowledged) -> SUCCEEDED, or back to PENDING
when the lease is lost, or to FELL_BACK / FAILED / EXPIRED. Every transition
is one conditional UPDATE on the task id, the expected status and the lease
token, plus the device for messages from devices. So a replayed or late
result, a forged task id or another user's device changes no row.

Each helper is a small synchronous function; the ``a``-prefixed names are
their ``database_sync_to_async`` wrappers for consumers and coroutines.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from channels.db import database_sync_to_async
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from django_offload.conf import offload_settings
from django_offload.evaluators import validate_scores
from django_offload.models import Device, PromptVersion, Score, Task

logger = logging.getLogger(__name__)

OPEN = (Task.Status.PENDING, Task.Status.LEASED, Task.Status.RUNNING)
ACTIVE = (Task.Status.LEASED, Task.Status.RUNNING)
TERMINAL = (
    Task.Status.SUCCEEDED,
    Task.Status.FAILED,
    Task.Status.EXPIRED,
    Task.Status.FELL_BACK,
)


class LeaseRejected(Exception):
    """
    A device message that matches no lease of that device, or breaks the
    task's rules; ``code`` and ``field`` go back in an error frame.
    """

    def __init__(self, code: str, field: str | None, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.field = field
        self.detail = detail


@dataclass(frozen=True)
class Owner:
    """
    Whose tasks and devices these are: a signed-in user, or an anonymous
    session identified by its key.
    """

    user_id: int | None
    session_key: str

    @classmethod
    def identify(cls, user: Any, session: Any) -> Owner | None:
        """
        Return the owner for a request's or a connection's user and session,
        or None when the user is anonymous and the session has no key.
        """
        key = getattr(session, "session_key", None) or ""
        if user is not None and getattr(user, "is_authenticated", False):
            # The session key is a credential: store it only when it is the
            # only identity there is.
            return cls(user_id=user.pk, session_key="")
        if key:
            return cls(user_id=None, session_key=key)
        return None

    def q(self) -> Q:
        """
        Filter on the ``user``/``session_key`` fields of Device and Task.
        """
        if self.user_id is not None:
            return Q(user_id=self.user_id)
        return Q(user__isnull=True, session_key=self.session_key)

    @property
    def group(self) -> str:
        """
        Channel-layer group of the coroutines waiting on this owner's tasks.
        """
        if self.user_id is not None:
            return f"offload.owner.u{self.user_id}"
        # The session key is a credential, so only its hash names the group.
        digest = hashlib.sha256(self.session_key.encode()).hexdigest()[:40]
        return f"offload.owner.s{digest}"


def task_group(task_id: uuid.UUID | str) -> str:
    """
    Return the channel-layer group of the coroutine waiting on one task.
    """
    return f"offload.task.{uuid.UUID(str(task_id)).hex}"


@dataclass(frozen=True)
class DeviceProfile:
    """
    Coarse summary of a device's capabilities, plus the fit result.
    """

    consent: bool
    model_id: str
    variant: str
    backend: str
    threads: int
    fallback_adapter: bool
    memory_class: str


def _now() -> datetime:
    return timezone.now()


def _after(seconds: float) -> datetime:
    return _now() + timedelta(seconds=seconds)


# Devices


def register_device(
    owner: Owner, device_id: str | None, channel_name: str, profile: DeviceProfile
) -> Device:
    """
    Store a connected device, reusing the row named by ``device_id`` when
    it belongs to the same owner, and creating a new one otherwise.
    """
    fields = {
        "channel_name": channel_name,
        "connected": True,
        "consent": profile.consent,
        "model_id": profile.model_id,
        "variant": profile.variant,
        "backend": profile.backend,
        "threads": profile.threads,
        "fallback_adapter": profile.fallback_adapter,
        "memory_class": profile.memory_class,
        "last_seen": _now(),
    }
    if device_id is not None:
        updated = Device.objects.filter(owner.q(), id=device_id).update(**fields)
        if updated:
            return Device.objects.get(id=device_id)
    fields.pop("last_seen")
    return Device.objects.create(
        user_id=owner.user_id, session_key=owner.session_key, **fields
    )


def disconnect_device(device_id: uuid.UUID, channel_name: str) -> list[str]:
    """
    Mark the device disconnected if ``channel_name`` is still its channel,
    and return the ids of tasks leased to it, whose waiters should re-check.
    """
    Device.objects.filter(id=device_id, channel_name=channel_name).update(
        connected=False, last_seen=_now()
    )
    leased = Task.objects.filter(device_id=device_id, status__in=ACTIVE)
    return [str(task_id) for task_id in leased.values_list("id", flat=True)]


def touch_device(device_id: uuid.UUID, channel_name: str) -> None:
    """
    Record a sign of life (heartbeat) from the device on this channel.
    """
    Device.objects.filter(id=device_id, channel_name=channel_name).update(
        last_seen=_now(), connected=True
    )


def get_device(device_id: uuid.UUID | str) -> Device | None:
    """
    Return the device row, or None.
    """
    return Device.objects.filter(id=device_id).first()


def pick_device(
    owner: Owner,
    model_id: str,
    *,
    exclude: frozenset[tuple[str, str]] = frozenset(),
    only_device: str | None = None,
    prefer_device: str | None = None,
) -> tuple[Device | None, str]:
    """
    Choose a live, consenting device of the owner that has loaded
    ``model_id``, skipping (device id, channel) pairs in ``exclude``.

    Returns the device and "", or None and the reason none fits:
    "no-device", "no-consent" or "device-too-small".
    """
    cutoff = _now() - timedelta(seconds=3 * offload_settings.HEARTBEAT_INTERVAL)
    devices = Device.objects.filter(owner.q(), connected=True, last_seen__gte=cutoff)
    if only_device is not None:
        devices = devices.filter(id=only_device)
    devices = list(devices.order_by("-last_seen"))
    if not devices:
        return None, "no-device"
    consenting = [device for device in devices if device.consent]
    if not consenting:
        return None, "no-consent"
    fitting = [d for d in consenting if d.variant and d.model_id == model_id]
    if not fitting:
        return None, "device-too-small"
    fresh = [d for d in fitting if (str(d.id), d.channel_name) not in exclude]
    if not fresh:
        return None, "no-device"
    fresh.sort(key=lambda device: str(device.id) != prefer_device)
    return fresh[0], ""


# Tasks


def create_task(version: PromptVersion, owner: Owner | None, delivery: str) -> Task:
    """
    Record a new PENDING task. No variable and no rendered text is stored.
    """
    return Task.objects.create(
        prompt_version=version,
        user_id=owner.user_id if owner else None,
        session_key=owner.session_key if owner else "",
        delivery=delivery,
        model_id=version.model_id,
    )


def get_task(task_id: uuid.UUID | str) -> Task:
    """
    Return the task row, fresh from the database.
    """
    return Task.objects.get(id=task_id)


def lease_task(task_id: uuid.UUID, device: Device, attempts: int) -> uuid.UUID | None:
    """
    Lease a PENDING task to ``device`` with a new token, if its attempt
    count is still ``attempts``. Returns the token, or None when the row
    changed meanwhile.
    """
    token = uuid.uuid4()
    updated = Task.objects.filter(
        id=task_id, status=Task.Status.PENDING, attempts=attempts
    ).update(
        status=Task.Status.LEASED,
        device=device,
        lease_token=token,
        lease_deadline=_after(offload_settings.ACK_TIMEOUT),
        attempts=attempts + 1,
        model_id=device.model_id,
        variant=device.variant,
        backend=device.backend,
        threads=device.threads,
        error_code="",
    )
    return token if updated else None


def release_lease(task_id: uuid.UUID, token: uuid.UUID, code: str) -> bool:
    """
    Take a lost or expired lease back (status PENDING, no token), recording
    why in ``error_code``. False when the lease already ended.
    """
    updated = Task.objects.filter(
        id=task_id, lease_token=token, status__in=ACTIVE
    ).update(
        status=Task.Status.PENDING,
        lease_token=None,
        lease_deadline=None,
        error_code=code,
    )
    return bool(updated)


def _lease_q(device_id: uuid.UUID, message: dict[str, Any]) -> Q:
    return Q(
        id=message["task_id"],
        device_id=device_id,
        lease_token=message["lease_token"],
    )


def ack_lease(device_id: uuid.UUID, message: dict[str, Any]) -> None:
    """
    Mark the device's lease acknowledged and give it LEASE_TIMEOUT seconds.

    Raises LeaseRejected when no LEASED task matches device, id and token.
    """
    updated = Task.objects.filter(
        _lease_q(device_id, message), status=Task.Status.LEASED
    ).update(
        status=Task.Status.RUNNING,
        acked_at=_now(),
        lease_deadline=_after(offload_settings.LEASE_TIMEOUT),
    )
    if not updated:
        raise LeaseRejected(
            "stale-lease", "lease_token", "No open lease of this device matches."
        )


def renew_lease(device_id: uuid.UUID, message: dict[str, Any]) -> None:
    """
    Extend a running lease by LEASE_TIMEOUT seconds (a progress message).
    """
    updated = Task.objects.filter(
        _lease_q(device_id, message), status=Task.Status.RUNNING
    ).update(lease_deadline=_after(offload_settings.LEASE_TIMEOUT))
    if not updated:
        raise LeaseRejected(
            "stale-lease", "lease_token", "No running lease of this device matches."
        )


def fail_lease(device_id: uuid.UUID, message: dict[str, Any]) -> None:
    """
    Take back a lease whose device reported an error code.
    """
    updated = Task.objects.filter(
        _lease_q(device_id, message), status__in=ACTIVE
    ).update(
        status=Task.Status.PENDING,
        lease_token=None,
        lease_deadline=None,
        error_code=message["code"],
    )
    if not updated:
        raise LeaseRejected(
            "stale-lease", "lease_token", "No open lease of this device matches."
        )


def complete_lease(device_id: uuid.UUID, message: dict[str, Any]) -> None:
    """
    Store a device's result: figures, validated scores and, for
    server-delivery tasks only, the output.

    Raises LeaseRejected, changing nothing, when no open lease matches the
    device, task id and token, when a page-delivery result carries an
    output (or a server-delivery one lacks it), or when a score is invalid.
    """
    task = (
        Task.objects.select_related("prompt_version")
        .filter(_lease_q(device_id, message), status__in=ACTIVE)
        .first()
    )
    if task is None:
        raise LeaseRejected(
            "stale-lease", "lease_token", "No open lease of this device matches."
        )
    if task.delivery == Task.Delivery.PAGE and "output" in message:
        raise LeaseRejected(
            "output-not-allowed",
            "output",
            "This task delivers its output to the page only; send no output.",
        )
    if task.delivery == Task.Delivery.SERVER and "output" not in message:
        raise LeaseRejected(
            "missing-field", "output", "This task needs its output on the server."
        )
    try:
        scores = validate_scores(task.prompt_version.evaluators, message["scores"])
    except ValueError as exc:
        raise LeaseRejected("invalid-score", "scores", str(exc)) from None

    usage = message["usage"]
    with transaction.atomic():
        updated = Task.objects.filter(
            _lease_q(device_id, message), status__in=ACTIVE
        ).update(
            status=Task.Status.SUCCEEDED,
            finished_at=_now(),
            lease_token=None,
            lease_deadline=None,
            finish_reason=message["finish_reason"],
            prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"],
            latency_ms=message["latency_ms"],
            ttft_ms=message.get("ttft_ms"),
            decode_tps=message.get("decode_tps"),
            backend=message["backend"],
            threads=message["threads"],
            output=message.get("output", ""),
        )
        if not updated:
            raise LeaseRejected(
                "stale-lease", "lease_token", "No open lease of this device matches."
            )
        save_scores(task.id, scores)


def save_scores(task_id: uuid.UUID, scores: list[dict[str, Any]]) -> None:
    """
    Store validated scores as Score rows.
    """
    Score.objects.bulk_create(
        Score(
            task_id=task_id,
            name=score["name"],
            data_type=score["data_type"],
            value=None if score.get("value") is None else float(score["value"]),
            label=score.get("label") or "",
            passed=score.get("passed"),
        )
        for score in scores
    )


def claim_fallback(task_id: uuid.UUID, token: uuid.UUID | None, reason: str) -> bool:
    """
    Move an open task whose lease token is still ``token`` to FELL_BACK, so
    a late device result is rejected from now on.
    """
    updated = Task.objects.filter(
        id=task_id, status__in=OPEN, lease_token=token
    ).update(
        status=Task.Status.FELL_BACK,
        fallback_reason=reason,
        lease_token=None,
        lease_deadline=None,
    )
    return bool(updated)


def record_fallback(
    task_id: uuid.UUID,
    kind: str,
    figures: dict[str, Any],
    scores: list[dict[str, Any]],
    output: str,
) -> None:
    """
    Store the outcome of a fallback claimed with claim_fallback. ``output``
    is stored only by callers handling server-delivery tasks.
    """
    with transaction.atomic():
        Task.objects.filter(id=task_id, status=Task.Status.FELL_BACK).update(
            fallback_kind=kind, finished_at=_now(), output=output, **figures
        )
        save_scores(task_id, scores)


def fail_fallback(task_id: uuid.UUID, kind: str, code: str) -> None:
    """
    Mark a claimed task FAILED because its fallback raised.
    """
    Task.objects.filter(id=task_id, status=Task.Status.FELL_BACK).update(
        status=Task.Status.FAILED,
        fallback_kind=kind,
        error_code=code,
        finished_at=_now(),
    )


def expire_task(task_id: uuid.UUID, code: str) -> bool:
    """
    Mark an open task EXPIRED because no page is left to deliver it to.
    """
    updated = Task.objects.filter(id=task_id, status__in=OPEN).update(
        status=Task.Status.EXPIRED,
        lease_token=None,
        lease_deadline=None,
        error_code=code,
        finished_at=_now(),
    )
    return bool(updated)


def orphan_horizon() -> timedelta:
    """
    Return how long an open task may exist before it counts as orphaned: the
    longest a live supervisor can keep it open (the request's timeout plus
    every lease's acknowledge and finish deadlines) and a minute's margin.
    """
    attempts = offload_settings.MAX_ATTEMPTS
    per_lease = offload_settings.ACK_TIMEOUT + offload_settings.LEASE_TIMEOUT
    seconds = offload_settings.TASK_TIMEOUT + attempts * per_lease + 60
    return timedelta(seconds=seconds)


def expire_orphaned_tasks(owner: Owner | None = None) -> int:
    """
    Mark EXPIRED, with error code ``supervisor-lost``, the open tasks that no
    server process supervises any more, and return how many there were.

    A supervisor lives in the process that created the task and re-reads the
    row every ``POLL_INTERVAL``. When that process stops (a restart, a crash),
    the row stays open. The rendered prompt was never stored, so such a task
    cannot be run again, and it ends here instead of staying open forever. A task
    counts as orphaned once it is older than ``orphan_horizon()`` and has no
    lease deadline in the future, so a device that keeps renewing its lease
    with ``progress`` frames is never cut off.
    """
    now = _now()
    grace = timedelta(seconds=offload_settings.ACK_TIMEOUT + 30)
    tasks = Task.objects.filter(
        status__in=OPEN, created_at__lt=now - orphan_horizon()
    ).filter(Q(lease_deadline__isnull=True) | Q(lease_deadline__lt=now - grace))
    if owner is not None:
        tasks = tasks.filter(owner.q())
    count = tasks.update(
        status=Task.Status.EXPIRED,
        lease_token=None,
        lease_deadline=None,
        error_code="supervisor-lost",
        finished_at=now,
    )
    if count:
        logger.warning("Expired %s orphaned task(s) with no supervisor", count)
    return count


aregister_device = database_sync_to_async(register_device)
adisconnect_device = database_sync_to_async(disconnect_device)
atouch_device = database_sync_to_async(touch_device)
aget_device = database_sync_to_async(get_device)
apick_device = database_sync_to_async(pick_device)
acreate_task = database_sync_to_async(create_task)
aget_task = database_sync_to_async(get_task)
alease_task = database_sync_to_async(lease_task)
arelease_lease = database_sync_to_async(release_lease)
aack_lease = database_sync_to_async(ack_lease)
arenew_lease = database_sync_to_async(renew_lease)
afail_lease = database_sync_to_async(fail_lease)
acomplete_lease = database_sync_to_async(complete_lease)
aclaim_fallback = database_sync_to_async(claim_fallback)
arecord_fallback = database_sync_to_async(record_fallback)
afail_fallback = database_sync_to_async(fail_fallback)
aexpire_task = database_sync_to_async(expire_task)
aexpire_orphaned_tasks = database_sync_to_async(expire_orphaned_tasks)
