"""
Calls from the orchestration into the evaluation and model-store parts,
with small local stand-ins used while those parts are not in this tree.

NOTE: the stand-ins run no evaluator and accept only empty score lists.
They let the lease protocol work before ``django_offload.evaluators`` is
installed, and this module can go once it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

try:
    from django_offload.evaluators import evaluate, validate_scores
except ImportError:

    def evaluate(
        specs: Any, output: str, context: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """
        Return no scores: the evaluators are not installed.
        """
        return []

    def validate_scores(specs: Any, scores: Any) -> list[dict[str, Any]]:
        """
        Reject any score: none can be checked without the evaluators.
        """
        if scores:
            raise ValueError("scores: this server runs no evaluators; send [].")
        return []


try:
    from django_offload.modelstore import load_manifest
except ImportError:
    from django_offload.engine.loading import read_manifest

    def load_manifest(model_dir: Path) -> dict[str, Any]:
        """
        Read and check ``model_dir/manifest.json``.
        """
        return read_manifest(Path(model_dir))


__all__ = ["evaluate", "load_manifest", "validate_scores"]
