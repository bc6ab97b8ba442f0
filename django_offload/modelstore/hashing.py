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


def verify_files(model_dir: Path, files: dict[str, dict]) -> list[str]:
    """
    Check every file listed in a manifest's ``files`` section against its
    size and SHA-256; return one problem description per bad file.
    """
    problems = []
    for relative, record in sorted(files.items()):
        path = model_dir / relative
        if not path.is_file():
            problems.append(f"{relative}: missing (expected at {str(path)!r})")
            continue
        size = path.stat().st_size
        if size != record["bytes"]:
            problems.append(
                f"{relative}: size {size} bytes, the manifest says {record['bytes']}"
            )
            continue
        digest = sha256_file(path)
        if digest != record["sha256"]:
            problems.append(
                f"{relative}: SHA-256 {digest[:12]}..., the manifest says "
                f"{record['sha256'][:12]}..."
            )
    return problems
