"""
Helpers that create small but valid model folders for the model store tests.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from django_offload.modelstore import load_manifest, write_manifest


def record(data: bytes) -> dict[str, Any]:
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def make_manifest(model_id: str = "tiny-model", servable: bool = True) -> dict:
    """
    Return a valid text-generation manifest for a one-file model.
    """
    onnx = b"not really onnx"
    return {
        "format": 1,
        "id": model_id,
        "task": "text-generation",
        "architecture": "llama",
        "context_length": 2048,
        "license": "Apache-2.0",
        "source": {
            "package": "tiny",
            "version": "1.0",
            "file": "tiny.gguf",
            "sha256": "0" * 64,
        },
        "config": {
            "num_layers": 2,
            "num_kv_heads": 1,
            "head_dim": 8,
            "vocab_size": 16,
            "eos_token_ids": [2],
            "bos_token_id": 1,
        },
        "files": {"onnx/model.onnx": record(onnx)},
        "variants": {
            "fp32": {
                "file": "onnx/model.onnx",
                "dtype": "fp32",
                "memory_bytes": 1000,
                "reference": True,
                "backends": ["native", "wasm"],
                "quality": {"passed": servable, "agreement": 1.0},
                "servable": servable,
                **record(onnx),
            }
        },
    }


def make_model(store: Path, model_id: str = "tiny-model", servable=True) -> Path:
    """
    Write a model folder with one file and its manifest into ``store``.
    """
    model_dir = store / model_id
    (model_dir / "onnx").mkdir(parents=True)
    (model_dir / "onnx" / "model.onnx").write_bytes(b"not really onnx")
    write_manifest(model_dir, make_manifest(model_id, servable))
    return model_dir


def built_model_dir(model_id: str) -> Path:
    """
    Return the built model folder in the configured store, or skip the test.
    """
    store = Path(settings.OFFLOAD["MODEL_STORE"])
    model_dir = store / model_id
    if not (model_dir / "manifest.json").is_file():
        pytest.skip(
            f"{model_id} is not built in {str(store)!r}; run "
            "`manage.py offload_models build` (OFFLOAD_MODEL_STORE selects the store)."
        )
    return model_dir


def copy_model(model_dir: Path, target: Path, variants: list[str]) -> Path:
    """
    Hard-link (or copy) ``model_dir``'s JSON files and the given variants into
    ``target``, with a manifest restricted to them.
    """
    import os
    import shutil

    manifest = copy.deepcopy(load_manifest(model_dir))
    keep = {manifest["variants"][name]["file"] for name in variants}
    keep |= {name for name in manifest["files"] if not name.endswith(".onnx")}
    for relative in keep:
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(model_dir / relative, destination)
        except OSError:
            shutil.copyfile(model_dir / relative, destination)
    manifest["files"] = {k: v for k, v in manifest["files"].items() if k in keep}
    manifest["variants"] = {k: manifest["variants"][k] for k in variants}
    write_manifest(target, manifest)
    return target
