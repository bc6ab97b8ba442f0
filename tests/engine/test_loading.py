import json

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_offload.engine.loading import (
    ModelLoadError,
    create_session,
    read_manifest,
    resolve_threads,
    text_config,
    variant_file,
)

LLAMA_CONFIG = {
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "hidden_size": 32,
    "vocab_size": 100,
    "eos_token_id": 7,
    "max_position_embeddings": 256,
}


def write_export(directory, config=LLAMA_CONFIG, files=("model.onnx",)):
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "onnx").mkdir()
    for name in files:
        (directory / "onnx" / name).write_bytes(b"")
    return directory


def test_manifest_built_from_config(tmp_path):
    write_export(tmp_path, files=("model.onnx", "model_q4.onnx"))
    (tmp_path / "generation_config.json").write_text(
        json.dumps({"eos_token_id": [7, 9]})
    )
    manifest = read_manifest(tmp_path)
    assert manifest["context_length"] == 256
    assert manifest["variants"] == {
        "fp32": {"file": "onnx/model.onnx"},
        "q4": {"file": "onnx/model_q4.onnx"},
    }
    assert text_config(manifest) == {
        "num_layers": 2,
        "num_kv_heads": 2,
        "head_dim": 8,
        "vocab_size": 100,
        "eos_token_ids": [7, 9],
    }


def test_manifest_without_onnx_files_rejected(tmp_path):
    write_export(tmp_path, files=())
    with pytest.raises(ModelLoadError, match="no ONNX file"):
        read_manifest(tmp_path)


def test_manifest_invalid_json_rejected(tmp_path):
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(ModelLoadError, match="manifest.json"):
        read_manifest(tmp_path)


def test_manifest_missing_context_length_rejected(tmp_path):
    manifest = {"config": {}, "variants": {"fp32": {"file": "onnx/model.onnx"}}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="context_length"):
        read_manifest(tmp_path)


def test_text_config_invalid_field_named(tmp_path):
    config = dict(LLAMA_CONFIG, num_hidden_layers=0)
    write_export(tmp_path, config=config)
    with pytest.raises(ModelLoadError, match="num_layers"):
        text_config(read_manifest(tmp_path))


def test_text_config_invalid_eos_named(tmp_path):
    config = dict(LLAMA_CONFIG, eos_token_id="</s>")
    write_export(tmp_path, config=config)
    with pytest.raises(ModelLoadError, match="eos_token_ids"):
        text_config(read_manifest(tmp_path))


def test_variant_file_outside_directory_rejected(tmp_path):
    manifest = {"id": "m", "variants": {"fp32": {"file": "../secret.onnx"}}}
    (tmp_path.parent / "secret.onnx").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="outside"):
        variant_file(tmp_path, manifest, "fp32")


def test_variant_file_missing_rejected(tmp_path):
    manifest = {"id": "m", "variants": {"fp32": {"file": "onnx/model.onnx"}}}
    with pytest.raises(ModelLoadError, match="missing"):
        variant_file(tmp_path, manifest, "fp32")


def test_variant_unknown_rejected(tmp_path):
    manifest = {"id": "m", "variants": {"fp32": {"file": "onnx/model.onnx"}}}
    with pytest.raises(ModelLoadError, match="'q8'"):
        variant_file(tmp_path, manifest, "q8")


def test_create_session_invalid_file_rejected(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not a protobuf")
    with pytest.raises(ModelLoadError, match="could not create a session"):
        create_session(path, 1)


def test_threads_argument_wins():
    with override_settings(OFFLOAD={"ENGINE_THREADS": 4}):
        assert resolve_threads(2) == 2


def test_threads_zero_reads_setting():
    with override_settings(OFFLOAD={"ENGINE_THREADS": 3}):
        assert resolve_threads(0) == 3


@pytest.mark.parametrize("threads", [-1, 1.5, True, "2"])
def test_threads_argument_invalid(threads):
    with pytest.raises(ValueError, match="threads"):
        resolve_threads(threads)


@pytest.mark.parametrize("configured", [-2, "4", None])
def test_threads_setting_invalid(configured):
    with override_settings(OFFLOAD={"ENGINE_THREADS": configured}):
        with pytest.raises(ImproperlyConfigured, match="ENGINE_THREADS"):
            resolve_threads(0)
