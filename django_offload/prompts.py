"""
Rendering and validation of managed prompts.

A template names its variables as ``{{ name }}`` (letters, digits and
underscores, not starting with a digit). Rendering replaces each placeholder
in one pass, so a variable's value that itself contains ``{{ x }}`` is
inserted as plain text and never expanded. Error messages name variables but
never show their values, because values are user data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# Any "{{" that does not start a valid placeholder is a typo in the template.
_OPEN = re.compile(r"\{\{")
ROLES = ("user", "assistant")
MAX_VARIABLE_CHARS = 100_000


def template_variables(text: str) -> list[str]:
    """
    Return the variable names used in ``text``, in order of first use.
    """
    names: list[str] = []
    for match in PLACEHOLDER.finditer(text):
        if match.group(1) not in names:
            names.append(match.group(1))
    return names


def validate_template(text: Any, field: str = "template") -> str:
    """
    Check that ``text`` is a string whose every ``{{`` opens a valid
    placeholder; raise ValueError naming ``field`` otherwise.
    """
    if not isinstance(text, str):
        raise ValueError(f"{field}: expected a string, got {type(text).__name__}.")
    valid_starts = {match.start() for match in PLACEHOLDER.finditer(text)}
    for match in _OPEN.finditer(text):
        if match.start() not in valid_starts:
            snippet = text[match.start() : match.start() + 30]
            raise ValueError(
                f"{field}: invalid placeholder at character {match.start()} "
                f"({snippet!r}); write {{{{ name }}}} with a name made of "
                "letters, digits and underscores."
            )
    return text


def validate_messages(value: Any, field: str = "messages") -> list[dict[str, str]]:
    """
    Check the extra chat messages of a version: a list of
    ``{"role": "user" | "assistant", "content": str}``.
    """
    if not isinstance(value, list):
        raise ValueError(f"{field}: expected a list, got {type(value).__name__}.")
    for index, message in enumerate(value):
        where = f"{field}[{index}]"
        if not isinstance(message, dict):
            raise ValueError(f"{where}: expected an object with role and content.")
        extra = sorted(set(message) - {"role", "content"})
        if extra:
            raise ValueError(f"{where}: unknown keys {extra!r}; use role and content.")
        if message.get("role") not in ROLES:
            raise ValueError(
                f"{where}.role: expected one of {ROLES!r}, got {message.get('role')!r}."
            )
        validate_template(message.get("content"), f"{where}.content")
    return value


def validate_model_variants(
    value: Any, field: str = "model_variants"
) -> dict[str, dict[str, str]]:
    """
    Check per-model overrides: ``{"<model id>": {"template": ..., "system": ...}}``.
    """
    if not isinstance(value, dict):
        raise ValueError(f"{field}: expected an object, got {type(value).__name__}.")
    for model_id, override in value.items():
        where = f"{field}[{model_id!r}]"
        if not isinstance(override, dict):
            raise ValueError(f"{where}: expected an object with template or system.")
        extra = sorted(set(override) - {"template", "system"})
        if extra:
            raise ValueError(
                f"{where}: unknown keys {extra!r}; use template and system."
            )
        for key, text in override.items():
            validate_template(text, f"{where}.{key}")
    return value


def validate_stop(value: Any, field: str = "stop") -> list[str]:
    """
    Check the stop strings: a list of at most 8 non-empty strings.
    """
    if not isinstance(value, list):
        raise ValueError(f"{field}: expected a list of strings.")
    if len(value) > 8:
        raise ValueError(f"{field}: at most 8 stop strings, got {len(value)}.")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise ValueError(f"{field}[{index}]: expected a non-empty string.")
    return value


def _substitute(text: str, variables: Mapping[str, str], where: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise ValueError(
                f"{where} uses the variable {name!r}, which was not passed; "
                f"pass it as variables[{name!r}]."
            )
        return variables[name]

    return PLACEHOLDER.sub(replace, text)


def _clean_variables(variables: Mapping[str, Any]) -> dict[str, str]:
    if not isinstance(variables, Mapping):
        raise TypeError(f"variables must be a mapping, got {type(variables).__name__}.")
    clean: dict[str, str] = {}
    for name, value in variables.items():
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            # The type is shown, never the value: values are user data.
            raise TypeError(
                f"variables[{name!r}] must be a string or a number, "
                f"got {type(value).__name__}."
            )
        text = str(value)
        if len(text) > MAX_VARIABLE_CHARS:
            raise ValueError(
                f"variables[{name!r}] has {len(text)} characters; "
                f"the maximum is {MAX_VARIABLE_CHARS}."
            )
        clean[str(name)] = text
    return clean


def render_prompt(
    version: Any, variables: Mapping[str, Any], model_id: str | None = None
) -> list[dict[str, str]]:
    """
    Render a prompt version into chat messages for ``model_id``.

    ``version`` is a ``PromptVersion`` (or any object with its fields).
    The per-model override in ``version.model_variants[model_id]`` replaces
    the template and the system message when present; ``model_id`` defaults
    to ``version.model_id``. Returns ``[system?, *version.messages, user]``.
    Raises ValueError naming a variable the templates use but ``variables``
    lacks, and TypeError for a value that is not a string or a number.
    Variables the templates do not use are ignored.
    """
    clean = _clean_variables(variables)
    model_id = model_id or version.model_id
    override = (version.model_variants or {}).get(model_id, {})
    template = override.get("template", version.template)
    system = override.get("system", version.system)
    # The label avoids str(version), which needs the related prompt.
    label = f"Prompt version number {version.number}"

    messages: list[dict[str, str]] = []
    if system:
        messages.append(
            {"role": "system", "content": _substitute(system, clean, label)}
        )
    for message in version.messages or []:
        content = _substitute(message["content"], clean, label)
        messages.append({"role": message["role"], "content": content})
    messages.append({"role": "user", "content": _substitute(template, clean, label)})
    return messages
