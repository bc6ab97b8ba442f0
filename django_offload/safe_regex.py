"""
A small regular-expression dialect that matches in linear time and returns
the same result in Python and in ``static/django_offload/safe_regex.js``.

Python's ``re`` and JavaScript's ``RegExp`` backtrack, so a hostile pattern
can hang either one, and they disagree on ``$``, ``.``, ``\\d``, ``\\s`` and
case folding. Patterns here are parsed by our own grammar and run by a
Thompson NFA simulation (no backtracking), which takes at most
``len(text) * len(program)`` steps. Both files implement the same grammar:

- literals; ``.`` (any character except ``\\n``); ``^`` and ``$`` (start and
  end of the whole text); ``\\b`` and ``\\B`` (ASCII word boundary);
- ``\\d`` = ``[0-9]``, ``\\w`` = ``[A-Za-z0-9_]``, ``\\s`` = ``[\\t\\n\\v\\f\\r ]``
  and their negations ``\\D \\W \\S`` (not inside brackets);
- ``\\n \\t \\r \\f \\v`` and a backslash before any of ``\\^$.|?*+()[]{}/-``;
- bracket classes ``[a-z_]`` and ``[^...]``; groups ``(...)`` and ``(?:...)``;
  alternation ``|``; quantifiers ``* + ? {n} {n,} {n,m}`` (n, m at most 100),
  optionally followed by ``?``, which changes nothing for a yes/no match.

Rejected: back-references, look-around, named groups, inline flags, other
escapes, an unescaped ``]`` or ``}``, and a repeated group that itself
contains a repeat (``(a+)+``), the shape that makes backtracking engines
take exponential time. Case-insensitive matching compares each character,
its one-character lower case and its one-character upper case.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_PATTERN_CHARS = 200
MAX_REPEAT = 100
MAX_PROGRAM = 1000

DIGIT = ((48, 57),)
WORD = ((48, 57), (65, 90), (95, 95), (97, 122))
SPACE = ((9, 13), (32, 32))
SHORTHAND = {"d": DIGIT, "w": WORD, "s": SPACE}
CONTROL = {"n": 10, "t": 9, "r": 13, "f": 12, "v": 11}
ESCAPABLE = set("\\^$.|?*+()[]{}/-")
META = set("\\^$.|?*+()[]{}")


class PatternError(ValueError):
    """
    An invalid or rejected pattern; the message gives the position and reason.
    """


@dataclass
class Node:
    """
    One parsed piece of a pattern.

    ``kind`` is one of char, class, bol, eol, wordb, nwordb, cat, alt or
    repeat. ``repeats`` is true when the node contains a quantifier whose
    maximum is above one.
    """

    kind: str
    value: int = 0
    ranges: tuple[tuple[int, int], ...] = ()
    negated: bool = False
    children: list[Node] = field(default_factory=list)
    low: int = 0
    high: int | None = None
    repeats: bool = False


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.chars = pattern
        self.pos = 0

    def fail(self, problem: str) -> PatternError:
        return PatternError(f"{problem} (at character {self.pos})")

    def peek(self) -> str | None:
        return self.chars[self.pos] if self.pos < len(self.chars) else None

    def take(self) -> str:
        char = self.chars[self.pos]
        self.pos += 1
        return char

    def parse(self) -> Node:
        node = self.alternation()
        if self.pos < len(self.chars):
            raise self.fail("unbalanced ')'")
        return node

    def alternation(self) -> Node:
        branches = [self.concatenation()]
        while self.peek() == "|":
            self.take()
            branches.append(self.concatenation())
        if len(branches) == 1:
            return branches[0]
        return Node("alt", children=branches, repeats=any(b.repeats for b in branches))

    def concatenation(self) -> Node:
        items: list[Node] = []
        while self.peek() not in (None, "|", ")"):
            items.append(self.quantified())
        return Node("cat", children=items, repeats=any(i.repeats for i in items))

    def quantified(self) -> Node:
        start = self.pos
        atom = self.atom()
        bounds = self.quantifier()
        if bounds is None:
            return atom
        low, high = bounds
        if atom.kind in ("bol", "eol", "wordb", "nwordb"):
            self.pos = start
            raise self.fail("quantifier after an anchor")
        if self.peek() == "?":
            self.take()
        if self.peek() in ("*", "+", "?", "{"):
            raise self.fail("quantifier after a quantifier")
        many = high is None or high > 1
        if many and atom.repeats:
            self.pos = start
            raise self.fail(
                "nested quantifier (a repeated group contains a repeat, which "
                "backtracks catastrophically); rewrite it without nesting"
            )
        return Node("repeat", children=[atom], low=low, high=high, repeats=many)

    def quantifier(self) -> tuple[int, int | None] | None:
        char = self.peek()
        if char == "*":
            self.take()
            return 0, None
        if char == "+":
            self.take()
            return 1, None
        if char == "?":
            self.take()
            return 0, 1
        if char == "{":
            return self.braces()
        return None

    def braces(self) -> tuple[int, int | None]:
        self.take()
        low = self.number()
        high: int | None = low
        if self.peek() == ",":
            self.take()
            high = None if self.peek() == "}" else self.number()
        if self.peek() != "}":
            raise self.fail("expected '}' to close the quantifier")
        self.take()
        if high is not None and high < low:
            raise self.fail(f"quantifier {{{low},{high}}} has max below min")
        return low, high

    def number(self) -> int:
        digits = ""
        while (char := self.peek()) is not None and "0" <= char <= "9":
            digits += self.take()
        if not digits:
            raise self.fail("expected a number in the quantifier")
        value = int(digits)
        if value > MAX_REPEAT:
            raise self.fail(f"repeat count {value} is above the maximum {MAX_REPEAT}")
        return value

    def atom(self) -> Node:
        char = self.take()
        if char == "(":
            return self.group()
        if char == "[":
            return self.bracket()
        if char == ".":
            return Node("class", ranges=((10, 10),), negated=True)
        if char == "^":
            return Node("bol")
        if char == "$":
            return Node("eol")
        if char == "\\":
            return self.escape()
        if char in ("*", "+", "?", "{"):
            self.pos -= 1
            raise self.fail(f"nothing to repeat before {char!r}")
        if char in ("]", "}"):
            self.pos -= 1
            raise self.fail(f"unescaped {char!r}; write \\{char}")
        return Node("char", value=ord(char))

    def group(self) -> Node:
        if self.peek() == "?":
            if self.chars[self.pos : self.pos + 2] != "?:":
                raise self.fail("only (?: ...) groups are supported")
            self.pos += 2
        inner = self.alternation()
        if self.peek() != ")":
            raise self.fail("missing ')'")
        self.take()
        return inner

    def escape(self) -> Node:
        if self.peek() is None:
            raise self.fail("pattern ends with a backslash")
        char = self.take()
        if char in SHORTHAND:
            return Node("class", ranges=SHORTHAND[char])
        if char.lower() in SHORTHAND:
            return Node("class", ranges=SHORTHAND[char.lower()], negated=True)
        if char == "b":
            return Node("wordb")
        if char == "B":
            return Node("nwordb")
        return Node("char", value=self.escaped_char(char))

    def escaped_char(self, char: str) -> int:
        if char in CONTROL:
            return CONTROL[char]
        if char in ESCAPABLE:
            return ord(char)
        self.pos -= 1
        raise self.fail(f"unsupported escape \\{char}")

    def bracket(self) -> Node:
        negated = self.peek() == "^"
        if negated:
            self.take()
        ranges: list[tuple[int, int]] = []
        while True:
            char = self.peek()
            if char is None:
                raise self.fail("missing ']'")
            if char == "]":
                if not ranges:
                    raise self.fail("empty brackets; write \\] for a literal ']'")
                self.take()
                break
            ranges.extend(self.bracket_item())
        return Node("class", ranges=tuple(ranges), negated=negated)

    def bracket_item(self) -> list[tuple[int, int]]:
        low = self.bracket_char()
        if isinstance(low, tuple):
            return list(low)
        if self.peek() == "-" and self.chars[self.pos + 1 : self.pos + 2] not in (
            "]",
            "",
        ):
            self.take()
            high = self.bracket_char()
            if isinstance(high, tuple):
                raise self.fail("a range cannot end with a class escape")
            if high < low:
                raise self.fail("range out of order")
            return [(low, high)]
        return [(low, low)]

    def bracket_char(self) -> int | tuple[tuple[int, int], ...]:
        char = self.take()
        if char != "\\":
            if char == "[":
                self.pos -= 1
                raise self.fail("unescaped '[' inside brackets; write \\[")
            return ord(char)
        if self.peek() is None:
            raise self.fail("pattern ends with a backslash")
        char = self.take()
        if char in SHORTHAND:
            return SHORTHAND[char]
        if char.lower() in SHORTHAND:
            self.pos -= 1
            raise self.fail(f"\\{char} is not supported inside brackets")
        return self.escaped_char(char)


def parse(pattern: str) -> Node:
    """
    Parse ``pattern`` into a tree; raise PatternError for what the dialect
    rejects.
    """
    if not isinstance(pattern, str) or not pattern:
        raise PatternError("expected a non-empty string")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(
            f"pattern has {len(pattern)} characters; the maximum is {MAX_PATTERN_CHARS}"
        )
    return _Parser(pattern).parse()


# Program instructions are tuples: ("char", code point), ("class", negated,
# ranges), ("split", a, b), ("jump", a), ("assert", kind) and ("match",).
Program = list[tuple]


def _emit(node: Node, program: Program) -> None:
    if len(program) > MAX_PROGRAM:
        raise PatternError(
            f"pattern expands to more than {MAX_PROGRAM} steps; use smaller "
            "repeat counts"
        )
    if node.kind == "char":
        program.append(("char", node.value))
    elif node.kind == "class":
        program.append(("class", node.negated, node.ranges))
    elif node.kind in ("bol", "eol", "wordb", "nwordb"):
        program.append(("assert", node.kind))
    elif node.kind == "cat":
        for child in node.children:
            _emit(child, program)
    elif node.kind == "alt":
        _emit_alternation(node.children, program)
    else:
        _emit_repeat(node, program)


def _emit_alternation(branches: list[Node], program: Program) -> None:
    jumps = []
    for branch in branches[:-1]:
        split = len(program)
        program.append(("split", split + 1, -1))
        _emit(branch, program)
        jumps.append(len(program))
        program.append(("jump", -1))
        program[split] = ("split", split + 1, len(program))
    _emit(branches[-1], program)
    for jump in jumps:
        program[jump] = ("jump", len(program))


def _emit_repeat(node: Node, program: Program) -> None:
    child = node.children[0]
    for _ in range(node.low):
        _emit(child, program)
    if node.high is None:
        split = len(program)
        program.append(("split", split + 1, -1))
        _emit(child, program)
        program.append(("jump", split))
        program[split] = ("split", split + 1, len(program))
        return
    for _ in range(node.high - node.low):
        split = len(program)
        program.append(("split", split + 1, -1))
        _emit(child, program)
        program[split] = ("split", split + 1, len(program))


def compile_pattern(pattern: str) -> Program:
    """
    Parse and compile ``pattern``; raise PatternError when it is rejected.
    """
    program: Program = []
    _emit(parse(pattern), program)
    program.append(("match",))
    if len(program) > MAX_PROGRAM:
        raise PatternError(
            f"pattern expands to more than {MAX_PROGRAM} steps; use smaller "
            "repeat counts"
        )
    return program


def _single(text: str, fallback: int) -> int:
    return ord(text) if len(text) == 1 else fallback


def _is_word(code: int) -> bool:
    return any(low <= code <= high for low, high in WORD)


def _in_class(code: int, ranges: tuple, negated: bool, fold: bool) -> bool:
    candidates = [code]
    if fold:
        char = chr(code)
        candidates += [_single(char.lower(), code), _single(char.upper(), code)]
    hit = any(low <= c <= high for c in candidates for low, high in ranges)
    return hit != negated


def _char_matches(code: int, expected: int, fold: bool) -> bool:
    if code == expected:
        return True
    if not fold:
        return False
    lower = _single(chr(code).lower(), code)
    return lower == _single(chr(expected).lower(), expected)


def _assertion_holds(kind: str, codes: list[int], pos: int) -> bool:
    if kind == "bol":
        return pos == 0
    if kind == "eol":
        return pos == len(codes)
    before = pos > 0 and _is_word(codes[pos - 1])
    after = pos < len(codes) and _is_word(codes[pos])
    return (before != after) == (kind == "wordb")


def _closure(
    program: Program, starts: list[int], codes: list[int], pos: int
) -> list[int]:
    seen = [False] * len(program)
    stack = list(reversed(starts))
    ready: list[int] = []
    while stack:
        pc = stack.pop()
        if seen[pc]:
            continue
        seen[pc] = True
        op = program[pc]
        if op[0] == "jump":
            stack.append(op[1])
        elif op[0] == "split":
            stack.append(op[2])
            stack.append(op[1])
        elif op[0] == "assert":
            if _assertion_holds(op[1], codes, pos):
                stack.append(pc + 1)
        else:
            ready.append(pc)
    return ready


def search(program: Program, text: str, *, case_sensitive: bool = True) -> bool:
    """
    Return whether the compiled pattern matches anywhere in ``text``.
    """
    codes = [ord(char) for char in text]
    fold = not case_sensitive
    threads: list[int] = []
    for pos in range(len(codes) + 1):
        # Starting a thread at every position makes this a search.
        ready = _closure(program, [*threads, 0], codes, pos)
        if any(program[pc][0] == "match" for pc in ready):
            return True
        if pos == len(codes):
            break
        code = codes[pos]
        threads = []
        for pc in ready:
            op = program[pc]
            if op[0] == "char":
                matched = _char_matches(code, op[1], fold)
            else:
                matched = _in_class(code, op[2], op[1], fold)
            if matched:
                threads.append(pc + 1)
    return False
