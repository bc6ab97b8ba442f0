"""
System checks for django_offload. Every ID is listed in docs/checks.md.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, register


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
