"""
SHA-256 hashing of store files and verification against a manifest.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK_BYTES = 1024 * 1024


def sha256_file(path: Path) -> str:
    """
    Return the hex SHA-256 digest of the file at ``path``, read in chunks.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def file_record(path: Path) -> dict[str, int | str]:
    """
    Return the manifest record ``{"bytes", "sha256"}`` of one file.
    """
    return {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
