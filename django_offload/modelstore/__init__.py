"""
The model store: built models, their manifests and the tools that build them.

Importing this package needs no torch; the builders import their heavy
dependencies inside their functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django_offload.modelstore.manifest import (
    MANIFEST_NAME,
    ManifestError,
    load_manifest,
    validate_manifest,
    write_manifest,
)

__all__ = [
    "MANIFEST_NAME",
    "ManifestError",
    "list_models",
    "load_manifest",
    "store_path",
    "validate_manifest",
    "write_manifest",
]


def store_path(store: Path | str | None = None) -> Path:
    """
    Return ``store`` as a Path, or the configured ``OFFLOAD['MODEL_STORE']``.
    """
    if store is not None:
        return Path(store)
    from django_offload.conf import offload_settings

    return offload_settings.model_store


def list_models(store: Path | str | None = None) -> list[dict[str, Any]]:
    """
    Return the validated manifests of every model in the store, sorted by id.

    Folders without a manifest.json (and hidden folders such as ``.cache``)
    are skipped; an invalid manifest raises ManifestError.
    """
    root = store_path(store)
    manifests = []
    for child in sorted(root.iterdir()):
        if child.name.startswith(".") or not child.is_dir():
            continue
        if (child / MANIFEST_NAME).is_file():
            manifests.append(load_manifest(child))
    return manifests
