"""
Token selection: greedy argmax or seeded sampling with temperature, top-k and
top-p.

The algorithm and the mulberry32 generator match the browser engine step for
step, so a seed gives the same draws in Python and JavaScript. Sums are taken
sequentially (``numpy.cumsum``) because JavaScript adds in a plain loop and
pairwise summation could round differently.
"""

from __future__ import annotations

import secrets

import numpy as np

from .params import GenerationParams

_MASK32 = 0xFFFFFFFF


def _imul(a: int, b: int) -> int:
    # 32-bit multiplication that keeps the low 32 bits, as JavaScript's
    # Math.imul does (its signed result has the same bits).
    return (a * b) & _MASK32


class Mulberry32:
    """
    The mulberry32 pseudo-random generator: 32 bits of state, floats in [0, 1).
    """

    def __init__(self, seed: int) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}.")
        self._state = seed & _MASK32

    def next(self) -> float:
        """
        Advance the state and return the next float in [0, 1).
        """
        self._state = (self._state + 0x6D2B79F5) & _MASK32
        t = self._state
        t = _imul(t ^ (t >> 15), t | 1)
        t ^= (t + _imul(t ^ (t >> 7), t | 61)) & _MASK32
        return ((t ^ (t >> 14)) & _MASK32) / 4294967296


def random_seed() -> int:
    """
    Return a random uint32 seed for a generation that did not set one.
    """
    return secrets.randbits(32)


def greedy(logits: np.ndarray) -> int:
    """
    Return the index of the largest logit, the lowest index on ties.
    """
    return int(np.argmax(logits))


def _nucleus(
    logits: np.ndarray, temperature: float, top_k: int, top_p: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Returns the scaled logits, the kept values sorted highest first, and the
    # renormalised probabilities of the nucleus in that order. Only values are
    # sorted, which is much faster than a stable sort of indices over the whole
    # vocabulary; _top_indices recovers the few indices that are needed.
    if temperature <= 0:
        raise ValueError(
            f"temperature must be greater than 0 for sampling, got {temperature!r}."
        )
    scaled = np.asarray(logits, dtype=np.float64).reshape(-1) / temperature
    ranked = np.sort(scaled)[::-1]
    if np.isnan(ranked[0]):
        raise ValueError("logits contain NaN; the model output is invalid.")
    if 0 < top_k < len(ranked):
        ranked = ranked[:top_k]

    exps = np.exp(ranked - ranked[0])
    probabilities = exps / np.cumsum(exps)[-1]

    # Shortest prefix whose cumulative probability reaches top_p, at least one.
    reached = np.flatnonzero(np.cumsum(probabilities) >= top_p)
    size = int(reached[0]) + 1 if reached.size else len(ranked)
    nucleus = probabilities[:size]
    return scaled, ranked, nucleus / np.cumsum(nucleus)[-1]


def _top_indices(scaled: np.ndarray, ranked: np.ndarray, count: int) -> np.ndarray:
    # Indices of the `count` largest scaled logits, highest first, lower index
    # first on ties.
    candidates = np.flatnonzero(scaled >= ranked[count - 1])
    order = np.lexsort((candidates, -scaled[candidates]))
    return candidates[order][:count]


def sampling_distribution(
    logits: np.ndarray, temperature: float, top_k: int, top_p: float
) -> tuple[np.ndarray, np.ndarray]:
    """
    Compute the candidate tokens and their renormalised probabilities.

    Returns ``(indices, probabilities)`` sorted by probability, highest first,
    ties by lower index. ``temperature`` must be greater than 0.
    """
    scaled, ranked, probabilities = _nucleus(logits, temperature, top_k, top_p)
    return _top_indices(scaled, ranked, len(probabilities)), probabilities


def sample(
    logits: np.ndarray, temperature: float, top_k: int, top_p: float, u: float
) -> int:
    """
    Pick a token from ``logits`` with the uniform draw ``u`` in [0, 1).
    """
    scaled, ranked, probabilities = _nucleus(logits, temperature, top_k, top_p)
    above = np.flatnonzero(np.cumsum(probabilities) > u)
    # Rounding can leave the last cumulative value just under a draw close to
    # 1; the last candidate is then the one the draw falls in.
    position = int(above[0]) if above.size else len(probabilities) - 1
    return int(_top_indices(scaled, ranked, position + 1)[position])


class TokenSelector:
    """
    Chooses each next token for one generation, holding its generator state.
    """

    def __init__(self, params: GenerationParams) -> None:
        self.params = params
        self.seed = params.seed if params.seed is not None else random_seed()
        self._rng = None if params.greedy else Mulberry32(self.seed)

    def __call__(self, logits: np.ndarray) -> int:
        if self._rng is None:
            return greedy(logits)
        params = self.params
        return sample(
            logits, params.temperature, params.top_k, params.top_p, self._rng.next()
        )
