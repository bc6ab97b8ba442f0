"""
Write ``sampling_vectors.json``: reference draws and picks of the sampling
algorithm shared by the server engine and the browser engine.

This is a plain-Python implementation, without numpy, written separately from
both engines so that the vectors check each of them rather than restate one.
It refuses to write a case whose draw or top_p lies within ``MARGIN`` of a
rounding boundary, since the two engines' ``exp`` may round one unit apart.

Run: ``python tests/data/make_sampling_vectors.py``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

MARGIN = 1e-9
MASK32 = 0xFFFFFFFF
OUTPUT = Path(__file__).with_name("sampling_vectors.json")


def mulberry32(seed: int):
    """
    Yield the floats of mulberry32 seeded with ``seed``.
    """
    state = seed & MASK32
    while True:
        state = (state + 0x6D2B79F5) & MASK32
        t = state
        t = ((t ^ (t >> 15)) * (t | 1)) & MASK32
        t ^= (t + (((t ^ (t >> 7)) * (t | 61)) & MASK32)) & MASK32
        yield ((t ^ (t >> 14)) & MASK32) / 4294967296


def distribution(logits, temperature, top_k, top_p):
    """
    Return (indices, probabilities) of the candidates, highest first.
    """
    scaled = [float(x) / temperature for x in logits]
    order = sorted(range(len(scaled)), key=lambda i: (-scaled[i], i))
    if top_k > 0:
        order = order[:top_k]
    exps = [math.exp(scaled[i] - scaled[order[0]]) for i in order]
    total = 0.0
    for value in exps:
        total += value
    probabilities = [value / total for value in exps]
    size = len(order)
    cumulative = 0.0
    for position, value in enumerate(probabilities):
        cumulative += value
        if abs(cumulative - top_p) < MARGIN and top_p < 1:
            raise ValueError(f"top_p {top_p} is too close to a boundary")
        if cumulative >= top_p:
            size = position + 1
            break
    nucleus = probabilities[:size]
    nucleus_total = 0.0
    for value in nucleus:
        nucleus_total += value
    return order[:size], [value / nucleus_total for value in nucleus]


def pick(indices, probabilities, u):
    """
    Return the first candidate whose cumulative probability exceeds ``u``.
    """
    cumulative = 0.0
    for index, probability in zip(indices, probabilities, strict=True):
        cumulative += probability
        if abs(cumulative - u) < MARGIN:
            raise ValueError(f"draw {u} is too close to a boundary")
        if cumulative > u:
            return index
    return indices[-1]


LOGITS = {
    "spread": [2.5, -1.0, 0.25, 3.75, 1.5, -0.5, 3.0, 0.0, -2.25, 1.0],
    "ties": [1.0, 2.0, 2.0, 0.5, 2.0, -1.0, 1.0, 0.0],
    "flat": [0.0] * 12,
    "peaked": [9.0, 0.5, 0.25, 0.0, -3.0, 1.0],
    # Multiples of 1/256, so the values are exact in float32 as model logits are.
    "wide": [
        round((math.sin(i * 0.37) * 6 + (i % 7) * 0.3) * 256) / 256 for i in range(64)
    ],
}
SETTINGS = [
    (1.0, 0, 1.0),
    (0.7, 0, 1.0),
    (1.3, 0, 0.9),
    (1.0, 3, 1.0),
    (0.5, 5, 0.8),
    (2.0, 1, 1.0),
    (1.0, 0, 0.5),
    (0.9, 20, 0.95),
]
SEEDS = [0, 1, 42, 123456789, 4294967295]


def build() -> dict:
    """
    Build every vector: generator outputs, distributions and seeded picks.
    """
    prng = []
    for seed in SEEDS:
        generator = mulberry32(seed)
        prng.append({"seed": seed, "draws": [next(generator) for _ in range(8)]})

    distributions = []
    sequences = []
    for name, logits in LOGITS.items():
        for temperature, top_k, top_p in SETTINGS:
            try:
                indices, probabilities = distribution(logits, temperature, top_k, top_p)
            except ValueError:
                continue
            case = {
                "logits": name,
                "temperature": temperature,
                "top_k": top_k,
                "top_p": top_p,
            }
            distributions.append(
                case | {"indices": indices, "probabilities": probabilities}
            )
            for seed in SEEDS[:3]:
                generator = mulberry32(seed)
                try:
                    tokens = [
                        pick(indices, probabilities, next(generator)) for _ in range(12)
                    ]
                except ValueError:
                    continue
                sequences.append(case | {"seed": seed, "tokens": tokens})
    return {
        "description": (
            "Reference vectors of the shared sampling algorithm. prng: the "
            "first draws of mulberry32 per seed. distributions: candidate "
            "indices and renormalised probabilities (compare with a relative "
            "tolerance of 1e-12). sequences: tokens picked from the same "
            "logits with one draw per token from mulberry32(seed). Logits are "
            "named in 'logits' and listed in 'logits_sets'."
        ),
        "logits_sets": LOGITS,
        "prng": prng,
        "distributions": distributions,
        "sequences": sequences,
    }


if __name__ == "__main__":
    OUTPUT.write_text(json.dumps(build(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUTPUT}")
