"""
Rendering chat messages with a model's own chat template.

The template is the Jinja2 source from the model's ``tokenizer_config.json``.
It runs in Jinja2's immutable sandbox, because it comes from a file, with the
same block options and helpers that Hugging Face tokenizers provide to it.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MESSAGE_ROLES = ("system", "user", "assistant", "tool")


class TemplateRaisedError(ValueError):
    """
    Error raised by a chat template through ``raise_exception``.
    """


def _raise_exception(message: str) -> None:
    raise TemplateRaisedError(f"The chat template rejected the messages: {message}")


def _tojson(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _strftime_now(format: str) -> str:
    return datetime.now().strftime(format)


def _token_text(value: Any) -> str | None:
    # tokenizer_config.json stores a special token as a string or as an
    # AddedToken dict with its text under "content".
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _describe(value: Any) -> str:
    # Names the type and size only: messages carry user text, which must not
    # reach error messages that may be logged.
    if isinstance(value, list):
        return "an empty list" if not value else f"a list of {len(value)}"
    return type(value).__name__


def validate_messages(messages: Any) -> list[dict[str, str]]:
    """
    Check chat messages and return them as plain ``{"role", "content"}`` dicts.
    """
    if not isinstance(messages, list) or not messages:
        raise ValueError(
            f"messages must be a non-empty list of dicts, got {_describe(messages)}."
        )
    checked = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ValueError(
                f"messages[{index}] must be a dict, got {type(message).__name__}."
            )
        unknown = sorted(set(message) - {"role", "content"})
        if unknown:
            raise ValueError(
                f"messages[{index}] has unknown keys {unknown!r}; "
                f"a message has only 'role' and 'content'."
            )
        role = message.get("role")
        if role not in MESSAGE_ROLES:
            raise ValueError(
                f"messages[{index}]['role'] must be one of {MESSAGE_ROLES!r}, "
                f"got {role!r:.100}."
            )
        content = message.get("content")
        if not isinstance(content, str):
            raise ValueError(
                f"messages[{index}]['content'] must be a string, "
                f"got {type(content).__name__}."
            )
        checked.append({"role": role, "content": content})
    return checked


class ChatTemplate:
    """
    A compiled chat template and the special tokens it may refer to.
    """

    def __init__(self, source: str, special_tokens: dict[str, str] | None = None):
        if not isinstance(source, str) or not source.strip():
            raise ValueError(
                f"chat template must be a non-empty string, got {source!r}."
            )
        environment = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False
        )
        environment.filters["tojson"] = _tojson
        environment.globals["raise_exception"] = _raise_exception
        environment.globals["strftime_now"] = _strftime_now
        try:
            self._template = environment.from_string(source)
        except TemplateError as error:
            raise ValueError(f"chat template is not valid Jinja2: {error}") from error
        self.special_tokens = dict(special_tokens or {})

    @classmethod
    def from_tokenizer_config(cls, path: Path) -> ChatTemplate:
        """
        Load the template and special tokens from ``tokenizer_config.json``.
        """
        try:
            config = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ValueError(f"Could not read {str(path)!r}: {error}") from error
        source = config.get("chat_template") if isinstance(config, dict) else None
        if isinstance(source, list):
            # Several named templates: the one named "default" is the chat one.
            named = {
                item.get("name"): item.get("template")
                for item in source
                if isinstance(item, dict)
            }
            source = named.get("default")
        if not isinstance(source, str) or not source.strip():
            raise ValueError(
                f"{str(path)!r} has no chat_template; the model cannot render "
                f"chat messages, pass a prompt string or token ids instead."
            )
        special = {}
        for name in ("bos_token", "eos_token", "unk_token", "pad_token"):
            text = _token_text(config.get(name))
            if text is not None:
                special[name] = text
        return cls(source, special)

    def render(
        self, messages: list[dict[str, str]], *, add_generation_prompt: bool = True
    ) -> str:
        """
        Render validated messages to the prompt text the model was trained on.
        """
        messages = validate_messages(messages)
        try:
            return self._template.render(
                messages=messages,
                add_generation_prompt=bool(add_generation_prompt),
                **self.special_tokens,
            )
        except TemplateRaisedError:
            raise
        except TemplateError as error:
            raise ValueError(f"chat template failed to render: {error}") from error
