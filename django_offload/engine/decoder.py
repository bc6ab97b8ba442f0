"""
One decoder-only ONNX graph with a key/value cache, in the optimum and
transformers.js layout.

Inputs are ``input_ids``, ``attention_mask``, ``position_ids`` (when the graph
has it) and ``past_key_values.N.key`` / ``.value`` for each layer N, shaped
(batch, kv heads, past length, head dim). Outputs are ``logits`` and
``present.N.key`` / ``.value``, the cache extended by the new positions.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import onnxruntime as ort

from .loading import ModelLoadError

_PAST = re.compile(r"^past_key_values\.(\d+)\.(key|value)$")
_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}

# Cache between steps: one OrtValue per past_key_values input, in input order.
Cache = list[ort.OrtValue]

# Prompt tokens per prefill run. The graph returns logits for every position,
# 256 x 49152 float32 values (50 MB) for SmolLM2, so a long prompt runs in
# chunks instead of materialising logits for all of it at once. On a 70-token
# SmolLM2 prompt, chunked runs gave logits bit-identical to one run
# (onnxruntime 1.32, CPU).
PREFILL_CHUNK = 256


class Decoder:
    """
    Runs a decoder graph one chunk of tokens at a time, keeping the cache in
    onnxruntime values so it is not copied through numpy between steps.
    """

    def __init__(self, session: ort.InferenceSession, config: dict[str, Any]):
        self.session = session
        inputs = {node.name: node for node in session.get_inputs()}
        outputs = {node.name for node in session.get_outputs()}
        for name in ("input_ids", "attention_mask"):
            if name not in inputs:
                raise ModelLoadError(
                    f"The decoder graph has no {name!r} input; its inputs are "
                    f"{sorted(inputs)!r}."
                )
        if "logits" not in outputs:
            raise ModelLoadError(
                f"The decoder graph has no 'logits' output; its outputs are "
                f"{sorted(outputs)!r}."
            )
        self.has_position_ids = "position_ids" in inputs

        layers = sorted({int(m[1]) for n in inputs if (m := _PAST.match(n))})
        if layers != list(range(config["num_layers"])):
            raise ModelLoadError(
                f"The decoder graph has past_key_values inputs for layers "
                f"{layers!r}, but the model config gives num_layers="
                f"{config['num_layers']}."
            )
        self.past_names = [
            f"past_key_values.{layer}.{kind}"
            for layer in layers
            for kind in ("key", "value")
        ]
        self.present_names = [
            name.replace("past_key_values.", "present.") for name in self.past_names
        ]
        missing = [name for name in self.present_names if name not in outputs]
        if missing:
            raise ModelLoadError(f"The decoder graph lacks the outputs {missing!r}.")

        first = inputs[self.past_names[0]]
        if first.type not in _NUMPY_TYPES:
            raise ModelLoadError(
                f"past_key_values.0.key has type {first.type!r}; the engine "
                f"supports {sorted(_NUMPY_TYPES)!r}."
            )
        self.cache_dtype = _NUMPY_TYPES[first.type]
        self.num_kv_heads = config["num_kv_heads"]
        self.head_dim = config["head_dim"]
        _check_dim(first.shape, 1, self.num_kv_heads, "num_kv_heads")
        _check_dim(first.shape, 3, self.head_dim, "head_dim")
        self._output_names = ["logits", *self.present_names]

    def empty_cache(self) -> Cache:
        """
        Return a cache holding no positions.
        """
        empty = np.zeros((1, self.num_kv_heads, 0, self.head_dim), self.cache_dtype)
        return [ort.OrtValue.ortvalue_from_numpy(empty) for _ in self.past_names]

    def prefill(self, token_ids: list[int]) -> tuple[np.ndarray, Cache]:
        """
        Run a prompt from an empty cache, in chunks of ``PREFILL_CHUNK``.

        Returns the logits of the last position, shaped (vocab,), and the cache.
        """
        cache = self.empty_cache()
        logits = np.empty(0, dtype=np.float32)
        for start in range(0, len(token_ids), PREFILL_CHUNK):
            chunk = token_ids[start : start + PREFILL_CHUNK]
            logits, cache = self.run(chunk, cache, start)
        return logits[-1], cache

    def run(
        self, token_ids: list[int], cache: Cache, past_length: int
    ) -> tuple[np.ndarray, Cache]:
        """
        Run ``token_ids`` after ``past_length`` cached positions.

        Returns the logits of every new position, shaped (len(token_ids),
        vocab), and the extended cache.
        """
        count = len(token_ids)
        total = past_length + count
        feeds = {
            "input_ids": np.asarray([token_ids], dtype=np.int64),
            "attention_mask": np.ones((1, total), dtype=np.int64),
        }
        if self.has_position_ids:
            feeds["position_ids"] = np.arange(past_length, total, dtype=np.int64)[
                None, :
            ]
        values = {
            name: ort.OrtValue.ortvalue_from_numpy(array)
            for name, array in feeds.items()
        }
        values.update(zip(self.past_names, cache, strict=True))
        outputs = self.session.run_with_ort_values(self._output_names, values)
        logits = outputs[0].numpy()[0]
        return logits, list(outputs[1:])


def _check_dim(shape: list[Any], axis: int, expected: int, name: str) -> None:
    # Symbolic dimensions are strings or None; only fixed ones can be checked.
    actual = shape[axis] if len(shape) == 4 else None
    if len(shape) != 4 or (isinstance(actual, int) and actual != expected):
        raise ModelLoadError(
            f"past_key_values.0.key has shape {shape!r}, which does not match "
            f"the model config's {name}={expected}."
        )
