"""
Origin checking for the device WebSocket, with a log line per rejection.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import ParseResult

from channels.security.websocket import OriginValidator
from django.conf import settings

logger = logging.getLogger(__name__)

# Maximum length of an origin written to the log; longer ones are cut.
MAX_LOGGED_ORIGIN = 200


class LoggingOriginValidator(OriginValidator):
    """
    Channels' OriginValidator that logs each rejected origin at warning
    level, so a misconfigured ALLOWED_HOSTS shows up in the server log.
    """

    def valid_origin(self, parsed_origin: ParseResult | None) -> bool:
        valid = super().valid_origin(parsed_origin)
        if not valid:
            origin = parsed_origin.geturl() if parsed_origin is not None else None
            if origin is not None:
                origin = origin[:MAX_LOGGED_ORIGIN]
            logger.warning(
                "WebSocket connection rejected: origin %r is not in ALLOWED_HOSTS",
                origin,
            )
        return valid


def allowed_hosts_origin_validator(application: Any) -> LoggingOriginValidator:
    """
    Wrap ``application`` so that only origins matching ALLOWED_HOSTS
    connect (with DEBUG and empty ALLOWED_HOSTS: localhost only), logging
    every rejected origin.
    """
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = ["localhost", "127.0.0.1", "[::1]"]
    return LoggingOriginValidator(application, allowed_hosts)
