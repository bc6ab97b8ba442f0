"""
Check the server engine's sampling against ``tests/data/sampling_vectors.json``,
the reference vectors the browser engine's tests (``tests/js``) also check,
so a seed picks the same tokens on the server and on a device.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

sampling = pytest.importorskip(
    "django_offload.engine.sampling", reason="the server engine is not installed"
)

VECTORS = json.loads(
    (Path(__file__).parent / "data" / "sampling_vectors.json").read_text("utf-8")
)


def _logits(name: str) -> np.ndarray:
    return np.array(VECTORS["logits_sets"][name], dtype=np.float32)


def test_mulberry32_matches_vectors():
    for item in VECTORS["prng"]:
        generator = sampling.Mulberry32(item["seed"])
        draws = [generator.next() for _ in item["draws"]]
        assert draws == item["draws"], item["seed"]


def test_distribution_matches_vectors():
    for item in VECTORS["distributions"]:
        label = (item["logits"], item["temperature"], item["top_k"], item["top_p"])
        indices, probabilities = sampling.sampling_distribution(
            _logits(item["logits"]), item["temperature"], item["top_k"], item["top_p"]
        )
        assert list(indices) == item["indices"], label
        np.testing.assert_allclose(
            probabilities, item["probabilities"], rtol=1e-12, atol=0, err_msg=str(label)
        )


def test_seeded_picks_match_vectors():
    for item in VECTORS["sequences"]:
        label = (item["logits"], item["temperature"], item["top_k"], item["top_p"])
        generator = sampling.Mulberry32(item["seed"])
        logits = _logits(item["logits"])
        tokens = [
            sampling.sample(
                logits,
                item["temperature"],
                item["top_k"],
                item["top_p"],
                generator.next(),
            )
            for _ in item["tokens"]
        ]
        assert tokens == item["tokens"], (label, item["seed"])
