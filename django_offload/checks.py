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
