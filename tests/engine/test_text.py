import json
import logging
from pathlib import Path

import numpy as np
import pytest

from django_offload.engine import GenerationParams, TextModel

from .conftest import TEXT_MODEL, store_model_dir

pytestmark = pytest.mark.models

REFERENCE = json.loads(
    (Path(__file__).parent.parent / "data" / "smollm2_reference.json").read_text()
)
CASES = REFERENCE["cases"]
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def run_stream(model, prompt, params):
    """
    Collect a stream's pieces and the GenerationResult it returns.
    """
    stream = model.stream(prompt, params)
    pieces = []
    while True:
        try:
            pieces.append(next(stream))
        except StopIteration as finished:
            return pieces, finished.value


@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_greedy_fp32_matches_reference(text_model, case):
    result = text_model.generate(
        case["prompt_ids"],
        GenerationParams(max_new_tokens=REFERENCE["generation"]["max_new_tokens"]),
    )
    assert result.token_ids == case["output_ids"]


@pytest.mark.parametrize("variant", ["q4", "q4f"])
def test_greedy_quantised_matches_reference(variant):
    model = TextModel.load(store_model_dir(TEXT_MODEL, variant), variant)
    max_new_tokens = REFERENCE["generation"]["max_new_tokens"]
    for case in CASES:
        result = model.generate(
            case["prompt_ids"], GenerationParams(max_new_tokens=max_new_tokens)
        )
        assert result.token_ids == case["output_ids"], case["messages"]


@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_chat_prompt_ids_match_reference(text_model, case):
    assert text_model.prompt_ids(case["messages"]) == case["prompt_ids"]


def test_finish_reason_stop_on_eos(text_model):
    case = next(c for c in CASES if c["output_ids"][-1] in text_model.eos_token_ids)
    result = text_model.generate(case["prompt_ids"], GenerationParams())
    assert result.finish_reason == "stop"
    assert result.token_ids[-1] in text_model.eos_token_ids
    assert result.text == text_model.decode(result.token_ids)


def test_max_new_tokens_gives_length(text_model):
    result = text_model.generate(QUESTION, GenerationParams(max_new_tokens=3))
    assert result.finish_reason == "length"
    assert result.completion_tokens == 3
    assert len(result.token_ids) == 3


def test_usage_counts_tokens(text_model):
    case = CASES[0]
    result = text_model.generate(case["messages"], GenerationParams())
    assert result.prompt_tokens == len(case["prompt_ids"])
    assert result.completion_tokens == len(result.token_ids)
    assert result.usage["total_tokens"] == (
        result.prompt_tokens + result.completion_tokens
    )


def test_text_prompt_equals_chat_prompt(text_model):
    rendered = text_model.render_chat(QUESTION)
    from_text = text_model.generate(rendered, GenerationParams(max_new_tokens=8))
    from_chat = text_model.generate(QUESTION, GenerationParams(max_new_tokens=8))
    assert from_text.token_ids == from_chat.token_ids


def test_stop_string_cuts_text(text_model):
    full = text_model.generate(QUESTION, GenerationParams())
    assert "Paris" in full.text
    result = text_model.generate(QUESTION, GenerationParams(stop=["Paris"]))
    assert result.finish_reason == "stop"
    assert result.text == full.text[: full.text.index("Paris")]
    assert len(result.token_ids) < len(full.token_ids)


def test_stop_string_never_streamed(text_model):
    full = text_model.generate(QUESTION, GenerationParams())
    pieces, result = run_stream(text_model, QUESTION, GenerationParams(stop=["Paris"]))
    # Any streamed part of "Paris" would show up after the cut.
    assert "".join(pieces) == full.text[: full.text.index("Paris")]


def test_stream_pieces_join_to_text(text_model):
    params = GenerationParams(max_new_tokens=40, temperature=0.8, seed=11)
    pieces, result = run_stream(text_model, CASES[1]["messages"], params)
    assert len(pieces) > 1
    assert "".join(pieces) == result.text
    assert result.text == text_model.decode(result.token_ids)


def test_stream_matches_generate(text_model):
    params = GenerationParams(max_new_tokens=24, temperature=0.9, top_k=40, seed=5)
    _, streamed = run_stream(text_model, QUESTION, params)
    generated = text_model.generate(QUESTION, params)
    assert streamed.token_ids == generated.token_ids
    assert streamed.text == generated.text


def test_sampling_same_seed_reproducible(text_model):
    params = GenerationParams(max_new_tokens=24, temperature=1.0, top_p=0.95, seed=42)
    first = text_model.generate(CASES[1]["messages"], params)
    second = text_model.generate(CASES[1]["messages"], params)
    assert first.token_ids == second.token_ids


def test_sampling_other_seed_differs(text_model):
    prompt = CASES[1]["messages"]
    outputs = {
        tuple(
            text_model.generate(
                prompt,
                GenerationParams(max_new_tokens=24, temperature=1.0, seed=seed),
            ).token_ids
        )
        for seed in (1, 2, 3)
    }
    assert len(outputs) > 1


def test_sampling_top_k_one_is_greedy(text_model):
    case = CASES[2]
    params = GenerationParams(max_new_tokens=16, temperature=1.5, top_k=1, seed=9)
    result = text_model.generate(case["prompt_ids"], params)
    assert result.token_ids == case["output_ids"][:16]


def test_logits_agree_with_cached_decoding(text_model):
    case = CASES[1]
    ids = case["prompt_ids"] + case["output_ids"]
    logits = text_model.logits(ids[:-1])
    assert logits.shape == (len(ids) - 1, text_model.vocab_size)
    predicted = np.argmax(logits[len(case["prompt_ids"]) - 1 :], axis=-1)
    assert predicted.tolist() == case["output_ids"]


def test_timings_reported(text_model):
    result = text_model.generate(QUESTION, GenerationParams(max_new_tokens=6))
    assert set(result.timings) == {
        "load_s",
        "prefill_s",
        "ttft_s",
        "decode_s",
        "decode_tokens_per_s",
    }
    assert result.timings["load_s"] == text_model.load_seconds
    assert result.timings["ttft_s"] >= result.timings["prefill_s"] > 0
    assert result.timings["decode_tokens_per_s"] > 0


def test_prompt_longer_than_context_rejected(text_model):
    ids = [42] * text_model.context_length
    with pytest.raises(ValueError, match="context length"):
        text_model.generate(ids, GenerationParams())


@pytest.mark.parametrize(
    ("prompt", "fragment"),
    [
        ("", "prompt is empty"),
        ([], "prompt"),
        ([1, -3], "prompt[1]"),
        ([1, 49152], "prompt[1]"),
        ([1, "2"], "prompt[1]"),
        (42, "prompt must be"),
        ([{"role": "user", "content": 3}], "messages[0]['content']"),
    ],
)
def test_invalid_prompt_rejected(text_model, prompt, fragment):
    with pytest.raises(ValueError) as caught:
        text_model.stream(prompt, GenerationParams())
    assert fragment in str(caught.value)


def test_params_type_checked(text_model):
    with pytest.raises(ValueError, match="params"):
        text_model.generate(QUESTION, {"max_new_tokens": 4})


def test_generation_logs_no_text(text_model, caplog):
    canary = "zebra-canary-4417"
    messages = [{"role": "user", "content": f"Repeat after me: {canary}"}]
    with caplog.at_level(logging.DEBUG, logger="django_offload"):
        result = text_model.generate(messages, GenerationParams(max_new_tokens=16))
    assert caplog.records
    assert result.text
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert canary not in logged
    assert result.text not in logged


def test_load_unknown_variant_rejected():
    directory = store_model_dir(TEXT_MODEL)
    with pytest.raises(ValueError, match="variant must be one of"):
        TextModel.load(directory, "int3")


def test_long_prompt_prefilled_in_chunks(text_model):
    from django_offload.engine.decoder import PREFILL_CHUNK

    text = " ".join(f"Item {number} is on the list." for number in range(80))
    ids = text_model.encode(text)
    assert len(ids) > PREFILL_CHUNK
    expected = int(np.argmax(text_model.logits(ids)[-1]))
    result = text_model.generate(ids, GenerationParams(max_new_tokens=1))
    assert result.token_ids == [expected]
