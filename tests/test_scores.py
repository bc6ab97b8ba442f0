import math

import pytest

from django_offload.evaluators import validate_scores

SPECS = [
    {"name": "label", "type": "one_of", "labels": ["spam", "ham"]},
    {"name": "words", "type": "word_count", "max": 50},
    {"name": "json", "type": "is_json"},
    {"name": "sim", "type": "similarity", "reference": "x", "min": 0.5},
    {"name": "finish", "type": "finish_reason"},
    {"name": "tps", "type": "tokens_per_second"},
]


def good_scores():
    return [
        {
            "name": "label",
            "data_type": "categorical",
            "value": None,
            "label": "ham",
            "passed": True,
        },
        {
            "name": "words",
            "data_type": "numeric",
            "value": 12,
            "label": None,
            "passed": True,
        },
        {
            "name": "json",
            "data_type": "boolean",
            "value": False,
            "label": None,
            "passed": False,
        },
        {
            "name": "sim",
            "data_type": "numeric",
            "value": 0.25,
            "label": None,
            "passed": False,
        },
        {
            "name": "finish",
            "data_type": "categorical",
            "value": None,
            "label": "length",
            "passed": False,
        },
        {
            "name": "tps",
            "data_type": "numeric",
            "value": None,
            "label": None,
            "passed": None,
        },
    ]


def with_change(index, **changes):
    scores = good_scores()
    scores[index].update(changes)
    return scores


def test_validate_scores_accepts_clean_scores():
    cleaned = validate_scores(SPECS, good_scores())
    assert [score["name"] for score in cleaned] == [spec["name"] for spec in SPECS]
    assert cleaned[1]["value"] == 12.0
    assert isinstance(cleaned[1]["value"], float)


def test_validate_scores_returns_spec_order():
    cleaned = validate_scores(SPECS, list(reversed(good_scores())))
    assert [score["name"] for score in cleaned] == [spec["name"] for spec in SPECS]


@pytest.mark.parametrize(
    ("scores", "where"),
    [
        (
            with_change(0, label="The model output: buy now!"),
            "scores[0] ('label').label",
        ),
        (with_change(0, label=None), "scores[0] ('label').passed"),
        (with_change(0, value=1.0), "scores[0] ('label').value"),
        (with_change(1, value="12"), "scores[1] ('words').value"),
        (with_change(1, value=math.nan), "scores[1] ('words').value"),
        (with_change(1, value=math.inf), "scores[1] ('words').value"),
        (with_change(1, value=-1), "scores[1] ('words').value"),
        (with_change(1, value=2.5), "scores[1] ('words').value"),
        (with_change(1, value=True), "scores[1] ('words').value"),
        (with_change(1, value=80), "scores[1] ('words').passed"),
        (with_change(1, label="twelve"), "scores[1] ('words').label"),
        (with_change(2, value="false"), "scores[2] ('json').value"),
        (with_change(2, passed=True), "scores[2] ('json').passed"),
        (with_change(2, data_type="numeric"), "scores[2] ('json').data_type"),
        (with_change(3, value=1.5), "scores[3] ('sim').value"),
        (with_change(3, passed="no"), "scores[3] ('sim').passed"),
        (with_change(4, label="eos"), "scores[4] ('finish').label"),
        (with_change(5, value=1e9), "scores[5] ('tps').value"),
    ],
)
def test_validate_scores_rejects_bad_field(scores, where):
    with pytest.raises(ValueError) as caught:
        validate_scores(SPECS, scores)
    assert str(caught.value).startswith(where), str(caught.value)


def test_validate_scores_hides_free_text():
    canary = "canary-7f3a secret user text"
    with pytest.raises(ValueError) as caught:
        validate_scores(SPECS, with_change(0, label=canary))
    assert "canary" not in str(caught.value)
    assert "string of" in str(caught.value)


def test_validate_scores_hides_free_text_keys():
    scores = good_scores()
    scores[0]["canary-7f3a"] = 1
    with pytest.raises(ValueError, match="unexpected field") as caught:
        validate_scores(SPECS, scores)
    assert "canary" not in str(caught.value)


def test_validate_scores_unknown_name():
    scores = with_change(0, name="canary-name")
    with pytest.raises(ValueError, match=r"scores\[0\]\.name: unknown") as caught:
        validate_scores(SPECS, scores)
    assert "canary" not in str(caught.value)


def test_validate_scores_missing_field():
    scores = good_scores()
    del scores[2]["passed"]
    with pytest.raises(ValueError, match=r"\('json'\)\.passed: missing"):
        validate_scores(SPECS, scores)


def test_validate_scores_duplicate_name():
    scores = good_scores()
    scores[5] = dict(scores[0])
    with pytest.raises(ValueError, match="duplicate score"):
        validate_scores(SPECS, scores)


def test_validate_scores_missing_score():
    with pytest.raises(ValueError, match="missing the score of 'tps'"):
        validate_scores(SPECS, good_scores()[:-1])


def test_validate_scores_too_many():
    with pytest.raises(ValueError, match="7 scores for 6 evaluators"):
        validate_scores(SPECS, [*good_scores(), good_scores()[0]])


@pytest.mark.parametrize("scores", [None, "[]", {"name": "x"}, [["label"]]])
def test_validate_scores_rejects_shape(scores):
    with pytest.raises(ValueError, match="scores"):
        validate_scores(SPECS, scores)
