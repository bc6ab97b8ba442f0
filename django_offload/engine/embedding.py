"""
Sentence embeddings from an encoder ONNX model: mean pooling over the
attention mask, then L2 normalisation.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from .loading import (
    ModelLoadError,
    create_session,
    read_json,
    read_manifest,
    resolve_threads,
    variant_file,
)
from .text import load_tokenizer

logger = logging.getLogger(__name__)

# Texts per onnxruntime run; bounds the padded batch held in memory.
BATCH_SIZE = 32
_INTEGER_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


class EmbeddingModel:
    """
    A loaded feature-extraction model that maps texts to unit vectors.
    """

    def __init__(
        self,
        *,
        model_dir: Path,
        manifest: dict[str, Any],
        variant: str,
        session: ort.InferenceSession,
        tokenizer: Any,
        max_length: int,
        load_seconds: float,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.manifest = manifest
        self.variant = variant
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.load_seconds = load_seconds
        self._session = session

        inputs = {node.name: node for node in session.get_inputs()}
        for name in ("input_ids", "attention_mask"):
            if name not in inputs:
                raise ModelLoadError(
                    f"The encoder graph has no {name!r} input; its inputs are "
                    f"{sorted(inputs)!r}."
                )
        unknown = sorted(
            set(inputs) - {"input_ids", "attention_mask", "token_type_ids"}
        )
        if unknown:
            raise ModelLoadError(
                f"The encoder graph has inputs the engine cannot fill: {unknown!r}."
            )
        self._input_types = {
            name: _INTEGER_TYPES.get(node.type, np.int64)
            for name, node in inputs.items()
        }

        outputs = list(session.get_outputs())
        named = [node for node in outputs if node.name == "last_hidden_state"]
        self._output = (named or outputs)[0]
        width = self._output.shape[-1] if self._output.shape else None
        self.dimension: int | None = width if isinstance(width, int) else None

    @classmethod
    def load(
        cls, model_dir: str | Path, variant: str = "fp32", *, threads: int = 0
    ) -> EmbeddingModel:
        """
        Load a feature-extraction model directory and one of its variants.
        """
        started = time.perf_counter()
        model_dir = Path(model_dir)
        manifest = read_manifest(model_dir)

        pooling = manifest["config"].get("pooling", "mean")
        if pooling != "mean":
            raise ModelLoadError(
                f"Model {manifest.get('id')!r} declares pooling {pooling!r}; the "
                f"engine supports only 'mean'."
            )
        path = variant_file(model_dir, manifest, variant)

        tokenizer = load_tokenizer(model_dir)
        max_length = _max_length(model_dir, manifest)
        tokenizer.enable_truncation(max_length=max_length)
        session = create_session(path, resolve_threads(threads))
        load_seconds = time.perf_counter() - started
        logger.info(
            "Loaded embedding model %s variant %s in %.2f s",
            manifest.get("id"),
            variant,
            load_seconds,
        )
        return cls(
            model_dir=model_dir,
            manifest=manifest,
            variant=variant,
            session=session,
            tokenizer=tokenizer,
            max_length=max_length,
            load_seconds=load_seconds,
        )

    def embed(self, texts: list[str]) -> np.ndarray:
        """
        Embed ``texts`` as float32 rows of unit length, shaped (len(texts), dim).

        Texts longer than ``max_length`` tokens are truncated.
        """
        if isinstance(texts, str) or not isinstance(texts, list | tuple):
            raise ValueError(
                f"texts must be a list of strings, got {type(texts).__name__}."
            )
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(
                    f"texts[{index}] must be a string, got {type(text).__name__}."
                )
        if not texts:
            return np.zeros((0, self.dimension or 0), dtype=np.float32)
        batches = [
            self._embed_batch(list(texts[start : start + BATCH_SIZE]))
            for start in range(0, len(texts), BATCH_SIZE)
        ]
        return np.concatenate(batches, axis=0)

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=True)
        width = max(len(encoding.ids) for encoding in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        types = np.zeros((len(texts), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            count = len(encoding.ids)
            ids[row, :count] = encoding.ids
            mask[row, :count] = 1
            types[row, :count] = encoding.type_ids
        arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        feeds = {
            name: arrays[name].astype(dtype, copy=False)
            for name, dtype in self._input_types.items()
            if name in arrays
        }
        (hidden,) = self._session.run([self._output.name], feeds)
        hidden = hidden.astype(np.float32, copy=False)

        weights = mask[:, :, None].astype(np.float32)
        summed = (hidden * weights).sum(axis=1)
        counts = np.maximum(weights.sum(axis=1), 1.0)
        pooled = summed / counts
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def _max_length(model_dir: Path, manifest: dict[str, Any]) -> int:
    # The shorter of the tokenizer's model_max_length (when it is set to a
    # real limit) and the model's context length.
    limit = manifest["context_length"]
    path = model_dir / "tokenizer_config.json"
    if path.is_file():
        configured = read_json(path).get("model_max_length")
        if isinstance(configured, int) and not isinstance(configured, bool):
            if 0 < configured < limit:
                limit = configured
    return limit
