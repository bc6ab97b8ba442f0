"""
The WebSocket consumer that devices connect to (route ``ws/offload/``).

Each device frame is validated by ``protocol.parse_frame`` and handled by
the method named after its type (``handle_hello``, ``handle_ack``, ...).
Handlers do only small database updates (helpers in ``leases``) and wake
the supervisors waiting on the task; no handler waits for long work.
Channel-layer events of type ``offload.frame`` carry server frames (task,
cancel, output) for this connection's device.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from django_offload import leases, protocol
from django_offload.conf import offload_settings
from django_offload.fit import choose_variant
from django_offload.modelstore import load_manifest

logger = logging.getLogger(__name__)

# WebSocket close code sent when the connection has no user and no session.
CLOSE_NO_SESSION = 4403


def _memory_class(capabilities: dict[str, Any]) -> str:
    # Coarse on purpose: the exact figure would help fingerprint the user.
    gib = capabilities.get("deviceMemory")
    if not isinstance(gib, int | float) or isinstance(gib, bool):
        return ""
    if gib < 4:
        return "low"
    if gib < 8:
        return "medium"
    return "high"


def _profile(capabilities: dict[str, Any]) -> tuple[leases.DeviceProfile, str | None]:
    """
    Fit the default model to the device; return the profile to store and
    the reason when no variant fits (None when one does).

    Raises ValueError naming the capability at fault.
    """
    model_id = offload_settings.DEFAULT_MODEL
    model_dir = offload_settings.model_store / model_id
    try:
        manifest = load_manifest(model_dir)
    except (OSError, ValueError) as exc:
        logger.warning("Manifest of model %s unreadable: %s", model_id, exc)
        manifest = {"variants": {}}
    fit = choose_variant(manifest, capabilities)
    webgpu = capabilities.get("webgpu") or {}
    profile = leases.DeviceProfile(
        consent=capabilities.get("consent") is True,
        model_id=model_id if fit.variant else "",
        variant=fit.variant or "",
        backend=fit.backend or "none",
        threads=fit.threads,
        fallback_adapter=bool(webgpu.get("fallback")),
        memory_class=_memory_class(capabilities),
    )
    return profile, None if fit.variant else fit.reason


class OffloadConsumer(AsyncJsonWebsocketConsumer):
    """
    One device connection: registers the device on ``hello`` and moves its
    leases forward on ``ack``, ``progress``, ``result`` and ``error``.
    """

    owner: leases.Owner | None = None
    device_id: Any = None

    async def connect(self) -> None:
        self.owner = leases.Owner.identify(
            self.scope.get("user"), self.scope.get("session")
        )
        self.device_id = None
        await self.accept()
        if self.owner is None:
            await self.send_json(
                protocol.error(
                    "no-session",
                    None,
                    "Sign in, or save the session before opening the socket.",
                )
            )
            await self.close(code=CLOSE_NO_SESSION)

    async def disconnect(self, code: int) -> None:
        if self.device_id is None:
            return
        task_ids = await leases.adisconnect_device(self.device_id, self.channel_name)
        logger.info("Device %s disconnected (code %s)", self.device_id, code)
        for task_id in task_ids:
            await self._wake(leases.task_group(task_id))

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None
    ) -> None:
        try:
            message = protocol.parse_frame(
                text_data, bytes_data, offload_settings.MAX_MESSAGE_BYTES
            )
        except protocol.ProtocolError as exc:
            await self._reject(exc.code, exc.field, exc.detail)
            return
        if message["type"] != "hello" and self.device_id is None:
            await self._reject("hello-required", "type", "Send hello first.")
            return
        handler = getattr(self, f"handle_{message['type']}")
        await handler(message)

    async def _reject(
        self, code: str, field: str | None, detail: str, task_id: str | None = None
    ) -> None:
        # Only the code goes to the log: field names and details can echo
        # what the device sent.
        logger.info("Frame from device %s rejected: %s", self.device_id, code)
        await self.send_json(protocol.error(code, field, detail, task_id=task_id))

    async def _wake(self, group: str) -> None:
        if self.channel_layer is not None:
            await self.channel_layer.group_send(group, {"type": "offload.wake"})

    # Device messages

    async def handle_hello(self, message: dict[str, Any]) -> None:
        capabilities = dict(message["capabilities"])
        capabilities["consent"] = message["consent"]
        try:
            profile, reason = await sync_to_async(_profile)(capabilities)
        except ValueError as exc:
            await self._reject("invalid-value", "capabilities", str(exc))
            return
        device = await leases.aregister_device(
            self.owner, message.get("device_id"), self.channel_name, profile
        )
        self.device_id = device.id
        # Tasks of this owner left open by a server process that stopped.
        await leases.aexpire_orphaned_tasks(self.owner)
        model = None
        if reason is None:
            model = {
                "id": profile.model_id,
                "variant": profile.variant,
                "backend": profile.backend,
                "threads": profile.threads,
            }
        logger.info(
            "Device %s connected: variant %s, reason %s",
            device.id,
            profile.variant or "none",
            reason or "fits",
        )
        await self.send_json(
            protocol.welcome(
                str(device.id),
                model=model,
                reason=reason,
                heartbeat_interval=offload_settings.HEARTBEAT_INTERVAL,
            )
        )
        # Supervisors of this owner may be waiting for a device.
        await self._wake(self.owner.group)

    async def handle_ack(self, message: dict[str, Any]) -> None:
        try:
            await leases.aack_lease(self.device_id, message)
        except leases.LeaseRejected as exc:
            await self._reject(exc.code, exc.field, exc.detail, message["task_id"])

    async def handle_progress(self, message: dict[str, Any]) -> None:
        try:
            await leases.arenew_lease(self.device_id, message)
        except leases.LeaseRejected as exc:
            await self._reject(exc.code, exc.field, exc.detail, message["task_id"])

    async def handle_result(self, message: dict[str, Any]) -> None:
        try:
            await leases.acomplete_lease(self.device_id, message)
        except leases.LeaseRejected as exc:
            await self._reject(exc.code, exc.field, exc.detail, message["task_id"])
            return
        logger.info(
            "Task %s completed by device %s", message["task_id"], self.device_id
        )
        await self._wake(leases.task_group(message["task_id"]))

    async def handle_error(self, message: dict[str, Any]) -> None:
        try:
            await leases.afail_lease(self.device_id, message)
        except leases.LeaseRejected as exc:
            await self._reject(exc.code, exc.field, exc.detail, message["task_id"])
            return
        logger.info(
            "Task %s failed on device %s: %s",
            message["task_id"],
            self.device_id,
            message["code"],
        )
        await self._wake(leases.task_group(message["task_id"]))

    async def handle_heartbeat(self, message: dict[str, Any]) -> None:
        await leases.atouch_device(self.device_id, self.channel_name)
        await self.send_json(protocol.heartbeat())

    # Channel-layer events

    async def offload_frame(self, event: dict[str, Any]) -> None:
        """
        Forward a server frame (task, cancel, output, error) to the device.
        """
        await self.send_json(event["frame"])
