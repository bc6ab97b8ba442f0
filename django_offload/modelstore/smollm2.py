"""
Build of SmolLM2-135M-Instruct from its GGUF file: tokenizer, configs and the
fp32 ONNX decoder with KV cache in the transformers.js layout.

Heavy imports (torch, transformers, optimum) happen inside the functions so
that ``django_offload`` imports without them.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MODEL_ID = "smollm2-135m-instruct"
EOS_TOKEN = "<|im_end|>"
BOS_TOKEN = "<|im_start|>"
UNK_TOKEN = "<|endoftext|>"
ONNX_OPSET = 18
# GGUF token_type value of control (special) tokens.
GGUF_CONTROL_TOKEN = 3


def read_gguf_fields(gguf_path: Path) -> dict[str, Any]:
    """
    Return the GGUF metadata fields that the tokenizer and config need.
    """
    import gguf

    reader = gguf.GGUFReader(str(gguf_path))
    wanted = [
        "general.architecture",
        "llama.block_count",
        "llama.context_length",
        "llama.embedding_length",
        "llama.attention.head_count",
        "llama.attention.head_count_kv",
        "llama.vocab_size",
        "tokenizer.ggml.model",
        "tokenizer.ggml.pre",
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type",
        "tokenizer.ggml.merges",
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.add_bos_token",
        "tokenizer.chat_template",
    ]
    fields = {}
    for name in wanted:
        if name not in reader.fields:
            raise ValueError(f"GGUF file {str(gguf_path)!r} has no field {name!r}.")
        fields[name] = reader.fields[name].contents()
    return fields


def build_tokenizer(fields: dict[str, Any]):
    """
    Rebuild the byte-level BPE tokenizer from the GGUF vocabulary and merges.

    transformers' own GGUF conversion gets this model wrong (it makes
    ``<|im_start|>`` the end-of-sequence token and prepends it to every
    input), so the tokenizer is assembled here from the raw fields. The
    pre-tokenizer matches llama.cpp's "smollm" type: each digit on its own,
    then the GPT-2 split.
    """
    from tokenizers import (
        AddedToken,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
    )

    if fields["tokenizer.ggml.model"] != "gpt2":
        raise ValueError(
            f"Expected a GGUF 'gpt2' (byte-level BPE) tokenizer, got "
            f"{fields['tokenizer.ggml.model']!r}."
        )
    tokens = fields["tokenizer.ggml.tokens"]
    vocab = {token: index for index, token in enumerate(tokens)}
    merges = [tuple(merge.split(" ", 1)) for merge in fields["tokenizer.ggml.merges"]]
    tokenizer = Tokenizer(
        models.BPE(vocab=vocab, merges=merges, unk_token=None, fuse_unk=False)
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    specials = [
        AddedToken(tokens[index], special=True, normalized=False)
        for index, kind in enumerate(fields["tokenizer.ggml.token_type"])
        if kind == GGUF_CONTROL_TOKEN
    ]
    tokenizer.add_special_tokens(specials)
    return tokenizer, [token.content for token in specials]


def write_tokenizer_files(fields: dict[str, Any], out_dir: Path) -> None:
    """
    Write tokenizer.json, tokenizer_config.json and special_tokens_map.json.
    """
    tokenizer, specials = build_tokenizer(fields)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    tokens = fields["tokenizer.ggml.tokens"]
    added = {
        str(tokens.index(content)): {
            "content": content,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for content in specials
    }
    config = {
        "add_bos_token": False,
        "add_eos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "additional_special_tokens": [BOS_TOKEN, EOS_TOKEN],
        "bos_token": BOS_TOKEN,
        "chat_template": fields["tokenizer.chat_template"],
        "clean_up_tokenization_spaces": False,
        "eos_token": EOS_TOKEN,
        "model_max_length": int(fields["llama.context_length"]),
        "pad_token": EOS_TOKEN,
        "tokenizer_class": "GPT2Tokenizer",
        "unk_token": UNK_TOKEN,
        "vocab_size": len(tokens),
    }
    write_json(out_dir / "tokenizer_config.json", config)
    special_map = {
        "additional_special_tokens": [BOS_TOKEN, EOS_TOKEN],
        "bos_token": BOS_TOKEN,
        "eos_token": EOS_TOKEN,
        "pad_token": EOS_TOKEN,
        "unk_token": UNK_TOKEN,
    }
    write_json(out_dir / "special_tokens_map.json", special_map)


def write_json(path: Path, data: Any) -> None:
    """
    Write ``data`` as indented, key-sorted JSON with a trailing newline.
    """
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", "utf-8")


def special_token_ids(fields: dict[str, Any]) -> dict[str, int]:
    """
    Return the ids of the BOS, EOS and padding tokens used in the configs.
    """
    tokens = fields["tokenizer.ggml.tokens"]
    return {
        "bos_token_id": tokens.index(BOS_TOKEN),
        "eos_token_id": tokens.index(EOS_TOKEN),
        "pad_token_id": tokens.index(EOS_TOKEN),
    }


def save_checkpoint(gguf_path: Path, checkpoint_dir: Path) -> None:
    """
    Dequantise the GGUF to an fp32 transformers checkpoint.

    transformers' GGUF loader undoes llama.cpp's row permutation of the q and
    k projections, so the checkpoint has the original layout.
    """
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, torch_dtype=torch.float32
    )
    model.save_pretrained(str(checkpoint_dir), safe_serialization=True)


def fix_configs(fields: dict[str, Any], model_dir: Path) -> None:
    """
    Set the special token ids in config.json and generation_config.json.
    """
    ids = special_token_ids(fields)
    config_path = model_dir / "config.json"
    config = json.loads(config_path.read_text("utf-8"))
    config.update(ids)
    config["max_position_embeddings"] = int(fields["llama.context_length"])
    config.pop("_name_or_path", None)
    config.pop("_model_name_or_path", None)
    write_json(config_path, config)
    generation = {
        "bos_token_id": ids["bos_token_id"],
        "eos_token_id": ids["eos_token_id"],
        "pad_token_id": ids["pad_token_id"],
    }
    write_json(model_dir / "generation_config.json", generation)


def export_fp32(
    gguf_path: Path, out_dir: Path, cache_dir: Path, log: Callable[[str], None]
) -> Path:
    """
    Export the fp32 ONNX decoder and the model's JSON files into ``out_dir``.

    Returns the path of ``onnx/model.onnx``. The transformers checkpoint is
    kept under ``cache_dir`` so a rebuild of later variants can reuse it.
    """
    from optimum.exporters.onnx import main_export

    fields = read_gguf_fields(gguf_path)
    checkpoint_dir = cache_dir / "checkpoint"
    if not (checkpoint_dir / "config.json").is_file():
        log(f"Dequantising {gguf_path.name} to an fp32 checkpoint")
        if checkpoint_dir.exists():
            shutil.rmtree(checkpoint_dir)
        partial = cache_dir / "checkpoint.partial"
        if partial.exists():
            shutil.rmtree(partial)
        save_checkpoint(gguf_path, partial)
        write_tokenizer_files(fields, partial)
        fix_configs(fields, partial)
        partial.rename(checkpoint_dir)

    export_dir = cache_dir / "export"
    if export_dir.exists():
        shutil.rmtree(export_dir)
    log("Exporting the fp32 ONNX decoder (about a minute on two cores)")
    main_export(
        str(checkpoint_dir),
        output=str(export_dir),
        task="text-generation-with-past",
        opset=ONNX_OPSET,
        device="cpu",
        do_validation=False,
        local_files_only=True,
    )
    produced = export_dir / "model.onnx"
    if not produced.is_file():
        raise RuntimeError(f"The ONNX export wrote no {str(produced)!r}.")
    if (export_dir / "model.onnx_data").exists():
        raise RuntimeError("The ONNX export wrote external data; expected one file.")

    (out_dir / "onnx").mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "generation_config.json"):
        shutil.copyfile(checkpoint_dir / name, out_dir / name)
    write_tokenizer_files(fields, out_dir)
    target = out_dir / "onnx" / "model.onnx"
    shutil.move(str(produced), str(target))
    shutil.rmtree(export_dir)
    return target
