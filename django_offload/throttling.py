"""
Throttling of the REST API: DRF's scoped throttle with rates read from
``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` first and from
``OFFLOAD["API_THROTTLE_RATES"]`` otherwise, so the API works without any
project setting.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle

from django_offload.conf import DEFAULTS, offload_settings


class OffloadScopedThrottle(ScopedRateThrottle):
    """
    Scoped throttle whose rates are read at request time, so settings
    overrides apply.
    """

    def get_rate(self) -> str | None:
        rates = api_settings.DEFAULT_THROTTLE_RATES or {}
        if self.scope in rates:
            return rates[self.scope]
        # A project's dict adds to the default scopes instead of replacing them.
        own = {**DEFAULTS["API_THROTTLE_RATES"], **offload_settings.API_THROTTLE_RATES}
        if self.scope not in own:
            raise ImproperlyConfigured(
                f"No throttle rate for scope {self.scope!r}; add it to "
                "OFFLOAD['API_THROTTLE_RATES'] as a rate such as '60/minute'."
            )
        return own[self.scope]
