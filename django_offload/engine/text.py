"""
Text generation with a decoder-only ONNX model and its tokenizer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from .chat import ChatTemplate
from .decoder import Decoder
from .loading import (
    ModelLoadError,
    create_session,
    read_manifest,
    resolve_threads,
    text_config,
    variant_file,
)
from .params import GenerationParams, GenerationResult
from .sampling import TokenSelector
from .streaming import IncrementalDecoder, StopStringFilter

logger = logging.getLogger(__name__)

# A prompt: template-rendered text, chat messages, or token ids.
Prompt = str | list[dict[str, str]] | list[int]


def load_tokenizer(model_dir: Path) -> Tokenizer:
    """
    Load ``tokenizer.json`` with padding and truncation turned off.
    """
    path = Path(model_dir) / "tokenizer.json"
    if not path.is_file():
        raise ModelLoadError(f"{str(path)!r} is missing; rebuild the model folder.")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as error:
        # The tokenizers library raises a bare Exception for unreadable files.
        raise ModelLoadError(f"Could not load {str(path)!r}: {error}") from error
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


class TextModel:
    """
    A loaded text-generation model: tokenizer, chat template and one ONNX
    variant in an onnxruntime session.

    Generation keeps its state per call, so one instance serves several
    threads at once.
    """

    def __init__(
        self,
        *,
        model_dir: Path,
        manifest: dict[str, Any],
        variant: str,
        decoder: Decoder,
        tokenizer: Tokenizer,
        chat_template: ChatTemplate | None,
        load_seconds: float,
    ) -> None:
        config = text_config(manifest)
        self.model_dir = Path(model_dir)
        self.manifest = manifest
        self.variant = variant
        self.tokenizer = tokenizer
        self.load_seconds = load_seconds
        self.context_length: int = manifest["context_length"]
        self.vocab_size: int = config["vocab_size"]
        self.eos_token_ids: frozenset[int] = frozenset(config["eos_token_ids"])
        self._decoder = decoder
        self._chat_template = chat_template

    @classmethod
    def load(
        cls, model_dir: str | Path, variant: str = "fp32", *, threads: int = 0
    ) -> TextModel:
        """
        Load a text-generation model directory and one of its variants.

        ``threads`` sets onnxruntime's intra-op threads; 0 reads
        ``OFFLOAD['ENGINE_THREADS']``, whose own 0 lets onnxruntime choose.
        """
        started = time.perf_counter()
        model_dir = Path(model_dir)
        manifest = read_manifest(model_dir)
        config = text_config(manifest)
        path = variant_file(model_dir, manifest, variant)
        tokenizer = load_tokenizer(model_dir)
        chat_template = None
        config_path = model_dir / "tokenizer_config.json"
        if config_path.is_file():
            try:
                chat_template = ChatTemplate.from_tokenizer_config(config_path)
            except ValueError as error:
                logger.warning("Chat messages disabled for %s: %s", model_dir, error)
        session = create_session(path, resolve_threads(threads))
        decoder = Decoder(session, config)
        load_seconds = time.perf_counter() - started
        logger.info(
            "Loaded text model %s variant %s in %.2f s",
            manifest.get("id"),
            variant,
            load_seconds,
        )
        return cls(
            model_dir=model_dir,
            manifest=manifest,
            variant=variant,
            decoder=decoder,
            tokenizer=tokenizer,
            chat_template=chat_template,
            load_seconds=load_seconds,
        )

    # Tokens and text

    def render_chat(
        self, messages: list[dict[str, str]], *, add_generation_prompt: bool = True
    ) -> str:
        """
        Render chat messages with the model's own chat template.
        """
        if self._chat_template is None:
            raise ValueError(
                f"Model {self.manifest.get('id')!r} has no chat template in "
                f"tokenizer_config.json; pass a prompt string or token ids."
            )
        return self._chat_template.render(
            messages, add_generation_prompt=add_generation_prompt
        )

    def encode(self, text: str) -> list[int]:
        """
        Tokenise ``text`` without adding special tokens.

        Special tokens written in the text, such as a chat template's markers,
        are still recognised.
        """
        if not isinstance(text, str):
            raise ValueError(f"text must be a string, got {type(text).__name__}.")
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        """
        Turn token ids into text, leaving special tokens out by default.
        """
        return self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        """
        Return the token ids of a prompt given as text, chat messages or ids.
        """
        if isinstance(prompt, str):
            ids = self.encode(prompt)
        elif (
            isinstance(prompt, list | tuple)
            and prompt
            and all(isinstance(item, dict) for item in prompt)
        ):
            ids = self.encode(self.render_chat(list(prompt)))
        elif isinstance(prompt, list | tuple | np.ndarray):
            ids = self._check_ids(prompt, "prompt")
        else:
            raise ValueError(
                f"prompt must be a string, a list of chat messages or a list of "
                f"token ids, got {type(prompt).__name__}."
            )
        if not ids:
            raise ValueError("prompt is empty; it must contain at least one token.")
        if len(ids) >= self.context_length:
            raise ValueError(
                f"prompt is {len(ids)} tokens long, but the context length of "
                f"{self.manifest.get('id')!r} is {self.context_length}; shorten "
                f"the prompt to fewer than {self.context_length} tokens."
            )
        return ids

    def _check_ids(self, ids: Sequence[Any], name: str) -> list[int]:
        checked = []
        for index, value in enumerate(ids):
            if isinstance(value, np.integer):
                value = int(value)
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not 0 <= value < self.vocab_size
            ):
                # Only numbers are shown: a string or a message here would
                # be user text, which must not reach a logged error.
                shown = (
                    repr(value)
                    if isinstance(value, int | float)
                    else type(value).__name__
                )
                raise ValueError(
                    f"{name}[{index}] must be a token id from 0 to "
                    f"{self.vocab_size - 1}, got {shown}."
                )
            checked.append(value)
        return checked

    # Inference

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        """
        Return the logits after each of ``ids``, shaped (len(ids), vocab),
        from one pass without a cache (teacher forcing).
        """
        checked = self._check_ids(ids, "ids")
        if not checked:
            raise ValueError("ids is empty; it must contain at least one token.")
        if len(checked) > self.context_length:
            raise ValueError(
                f"ids is {len(checked)} tokens long; the context length is "
                f"{self.context_length}."
            )
        logits, _ = self._decoder.run(checked, self._decoder.empty_cache(), 0)
        return logits

    def generate(
        self, prompt: Prompt, params: GenerationParams | None = None
    ) -> GenerationResult:
        """
        Generate a completion of ``prompt`` and return it with usage and timings.
        """
        pieces = self.stream(prompt, params)
        while True:
            try:
                next(pieces)
            except StopIteration as finished:
                return finished.value

    def stream(
        self, prompt: Prompt, params: GenerationParams | None = None
    ) -> Generator[str, None, GenerationResult]:
        """
        Generate a completion of ``prompt`` as text pieces.

        The pieces join to the result's text. The generator's return value
        (``StopIteration.value``) is the GenerationResult. Arguments are
        checked here, before the first piece is requested.
        """
        if params is None:
            params = GenerationParams()
        if not isinstance(params, GenerationParams):
            raise ValueError(
                f"params must be a GenerationParams, got {type(params).__name__}."
            )
        started = time.perf_counter()
        ids = self.prompt_ids(prompt)
        return self._generate(ids, params, started)

    def _generate(
        self, prompt_ids: list[int], params: GenerationParams, started: float
    ) -> Generator[str, None, GenerationResult]:
        select = TokenSelector(params)
        text = IncrementalDecoder(self.decode)
        stops = StopStringFilter(params.stop)
        clock = _Clock(started)

        logits, cache = self._decoder.prefill(prompt_ids)
        prefill_s = clock.elapsed()
        length = len(prompt_ids)
        limit = min(params.max_new_tokens, self.context_length - length)
        generated: list[int] = []
        finish_reason = "length"
        first_token_at = last_token_at = 0.0

        while True:
            token = select(logits)
            generated.append(token)
            last_token_at = clock.elapsed()
            if len(generated) == 1:
                first_token_at = last_token_at
            if token in self.eos_token_ids:
                finish_reason = "stop"
                break
            piece = stops.push(text.push(token))
            if piece:
                yield from clock.paused(piece)
            if stops.stopped:
                finish_reason = "stop"
                break
            if len(generated) >= limit:
                break
            step_logits, cache = self._decoder.run([token], cache, length)
            logits = step_logits[-1]
            length += 1

        if not stops.stopped:
            tail = stops.push(text.flush())
            if stops.stopped:
                finish_reason = "stop"
            tail += stops.flush()
            if tail:
                yield tail

        decode_s = last_token_at - first_token_at
        result = GenerationResult(
            text=stops.text,
            token_ids=generated,
            finish_reason=finish_reason,
            prompt_tokens=len(prompt_ids),
            completion_tokens=len(generated),
            timings={
                "load_s": self.load_seconds,
                "prefill_s": prefill_s,
                "ttft_s": first_token_at,
                "decode_s": decode_s,
                "decode_tokens_per_s": (
                    (len(generated) - 1) / decode_s
                    if len(generated) > 1 and decode_s > 0
                    else 0.0
                ),
            },
        )
        logger.debug(
            "Generated %s tokens after a %s-token prompt (finish %s, %.1f tok/s)",
            result.completion_tokens,
            result.prompt_tokens,
            finish_reason,
            result.timings["decode_tokens_per_s"],
        )
        return result


class _Clock:
    """
    Seconds since the start of a generation, leaving out the time the
    generator spends suspended while its consumer handles a piece.
    """

    def __init__(self, started: float) -> None:
        self._started = started
        self._suspended = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self._started - self._suspended

    def paused(self, piece: str) -> Iterator[str]:
        suspended_at = time.perf_counter()
        yield piece
        self._suspended += time.perf_counter() - suspended_at
