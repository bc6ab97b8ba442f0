"""
Adoption of a ready model folder (transformers.js layout) into the store.

A folder with a manifest.json is checked against it (format, then every
listed file's size and SHA-256) and only the listed files are copied. A
folder without one gets a manifest written from its files: ``config.json``
gives the shape, ``onnx/model.onnx`` is the fp32 reference and each
``onnx/model_<name>.onnx`` becomes variant ``<name>``. Imported non-reference
variants are not servable until the quality gate passes them.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django_offload.modelstore.build import (
    build_info,
    describe_files,
    fresh_staging,
    swap_into_store,
    variant_record,
)
from django_offload.modelstore.hashing import verify_files
from django_offload.modelstore.manifest import (
    MANIFEST_NAME,
    MODEL_ID_PATTERN,
    TASKS,
    ManifestError,
    validate_manifest,
    write_manifest,
)

Log = Callable[[str], None]
REQUIRED_FILES = ("config.json", "tokenizer.json", "onnx/model.onnx")


class ModelImportError(ValueError):
    """
    A folder cannot be imported; the message names the file and the fix.
    """


def import_model(
    source: Path,
    store: Path,
    *,
    model_id: str | None = None,
    task: str | None = None,
    license: str = "unknown",
    force: bool = False,
    log: Log = print,
) -> dict[str, Any]:
    """
    Copy the model folder ``source`` into ``store`` and return its manifest.
    """
    source = Path(source)
    if not source.is_dir():
        raise ModelImportError(f"{str(source)!r} is not a folder; pass a model folder.")
    if (source / MANIFEST_NAME).is_file():
        manifest = _checked_manifest(source)
    else:
        manifest = None
    target_id = model_id or (manifest["id"] if manifest else source.resolve().name)
    if not MODEL_ID_PATTERN.match(target_id):
        raise ModelImportError(
            f"Model id {target_id!r} is invalid; pass --id with lowercase letters, "
            "digits, '.', '_' or '-'."
        )
    target = store / target_id
    if target.exists() and not force:
        raise ModelImportError(
            f"{str(target)!r} already exists; pass --force to replace it."
        )

    staging = fresh_staging(store, target_id)
    if manifest is not None:
        for relative in manifest["files"]:
            destination = staging / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / relative, destination)
        manifest["id"] = target_id
    else:
        manifest = _manifest_from_folder(source, staging, target_id, task, license, log)
    write_manifest(staging, manifest)
    swap_into_store(staging, target)
    log(f"Imported {target_id} into {str(target)!r}")
    return manifest


def _checked_manifest(source: Path) -> dict[str, Any]:
    path = source / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(path, "", f"cannot be read as JSON: {exc}") from None
    validate_manifest(manifest, path)
    problems = verify_files(source, manifest["files"])
    if problems:
        raise ModelImportError(
            f"{str(source)!r} does not match its manifest: "
            + "; ".join(problems)
            + ". Fix the files or remove manifest.json to have one written."
        )
    return manifest


def _manifest_from_folder(
    source: Path,
    staging: Path,
    model_id: str,
    task: str | None,
    license: str,
    log: Log,
) -> dict[str, Any]:
    for relative in REQUIRED_FILES:
        if not (source / relative).is_file():
            raise ModelImportError(
                f"{str(source / relative)!r} is missing; a model folder needs "
                f"{list(REQUIRED_FILES)!r}."
            )
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_symlink():
            raise ModelImportError(
                f"{str(path)!r} is a symbolic link; copy the real file instead."
            )
        if path.is_file():
            destination = staging / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)

    config = json.loads((staging / "config.json").read_text("utf-8"))
    task = task or _guess_task(config)
    if task not in TASKS:
        raise ModelImportError(f"task must be one of {list(TASKS)!r}, got {task!r}.")
    files = describe_files(staging)
    variants = {}
    for relative in sorted(files):
        if not (relative.startswith("onnx/model") and relative.endswith(".onnx")):
            continue
        stem = Path(relative).stem
        name = "fp32" if stem == "model" else stem.removeprefix("model_")
        reference = name == "fp32"
        variants[name] = variant_record(
            files,
            relative,
            staging,
            dtype=name,
            backends=_backends(name),
            reference=reference,
            log=log,
        )
        if reference:
            variants[name]["quality"]["imported"] = True
    return {
        "format": 1,
        "id": model_id,
        "task": task,
        "architecture": str(config.get("model_type", "unknown")),
        "context_length": int(config.get("max_position_embeddings") or 512),
        "license": license,
        "source": {
            "package": "import",
            "version": "",
            "file": source.resolve().name,
            "sha256": files["onnx/model.onnx"]["sha256"],
        },
        "config": _config_summary(task, config),
        "files": files,
        "variants": variants,
        "build": dict(
            build_info(time.monotonic()), imported_from=str(source.resolve())
        ),
    }


def _guess_task(config: dict[str, Any]) -> str:
    architectures = config.get("architectures") or []
    if any(str(name).endswith("ForCausalLM") for name in architectures):
        return "text-generation"
    return "feature-extraction"


def _backends(name: str) -> list[str]:
    if name == "fp32":
        return ["native", "wasm", "webgpu"]
    if name.startswith("q4") and name != "q4f":
        return ["native", "webgpu"]
    return ["native", "wasm"]


def _config_summary(task: str, config: dict[str, Any]) -> dict[str, Any]:
    def number(key: str) -> int:
        value = config.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ModelImportError(
                f"config.json field {key!r} must be a positive integer, got {value!r}."
            )
        return value

    if task == "feature-extraction":
        return {
            "hidden_size": number("hidden_size"),
            "max_length": number("max_position_embeddings"),
        }
    heads = number("num_attention_heads")
    eos = config.get("eos_token_id")
    return {
        "num_layers": number("num_hidden_layers"),
        "num_kv_heads": config.get("num_key_value_heads") or heads,
        "head_dim": config.get("head_dim") or number("hidden_size") // heads,
        "vocab_size": number("vocab_size"),
        "eos_token_ids": eos if isinstance(eos, list) else [eos],
        "bos_token_id": config.get("bos_token_id"),
    }
