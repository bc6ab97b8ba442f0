"""
System checks for django_offload. Every ID is listed in docs/checks.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register


@register(Tags.compatibility)
def check_channel_layer(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    layers = getattr(settings, "CHANNEL_LAYERS", None)
    if not isinstance(layers, dict) or "default" not in layers:
        return [
            Error(
                f"CHANNEL_LAYERS has no 'default' layer (got {layers!r}).",
                hint=(
                    "Set CHANNEL_LAYERS = {'default': {'BACKEND': "
                    "'channels.layers.InMemoryChannelLayer'}} for one process, "
                    "or channels_redis.core.RedisChannelLayer for several."
                ),
                id="django_offload.E001",
            )
        ]
    return []


@register(Tags.compatibility)
def check_asgi_application(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    value = getattr(settings, "ASGI_APPLICATION", None)
    if not isinstance(value, str) or not value:
        return [
            Error(
                f"ASGI_APPLICATION is not set (got {value!r}).",
                hint=(
                    "Set ASGI_APPLICATION = 'yourproject.asgi.application' and "
                    "route django_offload.routing.websocket_urlpatterns there."
                ),
                id="django_offload.E002",
            )
        ]
    return []


def _model_store_state() -> tuple[Path | None, str | None, list[dict[str, Any]]]:
    """
    Resolve and read the model store: return its path, an error message (the
    setting cannot be resolved, the path is not a readable folder, or it
    cannot be listed) and the valid manifests. A missing store is no error.

    Raises ManifestError for an invalid manifest.
    """
    from django.core.exceptions import ImproperlyConfigured

    from django_offload.conf import offload_settings
    from django_offload.modelstore import list_models

    try:
        store = offload_settings.model_store
    except ImproperlyConfigured as exc:
        return None, str(exc), []
    if not store.exists():
        return store, None, []
    if not store.is_dir() or not os.access(store, os.R_OK | os.X_OK):
        return store, f"{str(store)!r} is not a readable folder", []
    try:
        return store, None, list_models(store)
    except OSError as exc:
        return store, f"{str(store)!r} cannot be read: {exc}", []


@register(Tags.compatibility)
def check_model_store(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """
    Check that the model store exists, is readable and contains a servable model.
    """
    from django_offload.modelstore import ManifestError

    try:
        store, problem, manifests = _model_store_state()
    except ManifestError as exc:
        return [
            Error(
                f"Invalid manifest in the model store (OFFLOAD['MODEL_STORE']): {exc}",
                hint="Rebuild with `manage.py offload_models build --force`, or "
                "re-import the model with `manage.py offload_models import`.",
                id="django_offload.E004",
            )
        ]
    if problem is not None:
        return [
            Error(
                f"The model store (OFFLOAD['MODEL_STORE']) is unusable: {problem}.",
                hint="Point OFFLOAD['MODEL_STORE'] at a folder this process can "
                "read, then run `manage.py offload_models build`.",
                id="django_offload.E003",
            )
        ]
    if not store.exists():
        return [
            Warning(
                f"The model store {str(store)!r} (OFFLOAD['MODEL_STORE']) does not "
                "exist, so no model can run on devices or on the server.",
                hint="Run `manage.py offload_models build`, or set "
                "OFFLOAD['MODEL_STORE'] to a built store.",
                id="django_offload.W003",
            )
        ]
    servable = [
        manifest["id"]
        for manifest in manifests
        if any(variant["servable"] for variant in manifest["variants"].values())
    ]
    if not servable:
        return [
            Warning(
                f"The model store {str(store)!r} (OFFLOAD['MODEL_STORE']) has no "
                "servable model variant, so every task falls back.",
                hint="Run `manage.py offload_models build`, then "
                "`manage.py offload_models list` to see which variants failed "
                "the quality gate.",
                id="django_offload.W004",
            )
        ]
    return []


LOG_LEVELS = ("debug", "info", "warn", "error", "silent")


@register(Tags.compatibility)
def check_isolation_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    from django.core.exceptions import ImproperlyConfigured

    from django_offload.middleware import isolation_settings

    try:
        isolation_settings()
    except ImproperlyConfigured as error:
        return [
            Error(
                str(error),
                hint="Fix the value in the OFFLOAD dict of your settings.",
                id="django_offload.E010",
            )
        ]
    return []


@register(Tags.compatibility)
def check_runtime_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    from django_offload.conf import offload_settings

    errors = []
    level = offload_settings.LOG_LEVEL
    if level not in LOG_LEVELS:
        errors.append(
            Error(
                f"OFFLOAD['LOG_LEVEL'] is {level!r}.",
                hint=f"Set it to one of {LOG_LEVELS!r}.",
                id="django_offload.E011",
            )
        )
    socket_path = offload_settings.SOCKET_PATH
    if socket_path is not None and (
        not isinstance(socket_path, str)
        or socket_path.startswith(("/", "ws:", "wss:", "http:", "https:"))
    ):
        errors.append(
            Error(
                f"OFFLOAD['SOCKET_PATH'] is {socket_path!r}.",
                hint=(
                    "Set it to the WebSocket route relative to the site root, "
                    "such as 'ws/offload/', or None for no socket."
                ),
                id="django_offload.E012",
            )
        )
    for key in ("CONSENT_STORAGE_KEY", "DEFAULT_MODEL"):
        value = getattr(offload_settings, key)
        if not isinstance(value, str) or not value:
            errors.append(
                Error(
                    f"OFFLOAD[{key!r}] is {value!r}.",
                    hint="Set it to a non-empty string.",
                    id="django_offload.E013",
                )
            )
    return errors


@register(Tags.compatibility)
def check_fit_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    from django_offload.conf import offload_settings

    threads = offload_settings.DEVICE_MAX_THREADS
    fraction = offload_settings.DEVICE_MEMORY_FRACTION
    unknown = offload_settings.UNKNOWN_DEVICE_MEMORY_GIB
    problems = []
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        problems.append(f"OFFLOAD['DEVICE_MAX_THREADS'] is {threads!r}")
    if not _is_number(fraction) or not 0 < fraction <= 1:
        problems.append(f"OFFLOAD['DEVICE_MEMORY_FRACTION'] is {fraction!r}")
    if not _is_number(unknown) or unknown <= 0:
        problems.append(f"OFFLOAD['UNKNOWN_DEVICE_MEMORY_GIB'] is {unknown!r}")
    return [
        Error(
            f"{problem}.",
            hint=(
                "DEVICE_MAX_THREADS is an integer >= 1, DEVICE_MEMORY_FRACTION "
                "a number in (0, 1], UNKNOWN_DEVICE_MEMORY_GIB a number > 0."
            ),
            id="django_offload.E014",
        )
        for problem in problems
    ]


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


_RATE_PERIODS = ("s", "sec", "second", "m", "min", "minute", "h", "hour", "d", "day")


def _is_rate(value: Any) -> bool:
    if not isinstance(value, str) or value.count("/") != 1:
        return False
    count, period = value.split("/")
    return count.isdigit() and int(count) > 0 and period in _RATE_PERIODS


@register(Tags.compatibility)
def check_metrics_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    from django_offload.conf import offload_settings

    errors = []
    minimum = offload_settings.MIN_GROUP_DEVICES
    if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
        errors.append(
            Error(
                f"OFFLOAD['MIN_GROUP_DEVICES'] must be a whole number >= 1, "
                f"got {minimum!r}.",
                hint="Set OFFLOAD['MIN_GROUP_DEVICES'] = 5 (the default) or more; "
                "smaller groups could reveal one user's behaviour.",
                id="django_offload.E030",
            )
        )
    rates = offload_settings.API_THROTTLE_RATES
    bad = (
        [rates]
        if not isinstance(rates, dict)
        else [
            f"{scope}={rate!r}" for scope, rate in rates.items() if not _is_rate(rate)
        ]
    )
    if bad:
        errors.append(
            Error(
                f"OFFLOAD['API_THROTTLE_RATES'] has invalid rates: {bad!r}.",
                hint="Use a dict of scope to '<count>/<second|minute|hour|day>', "
                "such as {'offload_metrics': '60/minute'}.",
                id="django_offload.E031",
            )
        )
    return errors


# Task orchestration settings: seconds that must be positive numbers.
_TASK_SECONDS = (
    "ACK_TIMEOUT",
    "LEASE_TIMEOUT",
    "TASK_TIMEOUT",
    "POLL_INTERVAL",
    "HEARTBEAT_INTERVAL",
)


def _positive_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and value > 0


@register(Tags.compatibility)
def check_task_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    from django.core.exceptions import ImproperlyConfigured

    from django_offload.conf import offload_settings
    from django_offload.fallback import resolve_policy

    errors = []
    try:
        resolve_policy(offload_settings.DEFAULT_FALLBACK)
    except ImproperlyConfigured as exc:
        errors.append(
            Error(
                f"OFFLOAD['DEFAULT_FALLBACK'] is invalid: {exc}",
                hint="Use 'server', 'error' or the dotted path of a callable "
                "taking (messages, params) and returning str.",
                id="django_offload.E020",
            )
        )
    for name in _TASK_SECONDS:
        value = getattr(offload_settings, name)
        if not _positive_number(value):
            errors.append(
                Error(
                    f"OFFLOAD[{name!r}] must be a positive number of seconds, "
                    f"got {value!r}.",
                    hint=f"Set OFFLOAD[{name!r}] to a number above 0, or remove "
                    "it to use the default.",
                    id="django_offload.E021",
                )
            )
    for name in ("MAX_ATTEMPTS", "MAX_MESSAGE_BYTES"):
        value = getattr(offload_settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            errors.append(
                Error(
                    f"OFFLOAD[{name!r}] must be a positive integer, got {value!r}.",
                    hint=f"Set OFFLOAD[{name!r}] to an integer of at least 1, or "
                    "remove it to use the default.",
                    id="django_offload.E022",
                )
            )
    return errors
