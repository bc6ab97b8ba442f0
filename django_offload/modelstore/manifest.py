"""
Reading, validating and writing ``manifest.json``, the record of one model.

A manifest lists every file of the model folder with its size and SHA-256,
and every variant (one ONNX file each) with its backends, measured memory,
quality-gate result and whether it may be served. The layout is described in
docs/models.md.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

MANIFEST_NAME = "manifest.json"
FORMAT = 1
TASKS = ("text-generation", "feature-extraction")
BACKENDS = ("native", "wasm", "webgpu")
MODEL_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
VARIANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")

TEXT_CONFIG_FIELDS = {
    "num_layers": int,
    "num_kv_heads": int,
    "head_dim": int,
    "vocab_size": int,
}
EMBEDDING_CONFIG_FIELDS = {
    "hidden_size": int,
    "max_length": int,
}


class ManifestError(ValueError):
    """
    Invalid or unreadable manifest; ``path`` and ``field`` locate the problem.
    """

    def __init__(self, path: Path | str, field: str, problem: str) -> None:
        self.path = str(path)
        self.field = field
        self.problem = problem
        super().__init__(f"{self.path}: field {field!r}: {problem}")


def load_manifest(model_dir: Path | str) -> dict[str, Any]:
    """
    Read and validate ``<model_dir>/manifest.json``.

    Raises ManifestError naming the file and the field when the file is
    missing, is not JSON or does not follow the format.
    """
    path = Path(model_dir) / MANIFEST_NAME
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ManifestError(path, "", "the file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(path, "", f"the file cannot be read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(path, "", f"invalid JSON: {exc}") from None
    validate_manifest(data, path)
    if data["id"] != Path(model_dir).resolve().name:
        raise ManifestError(
            path,
            "id",
            f"{data['id']!r} differs from the folder name "
            f"{Path(model_dir).resolve().name!r}; rename the folder or fix the id.",
        )
    return data


def write_manifest(model_dir: Path | str, manifest: dict[str, Any]) -> Path:
    """
    Validate ``manifest`` and write it atomically (temporary file + rename).
    """
    path = Path(model_dir) / MANIFEST_NAME
    validate_manifest(manifest, path)
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    handle, temporary = tempfile.mkstemp(
        prefix=".manifest-", suffix=".tmp", dir=str(path.parent)
    )
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def validate_manifest(data: Any, path: Path | str = MANIFEST_NAME) -> None:
    """
    Check the structure of a manifest; raise ManifestError on the first fault.
    """
    _Validator(path).manifest(data)


class _Validator:
    def __init__(self, path: Path | str) -> None:
        self.path = path

    def fail(self, field: str, problem: str) -> None:
        raise ManifestError(self.path, field, problem)

    def require(self, data: dict, field: str, kind: type | tuple, prefix=""):
        name = f"{prefix}{field}"
        if field not in data:
            self.fail(name, "is missing")
        value = data[field]
        # bool is an int subclass; a flag is never a count.
        if kind in (int, float, (int, float)) and isinstance(value, bool):
            self.fail(name, f"must be a number, got {value!r}")
        if not isinstance(value, kind):
            expected = getattr(kind, "__name__", None) or " or ".join(
                k.__name__ for k in kind
            )
            self.fail(name, f"must be of type {expected}, got {value!r}")
        return value

    def count(self, data: dict, field: str, prefix="", minimum: int = 0) -> int:
        value = self.require(data, field, int, prefix)
        if value < minimum:
            self.fail(f"{prefix}{field}", f"must be >= {minimum}, got {value!r}")
        return value

    def sha256(self, data: dict, field: str, prefix="") -> str:
        value = self.require(data, field, str, prefix)
        if not SHA256_PATTERN.match(value):
            self.fail(
                f"{prefix}{field}",
                f"must be 64 lowercase hex digits, got {value!r}",
            )
        return value

    def manifest(self, data: Any) -> None:
        if not isinstance(data, dict):
            self.fail("", f"the manifest must be a JSON object, got {data!r:.80}")
        if data.get("format") != FORMAT:
            self.fail("format", f"must be {FORMAT}, got {data.get('format')!r}")
        model_id = self.require(data, "id", str)
        if not MODEL_ID_PATTERN.match(model_id):
            self.fail(
                "id",
                f"{model_id!r} must be lowercase letters, digits, '.', '_' "
                "or '-' (at most 64)",
            )
        task = self.require(data, "task", str)
        if task not in TASKS:
            self.fail("task", f"{task!r} is not one of {list(TASKS)!r}")
        self.require(data, "architecture", str)
        self.count(data, "context_length", minimum=1)
        self.require(data, "license", str)
        self.source(self.require(data, "source", dict))
        self.config(task, self.require(data, "config", dict))
        files = self.files(self.require(data, "files", dict))
        self.variants(self.require(data, "variants", dict), files)
        if "build" in data:
            self.require(data, "build", dict)

    def source(self, source: dict) -> None:
        for field in ("package", "version", "file"):
            self.require(source, field, str, "source.")
        self.sha256(source, "sha256", "source.")

    def config(self, task: str, config: dict) -> None:
        if task == "text-generation":
            for field in TEXT_CONFIG_FIELDS:
                self.count(config, field, "config.", minimum=1)
            eos = self.require(config, "eos_token_ids", list, "config.")
            if not eos or not all(
                isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in eos
            ):
                self.fail(
                    "config.eos_token_ids",
                    f"must be a non-empty list of token ids, got {eos!r}",
                )
            bos = config.get("bos_token_id")
            if bos is not None and (not isinstance(bos, int) or bos < 0):
                self.fail(
                    "config.bos_token_id", f"must be a token id or null, got {bos!r}"
                )
        else:
            for field in EMBEDDING_CONFIG_FIELDS:
                self.count(config, field, "config.", minimum=1)

    def files(self, files: dict) -> dict:
        if not files:
            self.fail("files", "must list at least one file")
        for name, record in files.items():
            prefix = f"files.{name}."
            relative = PurePosixPath(name)
            if (
                relative.is_absolute()
                or ".." in relative.parts
                or "\\" in name
                or name in ("", ".", MANIFEST_NAME)
            ):
                self.fail(
                    f"files.{name}",
                    "must be a relative path inside the model folder "
                    "(no '..', no backslash, not manifest.json)",
                )
            if not isinstance(record, dict):
                self.fail(f"files.{name}", f"must be an object, got {record!r}")
            self.count(record, "bytes", prefix)
            self.sha256(record, "sha256", prefix)
        return files

    def variants(self, variants: dict, files: dict) -> None:
        if not variants:
            self.fail("variants", "must list at least one variant")
        references = []
        for name, variant in variants.items():
            prefix = f"variants.{name}."
            if not VARIANT_PATTERN.match(name):
                self.fail(f"variants.{name}", "must be a short lowercase name")
            if not isinstance(variant, dict):
                self.fail(f"variants.{name}", f"must be an object, got {variant!r}")
            file = self.require(variant, "file", str, prefix)
            if file not in files:
                self.fail(f"{prefix}file", f"{file!r} is not listed in 'files'")
            self.require(variant, "dtype", str, prefix)
            size = self.count(variant, "bytes", prefix)
            if size != files[file]["bytes"]:
                self.fail(
                    f"{prefix}bytes",
                    f"{size!r} differs from files.{file}.bytes "
                    f"{files[file]['bytes']!r}",
                )
            digest = self.sha256(variant, "sha256", prefix)
            if digest != files[file]["sha256"]:
                self.fail(f"{prefix}sha256", f"differs from files.{file}.sha256")
            self.count(variant, "memory_bytes", prefix)
            if self.require(variant, "reference", bool, prefix):
                references.append(name)
            backends = self.require(variant, "backends", list, prefix)
            unknown = [b for b in backends if b not in BACKENDS]
            if not backends or unknown:
                self.fail(
                    f"{prefix}backends",
                    f"{backends!r} must be a non-empty subset of {list(BACKENDS)!r}",
                )
            quality = variant.get("quality")
            if quality is not None:
                if not isinstance(quality, dict):
                    self.fail(f"{prefix}quality", "must be an object or null")
                self.require(quality, "passed", bool, f"{prefix}quality.")
            self.require(variant, "servable", bool, prefix)
        if len(references) != 1:
            self.fail(
                "variants",
                f"exactly one variant must have reference: true, got {references!r}",
            )
