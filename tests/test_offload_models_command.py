import json
from io import StringIO
from pathlib import Path

import numpy as np
import onnx
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from onnx import TensorProto, helper, numpy_helper

from django_offload.modelstore import build, load_manifest, sources
from django_offload.modelstore.hashing import sha256_file
from tests.modelstore_helpers import built_model_dir, copy_model, make_model


def run(*args):
    out = StringIO()
    call_command("offload_models", *args, stdout=out)
    return out.getvalue()


def tiny_encoder(path: Path):
    """
    Write a tiny feature-extraction ONNX model (embedding lookup only).
    """
    table = np.arange(40, dtype=np.float32).reshape(10, 4)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "input_ids"], ["last_hidden_state"])],
        "tiny",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, None]),
            helper.make_tensor_value_info(
                "attention_mask", TensorProto.INT64, [1, None]
            ),
        ],
        [
            helper.make_tensor_value_info(
                "last_hidden_state", TensorProto.FLOAT, [1, None, 4]
            )
        ],
        [numpy_helper.from_array(table, "table")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def tiny_folder(root: Path) -> Path:
    folder = root / "tiny-encoder"
    tiny_encoder(folder / "onnx" / "model.onnx")
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": 4,
        "max_position_embeddings": 64,
    }
    (folder / "config.json").write_text(json.dumps(config), "utf-8")
    (folder / "tokenizer.json").write_text("{}", "utf-8")
    return folder


def test_list_shows_variants_and_quality(tmp_path):
    make_model(tmp_path, "tiny-model")
    output = run("--store", str(tmp_path), "list")
    assert "tiny-model  text-generation  llama" in output
    assert "fp32*" in output
    assert "passed, agreement 100.0%" in output
    assert "yes" in output


def test_list_missing_store_raises(tmp_path):
    with pytest.raises(CommandError, match="offload_models build"):
        run("--store", str(tmp_path / "absent"), "list")


def test_list_invalid_manifest_names_field(tmp_path):
    model_dir = make_model(tmp_path)
    data = json.loads((model_dir / "manifest.json").read_text("utf-8"))
    data["task"] = "poetry"
    (model_dir / "manifest.json").write_text(json.dumps(data), "utf-8")
    with pytest.raises(CommandError, match="field 'task'"):
        run("--store", str(tmp_path), "list")


def test_verify_passes_on_good_copy(tmp_path):
    make_model(tmp_path)
    assert "All files match" in run("--store", str(tmp_path), "verify")


def test_verify_unknown_model_raises(tmp_path):
    make_model(tmp_path)
    with pytest.raises(CommandError, match="'nope'"):
        run("--store", str(tmp_path), "verify", "nope")


def test_verify_missing_file_names_it(tmp_path):
    model_dir = make_model(tmp_path)
    (model_dir / "onnx" / "model.onnx").unlink()
    with pytest.raises(CommandError, match="tiny-model/onnx/model.onnx: missing"):
        run("--store", str(tmp_path), "verify")


@pytest.mark.models
def test_verify_detects_flipped_byte(tmp_path):
    source = built_model_dir("all-minilm-l6-v2")
    model_dir = tmp_path / "all-minilm-l6-v2"
    copy_model(source, model_dir, ["fp32", "int8"])
    # Replace the hard link with a private copy before damaging it.
    target = model_dir / "onnx" / "model_int8.onnx"
    data = bytearray(target.read_bytes())
    target.unlink()
    target.write_bytes(bytes(data))
    run("--store", str(tmp_path), "verify")
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(CommandError) as raised:
        run("--store", str(tmp_path), "verify")
    assert "all-minilm-l6-v2/onnx/model_int8.onnx: SHA-256" in str(raised.value)
    assert "tokenizer.json" not in str(raised.value)


def test_build_skips_unchanged_source(tmp_path):
    """
    A manifest naming the installed source's SHA-256, the builder version and
    every variant, all gated, makes ``build`` do nothing.
    """
    source = sources.minilm_source()
    model_dir = make_model(tmp_path, "all-minilm-l6-v2")
    manifest = load_manifest(model_dir)
    manifest["task"] = "feature-extraction"
    manifest["config"] = {"hidden_size": 384, "max_length": 256}
    manifest["source"]["sha256"] = sha256_file(source.path)
    manifest["build"] = {"builder_version": build.BUILDER_VERSION}
    from django_offload.modelstore import write_manifest
    from django_offload.modelstore.quality import GATE_VERSION

    entry = manifest["variants"]["fp32"]
    entry["quality"]["gate_version"] = GATE_VERSION
    manifest["variants"]["int8"] = dict(entry, reference=False)
    write_manifest(model_dir, manifest)
    model_files = model_dir.rglob("*")
    before = {p: p.stat().st_mtime_ns for p in model_files if p.is_file()}

    output = run("--store", str(tmp_path), "build", "--model", "all-minilm-l6-v2")
    assert "all-minilm-l6-v2 is up to date" in output
    after = {p: p.stat().st_mtime_ns for p in model_dir.rglob("*") if p.is_file()}
    assert after == before


def test_build_changed_source_is_not_up_to_date(tmp_path):
    model_dir = make_model(tmp_path, "all-minilm-l6-v2")
    assert not build.is_up_to_date(model_dir, "f" * 64, ["fp32"])
    manifest = load_manifest(model_dir)
    assert not build.is_up_to_date(
        model_dir, manifest["source"]["sha256"], ["fp32"]
    )  # no builder_version recorded


def test_import_folder_without_manifest(tmp_path):
    folder = tiny_folder(tmp_path / "incoming")
    store = tmp_path / "store"
    output = run("--store", str(store), "import", str(folder), "--license", "MIT")
    assert "Imported tiny-encoder" in output
    manifest = load_manifest(store / "tiny-encoder")
    assert manifest["task"] == "feature-extraction"
    assert manifest["license"] == "MIT"
    assert manifest["config"] == {"hidden_size": 4, "max_length": 64}
    fp32 = manifest["variants"]["fp32"]
    assert fp32["reference"] is True
    assert fp32["servable"] is True
    assert fp32["memory_bytes"] > 0
    assert fp32["sha256"] == sha256_file(folder / "onnx" / "model.onnx")
    assert set(manifest["files"]) == {
        "config.json",
        "tokenizer.json",
        "onnx/model.onnx",
    }
    assert "All files match" in run("--store", str(store), "verify")


def test_import_existing_id_needs_force(tmp_path):
    folder = tiny_folder(tmp_path / "incoming")
    store = tmp_path / "store"
    run("--store", str(store), "import", str(folder))
    with pytest.raises(CommandError, match="--force"):
        run("--store", str(store), "import", str(folder))
    run("--store", str(store), "import", str(folder), "--force")
    assert load_manifest(store / "tiny-encoder")["id"] == "tiny-encoder"


def test_import_folder_missing_config(tmp_path):
    folder = tiny_folder(tmp_path / "incoming")
    (folder / "config.json").unlink()
    with pytest.raises(CommandError, match="config.json' is missing"):
        run("--store", str(tmp_path / "store"), "import", str(folder))
    assert not (tmp_path / "store" / "tiny-encoder").exists()


def test_import_folder_with_manifest_checks_files(tmp_path):
    source = make_model(tmp_path / "incoming", "tiny-model")
    store = tmp_path / "store"
    run("--store", str(store), "import", str(source), "--id", "renamed-model")
    manifest = load_manifest(store / "renamed-model")
    assert manifest["id"] == "renamed-model"

    (source / "onnx" / "model.onnx").write_bytes(b"tampered bytes!")
    with pytest.raises(CommandError, match="onnx/model.onnx: SHA-256"):
        run("--store", str(store), "import", str(source), "--force")
    assert load_manifest(store / "renamed-model") == manifest


def test_import_rejects_invalid_id(tmp_path):
    folder = tiny_folder(tmp_path / "incoming")
    with pytest.raises(CommandError, match="'Bad/Id'"):
        run("--store", str(tmp_path / "store"), "import", str(folder), "--id", "Bad/Id")


@pytest.mark.models
def test_list_built_store_shows_gated_variants():
    store = built_model_dir("smollm2-135m-instruct").parent
    output = run("--store", str(store), "list")
    for name in ("fp32*", "q4 ", "q4f"):
        assert name in output
    assert "FAILED" not in output


def test_build_while_locked_raises(tmp_path):
    with build.build_lock(tmp_path):
        with pytest.raises(CommandError, match="Another build or import"):
            run("--store", str(tmp_path), "build", "--model", "all-minilm-l6-v2")
