import threading

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_offload.conf import offload_settings
from django_offload.engine import registry
from django_offload.engine.registry import (
    get_text_model,
    model_dir,
    server_variant,
)

from .conftest import TEXT_MODEL, store_model_dir


def manifest_with(**variants):
    return {"id": "m", "variants": variants}


def entry(memory, *, servable=True, backends=("native",), reference=False):
    return {
        "file": "onnx/x.onnx",
        "memory_bytes": memory,
        "servable": servable,
        "backends": list(backends),
        "reference": reference,
    }


def test_server_variant_least_memory_chosen():
    manifest = manifest_with(
        fp32=entry(900, reference=True), q4=entry(200), q4f=entry(3000)
    )
    with override_settings(OFFLOAD={}):
        assert server_variant("m", manifest) == "q4"


def test_server_variant_tie_prefers_reference():
    manifest = manifest_with(a=entry(100), fp32=entry(100, reference=True))
    with override_settings(OFFLOAD={}):
        assert server_variant("m", manifest) == "fp32"


def test_server_variant_skips_unservable_and_browser_only():
    manifest = manifest_with(
        fp32=entry(900, reference=True),
        int8=entry(100, servable=False),
        web=entry(50, backends=("wasm", "webgpu")),
    )
    with override_settings(OFFLOAD={}):
        assert server_variant("m", manifest) == "fp32"


def test_server_variant_setting_wins():
    manifest = manifest_with(fp32=entry(900), q4=entry(100))
    with override_settings(OFFLOAD={"SERVER_VARIANTS": {"m": "fp32"}}):
        assert server_variant("m", manifest) == "fp32"


def test_server_variant_setting_unknown_variant():
    manifest = manifest_with(fp32=entry(900))
    with override_settings(OFFLOAD={"SERVER_VARIANTS": {"m": "q2"}}):
        with pytest.raises(ImproperlyConfigured, match="SERVER_VARIANTS"):
            server_variant("m", manifest)


def test_server_variant_setting_not_dict():
    with override_settings(OFFLOAD={"SERVER_VARIANTS": ["fp32"]}):
        with pytest.raises(ImproperlyConfigured, match="must be a dict"):
            server_variant("m", manifest_with(fp32=entry(1)))


def test_server_variant_none_servable():
    manifest = manifest_with(int8=entry(100, servable=False))
    with override_settings(OFFLOAD={}):
        with pytest.raises(ImproperlyConfigured, match="no servable variant"):
            server_variant("m", manifest)


@pytest.mark.parametrize("model_id", ["../etc", "Model", "", "a/b", None, "x" * 101])
def test_model_dir_invalid_id_rejected(model_id):
    with pytest.raises(ValueError, match="model_id"):
        model_dir(model_id)


def test_model_dir_missing_model(tmp_path):
    with override_settings(OFFLOAD={"MODEL_STORE": str(tmp_path)}):
        with pytest.raises(ImproperlyConfigured, match="not in the model store"):
            model_dir("absent-model")


@pytest.mark.models
def test_get_text_model_cached_once_across_threads():
    store_model_dir(TEXT_MODEL)
    registry.clear()
    results = []
    store = str(offload_settings.model_store)
    with override_settings(OFFLOAD={"MODEL_STORE": store}):
        threads = [
            threading.Thread(target=lambda: results.append(get_text_model(TEXT_MODEL)))
            for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        again = get_text_model(TEXT_MODEL)
    registry.clear()
    assert len(results) == 3
    assert all(model is again for model in results)
    assert again.variant in again.manifest["variants"]
