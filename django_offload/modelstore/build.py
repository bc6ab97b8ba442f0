"""
Orchestration of ``offload_models build``: decide whether a model is up to
date, build its files in a staging folder, write the manifest and swap the
folder into the store.

A model is up to date when its manifest names the same source SHA-256 and
builder version and lists every variant the builder makes. The build cache
(transformers checkpoint, staging folders) lives under ``<store>/.cache``.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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

# Variant name -> (file, dtype, backends). fp32 is the reference.
SMOLLM2_LAYOUT = {
    "fp32": ("onnx/model.onnx", "fp32", ["native", "wasm", "webgpu"]),
    "q4": ("onnx/model_q4.onnx", "q4", ["native", "webgpu"]),
    "q4f": ("onnx/model_q4f.onnx", "q4f", ["native", "wasm"]),
}
SMOLLM2_VARIANTS = tuple(SMOLLM2_LAYOUT)


def cache_root(store: Path) -> Path:
    """
    Return the build cache folder of ``store``, created if missing.
    """
    root = store / CACHE_DIR
    root.mkdir(parents=True, exist_ok=True)
    return root


class StoreBusyError(RuntimeError):
    """
    Another process holds the store's build lock.
    """


@contextmanager
def build_lock(store: Path) -> Iterator[None]:
    """
    Hold an exclusive lock on ``<store>/.cache/build.lock`` so that two
    builds or imports never share the staging folders.

    Raises StoreBusyError at once when another process holds the lock.
    """
    path = cache_root(store) / "build.lock"
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreBusyError(
                f"Another build or import is running on {str(store)!r} "
                f"(it holds {str(path)!r}); wait for it to finish."
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
    variants: tuple[str, ...] = SMOLLM2_VARIANTS,
    log: Log = print,
) -> bool:
    """
    Build SmolLM2-135M-Instruct into ``store``; return False when it was
    already up to date and nothing was built.
    """
    from django_offload.modelstore import gguf_q4, smollm2

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
    fp32_path = smollm2.export_fp32(source.path, staging, cache, log)
    fields = smollm2.read_gguf_fields(source.path)
    for name in variants:
        if name == "fp32":
            continue
        if name not in SMOLLM2_LAYOUT:
            raise ValueError(
                f"Unknown SmolLM2 variant {name!r}; known: {SMOLLM2_VARIANTS!r}."
            )
        log(f"Converting the GGUF codes into variant {name!r}")
        gguf_q4.convert(
            fp32_path, source.path, staging / SMOLLM2_LAYOUT[name][0], name, log
        )

    files = describe_files(staging)
    entries = {}
    for name in SMOLLM2_VARIANTS:
        if name not in variants and name != "fp32":
            continue
        relative, dtype, backends = SMOLLM2_LAYOUT[name]
        entries[name] = variant_record(
            files,
            relative,
            staging,
            dtype=dtype,
            backends=backends,
            reference=name == "fp32",
            log=log,
        )
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


# MiniLM variant name -> (file, dtype, backends).
MINILM_LAYOUT = {
    "fp32": ("onnx/model.onnx", "fp32", ["native", "wasm", "webgpu"]),
    "int8": ("onnx/model_int8.onnx", "int8", ["native", "wasm"]),
}


def build_minilm(store: Path, *, force: bool = False, log: Log = print) -> bool:
    """
    Build all-MiniLM-L6-v2 into ``store``; return False when it was already
    up to date and nothing was built.
    """
    from django_offload.modelstore import minilm

    source = sources.minilm_source()
    source_sha256 = sha256_file(source.path)
    model_dir = store / minilm.MODEL_ID
    if not force and is_up_to_date(model_dir, source_sha256, list(MINILM_LAYOUT)):
        log(f"{minilm.MODEL_ID} is up to date (source {source_sha256[:12]})")
        return False

    started = time.monotonic()
    cache = cache_root(store) / minilm.MODEL_ID / source_sha256[:16]
    cache.mkdir(parents=True, exist_ok=True)
    staging = fresh_staging(store, minilm.MODEL_ID)
    export_check = minilm.build_files(source.path, staging, cache, log)

    files = describe_files(staging)
    entries = {}
    for name, (relative, dtype, backends) in MINILM_LAYOUT.items():
        entries[name] = variant_record(
            files,
            relative,
            staging,
            dtype=dtype,
            backends=backends,
            reference=name == "fp32",
            log=log,
        )
    entries["fp32"]["quality"].update(export_check)
    model_config = json.loads((staging / "config.json").read_text("utf-8"))
    manifest = {
        "format": 1,
        "id": minilm.MODEL_ID,
        "task": "feature-extraction",
        "architecture": model_config["model_type"],
        "context_length": minilm.MAX_LENGTH,
        "license": "Apache-2.0",
        "source": {
            "package": source.package,
            "version": source.version,
            "file": source.file,
            "sha256": source_sha256,
        },
        "config": {
            "hidden_size": int(model_config["hidden_size"]),
            "max_length": minilm.MAX_LENGTH,
            "vocab_size": int(model_config["vocab_size"]),
            "pooling": "mean",
            "normalize": True,
        },
        "files": files,
        "variants": entries,
        "build": build_info(started),
    }
    write_manifest(staging, manifest)
    swap_into_store(staging, model_dir)
    log(f"Built {minilm.MODEL_ID} in {time.monotonic() - started:.0f} s")
    return True
