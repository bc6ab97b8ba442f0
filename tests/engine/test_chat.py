import json

import pytest

from django_offload.engine.chat import (
    ChatTemplate,
    TemplateRaisedError,
    validate_messages,
)

# A ChatML template in the style of SmolLM2's tokenizer_config.json.
CHATML = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def test_chat_template_renders_chatml():
    template = ChatTemplate(CHATML)
    text = template.render([{"role": "user", "content": "Hi"}])
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_chat_template_without_generation_prompt():
    template = ChatTemplate(CHATML)
    text = template.render(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ],
        add_generation_prompt=False,
    )
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    )


def test_chat_template_trims_block_newlines():
    source = "{% for m in messages %}\n{{ m['content'] }}\n{% endfor %}"
    text = ChatTemplate(source).render([{"role": "user", "content": "x"}])
    assert text == "x\n"


def test_chat_template_special_tokens_available():
    template = ChatTemplate(
        "{{ bos_token }}{{ messages[0]['content'] }}", {"bos_token": "<s>"}
    )
    assert template.render([{"role": "user", "content": "a"}]) == "<s>a"


def test_chat_template_raise_exception_reported():
    source = (
        "{% if messages[0]['role'] == 'assistant' %}"
        "{{ raise_exception('bad order') }}{% endif %}"
    )
    with pytest.raises(TemplateRaisedError, match="bad order"):
        ChatTemplate(source).render([{"role": "assistant", "content": "x"}])


def test_chat_template_tojson_filter():
    text = ChatTemplate("{{ messages[0] | tojson }}").render(
        [{"role": "user", "content": "é"}]
    )
    assert json.loads(text) == {"role": "user", "content": "é"}


def test_chat_template_sandbox_blocks_mutation():
    source = "{{ messages.append({'role': 'user', 'content': 'x'}) }}"
    with pytest.raises(ValueError, match="failed to render"):
        ChatTemplate(source).render([{"role": "user", "content": "a"}])


def test_chat_template_sandbox_blocks_internals():
    source = "{{ messages.__class__.__mro__ }}"
    with pytest.raises(ValueError, match="unsafe"):
        ChatTemplate(source).render([{"role": "user", "content": "a"}])


def test_chat_template_invalid_syntax_rejected():
    with pytest.raises(ValueError, match="not valid Jinja2"):
        ChatTemplate("{% for %}")


def test_chat_template_empty_rejected():
    with pytest.raises(ValueError, match="non-empty"):
        ChatTemplate("   ")


def test_chat_template_from_tokenizer_config(tmp_path):
    path = tmp_path / "tokenizer_config.json"
    config = {
        "chat_template": CHATML,
        "bos_token": {"content": "<|im_start|>", "special": True},
        "eos_token": "<|im_end|>",
    }
    path.write_text(json.dumps(config))
    template = ChatTemplate.from_tokenizer_config(path)
    assert template.special_tokens == {
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
    }
    assert template.render([{"role": "user", "content": "Hi"}]).endswith(
        "<|im_start|>assistant\n"
    )


def test_chat_template_named_default_chosen(tmp_path):
    path = tmp_path / "tokenizer_config.json"
    config = {
        "chat_template": [
            {"name": "tool_use", "template": "TOOLS"},
            {"name": "default", "template": "CHAT"},
        ]
    }
    path.write_text(json.dumps(config))
    template = ChatTemplate.from_tokenizer_config(path)
    assert template.render([{"role": "user", "content": "x"}]) == "CHAT"


def test_chat_template_missing_in_config(tmp_path):
    path = tmp_path / "tokenizer_config.json"
    path.write_text(json.dumps({"eos_token": "</s>"}))
    with pytest.raises(ValueError, match="no chat_template"):
        ChatTemplate.from_tokenizer_config(path)


@pytest.mark.parametrize(
    ("messages", "fragment"),
    [
        ([], "non-empty list"),
        ("hello", "got str"),
        ([["user", "hi"]], "messages[0] must be a dict"),
        ([{"role": "robot", "content": "hi"}], "messages[0]['role']"),
        ([{"role": "user", "content": 5}], "messages[0]['content']"),
        ([{"role": "user"}], "messages[0]['content']"),
        ([{"role": "user", "content": "x", "name": "a"}], "unknown keys ['name']"),
    ],
)
def test_messages_invalid_rejected(messages, fragment):
    with pytest.raises(ValueError) as caught:
        validate_messages(messages)
    assert fragment in str(caught.value)


def test_messages_error_hides_content():
    with pytest.raises(ValueError) as caught:
        validate_messages([{"role": "user", "content": ["secret canary"]}])
    assert "secret canary" not in str(caught.value)
