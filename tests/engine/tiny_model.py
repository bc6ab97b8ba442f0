"""
A tiny decoder model written to a folder, so the generation loop runs through
real onnxruntime and tokenizers objects without the model store.

The graph has the optimum layout with one layer. Its logits favour the next
word of the vocabulary in order (``(id + 1) % size``), 2.0 against 0.0 for all
other ids, so greedy decoding counts upwards and wraps to the end-of-sequence
id 0, while sampling at temperature 1 still varies.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx
from onnx import TensorProto, helper
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

WORDS = ["<eos>", "<bos>", "<|user|>", "<|assistant|>"] + [
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta",
    "iota", "kappa", "lambda", "mu", "nu", "xi", "omicron", "pi",
    "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega",
    "café", "naïve", "日本",
]  # fmt: skip
VOCAB = {word: index for index, word in enumerate(WORDS)}
HEAD_DIM = 2
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|> ' }}"
    "{{ message['content'] }}{% endfor %}"
    "{% if add_generation_prompt %}{{ ' <|assistant|>' }}{% endif %}"
)


def next_word(word: str) -> str:
    """
    Return the word the tiny model predicts greedily after ``word``.
    """
    return WORDS[(VOCAB[word] + 1) % len(WORDS)]


def _graph() -> onnx.ModelProto:
    size = len(WORDS)
    past_shape = [1, 1, "past", HEAD_DIM]
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "seq"]),
        helper.make_tensor_value_info(
            "attention_mask", TensorProto.INT64, [1, "total"]
        ),
        helper.make_tensor_value_info("position_ids", TensorProto.INT64, [1, "seq"]),
        helper.make_tensor_value_info(
            "past_key_values.0.key", TensorProto.FLOAT, past_shape
        ),
        helper.make_tensor_value_info(
            "past_key_values.0.value", TensorProto.FLOAT, past_shape
        ),
    ]
    present_shape = [1, 1, "present", HEAD_DIM]
    outputs = [
        helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, "seq", size]),
        helper.make_tensor_value_info(
            "present.0.key", TensorProto.FLOAT, present_shape
        ),
        helper.make_tensor_value_info(
            "present.0.value", TensorProto.FLOAT, present_shape
        ),
    ]
    constants = [
        helper.make_tensor("one", TensorProto.INT64, [], [1]),
        helper.make_tensor("size", TensorProto.INT64, [], [size]),
        helper.make_tensor("depth", TensorProto.INT64, [1], [size]),
        helper.make_tensor("on_off", TensorProto.FLOAT, [2], [0.0, 2.0]),
        helper.make_tensor("cache_axes", TensorProto.INT64, [2], [1, 3]),
    ]
    nodes = [
        helper.make_node("Add", ["input_ids", "one"], ["plus_one"]),
        helper.make_node("Mod", ["plus_one", "size"], ["next_ids"]),
        helper.make_node("OneHot", ["next_ids", "depth", "on_off"], ["logits"]),
        # The cache stores each position's id in both head_dim slots.
        helper.make_node("Cast", ["input_ids"], ["ids_float"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["ids_float", "cache_axes"], ["entry"]),
        helper.make_node("Concat", ["entry", "entry"], ["new_cache"], axis=3),
        helper.make_node(
            "Concat", ["past_key_values.0.key", "new_cache"], ["present.0.key"], axis=2
        ),
        helper.make_node(
            "Concat",
            ["past_key_values.0.value", "new_cache"],
            ["present.0.value"],
            axis=2,
        ),
    ]
    graph = helper.make_graph(nodes, "tiny_decoder", inputs, outputs, constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def _tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(models.WordLevel(VOCAB, unk_token="<eos>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    tokenizer.add_special_tokens(WORDS[:4])
    return tokenizer


def write_tiny_model(directory: Path, *, context_length: int = 64) -> Path:
    """
    Write the tiny model's config, tokenizer and ONNX graph to ``directory``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "num_hidden_layers": 1,
        "num_attention_heads": 1,
        "num_key_value_heads": 1,
        "head_dim": HEAD_DIM,
        "hidden_size": HEAD_DIM,
        "vocab_size": len(WORDS),
        "eos_token_id": 0,
        "max_position_embeddings": context_length,
    }
    (directory / "config.json").write_text(json.dumps(config))
    tokenizer_config = {"chat_template": CHAT_TEMPLATE, "eos_token": "<eos>"}
    (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    _tokenizer().save(str(directory / "tokenizer.json"))
    (directory / "onnx").mkdir(exist_ok=True)
    onnx.save(_graph(), str(directory / "onnx" / "model.onnx"))
    return directory
