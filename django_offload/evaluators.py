"""
Evaluators: checks declared on a prompt version and run on each output.

The same evaluators run on the device (``static/django_offload/evaluators.js``)
and on the server (this module, for server-side fallback). Both follow the
rules in ``docs/evaluation.md`` and pass the shared cases in
``tests/data/evaluator_vectors.json``. Scores coming back from a device are
untrusted: ``validate_scores`` accepts only numbers, booleans and labels
from the evaluator's declared set.

A spec is a dict ``{"name": ..., "type": ..., <options>}``; a score is
``{"name", "data_type", "value", "label", "passed"}``. ``value`` and
``passed`` are None when an evaluator could not run (a missing timing, an
output above the input limit, no embedding model).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from django_offload import safe_regex
from django_offload.json_schema import validate_instance, validate_schema

logger = logging.getLogger(__name__)

MAX_SPECS = 20
MAX_TEXT_CHARS = 2000
MAX_LABELS = 50
MAX_LABEL_CHARS = 100
DEFAULT_MAX_INPUT_CHARS = 4000
MAX_INPUT_CHARS = 10_000
MAX_SIMILARITY_CHARS = 2000
MAX_JSON_DEPTH = 64
MAX_COUNT = 1_000_000
FINISH_REASONS = ("stop", "length")
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
# Whitespace for trimming and word counting, the same set as in the JS file,
# because str.strip() and String.prototype.trim() disagree on a few code
# points.
WHITESPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
WHITESPACE_CHARS = "".join(sorted(WHITESPACE))

BOOLEAN, NUMERIC, CATEGORICAL = "boolean", "numeric", "categorical"

# Data type and allowed options of each evaluator type, with the value range
# a numeric score must fall in.
TYPES: dict[str, dict[str, Any]] = {
    "equals": {"data_type": BOOLEAN, "options": {"value", "case_sensitive"}},
    "one_of": {"data_type": CATEGORICAL, "options": {"labels", "case_sensitive"}},
    "contains": {"data_type": BOOLEAN, "options": {"value", "case_sensitive"}},
    "not_contains": {"data_type": BOOLEAN, "options": {"value", "case_sensitive"}},
    "starts_with": {"data_type": BOOLEAN, "options": {"value", "case_sensitive"}},
    "regex": {
        "data_type": BOOLEAN,
        "options": {"pattern", "case_sensitive", "max_input_chars"},
    },
    "word_count": {
        "data_type": NUMERIC,
        "options": {"min", "max"},
        "range": (0, MAX_COUNT),
    },
    "char_count": {
        "data_type": NUMERIC,
        "options": {"min", "max"},
        "range": (0, MAX_COUNT),
    },
    "is_json": {"data_type": BOOLEAN, "options": {"schema"}},
    "similarity": {
        "data_type": NUMERIC,
        "options": {"reference", "min", "case_sensitive"},
        "range": (0.0, 1.0),
    },
    "embedding_similarity": {
        "data_type": NUMERIC,
        "options": {"reference", "min"},
        "range": (-1.0, 1.0),
    },
    "finish_reason": {"data_type": CATEGORICAL, "options": {"allowed"}},
    "latency_ms": {
        "data_type": NUMERIC,
        "options": {"min", "max"},
        "range": (0.0, 86_400_000.0),
    },
    "ttft_ms": {
        "data_type": NUMERIC,
        "options": {"min", "max"},
        "range": (0.0, 86_400_000.0),
    },
    "tokens_per_second": {
        "data_type": NUMERIC,
        "options": {"min", "max"},
        "range": (0.0, 1_000_000.0),
    },
}
INTEGER_BOUNDS = {"word_count", "char_count"}


# -- Text helpers shared with the JS side -----------------------------------


def _single(text: str, fallback: str) -> str:
    return text if len(text) == 1 else fallback


def fold_case(text: str) -> str:
    """
    Lower-case ``text`` one code point at a time, keeping a code point whose
    lower case is longer than one code point, so JS and Python agree.
    """
    # NOTE: case mappings follow each runtime's Unicode version. Python 3.11
    # (Unicode 14) and Node 20.20 (Unicode 17) disagree on 110 rarely used
    # code points whose case pairs were added later, such as U+019B.
    return "".join(_single(char.lower(), char) for char in text)


def strip_space(text: str) -> str:
    """
    Remove the characters of ``WHITESPACE`` from both ends of ``text``.
    """
    return text.strip(WHITESPACE_CHARS)


def count_words(text: str) -> int:
    """
    Count maximal runs of characters outside ``WHITESPACE``.
    """
    count = 0
    inside = False
    for char in text:
        if char in WHITESPACE:
            inside = False
        elif not inside:
            inside = True
            count += 1
    return count


def edit_similarity(first: str, second: str) -> float:
    """
    Return ``1 - levenshtein(first, second) / max(len)`` over code points;
    two empty strings have similarity 1.
    """
    longest = max(len(first), len(second))
    if longest == 0:
        return 1.0
    previous = list(range(len(second) + 1))
    for i, char in enumerate(first, start=1):
        current = [i]
        for j, other in enumerate(second, start=1):
            cost = 0 if char == other else 1
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            )
        previous = current
    return 1.0 - previous[-1] / longest


def cosine(first: Sequence[float], second: Sequence[float]) -> float:
    """
    Return the cosine similarity of two vectors in float64, summed left to
    right as the JS side does, clamped to [-1, 1].
    """
    if len(first) != len(second) or not first:
        raise ValueError(
            f"embeddings must be non-empty and of equal length, got "
            f"{len(first)} and {len(second)}."
        )
    dot = norm_first = norm_second = 0.0
    for a, b in zip(first, second, strict=True):
        a, b = float(a), float(b)
        dot += a * b
        norm_first += a * a
        norm_second += b * b
    if norm_first == 0.0 or norm_second == 0.0:
        return 0.0
    value = dot / (math.sqrt(norm_first) * math.sqrt(norm_second))
    return min(1.0, max(-1.0, value))


def json_depth_ok(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """
    Return whether brackets outside strings nest at most ``limit`` deep.
    """
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return False
        elif char in "]}":
            depth -= 1
    return True


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(text: str) -> tuple[bool, Any]:
    """
    Parse ``text`` as strict JSON (no NaN or Infinity, nesting at most
    ``MAX_JSON_DEPTH``) after trimming whitespace; return (ok, value).
    """
    text = strip_space(text)
    if not json_depth_ok(text):
        return False, None
    try:
        return True, json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return False, None


# -- Spec validation --------------------------------------------------------


class _Checker:
    def __init__(self, index: int, spec: dict[str, Any]) -> None:
        self.index = index
        self.spec = spec

    def fail(self, field: str, problem: str) -> ValueError:
        return ValueError(f"evaluators[{self.index}].{field}: {problem}")

    def text(self, field: str, *, required: bool = True, empty: bool = False) -> Any:
        value = self.spec.get(field)
        if value is None and not required:
            return None
        if not isinstance(value, str):
            raise self.fail(field, f"expected a string, got {_kind(value)}.")
        if not value and not empty:
            raise self.fail(field, "must not be empty.")
        if len(value) > MAX_TEXT_CHARS:
            raise self.fail(
                field, f"has {len(value)} characters; the maximum is {MAX_TEXT_CHARS}."
            )
        return value

    def flag(self, field: str, default: bool) -> bool:
        value = self.spec.get(field, default)
        if not isinstance(value, bool):
            raise self.fail(field, f"expected true or false, got {value!r}.")
        return value

    def number(
        self, field: str, low: float, high: float, *, integer: bool = False
    ) -> float | int | None:
        value = self.spec.get(field)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(field, f"expected a number, got {value!r}.")
        if not math.isfinite(value) or not low <= value <= high:
            raise self.fail(
                field, f"expected a number in [{low}, {high}], got {value!r}."
            )
        if integer:
            # JSON 5.0 is the integer 5 in JavaScript, so accept it here too.
            if isinstance(value, float) and not value.is_integer():
                raise self.fail(field, f"expected a whole number, got {value!r}.")
            return int(value)
        return float(value)

    def bounds(self, low: float, high: float, integer: bool) -> dict[str, Any]:
        minimum = self.number("min", low, high, integer=integer)
        maximum = self.number("max", low, high, integer=integer)
        if minimum is not None and maximum is not None and minimum > maximum:
            raise self.fail("max", f"{maximum!r} is below min {minimum!r}.")
        return {"min": minimum, "max": maximum}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", str: "a string", list: "a list", dict: "an object"}.get(
        type(value), type(value).__name__
    )


def _check_labels(checker: _Checker, case_sensitive: bool) -> list[str]:
    labels = checker.spec.get("labels")
    if not isinstance(labels, list) or not 1 <= len(labels) <= MAX_LABELS:
        raise checker.fail("labels", f"expected a list of 1 to {MAX_LABELS} strings.")
    seen: set[str] = set()
    for position, label in enumerate(labels):
        if not isinstance(label, str) or not 1 <= len(label) <= MAX_LABEL_CHARS:
            raise checker.fail(
                f"labels[{position}]",
                f"expected a string of 1 to {MAX_LABEL_CHARS} characters.",
            )
        key = label if case_sensitive else fold_case(label)
        if key in seen:
            raise checker.fail(f"labels[{position}]", f"duplicate label {label!r}.")
        seen.add(key)
    return list(labels)


def _check_options(checker: _Checker, kind: str) -> dict[str, Any]:
    spec = checker.spec
    if kind in ("equals", "contains", "not_contains", "starts_with"):
        return {
            "value": checker.text("value", empty=kind == "equals"),
            "case_sensitive": checker.flag("case_sensitive", False),
        }
    if kind == "one_of":
        case_sensitive = checker.flag("case_sensitive", False)
        labels = _check_labels(checker, case_sensitive)
        return {"labels": labels, "case_sensitive": case_sensitive}
    if kind == "regex":
        pattern = checker.text("pattern")
        try:
            safe_regex.compile_pattern(pattern)
        except safe_regex.PatternError as error:
            raise checker.fail("pattern", f"{error}.") from None
        max_input = checker.number("max_input_chars", 1, MAX_INPUT_CHARS, integer=True)
        return {
            "pattern": pattern,
            "case_sensitive": checker.flag("case_sensitive", True),
            "max_input_chars": max_input or DEFAULT_MAX_INPUT_CHARS,
        }
    if kind == "is_json":
        schema = spec.get("schema")
        if schema is not None:
            validate_schema(schema, f"evaluators[{checker.index}].schema")
        return {"schema": schema}
    if kind == "similarity":
        return {
            "reference": checker.text("reference", empty=True),
            "min": checker.number("min", 0.0, 1.0),
            "case_sensitive": checker.flag("case_sensitive", False),
        }
    if kind == "embedding_similarity":
        return {
            "reference": checker.text("reference"),
            "min": checker.number("min", -1.0, 1.0),
        }
    if kind == "finish_reason":
        allowed = spec.get("allowed", ["stop"])
        if (
            not isinstance(allowed, list)
            or not allowed
            or any(item not in FINISH_REASONS for item in allowed)
            or len(set(allowed)) != len(allowed)
        ):
            raise checker.fail(
                "allowed",
                f"expected a non-empty list of distinct values from "
                f"{list(FINISH_REASONS)!r}, got {allowed!r}.",
            )
        return {"allowed": list(allowed)}
    low, high = TYPES[kind]["range"]
    return checker.bounds(low, high, kind in INTEGER_BOUNDS)


def validate_specs(specs: Any) -> list[dict[str, Any]]:
    """
    Validate a list of evaluator specs and return them normalised, with every
    option present and defaults filled in.

    Raises ValueError whose message starts with ``evaluators[<index>].<field>``.
    """
    if not isinstance(specs, list):
        raise ValueError(f"evaluators: expected a list, got {_kind(specs)}.")
    if len(specs) > MAX_SPECS:
        raise ValueError(
            f"evaluators: {len(specs)} evaluators; the maximum is {MAX_SPECS}."
        )
    names: set[str] = set()
    normalised = []
    for index, spec in enumerate(specs):
        if not isinstance(spec, dict):
            raise ValueError(
                f"evaluators[{index}]: expected an object, got {_kind(spec)}."
            )
        checker = _Checker(index, spec)
        name = spec.get("name")
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise checker.fail(
                "name",
                f"expected 1 to 100 letters, digits, '_', '.' or '-', got {name!r}.",
            )
        if name in names:
            raise checker.fail("name", f"duplicate name {name!r}.")
        names.add(name)
        kind = spec.get("type")
        if not isinstance(kind, str) or kind not in TYPES:
            raise checker.fail(
                "type", f"unknown type {kind!r}; expected one of {sorted(TYPES)!r}."
            )
        unknown = sorted(set(spec) - {"name", "type"} - TYPES[kind]["options"])
        if unknown:
            raise checker.fail(
                unknown[0],
                f"unknown option for {kind}; the options are "
                f"{sorted(TYPES[kind]['options'])!r}.",
            )
        options = _check_options(checker, kind)
        normalised.append({"name": name, "type": kind, **options})
    return normalised


# -- Evaluation -------------------------------------------------------------


def _score(
    spec: dict[str, Any],
    value: float | bool | None = None,
    label: str | None = None,
    passed: bool | None = None,
) -> dict[str, Any]:
    return {
        "name": spec["name"],
        "data_type": TYPES[spec["type"]]["data_type"],
        "value": value,
        "label": label,
        "passed": passed,
    }


def expected_passed(spec: dict[str, Any], value: Any, label: Any) -> bool | None:
    """
    Return the ``passed`` a score must carry for its value or label, for
    numeric and categorical evaluators.
    """
    kind = spec["type"]
    if kind == "one_of":
        return label is not None
    if kind == "finish_reason":
        return None if label is None else label in spec["allowed"]
    if value is None:
        return None
    minimum = spec.get("min")
    maximum = spec.get("max")
    if minimum is None and maximum is None:
        return None
    return (minimum is None or value >= minimum) and (
        maximum is None or value <= maximum
    )


def _numeric(spec: dict[str, Any], value: float | int | None) -> dict[str, Any]:
    if value is not None:
        value = float(value)
    return _score(spec, value, None, expected_passed(spec, value, None))


def _boolean(spec: dict[str, Any], passed: bool | None) -> dict[str, Any]:
    return _score(spec, passed, None, passed)


def _compare_text(spec: dict[str, Any], output: str) -> bool:
    expected = spec["value"]
    if not spec["case_sensitive"]:
        output, expected = fold_case(output), fold_case(expected)
    kind = spec["type"]
    if kind == "equals":
        return strip_space(output) == strip_space(expected)
    if kind == "starts_with":
        return strip_space(output).startswith(expected)
    if kind == "contains":
        return expected in output
    return expected not in output


def _one_of(spec: dict[str, Any], output: str) -> dict[str, Any]:
    answer = strip_space(output)
    if not spec["case_sensitive"]:
        answer = fold_case(answer)
    for label in spec["labels"]:
        key = label if spec["case_sensitive"] else fold_case(label)
        if answer == key:
            return _score(spec, None, label, True)
    return _score(spec, None, None, False)


def _regex(spec: dict[str, Any], output: str) -> dict[str, Any]:
    if len(output) > spec["max_input_chars"]:
        return _boolean(spec, None)
    program = _compiled(spec["pattern"])
    found = safe_regex.search(program, output, case_sensitive=spec["case_sensitive"])
    return _boolean(spec, found)


@cache
def _compiled(pattern: str) -> safe_regex.Program:
    return safe_regex.compile_pattern(pattern)


def _is_json(spec: dict[str, Any], output: str) -> dict[str, Any]:
    ok, value = parse_json(output)
    if ok and spec["schema"] is not None:
        ok = validate_instance(spec["schema"], value)
    return _boolean(spec, ok)


def _similarity(spec: dict[str, Any], output: str) -> dict[str, Any]:
    if len(output) > MAX_SIMILARITY_CHARS:
        return _numeric(spec, None)
    reference = spec["reference"]
    if not spec["case_sensitive"]:
        output, reference = fold_case(output), fold_case(reference)
    return _numeric(spec, edit_similarity(strip_space(output), strip_space(reference)))


def _embedding_similarity(
    spec: dict[str, Any], output: str, embed: Callable | None
) -> dict[str, Any]:
    embed = embed or _server_embed()
    if embed is None:
        return _numeric(spec, None)
    try:
        vectors = embed([output, spec["reference"]])
        value = cosine(list(vectors[0]), list(vectors[1]))
    except (ValueError, RuntimeError, TypeError, IndexError) as error:
        logger.warning(
            "Embedding for evaluator %s failed: %s", spec["name"], type(error).__name__
        )
        return _numeric(spec, None)
    return _numeric(spec, value)


EMBEDDING_MODEL_ID = "all-minilm-l6-v2"


def _load_embedding_model() -> Any:
    # The engine's registry loads the model once per process and picks the
    # variant from OFFLOAD['SERVER_VARIANTS'] or the manifest.
    from django_offload.engine import get_embedding_model

    return get_embedding_model(EMBEDDING_MODEL_ID)


def _server_embed() -> Callable | None:
    """
    Return the server's embedding function, or None when the embedding model
    cannot be loaded (logged once per process).
    """
    try:
        model = _load_embedding_model()
    except Exception as error:  # noqa: BLE001 - any load failure means "skip"
        if not getattr(_server_embed, "warned", False):
            logger.warning(
                "Server embedding model unavailable, embedding_similarity "
                "scores are skipped: %s",
                error,
            )
            _server_embed.warned = True  # type: ignore[attr-defined]
        return None
    return model.embed


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _evaluate_one(
    spec: dict[str, Any], output: str, context: dict[str, Any]
) -> dict[str, Any]:
    kind = spec["type"]
    if kind in ("equals", "contains", "not_contains", "starts_with"):
        return _boolean(spec, _compare_text(spec, output))
    if kind == "one_of":
        return _one_of(spec, output)
    if kind == "regex":
        return _regex(spec, output)
    if kind == "word_count":
        return _numeric(spec, count_words(output))
    if kind == "char_count":
        return _numeric(spec, len(output))
    if kind == "is_json":
        return _is_json(spec, output)
    if kind == "similarity":
        return _similarity(spec, output)
    if kind == "embedding_similarity":
        return _embedding_similarity(spec, output, context.get("embed"))
    if kind == "finish_reason":
        reason = context.get("finish_reason")
        label = reason if reason in FINISH_REASONS else None
        return _score(spec, None, label, expected_passed(spec, None, label))
    return _numeric(spec, _finite(context.get(kind)))


def evaluate(
    specs: Any, output: str, context: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """
    Run every evaluator in ``specs`` on ``output`` and return one score per
    spec, in order.

    ``context`` may hold ``finish_reason``, ``latency_ms``, ``ttft_ms``,
    ``tokens_per_second`` and ``embed`` (a callable taking a list of texts
    and returning one vector per text). Without ``embed``, embedding
    similarity uses the server's all-MiniLM-L6-v2 from the model store.
    Raises ValueError for invalid specs, never for the output's content.
    """
    if not isinstance(output, str):
        raise TypeError(f"output must be a string, got {type(output).__name__}.")
    context = context or {}
    return [_evaluate_one(spec, output, context) for spec in validate_specs(specs)]


# -- Score validation (device input) ----------------------------------------

SCORE_FIELDS = ("name", "data_type", "value", "label", "passed")


def _describe(value: Any) -> str:
    # Strings may be user text, so only their length is shown.
    if isinstance(value, str):
        return f"a string of {len(value)} characters"
    if isinstance(value, int | float | bool) or value is None:
        return repr(value)
    return _kind(value)


def _check_score(
    spec: dict[str, Any], score: dict[str, Any], where: str
) -> dict[str, Any]:
    def fail(field: str, problem: str) -> ValueError:
        return ValueError(f"{where}.{field}: {problem}")

    data_type = TYPES[spec["type"]]["data_type"]
    if score["data_type"] != data_type:
        raise fail(
            "data_type", f"expected {data_type!r}, got {_describe(score['data_type'])}."
        )
    value, label, passed = score["value"], score["label"], score["passed"]
    if passed is not None and not isinstance(passed, bool):
        raise fail("passed", f"expected true, false or null, got {_describe(passed)}.")

    if data_type == BOOLEAN:
        if value is not None and not isinstance(value, bool):
            raise fail(
                "value", f"expected true, false or null, got {_describe(value)}."
            )
        if label is not None:
            raise fail("label", f"expected null, got {_describe(label)}.")
        if passed is not value:
            raise fail("passed", f"must equal value {value!r}, got {passed!r}.")
        return {**score}

    if data_type == CATEGORICAL:
        if value is not None:
            raise fail("value", f"expected null, got {_describe(value)}.")
        declared = spec["labels"] if spec["type"] == "one_of" else list(FINISH_REASONS)
        if label is not None and label not in declared:
            raise fail(
                "label",
                f"expected one of {declared!r} or null, got {_describe(label)}.",
            )
    else:
        if label is not None:
            raise fail("label", f"expected null, got {_describe(label)}.")
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise fail(
                    "value", f"expected a number or null, got {_describe(value)}."
                )
            low, high = TYPES[spec["type"]]["range"]
            if not math.isfinite(value) or not low <= value <= high:
                raise fail(
                    "value", f"expected a number in [{low}, {high}], got {value!r}."
                )
            if spec["type"] in INTEGER_BOUNDS and not float(value).is_integer():
                raise fail("value", f"expected a whole number, got {value!r}.")
            value = float(value)
    expected = expected_passed(spec, value, label)
    if passed is not expected:
        raise fail("passed", f"expected {expected!r} for this value, got {passed!r}.")
    return {**score, "value": value}


def validate_scores(specs: Any, scores: Any) -> list[dict[str, Any]]:
    """
    Validate scores sent by a device against the version's evaluator specs
    and return them cleaned, in spec order.

    Every spec needs exactly one score. A ValueError names the score and
    field. It is raised for an unknown or duplicate name, a missing or extra
    field, or a wrong data type. It is also raised for a NaN, an infinite or
    out-of-range number, a label outside the declared set, a ``passed`` that
    contradicts the value, and any other text. Messages never quote a string
    the device sent.
    """
    specs = validate_specs(specs)
    by_name = {spec["name"]: spec for spec in specs}
    if not isinstance(scores, list):
        raise ValueError(f"scores: expected a list, got {_kind(scores)}.")
    if len(scores) > len(specs):
        raise ValueError(f"scores: {len(scores)} scores for {len(specs)} evaluators.")
    clean: dict[str, dict[str, Any]] = {}
    for index, score in enumerate(scores):
        where = f"scores[{index}]"
        if not isinstance(score, dict):
            raise ValueError(f"{where}: expected an object, got {_kind(score)}.")
        name = score.get("name")
        if not isinstance(name, str) or name not in by_name:
            raise ValueError(f"{where}.name: unknown evaluator {_describe(name)}.")
        where = f"scores[{index}] ({name!r})"
        if name in clean:
            raise ValueError(f"{where}.name: duplicate score.")
        missing = [field for field in SCORE_FIELDS if field not in score]
        if missing:
            raise ValueError(f"{where}.{missing[0]}: missing.")
        extra = [key for key in score if key not in SCORE_FIELDS]
        if extra:
            # Field names may carry user text, so only their number is shown.
            raise ValueError(
                f"{where}: {len(extra)} unexpected field(s); a score has exactly "
                f"{list(SCORE_FIELDS)!r}."
            )
        clean[name] = _check_score(by_name[name], score, where)
    missing_names = [name for name in by_name if name not in clean]
    if missing_names:
        raise ValueError(f"scores: missing the score of {missing_names[0]!r}.")
    return [clean[spec["name"]] for spec in specs]
