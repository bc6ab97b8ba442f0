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


def sampling_distribution(
    logits: np.ndarray, temperature: float, top_k: int, top_p: float
) -> tuple[np.ndarray, np.ndarray]:
    """
    Compute the candidate tokens and their renormalised probabilities.

    Returns ``(indices, probabilities)`` sorted by probability, highest first,
    ties by lower index. ``temperature`` must be greater than 0.
    """
    if temperature <= 0:
        raise ValueError(
            f"temperature must be greater than 0 for sampling, got {temperature!r}."
        )
    scaled = np.asarray(logits, dtype=np.float64).reshape(-1) / temperature

    # A stable sort of the negated values orders by value descending and keeps
    # equal values in index order, which is the tie rule for top-k and top-p.
    order = np.argsort(-scaled, kind="stable")
    if top_k > 0:
        order = order[:top_k]
    kept = scaled[order]

    exps = np.exp(kept - kept[0])
    probabilities = exps / np.cumsum(exps)[-1]

    # Shortest prefix whose cumulative probability reaches top_p, at least one.
    cumulative = np.cumsum(probabilities)
    reached = np.flatnonzero(cumulative >= top_p)
    size = int(reached[0]) + 1 if reached.size else len(order)
    indices = order[:size]
    nucleus = probabilities[:size]
    return indices, nucleus / np.cumsum(nucleus)[-1]


def sample(
    logits: np.ndarray, temperature: float, top_k: int, top_p: float, u: float
) -> int:
    """
    Pick a token from ``logits`` with the uniform draw ``u`` in [0, 1).
    """
    indices, probabilities = sampling_distribution(logits, temperature, top_k, top_p)
    cumulative = np.cumsum(probabilities)
    above = np.flatnonzero(cumulative > u)
    # Rounding can leave the last cumulative value just under a draw close to
    # 1; the last candidate is then the one the draw falls in.
    position = int(above[0]) if above.size else len(indices) - 1
    return int(indices[position])


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
