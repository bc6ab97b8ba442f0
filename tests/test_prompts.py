import pytest

from django_offload.models import PromptVersion
from django_offload.prompts import (
    render_prompt,
    template_variables,
    validate_messages,
    validate_model_variants,
    validate_stop,
    validate_template,
)


def make_version(**fields):
    defaults = {
        "number": 1,
        "template": "Summarise: {{ text }}",
        "system": "You are {{ persona }}.",
        "model_id": "smollm2-135m-instruct",
    }
    defaults.update(fields)
    return PromptVersion(**defaults)


def test_render_prompt_system_then_user():
    version = make_version()
    messages = render_prompt(version, {"text": "hello", "persona": "brief"})
    assert messages == [
        {"role": "system", "content": "You are brief."},
        {"role": "user", "content": "Summarise: hello"},
    ]


def test_render_prompt_extra_messages_in_order():
    version = make_version(
        system="",
        messages=[
            {"role": "user", "content": "Example {{ n }}"},
            {"role": "assistant", "content": "ok"},
        ],
    )
    messages = render_prompt(version, {"text": "t", "n": 3})
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == "Example 3"


def test_render_prompt_model_override():
    version = make_version(
        model_variants={"other-model": {"template": "Short: {{ text }}"}}
    )
    messages = render_prompt(version, {"text": "x", "persona": "p"}, "other-model")
    assert messages[-1]["content"] == "Short: x"
    assert messages[0]["content"] == "You are p."


def test_render_prompt_value_not_expanded():
    version = make_version(system="")
    messages = render_prompt(version, {"text": "{{ persona }}", "persona": "bad"})
    assert messages[-1]["content"] == "Summarise: {{ persona }}"


def test_render_prompt_missing_variable_named():
    version = make_version()
    with pytest.raises(ValueError, match="'persona'"):
        render_prompt(version, {"text": "secret value"})


def test_render_prompt_error_hides_values():
    version = make_version()
    with pytest.raises(TypeError) as caught:
        render_prompt(version, {"text": ["canary-1234"], "persona": "p"})
    assert "canary-1234" not in str(caught.value)
    assert "'text'" in str(caught.value)


def test_template_variables_in_order():
    assert template_variables("{{b}} {{ a }} {{b}}") == ["b", "a"]


def test_validate_template_rejects_bad_placeholder():
    with pytest.raises(ValueError, match="template: invalid placeholder"):
        validate_template("Hello {{ user.name }}")


def test_validate_messages_rejects_role():
    with pytest.raises(ValueError, match=r"messages\[0\]\.role"):
        validate_messages([{"role": "system", "content": "x"}])


def test_validate_model_variants_rejects_key():
    with pytest.raises(ValueError, match="unknown keys"):
        validate_model_variants({"m": {"prompt": "x"}})


def test_validate_stop_rejects_empty_string():
    with pytest.raises(ValueError, match=r"stop\[1\]"):
        validate_stop(["a", ""])
