"""
Loaded models shared by the whole process, one per (model directory, variant).

Models load on first use. A lock per key makes concurrent first requests wait
for one load instead of loading the same model twice.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from ..conf import offload_settings
from .embedding import EmbeddingModel
from .loading import read_manifest
from .text import TextModel

logger = logging.getLogger(__name__)

MODEL_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")

_models: dict[tuple[str, Path, str], Any] = {}
_locks: dict[tuple[str, Path, str], threading.Lock] = {}
_registry_lock = threading.Lock()


def model_dir(model_id: str) -> Path:
    """
    Return the store directory of ``model_id``, read from OFFLOAD['MODEL_STORE'].
    """
    if not isinstance(model_id, str) or not MODEL_ID.match(model_id):
        raise ValueError(
            f"model_id must be lower-case letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit, got {model_id!r}."
        )
    path = offload_settings.model_store / model_id
    if not (path / "manifest.json").is_file():
        raise ImproperlyConfigured(
            f"Model {model_id!r} is not in the model store: {str(path)!r} has no "
            f"manifest.json. Build it there or set OFFLOAD['MODEL_STORE']."
        )
    return path


def server_variant(model_id: str, manifest: dict[str, Any]) -> str:
    """
    Return the variant the server runs: OFFLOAD['SERVER_VARIANTS'][model_id]
    when set, otherwise the servable native variant needing the least memory.

    A variant is servable when its manifest entry has ``servable`` true and
    lists the "native" backend. Ties in memory go to the reference variant.
    """
    configured = offload_settings.SERVER_VARIANTS
    if not isinstance(configured, dict):
        raise ImproperlyConfigured(
            f"OFFLOAD['SERVER_VARIANTS'] must be a dict of model id to variant "
            f"name, got {configured!r}."
        )
    variants = manifest.get("variants", {})
    if model_id in configured:
        chosen = configured[model_id]
        if chosen not in variants:
            raise ImproperlyConfigured(
                f"OFFLOAD['SERVER_VARIANTS'][{model_id!r}] is {chosen!r}, but the "
                f"model has the variants {sorted(variants)!r}."
            )
        return chosen

    servable = [
        (entry.get("memory_bytes") or 0, not entry.get("reference", False), name)
        for name, entry in variants.items()
        if isinstance(entry, dict)
        and entry.get("servable") is True
        and "native" in (entry.get("backends") or [])
    ]
    if not servable:
        raise ImproperlyConfigured(
            f"Model {model_id!r} has no servable variant for the server engine; "
            f"its variants are {sorted(variants)!r}. Set "
            f"OFFLOAD['SERVER_VARIANTS'][{model_id!r}] to run one anyway."
        )
    return min(servable)[2]


def _get(kind: str, loader: Any, model_id: str, variant: str | None) -> Any:
    directory = model_dir(model_id)
    if variant is None:
        variant = server_variant(model_id, read_manifest(directory))
    key = (kind, directory.resolve(), variant)
    with _registry_lock:
        model = _models.get(key)
        if model is not None:
            return model
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        model = _models.get(key)
        if model is None:
            model = loader(directory, variant)
            with _registry_lock:
                _models[key] = model
    return model


def get_text_model(model_id: str, variant: str | None = None) -> TextModel:
    """
    Return the loaded text model ``model_id`` from the store, loading it once.

    ``variant`` None picks the server variant (see ``server_variant``).
    """
    return _get("text", TextModel.load, model_id, variant)


def get_embedding_model(model_id: str, variant: str | None = None) -> EmbeddingModel:
    """
    Return the loaded embedding model ``model_id`` from the store, loading it once.
    """
    return _get("embedding", EmbeddingModel.load, model_id, variant)


def clear() -> None:
    """
    Drop every loaded model, so the next request loads it again.
    """
    with _registry_lock:
        _models.clear()
        _locks.clear()
