"""
Reading a model directory and creating onnxruntime sessions for it.

A directory in the store has a ``manifest.json``. A directory without one,
such as a plain optimum export, still loads: its description is then taken
from ``config.json`` and ``generation_config.json``, and variant files follow
the transformers.js names (``onnx/model.onnx`` for fp32,
``onnx/model_<variant>.onnx`` otherwise).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import onnxruntime as ort
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

from ..conf import offload_settings

logger = logging.getLogger(__name__)

# Exceptions onnxruntime raises for missing, invalid or unsupported graphs.
ORT_ERRORS = (
    ort_errors.Fail,
    ort_errors.InvalidArgument,
    ort_errors.InvalidGraph,
    ort_errors.InvalidProtobuf,
    ort_errors.NoSuchFile,
    ort_errors.NotImplemented,
    ort_errors.RuntimeException,
)


class ModelLoadError(ValueError):
    """
    A model directory is missing files or describes the model inconsistently.
    """


def read_json(path: Path) -> dict[str, Any]:
    """
    Read a JSON object from ``path``, raising ModelLoadError when that fails.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ModelLoadError(
            f"{str(path)!r} is missing; rebuild the model folder."
        ) from error
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"Could not read {str(path)!r}: {error}") from error
    if not isinstance(data, dict):
        raise ModelLoadError(
            f"{str(path)!r} must contain a JSON object, got {type(data).__name__}."
        )
    return data


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelLoadError(f"{where} must be a positive integer, got {value!r}.")
    return value


def _token_ids(value: Any, where: str) -> list[int]:
    values = value if isinstance(value, list) else [value]
    for item in values:
        if isinstance(item, bool) or not isinstance(item, int) or item < 0:
            raise ModelLoadError(
                f"{where} must be a token id or a list of token ids, got {value!r}."
            )
    return list(values)


def read_manifest(model_dir: Path) -> dict[str, Any]:
    """
    Return the model's manifest, or one built from config.json when absent.

    Only the fields the engine reads are checked here: ``context_length``,
    ``config`` and each variant's ``file``.
    """
    model_dir = Path(model_dir)
    path = model_dir / "manifest.json"
    if path.exists():
        manifest = read_json(path)
    else:
        manifest = _manifest_from_config(model_dir)
    _check_manifest(manifest, path)
    return manifest


def _manifest_from_config(model_dir: Path) -> dict[str, Any]:
    config = read_json(model_dir / "config.json")
    generation_path = model_dir / "generation_config.json"
    generation = read_json(generation_path) if generation_path.exists() else {}
    onnx_dir = model_dir / "onnx"
    variants = {}
    for file in sorted(onnx_dir.glob("model*.onnx")):
        name = "fp32" if file.stem == "model" else file.stem.removeprefix("model_")
        variants[name] = {"file": f"onnx/{file.name}"}
    summary: dict[str, Any] = {"vocab_size": config.get("vocab_size")}
    if "num_hidden_layers" in config:
        heads = config.get("num_attention_heads")
        hidden = config.get("hidden_size")
        head_dim = config.get("head_dim")
        if head_dim is None and isinstance(heads, int) and isinstance(hidden, int):
            head_dim = hidden // heads if heads else None
        eos = generation.get("eos_token_id", config.get("eos_token_id"))
        summary.update(
            num_layers=config.get("num_hidden_layers"),
            num_kv_heads=config.get("num_key_value_heads", heads),
            head_dim=head_dim,
            eos_token_ids=eos if isinstance(eos, list) else [eos],
        )
    return {
        "format": 1,
        "id": model_dir.name,
        "context_length": config.get("max_position_embeddings"),
        "config": summary,
        "variants": variants,
    }


def _check_manifest(manifest: dict[str, Any], path: Path) -> None:
    where = str(path)
    _positive_int(manifest.get("context_length"), f"{where}: context_length")
    config = manifest.get("config")
    if not isinstance(config, dict):
        raise ModelLoadError(f"{where}: config must be an object, got {config!r}.")
    variants = manifest.get("variants")
    if not isinstance(variants, dict) or not variants:
        raise ModelLoadError(
            f"{where}: variants must be a non-empty object; no ONNX file was "
            f"found, got {variants!r}."
        )
    for name, variant in variants.items():
        if not isinstance(variant, dict) or not isinstance(variant.get("file"), str):
            raise ModelLoadError(
                f"{where}: variants[{name!r}].file must be a string, got {variant!r}."
            )


def text_config(manifest: dict[str, Any]) -> dict[str, Any]:
    """
    Return the decoder's shape and special ids from the manifest, checked.
    """
    config = manifest["config"]
    where = f"manifest {manifest.get('id')!r}: config"
    return {
        "num_layers": _positive_int(config.get("num_layers"), f"{where}.num_layers"),
        "num_kv_heads": _positive_int(
            config.get("num_kv_heads"), f"{where}.num_kv_heads"
        ),
        "head_dim": _positive_int(config.get("head_dim"), f"{where}.head_dim"),
        "vocab_size": _positive_int(config.get("vocab_size"), f"{where}.vocab_size"),
        "eos_token_ids": _token_ids(
            config.get("eos_token_ids"), f"{where}.eos_token_ids"
        ),
    }


def variant_file(model_dir: Path, manifest: dict[str, Any], variant: str) -> Path:
    """
    Return the path of a variant's ONNX file, checked to lie inside model_dir.
    """
    variants = manifest["variants"]
    if not isinstance(variant, str) or variant not in variants:
        raise ModelLoadError(
            f"variant must be one of {sorted(variants)!r} for model "
            f"{manifest.get('id')!r}, got {variant!r}."
        )
    root = Path(model_dir).resolve()
    path = (root / variants[variant]["file"]).resolve()
    if not path.is_relative_to(root):
        raise ModelLoadError(
            f"variants[{variant!r}].file points outside {str(root)!r}: "
            f"{variants[variant]['file']!r}."
        )
    if not path.is_file():
        raise ModelLoadError(
            f"The ONNX file of variant {variant!r} is missing: {str(path)!r}; "
            f"rebuild the model folder or choose another variant."
        )
    return path


def resolve_threads(threads: int) -> int:
    """
    Return the intra-op thread count: ``threads`` when positive, otherwise
    ``OFFLOAD['ENGINE_THREADS']`` (0 lets onnxruntime choose).

    Outside a configured Django project the setting is not read and 0 is used.
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(
            f"threads must be an integer of at least 0 (0 reads "
            f"OFFLOAD['ENGINE_THREADS']), got {threads!r}."
        )
    if threads:
        return threads
    if not settings.configured:
        return 0
    configured = offload_settings.ENGINE_THREADS
    if (
        isinstance(configured, bool)
        or not isinstance(configured, int)
        or configured < 0
    ):
        raise ImproperlyConfigured(
            f"OFFLOAD['ENGINE_THREADS'] must be an integer of at least 0 "
            f"(0 lets onnxruntime choose), got {configured!r}."
        )
    return configured


def create_session(path: Path, threads: int) -> ort.InferenceSession:
    """
    Create a CPU inference session for the ONNX file at ``path``.

    ``threads`` is the intra-op thread count, 0 for onnxruntime's default.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Idle intra-op threads sleep instead of spinning, because the server
    # engine shares its cores with web workers. With both cores busy with
    # other work, SmolLM2 fp32 decoded 5.6-7.3 tokens/s without spinning
    # against 3.4-5.5 with it (2 threads, onnxruntime 1.32).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except ORT_ERRORS as error:
        raise ModelLoadError(
            f"onnxruntime could not create a session for {str(path)!r}: {error}"
        ) from error
    logger.info("Created onnxruntime session for %s (%s threads)", path, threads)
    return session
