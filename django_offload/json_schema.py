"""
The JSON Schema subset that output schemas and ``is_json`` evaluators may use.

The device checks outputs with its own small validator
(``static/django_offload/json_schema.js``). A schema may therefore use only
the keywords both sides implement identically: ``type``, ``properties``,
``required``, ``additionalProperties``, ``enum``, ``const``, ``items``,
``minItems``, ``maxItems``, ``minLength``, ``maxLength``, ``minimum``,
``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``, and the
annotations ``title`` and ``description``. Any other keyword is rejected
when the schema is saved. Instances are checked here with ``jsonschema``
(Draft 2020-12).
"""

from __future__ import annotations

import math
from typing import Any

from jsonschema import Draft202012Validator

TYPE_NAMES = ("array", "boolean", "integer", "null", "number", "object", "string")
COUNT_KEYWORDS = ("minItems", "maxItems", "minLength", "maxLength")
NUMBER_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "enum",
        "const",
        "items",
        "title",
        "description",
        *COUNT_KEYWORDS,
        *NUMBER_KEYWORDS,
    }
)
MAX_DEPTH = 16


def _is_number(value: Any) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
    )


def _check_type(value: Any, path: str) -> None:
    names = value if isinstance(value, list) else [value]
    if not names or any(name not in TYPE_NAMES for name in names):
        raise ValueError(
            f"{path}.type: expected one of {list(TYPE_NAMES)!r} or a list of "
            f"them, got {value!r}."
        )
    if len(set(names)) != len(names):
        raise ValueError(f"{path}.type: duplicate type names in {value!r}.")


def _check_keyword(key: str, value: Any, path: str, depth: int) -> None:
    where = f"{path}.{key}"
    if key == "type":
        _check_type(value, path)
    elif key in ("title", "description"):
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string.")
    elif key == "properties":
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object of schemas.")
        for name, child in value.items():
            _check(child, f"{where}.{name}", depth + 1)
    elif key == "required":
        if (
            not isinstance(value, list)
            or not all(isinstance(name, str) for name in value)
            or len(set(value)) != len(value)
        ):
            raise ValueError(f"{where}: expected a list of distinct strings.")
    elif key == "additionalProperties":
        if not isinstance(value, bool):
            _check(value, where, depth + 1)
    elif key == "enum":
        if not isinstance(value, list) or not value:
            raise ValueError(f"{where}: expected a non-empty list.")
    elif key == "items":
        _check(value, where, depth + 1)
    elif key in COUNT_KEYWORDS:
        # JSON 5.0 is the integer 5 in JavaScript, so a whole float passes.
        whole = _is_number(value) and float(value).is_integer()
        if not whole or value < 0:
            raise ValueError(f"{where}: expected a whole number >= 0, got {value!r}.")
    elif key in NUMBER_KEYWORDS:
        if not _is_number(value):
            raise ValueError(f"{where}: expected a number, got {value!r}.")


def _check(schema: Any, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"{path}: schemas nest deeper than {MAX_DEPTH} levels.")
    if not isinstance(schema, dict):
        raise ValueError(f"{path}: expected a schema object, got {schema!r}.")
    unknown = sorted(set(schema) - KEYWORDS)
    if unknown:
        raise ValueError(
            f"{path}.{unknown[0]}: keyword not supported on devices; use only "
            f"{sorted(KEYWORDS)!r}."
        )
    for key, value in schema.items():
        _check_keyword(key, value, path, depth)


def validate_schema(schema: Any, path: str = "schema") -> dict[str, Any]:
    """
    Check that ``schema`` uses only the supported subset; raise ValueError
    naming the path of the first problem.
    """
    _check(schema, path, 0)
    return schema


def validate_instance(schema: dict[str, Any], instance: Any) -> bool:
    """
    Return whether ``instance`` is valid against ``schema``.
    """
    return Draft202012Validator(schema).is_valid(instance)
