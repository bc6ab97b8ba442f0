"""
Template tag that loads the browser runtime: ``{% load offload %}`` then
``{% offload_runtime %}`` in the page's body.
"""

from __future__ import annotations

from django import template
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import get_script_prefix, reverse
from django.utils.safestring import SafeString
from django.utils.translation import gettext

from django_offload.conf import offload_settings

register = template.Library()

VENDOR = "django_offload/vendor/"
ORT = VENDOR + "onnxruntime-web/"


def _optional_static(name: str) -> str | None:
    """
    Return the static URL of ``name``, or None when no such file exists
    (another part of the app may not be installed yet).
    """
    if finders.find(name) or staticfiles_storage.exists(name):
        return static(name)
    return None


def widget_text() -> dict[str, str]:
    """
    Return the consent widget's text in the active language.
    """
    return {
        "title": gettext("Run AI features on this device?"),
        "body": gettext(
            "This site can run its AI features in your browser, so your text "
            "stays on your device. The model is a one-time download of "
            "{size}."
        ),
        "accept": gettext("Use this device"),
        "decline": gettext("Not now"),
        "optOut": gettext("Stop using this device for AI"),
        "downloading": gettext("Downloading the model: {percent} %"),
        "ready": gettext("AI features run on this device."),
        "error": gettext("The model could not be loaded: {message}"),
    }


def runtime_config(model: str | None = None, log_level: str | None = None) -> dict:
    """
    Return the JSON config that ``offload.js`` reads; see config.js.
    """
    socket_path = offload_settings.SOCKET_PATH
    return {
        "socketPath": None
        if socket_path is None
        else get_script_prefix() + socket_path,
        "manifestUrl": reverse("django_offload:manifest"),
        "fitUrl": reverse("django_offload:fit"),
        "model": model or offload_settings.DEFAULT_MODEL,
        "consentKey": offload_settings.CONSENT_STORAGE_KEY,
        "logLevel": log_level or offload_settings.LOG_LEVEL,
        "workerUrl": _optional_static("django_offload/worker.js"),
        "clientUrl": _optional_static("django_offload/client.js"),
        "ort": {
            "webgpu": {
                "module": static(ORT + "ort.webgpu.min.mjs"),
                "wasmPaths": {
                    "mjs": static(ORT + "ort-wasm-simd-threaded.asyncify.mjs"),
                    "wasm": static(ORT + "ort-wasm-simd-threaded.asyncify.wasm"),
                },
            },
            "wasm": {
                "module": static(ORT + "ort.wasm.min.mjs"),
                "wasmPaths": {
                    "mjs": static(ORT + "ort-wasm-simd-threaded.mjs"),
                    "wasm": static(ORT + "ort-wasm-simd-threaded.wasm"),
                },
            },
        },
        "tokenizersUrl": static(VENDOR + "tokenizers/tokenizers.min.mjs"),
        "jinjaUrl": static(VENDOR + "jinja/index.js"),
        "text": widget_text(),
    }


@register.simple_tag(takes_context=True)
def offload_runtime(
    context: template.Context,
    model: str | None = None,
    nonce: str | None = None,
    log_level: str | None = None,
) -> SafeString:
    """
    Render the runtime's JSON config and its ``<script type="module">``.

    ``nonce`` defaults to ``request.csp_nonce`` when a CSP middleware sets it.
    """
    request = context.get("request")
    if nonce is None and request is not None:
        nonce = getattr(request, "csp_nonce", None)
    return render_to_string(
        "django_offload/runtime.html",
        {
            "config": runtime_config(model=model, log_level=log_level),
            "nonce": None if nonce is None else str(nonce),
        },
    )
