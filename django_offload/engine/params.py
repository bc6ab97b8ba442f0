"""
Generation parameters and the result of one generation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# Bounds on stop strings, so one request cannot make every decoding step scan
# an unbounded list.
MAX_STOP_STRINGS = 16
MAX_STOP_LENGTH = 256
MAX_SEED = 2**32 - 1

FINISH_REASONS = ("stop", "length")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class GenerationParams:
    """
    Settings of one generation: length, sampling and stop strings.

    ``temperature`` 0 selects greedy decoding, which ignores ``top_k``,
    ``top_p`` and ``seed``. ``top_k`` 0 keeps every token. ``seed`` None draws a
    random seed for each generation. ``stop`` accepts one string or a sequence
    of strings and is stored as a tuple.
    """

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not _is_int(self.max_new_tokens) or self.max_new_tokens < 1:
            raise ValueError(
                f"max_new_tokens must be an integer of at least 1, "
                f"got {self.max_new_tokens!r}."
            )
        if (
            not _is_number(self.temperature)
            or not math.isfinite(self.temperature)
            or self.temperature < 0
        ):
            raise ValueError(
                f"temperature must be a finite number of at least 0 "
                f"(0 means greedy), got {self.temperature!r}."
            )
        if not _is_int(self.top_k) or self.top_k < 0:
            raise ValueError(
                f"top_k must be an integer of at least 0 (0 keeps every token), "
                f"got {self.top_k!r}."
            )
        if (
            not _is_number(self.top_p)
            or not math.isfinite(self.top_p)
            or not 0 < self.top_p <= 1
        ):
            raise ValueError(
                f"top_p must be a number greater than 0 and at most 1, "
                f"got {self.top_p!r}."
            )
        if self.seed is not None and (
            not _is_int(self.seed) or not 0 <= self.seed <= MAX_SEED
        ):
            raise ValueError(
                f"seed must be None or an integer from 0 to {MAX_SEED}, "
                f"got {self.seed!r}."
            )
        object.__setattr__(self, "temperature", float(self.temperature))
        object.__setattr__(self, "top_p", float(self.top_p))
        object.__setattr__(self, "stop", _validate_stop(self.stop))

    @property
    def greedy(self) -> bool:
        """
        Whether these parameters select greedy decoding.
        """
        return self.temperature == 0.0


def _validate_stop(stop: Any) -> tuple[str, ...]:
    if isinstance(stop, str):
        stop = (stop,)
    if not isinstance(stop, list | tuple):
        raise ValueError(f"stop must be a string or a list of strings, got {stop!r}.")
    if len(stop) > MAX_STOP_STRINGS:
        raise ValueError(
            f"stop accepts at most {MAX_STOP_STRINGS} strings, got {len(stop)}: "
            f"{stop!r}."
        )
    for index, item in enumerate(stop):
        if not isinstance(item, str) or not item:
            raise ValueError(f"stop[{index}] must be a non-empty string, got {item!r}.")
        if len(item) > MAX_STOP_LENGTH:
            raise ValueError(
                f"stop[{index}] is {len(item)} characters long; the maximum is "
                f"{MAX_STOP_LENGTH}: {item!r}."
            )
    return tuple(stop)


@dataclass(frozen=True)
class GenerationResult:
    """
    Output of one generation.

    ``token_ids`` contains every generated token, including the end-of-sequence
    token that ended generation, while ``text`` leaves special tokens out and
    is cut before a matched stop string. ``timings`` contains seconds and a rate:
    ``load_s`` (session creation of the model), ``prefill_s`` (the prompt
    pass), ``ttft_s`` (from the call to the first generated token),
    ``decode_s`` (from the first to the last generated token) and
    ``decode_tokens_per_s`` (tokens after the first per second of
    ``decode_s``, 0.0 when fewer than two tokens were generated).
    """

    text: str
    token_ids: list[int]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    timings: dict[str, float]

    @property
    def usage(self) -> dict[str, int]:
        """
        Token counts in the shape chat APIs use.
        """
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
