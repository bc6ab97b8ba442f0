"""
Settings of django_offload, read from the ``OFFLOAD`` dict in Django settings.

Every default lives in ``DEFAULTS``. Values are read through ``offload_settings``,
whose cache is cleared when ``setting_changed`` fires, so ``override_settings``
works in tests.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

DEFAULTS: dict[str, Any] = {
    # Folder holding one sub-folder per model and its manifest.json.
    # None means ``BASE_DIR / "offload_models"``.
    "MODEL_STORE": None,
    # URL prefix under which the model-file view serves the store.
    "MODEL_URL_PREFIX": "offload/models/",
    # Seconds a device has to acknowledge a task before the lease is retried.
    "ACK_TIMEOUT": 15.0,
    # Seconds a device has to finish an acknowledged task.
    "LEASE_TIMEOUT": 180.0,
    # Devices a task is offered to before its fallback runs.
    "MAX_ATTEMPTS": 2,
    # Largest WebSocket frame accepted from a device, in bytes.
    "MAX_MESSAGE_BYTES": 64 * 1024,
    # Fallback used when a prompt or decorator names none:
    # "server", "error", or a dotted path to a callable.
    "DEFAULT_FALLBACK": "server",
    # Admin aggregates hide groups with fewer distinct devices than this.
    "MIN_GROUP_DEVICES": 5,
    # Seconds a waiting request (decorator or offload()) waits for a device's
    # result, counted from task creation, before the fallback runs (float).
    "TASK_TIMEOUT": 120.0,
    # Seconds between the waiting side's re-checks of the task row; a dropped
    # channel message delays a result by at most this much (float).
    "POLL_INTERVAL": 1.0,
    # Seconds between device heartbeats (float). A device silent for three
    # intervals is not offered new tasks.
    "HEARTBEAT_INTERVAL": 20.0,
    # Server-side engine: intra-op threads (0 lets onnxruntime choose).
    "ENGINE_THREADS": 0,
    # Variant the server engine prefers for each model, by model id.
    "SERVER_VARIANTS": {},
    # Browser runtime (str): id of the model that the page's runtime.engine()
    # loads when called without a model id.
    "DEFAULT_MODEL": "smollm2-135m-instruct",
    # Browser runtime (str or None): path of the WebSocket route, relative to
    # the site root; the page picks ws: or wss: from location.protocol.
    # None leaves the page without a socket connection.
    "SOCKET_PATH": "ws/offload/",
    # Browser runtime (str): localStorage key that remembers the user's
    # consent to run models on the device.
    "CONSENT_STORAGE_KEY": "offload:consent",
    # Browser runtime (str): level of the page's logger, one of "debug",
    # "info", "warn", "error", "silent".
    "LOG_LEVEL": "warn",
    # Device fit (int): most WASM threads given to an engine; the device's
    # hardwareConcurrency lowers it, and 1 is used without cross-origin
    # isolation.
    "DEVICE_MAX_THREADS": 4,
    # Device fit (float, 0 < x <= 1): share of the reported device memory
    # that one model variant may need at its peak (its memory_bytes).
    "DEVICE_MEMORY_FRACTION": 0.5,
    # Device fit (float, GiB): device memory assumed when the browser
    # reports none (navigator.deviceMemory exists in Chromium only).
    "UNKNOWN_DEVICE_MEMORY_GIB": 4.0,
    # Cross-origin isolation middleware (list of str): URL path prefixes that
    # get COOP and COEP headers, such as ["/"] or ["/notes/"].
    "ISOLATION_PATHS": ["/"],
    # Cross-origin isolation middleware (str): Cross-Origin-Embedder-Policy
    # value, "require-corp" or "credentialless".
    "ISOLATION_COEP": "require-corp",
    # Request rates of the REST API per throttle scope, as DRF rate strings
    # ("<count>/<second|minute|hour|day>"), applied per user or client IP.
    # A rate for the same scope in REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    # takes precedence.
    "API_THROTTLE_RATES": {
        "offload_metrics": "60/minute",
        "offload_tasks": "120/minute",
        "offload_models": "60/minute",
        "offload_schema": "30/minute",
    },
}


@cache
def _user_settings() -> dict[str, Any]:
    value = getattr(settings, "OFFLOAD", {})
    if not isinstance(value, dict):
        raise ImproperlyConfigured(
            f"OFFLOAD must be a dict, got {type(value).__name__}: {value!r}."
        )
    unknown = sorted(set(value) - set(DEFAULTS))
    if unknown:
        raise ImproperlyConfigured(
            f"OFFLOAD has unknown keys {unknown!r}; "
            f"the known keys are {sorted(DEFAULTS)!r}."
        )
    return value


class OffloadSettings:
    """
    Attribute access to the merged ``OFFLOAD`` settings.
    """

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown django_offload setting: {name!r}")
        return _user_settings().get(name, DEFAULTS[name])

    @property
    def model_store(self) -> Path:
        """
        Absolute path of the model store.
        """
        configured = self.MODEL_STORE
        if configured is None:
            base = getattr(settings, "BASE_DIR", None)
            if base is None:
                raise ImproperlyConfigured(
                    "OFFLOAD['MODEL_STORE'] is not set and settings has no "
                    "BASE_DIR; set OFFLOAD = {'MODEL_STORE': '/path/to/models'}."
                )
            return Path(base) / "offload_models"
        return Path(configured)


offload_settings = OffloadSettings()


@receiver(setting_changed)
def _clear_cache(*, setting: str, **kwargs: Any) -> None:
    if setting == "OFFLOAD":
        _user_settings.cache_clear()
