"""
Optional middleware that makes pages cross-origin isolated, so ONNX Runtime
Web can run WASM threads (they need SharedArrayBuffer).

It sets ``Cross-Origin-Opener-Policy: same-origin`` and
``Cross-Origin-Embedder-Policy`` (``OFFLOAD["ISOLATION_COEP"]``) on responses
whose path starts with one of ``OFFLOAD["ISOLATION_PATHS"]``. Headers that a
view already set are left alone.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponseBase
from django.utils.deprecation import MiddlewareMixin

from django_offload.conf import offload_settings

COEP_VALUES = ("require-corp", "credentialless")


def isolation_settings() -> tuple[list[str], str]:
    """
    Return the validated ``ISOLATION_PATHS`` and ``ISOLATION_COEP`` settings.
    """
    paths = offload_settings.ISOLATION_PATHS
    if not isinstance(paths, list | tuple) or not all(
        isinstance(p, str) and p.startswith("/") for p in paths
    ):
        raise ImproperlyConfigured(
            f"OFFLOAD['ISOLATION_PATHS'] must be a list of URL paths starting "
            f"with '/', got {paths!r}; use ['/'] to isolate every page."
        )
    coep = offload_settings.ISOLATION_COEP
    if coep not in COEP_VALUES:
        raise ImproperlyConfigured(
            f"OFFLOAD['ISOLATION_COEP'] must be one of {COEP_VALUES!r}, got {coep!r}."
        )
    return list(paths), coep


class CrossOriginIsolationMiddleware(MiddlewareMixin):
    """
    Add COOP and COEP headers to the configured paths.
    """

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        paths, coep = isolation_settings()
        if any(request.path.startswith(prefix) for prefix in paths):
            response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
            response.headers.setdefault("Cross-Origin-Embedder-Policy", coep)
        return response


def add_isolation_headers(headers: Any, path: str, url: str) -> None:
    """
    Add the COOP and COEP headers to a static file served by WhiteNoise.

    Set ``WHITENOISE_ADD_HEADERS_FUNCTION =
    "django_offload.middleware.add_isolation_headers"``: static files bypass
    Django's middleware, yet browsers block a module worker script (the
    engine's ``worker.js`` and ONNX Runtime's thread workers) that an
    isolated page starts unless the script itself carries a matching COEP.
    """
    paths, coep = isolation_settings()
    if any(url.startswith(prefix) for prefix in paths):
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
        headers["Cross-Origin-Embedder-Policy"] = coep
