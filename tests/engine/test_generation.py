"""
Generation loop tests on the tiny decoder, which needs no model store.
"""

import json

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_offload.engine import (
    GenerationParams,
    ModelLoadError,
    TextModel,
    get_text_model,
    registry,
)
from django_offload.engine import decoder as decoder_module

from .tiny_model import WORDS, write_tiny_model

# Greedy decoding after "alpha beta" counts on from "gamma" to the last word,
# then emits the end-of-sequence id 0.
COUNTED = WORDS[WORDS.index("gamma") :]


def run_stream(model, prompt, params):
    stream = model.stream(prompt, params)
    pieces = []
    while True:
        try:
            pieces.append(next(stream))
        except StopIteration as finished:
            return pieces, finished.value


def test_greedy_counts_until_eos(tiny_model):
    result = tiny_model.generate("alpha beta", GenerationParams(max_new_tokens=60))
    assert result.finish_reason == "stop"
    assert result.token_ids == [*range(WORDS.index("gamma"), len(WORDS)), 0]
    assert result.text == " ".join(COUNTED)
    assert result.completion_tokens == len(COUNTED) + 1
    assert result.prompt_tokens == 2


def test_max_new_tokens_finish_length(tiny_model):
    result = tiny_model.generate("alpha", GenerationParams(max_new_tokens=3))
    assert result.finish_reason == "length"
    assert result.text == "beta gamma delta"
    assert result.completion_tokens == 3


def test_stop_string_cut_from_text(tiny_model):
    result = tiny_model.generate("alpha", GenerationParams(stop=["delta"]))
    assert result.finish_reason == "stop"
    assert result.text == "beta gamma "
    assert result.token_ids == [5, 6, 7]


def test_stop_string_across_tokens(tiny_model):
    pieces, result = run_stream(
        tiny_model, "alpha", GenerationParams(stop=["ta gam", "omega"])
    )
    assert result.finish_reason == "stop"
    assert result.text == "be"
    assert pieces == ["be"]


def test_stop_string_not_matched_inside_word(tiny_model):
    # The stop string " eta" must match the word "eta", not the end of "zeta".
    pieces, result = run_stream(tiny_model, "delta", GenerationParams(stop=[" eta"]))
    assert result.text == "epsilon zeta"
    assert "".join(pieces) == "epsilon zeta"


def test_earliest_stop_string_wins(tiny_model):
    result = tiny_model.generate("alpha", GenerationParams(stop=["delta", "gamma"]))
    assert result.text == "beta "


def test_stream_joins_to_text(tiny_model):
    params = GenerationParams(max_new_tokens=12, temperature=1.0, seed=21)
    pieces, result = run_stream(tiny_model, "alpha", params)
    assert "".join(pieces) == result.text
    assert result.text == tiny_model.decode(result.token_ids)


def test_stream_result_equals_generate(tiny_model):
    params = GenerationParams(max_new_tokens=12, temperature=0.7, top_p=0.9, seed=4)
    _, streamed = run_stream(tiny_model, "alpha", params)
    generated = tiny_model.generate("alpha", params)
    assert streamed.token_ids == generated.token_ids
    assert streamed.text == generated.text


def test_seed_reproducible(tiny_model):
    params = GenerationParams(max_new_tokens=20, temperature=1.0, seed=77)
    first = tiny_model.generate("alpha", params)
    second = tiny_model.generate("alpha", params)
    assert first.token_ids == second.token_ids


def test_other_seed_other_tokens(tiny_model):
    first = tiny_model.generate(
        "alpha", GenerationParams(max_new_tokens=20, temperature=1.0, seed=1)
    )
    second = tiny_model.generate(
        "alpha", GenerationParams(max_new_tokens=20, temperature=1.0, seed=2)
    )
    assert first.token_ids != second.token_ids


def test_chat_messages_rendered(tiny_model):
    messages = [{"role": "user", "content": "pi rho"}]
    assert tiny_model.render_chat(messages) == "<|user|> pi rho <|assistant|>"
    assert tiny_model.prompt_ids(messages) == [2, 19, 20, 3]


def test_prompt_fills_context_minus_one(tiny_model):
    ids = [4] * (tiny_model.context_length - 1)
    result = tiny_model.generate(ids, GenerationParams(max_new_tokens=10))
    assert result.finish_reason == "length"
    assert result.completion_tokens == 1


def test_prompt_at_context_length_rejected(tiny_model):
    with pytest.raises(ValueError, match="context length"):
        tiny_model.generate([4] * tiny_model.context_length, GenerationParams())


def test_timings_present(tiny_model):
    result = tiny_model.generate("alpha", GenerationParams(max_new_tokens=5))
    assert result.timings["load_s"] == tiny_model.load_seconds
    assert result.timings["ttft_s"] >= result.timings["prefill_s"] > 0
    assert result.timings["decode_s"] > 0
    assert result.timings["decode_tokens_per_s"] > 0


def test_single_token_rate_zero(tiny_model):
    result = tiny_model.generate("alpha", GenerationParams(max_new_tokens=1))
    assert result.timings["decode_s"] == 0.0
    assert result.timings["decode_tokens_per_s"] == 0.0


def test_chunked_prefill_fills_cache(tiny_model, monkeypatch):
    monkeypatch.setattr(decoder_module, "PREFILL_CHUNK", 3)
    ids = [4, 5, 6, 7, 8, 9, 10]
    logits, cache = tiny_model._decoder.prefill(ids)
    assert int(np.argmax(logits)) == 11
    key = cache[0].numpy()
    assert key.shape == (1, 1, len(ids), 2)
    assert key[0, 0, :, 0].tolist() == ids


def test_logits_one_pass(tiny_model):
    logits = tiny_model.logits([4, 5, 6])
    assert logits.shape == (3, len(WORDS))
    assert np.argmax(logits, axis=-1).tolist() == [5, 6, 7]


def test_manifest_layers_mismatch_rejected(tmp_path):
    directory = write_tiny_model(tmp_path / "tiny")
    manifest = {
        "id": "tiny",
        "context_length": 64,
        "config": {
            "num_layers": 2,
            "num_kv_heads": 1,
            "head_dim": 2,
            "vocab_size": len(WORDS),
            "eos_token_ids": [0],
        },
        "variants": {"fp32": {"file": "onnx/model.onnx"}},
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="num_layers=2"):
        TextModel.load(directory)


def test_manifest_head_dim_mismatch_rejected(tmp_path):
    directory = write_tiny_model(tmp_path / "tiny")
    manifest = {
        "id": "tiny",
        "context_length": 64,
        "config": {
            "num_layers": 1,
            "num_kv_heads": 1,
            "head_dim": 4,
            "vocab_size": len(WORDS),
            "eos_token_ids": [0],
        },
        "variants": {"fp32": {"file": "onnx/model.onnx"}},
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="head_dim=4"):
        TextModel.load(directory)


def write_store(store, variant_entry):
    directory = write_tiny_model(store / "tiny-decoder")
    manifest = {
        "format": 1,
        "id": "tiny-decoder",
        "task": "text-generation",
        "context_length": 64,
        "config": {
            "num_layers": 1,
            "num_kv_heads": 1,
            "head_dim": 2,
            "vocab_size": len(WORDS),
            "eos_token_ids": [0],
        },
        "variants": {"fp32": {"file": "onnx/model.onnx", **variant_entry}},
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def test_registry_loads_servable_variant(tmp_path):
    write_store(tmp_path, {"servable": True, "backends": ["native"]})
    registry.clear()
    with override_settings(OFFLOAD={"MODEL_STORE": str(tmp_path)}):
        model = get_text_model("tiny-decoder")
        assert get_text_model("tiny-decoder") is model
        assert get_text_model("tiny-decoder", "fp32") is model
    registry.clear()
    assert model.variant == "fp32"
    assert model.generate("alpha", GenerationParams(max_new_tokens=1)).text == "beta"


def test_registry_rejects_unservable_model(tmp_path):
    write_store(tmp_path, {"servable": False, "backends": ["native"]})
    with override_settings(OFFLOAD={"MODEL_STORE": str(tmp_path)}):
        with pytest.raises(ImproperlyConfigured, match="no servable variant"):
            get_text_model("tiny-decoder")


def test_registry_setting_overrides_servable(tmp_path):
    write_store(tmp_path, {"servable": False, "backends": ["native"]})
    registry.clear()
    settings = {
        "MODEL_STORE": str(tmp_path),
        "SERVER_VARIANTS": {"tiny-decoder": "fp32"},
    }
    with override_settings(OFFLOAD=settings):
        model = get_text_model("tiny-decoder")
    registry.clear()
    assert model.variant == "fp32"


def test_generation_logs_no_text(tiny_model, caplog):
    with caplog.at_level("DEBUG", logger="django_offload"):
        result = tiny_model.generate("kappa lambda", GenerationParams(max_new_tokens=4))
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert caplog.records
    assert result.text == "mu nu xi omicron"
    assert "kappa lambda" not in logged
    assert result.text not in logged


def test_invalid_prompt_error_hides_text(tiny_model):
    prompt = [4, {"role": "user", "content": "secret canary"}]
    with pytest.raises(ValueError) as caught:
        tiny_model.generate(prompt, GenerationParams())
    assert "prompt[1]" in str(caught.value)
    assert "secret canary" not in str(caught.value)
