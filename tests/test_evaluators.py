import json
import math
from pathlib import Path

import pytest

from django_offload import evaluators
from django_offload.evaluators import evaluate, validate_scores, validate_specs

VECTORS = json.loads(
    (Path(__file__).parent / "data" / "evaluator_vectors.json").read_text("utf-8")
)
CASES = VECTORS["cases"]


def embed_from_table(table):
    def embed(texts):
        return [table[text] for text in texts]

    return embed


def assert_scores_equal(actual, expected):
    assert [score["name"] for score in actual] == [s["name"] for s in expected]
    for got, want in zip(actual, expected, strict=True):
        assert set(got) == set(want), got["name"]
        for field in ("name", "data_type", "label", "passed"):
            assert got[field] == want[field], (got["name"], field)
        if isinstance(want["value"], float) and not isinstance(want["value"], bool):
            assert isinstance(got["value"], float), got["name"]
            assert math.isclose(got["value"], want["value"], abs_tol=1e-12)
        else:
            assert got["value"] == want["value"], (got["name"], "value")
            assert type(got["value"]) is type(want["value"]) or isinstance(
                want["value"], int
            ), (got["name"], "value type")


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_evaluator_vectors(case, monkeypatch):
    if "error" in case:
        with pytest.raises(ValueError) as caught:
            validate_specs(case["specs"])
        message = str(caught.value)
        assert message.startswith(case["error"] + ":"), message
        return
    context = dict(case.get("context", {}))
    if case.get("embeddings") is not None:
        context["embed"] = embed_from_table(case["embeddings"])
    else:
        # No server model either, so the score must record that it could not run.
        monkeypatch.setattr(evaluators, "_server_embed", lambda: None)
    scores = evaluate(case["specs"], case["output"], context)
    assert_scores_equal(scores, case["expected"])


def test_vectors_cover_every_type():
    used = set()
    for case in CASES:
        if "error" not in case:
            used.update(spec["type"] for spec in case["specs"])
    assert set(evaluators.TYPES) <= used


def test_vectors_scores_pass_validation():
    for case in CASES:
        if (
            "error" in case
            or case.get("embeddings") is None
            and any(spec["type"] == "embedding_similarity" for spec in case["specs"])
        ):
            continue
        cleaned = validate_scores(case["specs"], case["expected"])
        assert [score["name"] for score in cleaned] == [
            score["name"] for score in case["expected"]
        ]


def test_evaluate_rejects_non_string_output():
    with pytest.raises(TypeError, match="output must be a string"):
        evaluate([], None)


def test_validate_specs_fills_defaults():
    [spec] = validate_specs([{"name": "r", "type": "regex", "pattern": "a"}])
    assert spec["case_sensitive"] is True
    assert spec["max_input_chars"] == evaluators.DEFAULT_MAX_INPUT_CHARS


def test_regex_hostile_input_bounded_work():
    # (a|aa)*c on a run of a's is exponential for backtracking engines; the
    # NFA visits each program step at most once per character.
    specs = [
        {
            "name": "r",
            "type": "regex",
            "pattern": "^(?:a|aa)*c$",
            "max_input_chars": 10000,
        }
    ]
    [score] = evaluate(specs, "a" * 10000)
    assert score["passed"] is False


@pytest.mark.models
def test_embedding_similarity_server_model(settings):
    pytest.importorskip("django_offload.engine")
    from tests.modelstore_helpers import built_model_dir

    built_model_dir(evaluators.EMBEDDING_MODEL_ID)
    specs = [
        {
            "name": "close",
            "type": "embedding_similarity",
            "reference": "The cat sat on the mat.",
            "min": 0.7,
        },
        {
            "name": "far",
            "type": "embedding_similarity",
            "reference": "Quarterly revenue grew by four percent.",
            "min": 0.7,
        },
    ]
    close, far = evaluate(specs, "A cat is sitting on a mat.")
    assert close["passed"] is True
    assert far["passed"] is False
    assert close["value"] > far["value"]
