"""
Tests of the offload_runtime template tag, the isolation middleware, the MIME
types and the vendored files' URLs after collectstatic.
"""

import json
import mimetypes
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.contrib.staticfiles.views import serve
from django.core.management import call_command
from django.http import HttpResponse
from django.template import Context, Template
from django.test import RequestFactory, override_settings

from django_offload.middleware import (
    CrossOriginIsolationMiddleware,
    add_isolation_headers,
)
from django_offload.templatetags.offload import runtime_config

TAG = Template("{% load offload %}{% offload_runtime %}")


def render(template=TAG, **context):
    return template.render(Context(context))


def config_of(html):
    match = re.search(
        r'<script id="offload-config" type="application/json">(.*?)</script>',
        html,
        re.S,
    )
    assert match is not None, html
    return json.loads(match.group(1))


def test_runtime_tag_renders_config_and_module():
    html = render()
    config = config_of(html)
    assert config["socketPath"] == "/ws/offload/"
    assert config["manifestUrl"] == "/offload/manifest/"
    assert config["fitUrl"] == "/offload/fit/"
    assert config["model"] == "smollm2-135m-instruct"
    assert config["consentKey"] == "offload:consent"
    assert config["logLevel"] == "warn"
    assert '<script type="module" src="/static/django_offload/offload.js">' in html
    assert "nonce" not in html


def test_runtime_tag_vendor_urls():
    config = config_of(render())
    ort = "/static/django_offload/vendor/onnxruntime-web/"
    assert config["ort"]["webgpu"]["module"] == ort + "ort.webgpu.min.mjs"
    assert config["ort"]["webgpu"]["wasmPaths"] == {
        "mjs": ort + "ort-wasm-simd-threaded.asyncify.mjs",
        "wasm": ort + "ort-wasm-simd-threaded.asyncify.wasm",
    }
    assert config["ort"]["wasm"]["wasmPaths"]["wasm"] == (
        ort + "ort-wasm-simd-threaded.wasm"
    )
    assert config["tokenizersUrl"].endswith("/tokenizers/tokenizers.min.mjs")
    assert config["jinjaUrl"].endswith("/jinja/index.js")


def test_runtime_tag_arguments():
    template = Template(
        '{% load offload %}{% offload_runtime model="all-minilm-l6-v2" '
        'nonce="abc123" log_level="debug" %}'
    )
    html = render(template)
    config = config_of(html)
    assert config["model"] == "all-minilm-l6-v2"
    assert config["logLevel"] == "debug"
    assert 'nonce="abc123"' in html


def test_runtime_tag_request_nonce():
    request = SimpleNamespace(csp_nonce="n0nce")
    assert 'nonce="n0nce"' in render(request=request)


def test_runtime_tag_escapes_config():
    html = render(Template('{% load offload %}{% offload_runtime model="</script>" %}'))
    assert config_of(html)["model"] == "</script>"


def test_runtime_tag_without_socket():
    with override_settings(OFFLOAD={"SOCKET_PATH": None}):
        assert config_of(render())["socketPath"] is None


def test_runtime_tag_widget_text():
    text = config_of(render())["text"]
    expected = {"title", "body", "accept", "decline", "optOut"}
    assert expected <= set(text)
    assert "{size}" in text["body"]
    assert "{percent}" in text["downloading"]


def test_mimetypes_registered():
    assert mimetypes.guess_type("ort.webgpu.min.mjs")[0] == "text/javascript"
    assert mimetypes.guess_type("ort.wasm")[0] == "application/wasm"


def isolation_headers(path, **settings):
    middleware = CrossOriginIsolationMiddleware(lambda request: HttpResponse("ok"))
    with override_settings(OFFLOAD=settings):
        response = middleware(RequestFactory().get(path))
    return (
        response.headers.get("Cross-Origin-Opener-Policy"),
        response.headers.get("Cross-Origin-Embedder-Policy"),
    )


def test_isolation_middleware_default_paths():
    assert isolation_headers("/notes/") == ("same-origin", "require-corp")


def test_isolation_middleware_other_paths_untouched():
    headers = isolation_headers("/admin/", ISOLATION_PATHS=["/notes/"])
    assert headers == (None, None)


def test_isolation_middleware_credentialless():
    headers = isolation_headers("/", ISOLATION_COEP="credentialless")
    assert headers == ("same-origin", "credentialless")


def test_isolation_middleware_keeps_view_headers():
    def view(request):
        response = HttpResponse("ok")
        response["Cross-Origin-Embedder-Policy"] = "unsafe-none"
        return response

    response = CrossOriginIsolationMiddleware(view)(RequestFactory().get("/"))
    assert response["Cross-Origin-Embedder-Policy"] == "unsafe-none"


@pytest.mark.django_db
def test_demo_page_has_isolation_headers(client):
    response = client.get("/")
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response["Cross-Origin-Embedder-Policy"] == "require-corp"
    assert b'id="offload-config"' in response.content


def test_collectstatic_manifest_storage_urls(tmp_path):
    storages = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {
            "BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"
        },
    }
    with override_settings(STATIC_ROOT=str(tmp_path), STORAGES=storages, DEBUG=False):
        call_command("collectstatic", interactive=False, verbosity=0)
        config = runtime_config()

    urls = (
        [config["ort"][name]["module"] for name in ("webgpu", "wasm")]
        + [
            url
            for name in ("webgpu", "wasm")
            for url in config["ort"][name]["wasmPaths"].values()
        ]
        + [config["tokenizersUrl"], config["jinjaUrl"]]
    )
    for url in urls:
        assert url.startswith("/static/"), url
        name = url.removeprefix("/static/")
        assert re.search(r"\.[0-9a-f]{12}\.(mjs|wasm|js)$", name), name
        assert Path(tmp_path, name).is_file(), name
    wasm = config["ort"]["wasm"]["wasmPaths"]["wasm"].removeprefix("/static/")
    original = Path("django_offload/static/django_offload/vendor/onnxruntime-web")
    assert (
        Path(tmp_path, wasm).read_bytes()
        == (original / "ort-wasm-simd-threaded.wasm").read_bytes()
    )


def test_isolation_headers_for_static_files():
    headers = {}
    add_isolation_headers(headers, "/srv/static/worker.js", "/static/worker.js")
    assert headers == {
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Embedder-Policy": "require-corp",
    }


def test_isolation_headers_other_static_paths_untouched():
    headers = {}
    with override_settings(OFFLOAD={"ISOLATION_PATHS": ["/notes/"]}):
        add_isolation_headers(headers, "/srv/static/worker.js", "/static/worker.js")
    assert headers == {}


def test_static_files_view_gets_isolation_headers():
    # The demo routes static files through the URL conf in DEBUG, so the
    # static view's responses pass through the middleware.
    def serve_static(request):
        return serve(request, request.path.removeprefix("/static/"), insecure=True)

    middleware = CrossOriginIsolationMiddleware(serve_static)
    response = middleware(RequestFactory().get("/static/django_offload/worker.js"))
    assert response.status_code == 200
    assert response["Cross-Origin-Embedder-Policy"] == "require-corp"
    assert response["Content-Type"].startswith("text/javascript")
    wasm = "/static/django_offload/vendor/onnxruntime-web/ort-wasm-simd-threaded.wasm"
    response = middleware(RequestFactory().get(wasm))
    assert response["Content-Type"] == "application/wasm"
    assert response["Cross-Origin-Embedder-Policy"] == "require-corp"
