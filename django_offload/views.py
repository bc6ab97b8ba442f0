"""
HTTP views of the browser runtime: the model manifest, the device fit and
the model files of the store.

Model files are served only when the model's manifest.json lists them, with
HTTP Range support, the file's SHA-256 as ETag and a year of immutable
caching, so a browser downloads each file once and can resume it.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import re
from pathlib import Path, PurePosixPath
from typing import Any

from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotModified,
    JsonResponse,
)
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from django_offload.conf import offload_settings
from django_offload.fit import choose_variant, shared_files, validate_capabilities

logger = logging.getLogger(__name__)

MODEL_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
# Largest capabilities body accepted by the fit view, in bytes.
MAX_FIT_BODY_BYTES = 16 * 1024
CHUNK_BYTES = 1024 * 1024
RANGE_PATTERN = re.compile(r"^bytes=(\d*)-(\d*)$")
IMMUTABLE = "public, max-age=31536000, immutable"

try:  # django_offload.modelstore, where installed, has the canonical reader.
    from django_offload.modelstore import load_manifest as _store_load_manifest
except ImportError:  # pragma: no cover - depends on the branch
    _store_load_manifest = None


class ManifestInvalid(ValueError):
    """
    A manifest.json that is missing, unreadable or does not match format 1.
    """


def _check_relative_path(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or "\\" in value:
        raise ManifestInvalid(f"{where} must be a relative POSIX path, got {value!r}.")
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or str(path) != value:
        raise ManifestInvalid(f"{where} must be a relative POSIX path, got {value!r}.")
    return value


def _check_record(record: Any, where: str) -> None:
    if not isinstance(record, dict):
        raise ManifestInvalid(f"{where} must be an object, got {record!r}.")
    size = record.get("bytes")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ManifestInvalid(
            f"{where}['bytes'] must be an integer >= 0, got {size!r}."
        )
    digest = record.get("sha256")
    if not isinstance(digest, str) or not SHA256_PATTERN.match(digest):
        raise ManifestInvalid(
            f"{where}['sha256'] must be 64 lowercase hex digits, got {digest!r}."
        )


def _check_variant(name: str, variant: Any, where: str) -> None:
    _check_record(variant, where)
    _check_relative_path(variant.get("file"), f"{where}['file']")
    memory = variant.get("memory_bytes")
    if isinstance(memory, bool) or not isinstance(memory, int) or memory < 0:
        raise ManifestInvalid(
            f"{where}['memory_bytes'] must be an integer >= 0, got {memory!r}."
        )
    backends = variant.get("backends")
    if not isinstance(backends, list) or not all(isinstance(b, str) for b in backends):
        raise ManifestInvalid(
            f"{where}['backends'] must be a list of strings, got {backends!r}."
        )
    if not isinstance(variant.get("servable"), bool):
        raise ManifestInvalid(
            f"{where}['servable'] must be true or false, got "
            f"{variant.get('servable')!r}."
        )


def _validate_manifest(manifest: Any, path: Path) -> dict[str, Any]:
    where = str(path)
    if not isinstance(manifest, dict) or manifest.get("format") != 1:
        raise ManifestInvalid(f"{where}: 'format' must be 1.")
    if manifest.get("id") != path.parent.name:
        raise ManifestInvalid(
            f"{where}: 'id' is {manifest.get('id')!r} but the folder is "
            f"{path.parent.name!r}."
        )
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise ManifestInvalid(f"{where}: 'files' must be an object, got {files!r}.")
    for name, record in files.items():
        _check_relative_path(name, f"{where}: a 'files' key")
        _check_record(record, f"{where}: files[{name!r}]")
    variants = manifest.get("variants")
    if not isinstance(variants, dict) or not variants:
        raise ManifestInvalid(f"{where}: 'variants' must be a non-empty object.")
    for name, variant in variants.items():
        _check_variant(name, variant, f"{where}: variants[{name!r}]")
    return manifest


def _read_manifest(model_dir: Path) -> dict[str, Any]:
    """
    Read and validate ``model_dir/manifest.json``; raise ManifestInvalid.
    """
    path = model_dir / "manifest.json"
    if _store_load_manifest is not None:
        manifest = _store_load_manifest(model_dir)
    else:
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ManifestInvalid(f"{path}: cannot be read as JSON: {error}") from None
    return _validate_manifest(manifest, path)


def servable_files(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """
    Return the files a device may download, by path: the shared files and
    the file of every servable variant.
    """
    files = dict(shared_files(manifest))
    for variant in manifest["variants"].values():
        if variant["servable"]:
            files[variant["file"]] = variant
    return files


def load_model(model_id: str) -> dict[str, Any]:
    """
    Return the validated manifest of one model of the store.

    Raises Http404 when the id is malformed or the model is missing or
    invalid; an invalid manifest is also logged.
    """
    if not MODEL_ID_PATTERN.match(model_id):
        raise Http404("No such model.")
    model_dir = offload_settings.model_store / model_id
    if not (model_dir / "manifest.json").is_file():
        raise Http404("No such model.")
    try:
        return _read_manifest(model_dir)
    except ValueError as error:
        logger.warning("Model %s is not served: %s", model_id, error)
        raise Http404("No such model.") from None


def list_models() -> list[dict[str, Any]]:
    """
    Return the validated manifests of the store, skipping invalid ones.
    """
    store = offload_settings.model_store
    if not store.is_dir():
        return []
    manifests = []
    for model_dir in sorted(store.iterdir()):
        if not (model_dir / "manifest.json").is_file():
            continue
        try:
            manifests.append(_read_manifest(model_dir))
        except ValueError as error:
            logger.warning("Model %s is not served: %s", model_dir.name, error)
    return manifests


def _file_url(model_id: str, path: str) -> str:
    return reverse(
        "django_offload:model-file", kwargs={"model_id": model_id, "file_path": path}
    )


def describe_model(manifest: dict[str, Any]) -> dict[str, Any]:
    """
    Return the public description of one model: its manifest with only the
    servable variants and a URL on every file.
    """
    model_id = manifest["id"]
    files = {
        path: {"bytes": record["bytes"], "sha256": record["sha256"]}
        | {"url": _file_url(model_id, path)}
        for path, record in shared_files(manifest).items()
    }
    keys = ("file", "dtype", "bytes", "sha256", "memory_bytes", "backends")
    variants = {
        name: {key: variant.get(key) for key in keys}
        | {
            "reference": bool(variant.get("reference", False)),
            "url": _file_url(model_id, variant["file"]),
        }
        for name, variant in manifest["variants"].items()
        if variant["servable"]
    }
    public = ("id", "task", "architecture", "context_length", "license", "config")
    # The file route needs a non-empty path, so the base URL is the URL of a
    # placeholder file with the placeholder cut off.
    base_url = _file_url(model_id, "_").removesuffix("_")
    return {key: manifest.get(key) for key in public} | {
        "baseUrl": base_url,
        "files": files,
        "variants": variants,
    }


@require_GET
def manifest_view(request: HttpRequest) -> JsonResponse:
    """
    List every model of the store with its servable variants and file URLs.
    """
    models = [describe_model(manifest) for manifest in list_models()]
    response = JsonResponse({"format": 1, "models": models})
    response["Cache-Control"] = "no-cache"
    return response


@csrf_exempt
@require_POST
def fit_view(request: HttpRequest) -> JsonResponse:
    """
    Return the variant that fits the posted capabilities, for every model.

    The view changes no state, so it needs no CSRF token. A body that is not
    valid capabilities JSON gets a 400 with the validation message.
    """
    if len(request.body) > MAX_FIT_BODY_BYTES:
        return JsonResponse(
            {"error": f"The body is larger than {MAX_FIT_BODY_BYTES} bytes."},
            status=400,
        )
    try:
        capabilities = validate_capabilities(json.loads(request.body))
    except (ValueError, UnicodeDecodeError) as error:
        return JsonResponse({"error": str(error)}, status=400)
    fits = {
        manifest["id"]: choose_variant(manifest, capabilities).as_dict()
        for manifest in list_models()
    }
    return JsonResponse({"models": fits})


class _RangeReader:
    """
    File-like reader of ``length`` bytes from ``start`` of an open file.
    """

    def __init__(self, handle: Any, start: int, length: int) -> None:
        handle.seek(start)
        self._handle = handle
        self._left = length

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size < 0 else min(size, self._left)
        data = self._handle.read(size)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._handle.close()


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """
    Parse a single ``bytes=`` range into ``(start, end)`` inclusive.

    Returns None when the header should be ignored (malformed, or several
    ranges), and raises ValueError when the range cannot be satisfied.
    """
    match = RANGE_PATTERN.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise ValueError("empty suffix range")
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise ValueError("range starts past the end")
    return start, min(end, size - 1)


class _ModelFileResponse(FileResponse):
    block_size = CHUNK_BYTES


def _content_type(path: str) -> str:
    guessed, _ = mimetypes.guess_type(path)
    return guessed or "application/octet-stream"


@require_http_methods(["GET", "HEAD"])
def model_file_view(
    request: HttpRequest, model_id: str, file_path: str
) -> HttpResponse:
    """
    Serve one file of a model, if its manifest lists it.
    """
    manifest = load_model(model_id)
    record = servable_files(manifest).get(file_path)
    if record is None:
        raise Http404("No such model file.")
    path = offload_settings.model_store / model_id / file_path
    try:
        handle = path.open("rb")
    except OSError:
        logger.warning("Model %s lists %s but the file is missing", model_id, file_path)
        raise Http404("No such model file.") from None
    size = path.stat().st_size
    if size != record["bytes"]:
        handle.close()
        logger.warning(
            "Model %s file %s has %s bytes but its manifest lists %s; not serving it",
            model_id,
            file_path,
            size,
            record["bytes"],
        )
        raise Http404("No such model file.")

    etag = f'"{record["sha256"]}"'
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE, "Accept-Ranges": "bytes"}
    if etag in request.headers.get("If-None-Match", ""):
        handle.close()
        response = HttpResponseNotModified()
        for name, value in headers.items():
            response[name] = value
        return response

    byte_range = None
    range_header = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if range_header and (if_range is None or if_range == etag):
        try:
            byte_range = parse_range(range_header, size)
        except ValueError:
            handle.close()
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            for name, value in headers.items():
                response[name] = value
            return response

    if byte_range is None:
        response = _ModelFileResponse(handle, content_type=_content_type(file_path))
        response["Content-Length"] = str(size)
    else:
        start, end = byte_range
        reader = _RangeReader(handle, start, end - start + 1)
        response = _ModelFileResponse(reader, content_type=_content_type(file_path))
        response.status_code = 206
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(end - start + 1)
    for name, value in headers.items():
        response[name] = value
    return response
