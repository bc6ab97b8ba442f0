/**
 * @file A small regular-expression dialect that matches in linear time and
 * returns the same result as `django_offload/safe_regex.py`.
 *
 * `RegExp` backtracks, so a hostile pattern could hang the worker, and its
 * `$`, `.`, `\d`, `\s` and case folding differ from Python's. Patterns are
 * parsed by our own grammar (documented in the Python module and in
 * docs/evaluation.md) and run by a Thompson NFA simulation that takes at most
 * `text length * program length` steps. Strings are handled as code points.
 * @module safe_regex
 */

export const MAX_PATTERN_CHARS = 200;
export const MAX_REPEAT = 100;
export const MAX_PROGRAM = 1000;

const DIGIT = [[48, 57]];
const WORD = [[48, 57], [65, 90], [95, 95], [97, 122]];
const SPACE = [[9, 13], [32, 32]];
const SHORTHAND = { d: DIGIT, w: WORD, s: SPACE };
const CONTROL = { n: 10, t: 9, r: 13, f: 12, v: 11 };
const ESCAPABLE = new Set("\\^$.|?*+()[]{}/-");
const ANCHORS = new Set(["bol", "eol", "wordb", "nwordb"]);

/** An invalid or rejected pattern; the message gives the position and reason. */
export class PatternError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "PatternError";
  }
}

class Parser {
  /** @param {string} pattern */
  constructor(pattern) {
    this.chars = Array.from(pattern);
    this.pos = 0;
  }

  fail(problem) {
    return new PatternError(`${problem} (at character ${this.pos})`);
  }

  peek() {
    return this.pos < this.chars.length ? this.chars[this.pos] : null;
  }

  take() {
    return this.chars[this.pos++];
  }

  parse() {
    const node = this.alternation();
    if (this.pos < this.chars.length) throw this.fail("unbalanced ')'");
    return node;
  }

  alternation() {
    const branches = [this.concatenation()];
    while (this.peek() === "|") {
      this.take();
      branches.push(this.concatenation());
    }
    if (branches.length === 1) return branches[0];
    return { kind: "alt", children: branches, repeats: branches.some((b) => b.repeats) };
  }

  concatenation() {
    const items = [];
    while (![null, "|", ")"].includes(this.peek())) items.push(this.quantified());
    return { kind: "cat", children: items, repeats: items.some((i) => i.repeats) };
  }

  quantified() {
    const start = this.pos;
    const atom = this.atom();
    const bounds = this.quantifier();
    if (bounds === null) return atom;
    const [low, high] = bounds;
    if (ANCHORS.has(atom.kind)) {
      this.pos = start;
      throw this.fail("quantifier after an anchor");
    }
    if (this.peek() === "?") this.take();
    if (["*", "+", "?", "{"].includes(this.peek())) {
      throw this.fail("quantifier after a quantifier");
    }
    const many = high === null || high > 1;
    if (many && atom.repeats) {
      this.pos = start;
      throw this.fail(
        "nested quantifier (a repeated group contains a repeat, which " +
          "backtracks catastrophically); rewrite it without nesting",
      );
    }
    return { kind: "repeat", children: [atom], low, high, repeats: many };
  }

  quantifier() {
    const char = this.peek();
    if (char === "*") {
      this.take();
      return [0, null];
    }
    if (char === "+") {
      this.take();
      return [1, null];
    }
    if (char === "?") {
      this.take();
      return [0, 1];
    }
    if (char === "{") return this.braces();
    return null;
  }

  braces() {
    this.take();
    const low = this.number();
    let high = low;
    if (this.peek() === ",") {
      this.take();
      high = this.peek() === "}" ? null : this.number();
    }
    if (this.peek() !== "}") throw this.fail("expected '}' to close the quantifier");
    this.take();
    if (high !== null && high < low) {
      throw this.fail(`quantifier {${low},${high}} has max below min`);
    }
    return [low, high];
  }

  number() {
    let digits = "";
    while (this.peek() !== null && this.peek() >= "0" && this.peek() <= "9") {
      digits += this.take();
    }
    if (!digits) throw this.fail("expected a number in the quantifier");
    const value = Number.parseInt(digits, 10);
    if (value > MAX_REPEAT) {
      throw this.fail(`repeat count ${value} is above the maximum ${MAX_REPEAT}`);
    }
    return value;
  }

  atom() {
    const char = this.take();
    if (char === "(") return this.group();
    if (char === "[") return this.bracket();
    if (char === ".") return { kind: "class", ranges: [[10, 10]], negated: true };
    if (char === "^") return { kind: "bol" };
    if (char === "$") return { kind: "eol" };
    if (char === "\\") return this.escape();
    if (["*", "+", "?", "{"].includes(char)) {
      this.pos -= 1;
      throw this.fail(`nothing to repeat before '${char}'`);
    }
    if (char === "]" || char === "}") {
      this.pos -= 1;
      throw this.fail(`unescaped '${char}'; write \\${char}`);
    }
    return { kind: "char", value: char.codePointAt(0) };
  }

  group() {
    if (this.peek() === "?") {
      if (this.chars.slice(this.pos, this.pos + 2).join("") !== "?:") {
        throw this.fail("only (?: ...) groups are supported");
      }
      this.pos += 2;
    }
    const inner = this.alternation();
    if (this.peek() !== ")") throw this.fail("missing ')'");
    this.take();
    return inner;
  }

  escape() {
    if (this.peek() === null) throw this.fail("pattern ends with a backslash");
    const char = this.take();
    if (char in SHORTHAND) return { kind: "class", ranges: SHORTHAND[char], negated: false };
    const lower = char.toLowerCase();
    if (lower !== char && lower in SHORTHAND) {
      return { kind: "class", ranges: SHORTHAND[lower], negated: true };
    }
    if (char === "b") return { kind: "wordb" };
    if (char === "B") return { kind: "nwordb" };
    return { kind: "char", value: this.escapedChar(char) };
  }

  escapedChar(char) {
    if (char in CONTROL) return CONTROL[char];
    if (ESCAPABLE.has(char)) return char.codePointAt(0);
    this.pos -= 1;
    throw this.fail(`unsupported escape \\${char}`);
  }

  bracket() {
    const negated = this.peek() === "^";
    if (negated) this.take();
    const ranges = [];
    for (;;) {
      const char = this.peek();
      if (char === null) throw this.fail("missing ']'");
      if (char === "]") {
        if (ranges.length === 0) {
          throw this.fail("empty brackets; write \\] for a literal ']'");
        }
        this.take();
        break;
      }
      ranges.push(...this.bracketItem());
    }
    return { kind: "class", ranges, negated };
  }

  bracketItem() {
    const low = this.bracketChar();
    if (Array.isArray(low)) return low;
    const next = this.chars[this.pos + 1];
    if (this.peek() === "-" && next !== undefined && next !== "]") {
      this.take();
      const high = this.bracketChar();
      if (Array.isArray(high)) throw this.fail("a range cannot end with a class escape");
      if (high < low) throw this.fail("range out of order");
      return [[low, high]];
    }
    return [[low, low]];
  }

  bracketChar() {
    let char = this.take();
    if (char !== "\\") {
      if (char === "[") {
        this.pos -= 1;
        throw this.fail("unescaped '[' inside brackets; write \\[");
      }
      return char.codePointAt(0);
    }
    if (this.peek() === null) throw this.fail("pattern ends with a backslash");
    char = this.take();
    if (char in SHORTHAND) return SHORTHAND[char];
    const lower = char.toLowerCase();
    if (lower !== char && lower in SHORTHAND) {
      this.pos -= 1;
      throw this.fail(`\\${char} is not supported inside brackets`);
    }
    return this.escapedChar(char);
  }
}

/**
 * Parses a pattern into a tree.
 * @param {string} pattern
 * @returns {object} the parsed tree
 * @throws {PatternError} when the dialect rejects the pattern
 */
export function parse(pattern) {
  if (typeof pattern !== "string" || pattern.length === 0) {
    throw new PatternError("expected a non-empty string");
  }
  const length = Array.from(pattern).length;
  if (length > MAX_PATTERN_CHARS) {
    throw new PatternError(
      `pattern has ${length} characters; the maximum is ${MAX_PATTERN_CHARS}`,
    );
  }
  return new Parser(pattern).parse();
}

function tooComplex() {
  return new PatternError(
    `pattern expands to more than ${MAX_PROGRAM} steps; use smaller repeat counts`,
  );
}

function emit(node, program) {
  if (program.length > MAX_PROGRAM) throw tooComplex();
  if (node.kind === "char") program.push(["char", node.value]);
  else if (node.kind === "class") program.push(["class", node.negated, node.ranges]);
  else if (ANCHORS.has(node.kind)) program.push(["assert", node.kind]);
  else if (node.kind === "cat") node.children.forEach((child) => emit(child, program));
  else if (node.kind === "alt") emitAlternation(node.children, program);
  else emitRepeat(node, program);
}

function emitAlternation(branches, program) {
  const jumps = [];
  for (const branch of branches.slice(0, -1)) {
    const split = program.length;
    program.push(["split", split + 1, -1]);
    emit(branch, program);
    jumps.push(program.length);
    program.push(["jump", -1]);
    program[split] = ["split", split + 1, program.length];
  }
  emit(branches[branches.length - 1], program);
  for (const jump of jumps) program[jump] = ["jump", program.length];
}

function emitRepeat(node, program) {
  const child = node.children[0];
  for (let i = 0; i < node.low; i += 1) emit(child, program);
  if (node.high === null) {
    const split = program.length;
    program.push(["split", split + 1, -1]);
    emit(child, program);
    program.push(["jump", split]);
    program[split] = ["split", split + 1, program.length];
    return;
  }
  for (let i = 0; i < node.high - node.low; i += 1) {
    const split = program.length;
    program.push(["split", split + 1, -1]);
    emit(child, program);
    program[split] = ["split", split + 1, program.length];
  }
}

/**
 * Parses and compiles a pattern into a program for `search`.
 * @param {string} pattern
 * @returns {Array<Array>} the program
 * @throws {PatternError} when the dialect rejects the pattern
 */
export function compilePattern(pattern) {
  const program = [];
  emit(parse(pattern), program);
  program.push(["match"]);
  if (program.length > MAX_PROGRAM) throw tooComplex();
  return program;
}

function single(text, fallback) {
  const chars = Array.from(text);
  return chars.length === 1 ? chars[0].codePointAt(0) : fallback;
}

function isWord(code) {
  return WORD.some(([low, high]) => low <= code && code <= high);
}

function inClass(code, ranges, negated, fold) {
  const candidates = [code];
  if (fold) {
    const char = String.fromCodePoint(code);
    candidates.push(single(char.toLowerCase(), code), single(char.toUpperCase(), code));
  }
  const hit = candidates.some((c) => ranges.some(([low, high]) => low <= c && c <= high));
  return hit !== negated;
}

function charMatches(code, expected, fold) {
  if (code === expected) return true;
  if (!fold) return false;
  const lower = single(String.fromCodePoint(code).toLowerCase(), code);
  return lower === single(String.fromCodePoint(expected).toLowerCase(), expected);
}

function assertionHolds(kind, codes, pos) {
  if (kind === "bol") return pos === 0;
  if (kind === "eol") return pos === codes.length;
  const before = pos > 0 && isWord(codes[pos - 1]);
  const after = pos < codes.length && isWord(codes[pos]);
  return (before !== after) === (kind === "wordb");
}

function closure(program, starts, codes, pos) {
  const seen = new Uint8Array(program.length);
  const stack = starts.slice().reverse();
  const ready = [];
  while (stack.length > 0) {
    const pc = stack.pop();
    if (seen[pc]) continue;
    seen[pc] = 1;
    const op = program[pc];
    if (op[0] === "jump") stack.push(op[1]);
    else if (op[0] === "split") stack.push(op[2], op[1]);
    else if (op[0] === "assert") {
      if (assertionHolds(op[1], codes, pos)) stack.push(pc + 1);
    } else ready.push(pc);
  }
  return ready;
}

/**
 * Tells whether a compiled pattern matches anywhere in a text.
 * @param {Array<Array>} program from `compilePattern`
 * @param {string} text
 * @param {{caseSensitive?: boolean}} [options]
 * @returns {boolean}
 */
export function search(program, text, { caseSensitive = true } = {}) {
  const codes = Array.from(text, (char) => char.codePointAt(0));
  const fold = !caseSensitive;
  let threads = [];
  for (let pos = 0; pos <= codes.length; pos += 1) {
    // Starting a thread at every position makes this a search.
    const ready = closure(program, [...threads, 0], codes, pos);
    if (ready.some((pc) => program[pc][0] === "match")) return true;
    if (pos === codes.length) break;
    const code = codes[pos];
    threads = [];
    for (const pc of ready) {
      const op = program[pc];
      const matched =
        op[0] === "char" ? charMatches(code, op[1], fold) : inClass(code, op[2], op[1], fold);
      if (matched) threads.push(pc + 1);
    }
  }
  return false;
}
