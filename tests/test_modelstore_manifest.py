import json

import pytest

from django_offload.modelstore import (
    ManifestError,
    list_models,
    load_manifest,
    validate_manifest,
    write_manifest,
)
from tests.modelstore_helpers import make_manifest, make_model


def broken(change):
    manifest = make_manifest()
    change(manifest)
    return manifest


CASES = [
    ("format", lambda m: m.update(format=2)),
    ("id", lambda m: m.update(id="Bad Id")),
    ("task", lambda m: m.update(task="translation")),
    ("context_length", lambda m: m.update(context_length=0)),
    ("source.sha256", lambda m: m["source"].update(sha256="xyz")),
    ("config.num_layers", lambda m: m["config"].pop("num_layers")),
    ("config.eos_token_ids", lambda m: m["config"].update(eos_token_ids=[])),
    (
        "files.../escape",
        lambda m: m["files"].update({"../escape": m["files"]["onnx/model.onnx"]}),
    ),
    (
        "files.onnx/model.onnx.bytes",
        lambda m: m["files"]["onnx/model.onnx"].update(bytes=True),
    ),
    ("variants.fp32.file", lambda m: m["variants"]["fp32"].update(file="onnx/x.onnx")),
    ("variants.fp32.bytes", lambda m: m["variants"]["fp32"].update(bytes=1)),
    ("variants.fp32.sha256", lambda m: m["variants"]["fp32"].update(sha256="a" * 64)),
    (
        "variants.fp32.backends",
        lambda m: m["variants"]["fp32"].update(backends=["cuda"]),
    ),
    ("variants.fp32.servable", lambda m: m["variants"]["fp32"].pop("servable")),
    ("variants", lambda m: m["variants"]["fp32"].update(reference=False)),
]


@pytest.mark.parametrize(("field", "change"), CASES, ids=[c[0] for c in CASES])
def test_validate_manifest_names_file_and_field(field, change):
    with pytest.raises(ManifestError) as raised:
        validate_manifest(broken(change), "store/tiny-model/manifest.json")
    assert raised.value.field == field
    assert raised.value.path == "store/tiny-model/manifest.json"
    assert f"field {field!r}" in str(raised.value)
    assert "store/tiny-model/manifest.json" in str(raised.value)


def test_validate_manifest_accepts_valid():
    validate_manifest(make_manifest())


def test_load_manifest_missing_file(tmp_path):
    with pytest.raises(ManifestError, match="does not exist") as raised:
        load_manifest(tmp_path)
    assert raised.value.path == str(tmp_path / "manifest.json")


def test_load_manifest_invalid_json(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json", "utf-8")
    with pytest.raises(ManifestError, match="invalid JSON"):
        load_manifest(tmp_path)


def test_load_manifest_id_differs_from_folder(tmp_path):
    model_dir = make_model(tmp_path, "tiny-model")
    renamed = model_dir.rename(tmp_path / "other-name")
    with pytest.raises(ManifestError) as raised:
        load_manifest(renamed)
    assert raised.value.field == "id"


def test_write_manifest_round_trip(tmp_path):
    model_dir = make_model(tmp_path)
    assert load_manifest(model_dir) == make_manifest()
    assert oct((model_dir / "manifest.json").stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in model_dir.iterdir() if p.name.startswith(".")] == []


def test_write_manifest_invalid_keeps_old_file(tmp_path):
    model_dir = make_model(tmp_path)
    before = (model_dir / "manifest.json").read_text("utf-8")
    with pytest.raises(ManifestError):
        write_manifest(model_dir, broken(lambda m: m.update(task="nope")))
    assert (model_dir / "manifest.json").read_text("utf-8") == before


def test_list_models_skips_hidden_and_plain_folders(tmp_path):
    make_model(tmp_path, "b-model")
    make_model(tmp_path, "a-model")
    (tmp_path / ".cache" / "x").mkdir(parents=True)
    (tmp_path / "not-a-model").mkdir()
    assert [m["id"] for m in list_models(tmp_path)] == ["a-model", "b-model"]


def test_list_models_invalid_manifest_raises(tmp_path):
    model_dir = make_model(tmp_path)
    data = json.loads((model_dir / "manifest.json").read_text("utf-8"))
    data["variants"]["fp32"]["memory_bytes"] = -1
    (model_dir / "manifest.json").write_text(json.dumps(data), "utf-8")
    with pytest.raises(ManifestError) as raised:
        list_models(tmp_path)
    assert raised.value.field == "variants.fp32.memory_bytes"


def test_modelstore_imports_without_torch():
    import subprocess
    import sys

    code = (
        "import sys, django_offload.modelstore, django_offload.modelstore.build;"
        "import django_offload.modelstore.quality;"
        "sys.exit(1 if 'torch' in sys.modules or 'optimum' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
