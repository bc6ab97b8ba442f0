"""
Orchestration of ``offload_models build``: decide whether a model is up to
date, build its files in a staging folder, write the manifest and swap the
folder into the store.

A model is up to date when its manifest names the same source SHA-256 and
builder version and lists every variant the builder makes. The build cache
(transformers checkpoint, staging folders) lives under ``<store>/.cache``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django_offload.modelstore import sources
from django_offload.modelstore.hashing import file_record, sha256_file
from django_offload.modelstore.manifest import (
    MANIFEST_NAME,
    ManifestError,
    load_manifest,
    write_manifest,
)
from django_offload.modelstore.memory import measure_memory_bytes

# Raise when a change to the builders changes the files they write.
BUILDER_VERSION = 1
CACHE_DIR = ".cache"

Log = Callable[[str], None]


def cache_root(store: Path) -> Path:
    """
    Return the build cache folder of ``store``, created if missing.
    """
    root = store / CACHE_DIR
    root.mkdir(parents=True, exist_ok=True)
    return root


def is_up_to_date(model_dir: Path, source_sha256: str, variants: list[str]) -> bool:
    """
    Tell whether ``model_dir`` was built from this source by this builder
    version with every variant in ``variants``.
    """
    try:
        manifest = load_manifest(model_dir)
    except ManifestError:
        return False
    return (
        manifest["source"]["sha256"] == source_sha256
        and manifest.get("build", {}).get("builder_version") == BUILDER_VERSION
        and all(name in manifest["variants"] for name in variants)
    )


def describe_files(model_dir: Path) -> dict[str, dict[str, Any]]:
    """
    Return the ``files`` section for every file in ``model_dir`` except the
    manifest, keyed by POSIX path relative to the folder.
    """
    records = {}
    for path in sorted(model_dir.rglob("*")):
        if not path.is_file() or path.name == MANIFEST_NAME:
            continue
        records[path.relative_to(model_dir).as_posix()] = file_record(path)
    return records


def variant_record(
    files: dict[str, dict[str, Any]],
    relative: str,
    model_dir: Path,
    *,
    dtype: str,
    backends: list[str],
    reference: bool,
    log: Log,
) -> dict[str, Any]:
    """
    Return one variant's manifest entry, with its memory measured.
    """
    log(f"Measuring the memory needed by {relative}")
    memory = measure_memory_bytes(model_dir / relative)
    record = {
        "file": relative,
        "dtype": dtype,
        "bytes": files[relative]["bytes"],
        "sha256": files[relative]["sha256"],
        "memory_bytes": memory,
        "reference": reference,
        "backends": backends,
        "quality": None,
        "servable": False,
    }
    if reference:
        record["quality"] = {"passed": True, "reference": True, "agreement": 1.0}
        record["servable"] = True
    return record


def swap_into_store(staging: Path, model_dir: Path) -> None:
    """
    Replace ``model_dir`` with ``staging``; the old folder is removed after.
    """
    old = staging.parent / f"{model_dir.name}.old"
    if old.exists():
        shutil.rmtree(old)
    if model_dir.exists():
        model_dir.rename(old)
    staging.rename(model_dir)
    if old.exists():
        shutil.rmtree(old)


def fresh_staging(store: Path, model_id: str) -> Path:
    """
    Return an empty staging folder for ``model_id`` under the build cache.
    """
    staging = cache_root(store) / "staging" / model_id
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging


def build_info(started: float) -> dict[str, Any]:
    """
    Return the manifest's ``build`` section.
    """
    return {
        "builder_version": BUILDER_VERSION,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(time.monotonic() - started, 1),
    }


def build_smollm2(
    store: Path,
    *,
    force: bool = False,
    variants: tuple[str, ...] = ("fp32",),
    log: Log = print,
) -> bool:
    """
    Build SmolLM2-135M-Instruct into ``store``; return False when it was
    already up to date and nothing was built.
    """
    from django_offload.modelstore import smollm2

    source = sources.smollm2_source()
    source_sha256 = sha256_file(source.path)
    model_dir = store / smollm2.MODEL_ID
    if not force and is_up_to_date(model_dir, source_sha256, list(variants)):
        log(f"{smollm2.MODEL_ID} is up to date (source {source_sha256[:12]})")
        return False

    started = time.monotonic()
    cache = cache_root(store) / smollm2.MODEL_ID / source_sha256[:16]
    cache.mkdir(parents=True, exist_ok=True)
    staging = fresh_staging(store, smollm2.MODEL_ID)
    smollm2.export_fp32(source.path, staging, cache, log)
    fields = smollm2.read_gguf_fields(source.path)

    files = describe_files(staging)
    entries = {
        "fp32": variant_record(
            files,
            "onnx/model.onnx",
            staging,
            dtype="fp32",
            backends=["native", "wasm", "webgpu"],
            reference=True,
            log=log,
        )
    }
    ids = smollm2.special_token_ids(fields)
    manifest = {
        "format": 1,
        "id": smollm2.MODEL_ID,
        "task": "text-generation",
        "architecture": fields["general.architecture"],
        "context_length": int(fields["llama.context_length"]),
        "license": "Apache-2.0",
        "source": {
            "package": source.package,
            "version": source.version,
            "file": source.file,
            "sha256": source_sha256,
        },
        "config": {
            "num_layers": int(fields["llama.block_count"]),
            "num_kv_heads": int(fields["llama.attention.head_count_kv"]),
            "head_dim": int(fields["llama.embedding_length"])
            // int(fields["llama.attention.head_count"]),
            "vocab_size": int(fields["llama.vocab_size"]),
            "eos_token_ids": [ids["eos_token_id"]],
            "bos_token_id": ids["bos_token_id"],
        },
        "files": files,
        "variants": entries,
        "build": build_info(started),
    }
    write_manifest(staging, manifest)
    swap_into_store(staging, model_dir)
    log(f"Built {smollm2.MODEL_ID} in {time.monotonic() - started:.0f} s")
    return True
