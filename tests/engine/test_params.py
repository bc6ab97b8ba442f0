import pytest

from django_offload.engine import GenerationParams, GenerationResult

BAD_VALUES = [
    # field, value, the text the message must show
    ("max_new_tokens", 0, "0"),
    ("max_new_tokens", -5, "-5"),
    ("max_new_tokens", 1.5, "1.5"),
    ("max_new_tokens", True, "True"),
    ("max_new_tokens", "10", "'10'"),
    ("temperature", -0.1, "-0.1"),
    ("temperature", float("nan"), "nan"),
    ("temperature", float("inf"), "inf"),
    ("temperature", "hot", "'hot'"),
    ("temperature", None, "None"),
    ("top_k", -1, "-1"),
    ("top_k", 2.0, "2.0"),
    ("top_k", False, "False"),
    ("top_p", 0, "0"),
    ("top_p", 1.01, "1.01"),
    ("top_p", -0.5, "-0.5"),
    ("top_p", float("nan"), "nan"),
    ("seed", -1, "-1"),
    ("seed", 2**32, "4294967296"),
    ("seed", 1.0, "1.0"),
    ("seed", "42", "'42'"),
    ("stop", 7, "7"),
    ("stop", [""], "''"),
    ("stop", ["ok", 3], "3"),
    ("stop", ["x"] * 17, "17"),
    ("stop", ["y" * 257], "257"),
    ("stop", {"a": 1}, "{'a': 1}"),
]


@pytest.mark.parametrize(("field", "value", "shown"), BAD_VALUES)
def test_params_invalid_value_names_field(field, value, shown):
    with pytest.raises(ValueError) as caught:
        GenerationParams(**{field: value})
    assert field in str(caught.value)


@pytest.mark.parametrize(("field", "value", "shown"), BAD_VALUES)
def test_params_invalid_value_shown(field, value, shown):
    with pytest.raises(ValueError) as caught:
        GenerationParams(**{field: value})
    assert shown in str(caught.value)


def test_params_defaults():
    params = GenerationParams()
    assert params.max_new_tokens == 128
    assert params.temperature == 0.0
    assert params.top_k == 0
    assert params.top_p == 1.0
    assert params.seed is None
    assert params.stop == ()
    assert params.greedy


def test_params_single_stop_string_becomes_tuple():
    assert GenerationParams(stop="END").stop == ("END",)


def test_params_stop_list_becomes_tuple():
    assert GenerationParams(stop=["a", "b"]).stop == ("a", "b")


def test_params_integer_numbers_accepted():
    params = GenerationParams(temperature=1, top_p=1, seed=2**32 - 1)
    assert params.temperature == 1.0
    assert isinstance(params.temperature, float)
    assert params.seed == 2**32 - 1
    assert not params.greedy


def test_params_frozen():
    params = GenerationParams()
    with pytest.raises(AttributeError):
        params.max_new_tokens = 5


def test_result_usage_totals():
    result = GenerationResult(
        text="hi",
        token_ids=[5, 6, 2],
        finish_reason="stop",
        prompt_tokens=10,
        completion_tokens=3,
        timings={},
    )
    assert result.usage == {
        "prompt_tokens": 10,
        "completion_tokens": 3,
        "total_tokens": 13,
    }
