/**
 * @file Evaluators run on the device after each generation, the JavaScript
 * twin of `django_offload/evaluators.py`. Both follow docs/evaluation.md and
 * pass the shared cases in tests/data/evaluator_vectors.json.
 *
 * A spec is `{name, type, ...options}`; a score is `{name, data_type, value,
 * label, passed}`, where `value` and `passed` are null when an evaluator
 * could not run. Scores carry numbers, booleans and declared labels only,
 * never the output's text. Strings are measured in code points, as Python
 * does.
 * @module evaluators
 */

import { compilePattern, PatternError, search } from "./safe_regex.js";
import { validateInstance, validateSchema } from "./json_schema.js";

const MAX_SPECS = 20;
const MAX_TEXT_CHARS = 2000;
const MAX_LABELS = 50;
const MAX_LABEL_CHARS = 100;
const DEFAULT_MAX_INPUT_CHARS = 4000;
const MAX_INPUT_CHARS = 10000;
const MAX_SIMILARITY_CHARS = 2000;
const MAX_JSON_DEPTH = 64;
const MAX_COUNT = 1000000;
const FINISH_REASONS = ["stop", "length"];
const NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$/;
// The same set as WHITESPACE in evaluators.py; String.prototype.trim() and
// Python's str.strip() disagree on a few code points.
const WHITESPACE = new Set(
  "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006" +
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000",
);

const BOOLEAN = "boolean";
const NUMERIC = "numeric";
const CATEGORICAL = "categorical";
const TEXT_TYPES = ["equals", "contains", "not_contains", "starts_with"];
const INTEGER_BOUNDS = ["word_count", "char_count"];

/** Data type, allowed options and numeric range of each evaluator type. */
export const TYPES = Object.freeze({
  equals: { dataType: BOOLEAN, options: ["value", "case_sensitive"] },
  one_of: { dataType: CATEGORICAL, options: ["labels", "case_sensitive"] },
  contains: { dataType: BOOLEAN, options: ["value", "case_sensitive"] },
  not_contains: { dataType: BOOLEAN, options: ["value", "case_sensitive"] },
  starts_with: { dataType: BOOLEAN, options: ["value", "case_sensitive"] },
  regex: { dataType: BOOLEAN, options: ["pattern", "case_sensitive", "max_input_chars"] },
  word_count: { dataType: NUMERIC, options: ["min", "max"], range: [0, MAX_COUNT] },
  char_count: { dataType: NUMERIC, options: ["min", "max"], range: [0, MAX_COUNT] },
  is_json: { dataType: BOOLEAN, options: ["schema"] },
  similarity: {
    dataType: NUMERIC,
    options: ["reference", "min", "case_sensitive"],
    range: [0, 1],
  },
  embedding_similarity: { dataType: NUMERIC, options: ["reference", "min"], range: [-1, 1] },
  finish_reason: { dataType: CATEGORICAL, options: ["allowed"] },
  latency_ms: { dataType: NUMERIC, options: ["min", "max"], range: [0, 86400000] },
  ttft_ms: { dataType: NUMERIC, options: ["min", "max"], range: [0, 86400000] },
  tokens_per_second: { dataType: NUMERIC, options: ["min", "max"], range: [0, 1000000] },
});

// -- Text helpers shared with the Python side --------------------------------

const codePoints = (text) => Array.from(text);
const show = (value) => JSON.stringify(value) ?? String(value);

/**
 * Lower-cases a text one code point at a time, keeping a code point whose
 * lower case is longer than one code point.
 * @param {string} text
 * @returns {string}
 */
export function foldCase(text) {
  // NOTE: case mappings follow the runtime's Unicode version, so a browser
  // and the server may disagree on letters whose case pairs Unicode added
  // after version 14 (110 code points between Python 3.11 and Node 20.20).
  return codePoints(text)
    .map((char) => {
      const lower = char.toLowerCase();
      return codePoints(lower).length === 1 ? lower : char;
    })
    .join("");
}

/**
 * Removes the shared whitespace set from both ends of a text.
 * @param {string} text
 * @returns {string}
 */
export function stripSpace(text) {
  const chars = codePoints(text);
  let start = 0;
  let end = chars.length;
  while (start < end && WHITESPACE.has(chars[start])) start += 1;
  while (end > start && WHITESPACE.has(chars[end - 1])) end -= 1;
  return chars.slice(start, end).join("");
}

/**
 * Counts maximal runs of characters outside the shared whitespace set.
 * @param {string} text
 * @returns {number}
 */
export function countWords(text) {
  let count = 0;
  let inside = false;
  for (const char of text) {
    if (WHITESPACE.has(char)) inside = false;
    else if (!inside) {
      inside = true;
      count += 1;
    }
  }
  return count;
}

/**
 * Returns `1 - levenshtein / max(length)` over code points; two empty texts
 * have similarity 1.
 * @param {string} first
 * @param {string} second
 * @returns {number}
 */
export function editSimilarity(first, second) {
  const a = codePoints(first);
  const b = codePoints(second);
  const longest = Math.max(a.length, b.length);
  if (longest === 0) return 1;
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current.push(Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost));
    }
    previous = current;
  }
  return 1 - previous[b.length] / longest;
}

/**
 * Returns the cosine similarity of two vectors, summed left to right in
 * float64 as the Python side does, clamped to [-1, 1].
 * @param {ArrayLike<number>} first
 * @param {ArrayLike<number>} second
 * @returns {number}
 * @throws {Error} when the vectors are empty or differ in length
 */
export function cosine(first, second) {
  if (first.length !== second.length || first.length === 0) {
    throw new Error(
      `embeddings must be non-empty and of equal length, got ${first.length} and ${second.length}.`,
    );
  }
  let dot = 0;
  let normFirst = 0;
  let normSecond = 0;
  for (let i = 0; i < first.length; i += 1) {
    const a = Number(first[i]);
    const b = Number(second[i]);
    dot += a * b;
    normFirst += a * a;
    normSecond += b * b;
  }
  if (normFirst === 0 || normSecond === 0) return 0;
  const value = dot / (Math.sqrt(normFirst) * Math.sqrt(normSecond));
  return Math.min(1, Math.max(-1, value));
}

function jsonDepthOk(text) {
  let depth = 0;
  let inString = false;
  let escaped = false;
  for (const char of text) {
    if (inString) {
      if (escaped) escaped = false;
      else if (char === "\\") escaped = true;
      else if (char === '"') inString = false;
    } else if (char === '"') inString = true;
    else if (char === "[" || char === "{") {
      depth += 1;
      if (depth > MAX_JSON_DEPTH) return false;
    } else if (char === "]" || char === "}") depth -= 1;
  }
  return true;
}

/**
 * Parses a text as strict JSON after trimming whitespace.
 * @param {string} text
 * @returns {[boolean, unknown]} whether it parsed, and the value
 */
export function parseJson(text) {
  const trimmed = stripSpace(text);
  if (!jsonDepthOk(trimmed)) return [false, null];
  try {
    return [true, JSON.parse(trimmed)];
  } catch {
    return [false, null];
  }
}

// -- Spec validation ---------------------------------------------------------

function kindOf(value) {
  if (value === null || value === undefined) return "null";
  if (Array.isArray(value)) return "a list";
  return { boolean: "a boolean", string: "a string", object: "an object" }[typeof value] ?? typeof value;
}

class Checker {
  constructor(index, spec) {
    this.index = index;
    this.spec = spec;
  }

  fail(field, problem) {
    return new Error(`evaluators[${this.index}].${field}: ${problem}`);
  }

  text(field, { required = true, empty = false } = {}) {
    const value = this.spec[field];
    if ((value === undefined || value === null) && !required) return null;
    if (typeof value !== "string") throw this.fail(field, `expected a string, got ${kindOf(value)}.`);
    if (!value && !empty) throw this.fail(field, "must not be empty.");
    const length = codePoints(value).length;
    if (length > MAX_TEXT_CHARS) {
      throw this.fail(field, `has ${length} characters; the maximum is ${MAX_TEXT_CHARS}.`);
    }
    return value;
  }

  flag(field, fallback) {
    // An explicit null is invalid, as in Python; only a missing key defaults.
    const value = Object.prototype.hasOwnProperty.call(this.spec, field) ? this.spec[field] : fallback;
    if (typeof value !== "boolean") throw this.fail(field, `expected true or false, got ${show(value)}.`);
    return value;
  }

  number(field, low, high, { integer = false } = {}) {
    const value = this.spec[field];
    if (value === undefined || value === null) return null;
    if (typeof value !== "number") throw this.fail(field, `expected a number, got ${show(value)}.`);
    if (!Number.isFinite(value) || value < low || value > high) {
      throw this.fail(field, `expected a number in [${low}, ${high}], got ${show(value)}.`);
    }
    if (integer && !Number.isInteger(value)) {
      throw this.fail(field, `expected a whole number, got ${show(value)}.`);
    }
    return value;
  }

  bounds(low, high, integer) {
    const min = this.number("min", low, high, { integer });
    const max = this.number("max", low, high, { integer });
    if (min !== null && max !== null && min > max) {
      throw this.fail("max", `${max} is below min ${min}.`);
    }
    return { min, max };
  }
}

function checkLabels(checker, caseSensitive) {
  const labels = checker.spec.labels;
  if (!Array.isArray(labels) || labels.length < 1 || labels.length > MAX_LABELS) {
    throw checker.fail("labels", `expected a list of 1 to ${MAX_LABELS} strings.`);
  }
  const seen = new Set();
  labels.forEach((label, position) => {
    const length = typeof label === "string" ? codePoints(label).length : 0;
    if (length < 1 || length > MAX_LABEL_CHARS) {
      throw checker.fail(
        `labels[${position}]`,
        `expected a string of 1 to ${MAX_LABEL_CHARS} characters.`,
      );
    }
    const key = caseSensitive ? label : foldCase(label);
    if (seen.has(key)) throw checker.fail(`labels[${position}]`, `duplicate label ${show(label)}.`);
    seen.add(key);
  });
  return [...labels];
}

function checkRegex(checker) {
  const pattern = checker.text("pattern");
  try {
    compilePattern(pattern);
  } catch (error) {
    if (error instanceof PatternError) throw checker.fail("pattern", `${error.message}.`);
    throw error;
  }
  const maxInput = checker.number("max_input_chars", 1, MAX_INPUT_CHARS, { integer: true });
  return {
    pattern,
    case_sensitive: checker.flag("case_sensitive", true),
    max_input_chars: maxInput ?? DEFAULT_MAX_INPUT_CHARS,
  };
}

function checkFinishReason(checker) {
  const allowed = Object.prototype.hasOwnProperty.call(checker.spec, "allowed")
    ? checker.spec.allowed
    : ["stop"];
  if (
    !Array.isArray(allowed) ||
    allowed.length === 0 ||
    allowed.some((item) => !FINISH_REASONS.includes(item)) ||
    new Set(allowed).size !== allowed.length
  ) {
    throw checker.fail(
      "allowed",
      `expected a non-empty list of distinct values from ${show(FINISH_REASONS)}, got ${show(allowed)}.`,
    );
  }
  return { allowed: [...allowed] };
}

function checkOptions(checker, type) {
  const spec = checker.spec;
  if (TEXT_TYPES.includes(type)) {
    return {
      value: checker.text("value", { empty: type === "equals" }),
      case_sensitive: checker.flag("case_sensitive", false),
    };
  }
  if (type === "one_of") {
    const caseSensitive = checker.flag("case_sensitive", false);
    return { labels: checkLabels(checker, caseSensitive), case_sensitive: caseSensitive };
  }
  if (type === "regex") return checkRegex(checker);
  if (type === "is_json") {
    const schema = spec.schema ?? null;
    if (schema !== null) validateSchema(schema, `evaluators[${checker.index}].schema`);
    return { schema };
  }
  if (type === "similarity") {
    return {
      reference: checker.text("reference", { empty: true }),
      min: checker.number("min", 0, 1),
      case_sensitive: checker.flag("case_sensitive", false),
    };
  }
  if (type === "embedding_similarity") {
    return { reference: checker.text("reference"), min: checker.number("min", -1, 1) };
  }
  if (type === "finish_reason") return checkFinishReason(checker);
  const [low, high] = TYPES[type].range;
  return checker.bounds(low, high, INTEGER_BOUNDS.includes(type));
}

/**
 * Validates evaluator specs and returns them normalised, with every option
 * present and defaults filled in.
 * @param {unknown} specs
 * @returns {Array<object>}
 * @throws {Error} whose message starts with `evaluators[<index>].<field>`
 */
export function validateSpecs(specs) {
  if (!Array.isArray(specs)) throw new Error(`evaluators: expected a list, got ${kindOf(specs)}.`);
  if (specs.length > MAX_SPECS) {
    throw new Error(`evaluators: ${specs.length} evaluators; the maximum is ${MAX_SPECS}.`);
  }
  const names = new Set();
  return specs.map((spec, index) => {
    if (typeof spec !== "object" || spec === null || Array.isArray(spec)) {
      throw new Error(`evaluators[${index}]: expected an object, got ${kindOf(spec)}.`);
    }
    const checker = new Checker(index, spec);
    const { name, type } = spec;
    if (typeof name !== "string" || !NAME_PATTERN.test(name)) {
      throw checker.fail(
        "name",
        `expected 1 to 100 letters, digits, '_', '.' or '-', got ${show(name)}.`,
      );
    }
    if (names.has(name)) throw checker.fail("name", `duplicate name ${show(name)}.`);
    names.add(name);
    if (typeof type !== "string" || !Object.prototype.hasOwnProperty.call(TYPES, type)) {
      throw checker.fail("type", `unknown type ${show(type)}; expected one of ${show(Object.keys(TYPES).sort())}.`);
    }
    const options = TYPES[type].options;
    const unknown = Object.keys(spec)
      .filter((key) => key !== "name" && key !== "type" && !options.includes(key))
      .sort();
    if (unknown.length > 0) {
      throw checker.fail(unknown[0], `unknown option for ${type}; the options are ${show([...options].sort())}.`);
    }
    return { name, type, ...checkOptions(checker, type) };
  });
}

// -- Evaluation --------------------------------------------------------------

function score(spec, value = null, label = null, passed = null) {
  return { name: spec.name, data_type: TYPES[spec.type].dataType, value, label, passed };
}

/**
 * Returns the `passed` a numeric or categorical score carries for its value
 * or label.
 * @param {object} spec a normalised spec
 * @param {number|null} value
 * @param {string|null} label
 * @returns {boolean|null}
 */
export function expectedPassed(spec, value, label) {
  if (spec.type === "one_of") return label !== null;
  if (spec.type === "finish_reason") return label === null ? null : spec.allowed.includes(label);
  if (value === null) return null;
  const { min = null, max = null } = spec;
  if (min === null && max === null) return null;
  return (min === null || value >= min) && (max === null || value <= max);
}

const numeric = (spec, value) => score(spec, value, null, expectedPassed(spec, value, null));
const boolean = (spec, passed) => score(spec, passed, null, passed);

function compareText(spec, output) {
  let expected = spec.value;
  let text = output;
  if (!spec.case_sensitive) {
    text = foldCase(text);
    expected = foldCase(expected);
  }
  if (spec.type === "equals") return stripSpace(text) === stripSpace(expected);
  if (spec.type === "starts_with") return stripSpace(text).startsWith(expected);
  if (spec.type === "contains") return text.includes(expected);
  return !text.includes(expected);
}

function oneOf(spec, output) {
  let answer = stripSpace(output);
  if (!spec.case_sensitive) answer = foldCase(answer);
  for (const label of spec.labels) {
    const key = spec.case_sensitive ? label : foldCase(label);
    if (answer === key) return score(spec, null, label, true);
  }
  return score(spec, null, null, false);
}

// Compiled programs by pattern; patterns are at most 200 characters and a
// page runs few distinct prompt versions, so the map stays small.
const programs = new Map();

function compiled(pattern) {
  if (!programs.has(pattern)) programs.set(pattern, compilePattern(pattern));
  return programs.get(pattern);
}

function regex(spec, output) {
  if (codePoints(output).length > spec.max_input_chars) return boolean(spec, null);
  const found = search(compiled(spec.pattern), output, {
    caseSensitive: spec.case_sensitive,
  });
  return boolean(spec, found);
}

function isJson(spec, output) {
  let [ok, value] = parseJson(output);
  if (ok && spec.schema !== null) ok = validateInstance(spec.schema, value);
  return boolean(spec, ok);
}

function similarity(spec, output) {
  if (codePoints(output).length > MAX_SIMILARITY_CHARS) return numeric(spec, null);
  let text = output;
  let reference = spec.reference;
  if (!spec.case_sensitive) {
    text = foldCase(text);
    reference = foldCase(reference);
  }
  return numeric(spec, editSimilarity(stripSpace(text), stripSpace(reference)));
}

async function embeddingSimilarity(spec, output, embed) {
  if (typeof embed !== "function") return numeric(spec, null);
  try {
    const vectors = await embed([output, spec.reference]);
    return numeric(spec, cosine(vectors[0], vectors[1]));
  } catch {
    // The failure stays on the device; a null score records that it could not run.
    return numeric(spec, null);
  }
}

function finite(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

const CONTEXT_KEYS = {
  latency_ms: "latencyMs",
  ttft_ms: "ttftMs",
  tokens_per_second: "tokensPerSecond",
};

async function evaluateOne(spec, output, context) {
  const type = spec.type;
  if (TEXT_TYPES.includes(type)) return boolean(spec, compareText(spec, output));
  if (type === "one_of") return oneOf(spec, output);
  if (type === "regex") return regex(spec, output);
  if (type === "word_count") return numeric(spec, countWords(output));
  if (type === "char_count") return numeric(spec, codePoints(output).length);
  if (type === "is_json") return isJson(spec, output);
  if (type === "similarity") return similarity(spec, output);
  if (type === "embedding_similarity") return embeddingSimilarity(spec, output, context.embed);
  if (type === "finish_reason") {
    const label = FINISH_REASONS.includes(context.finishReason) ? context.finishReason : null;
    return score(spec, null, label, expectedPassed(spec, null, label));
  }
  return numeric(spec, finite(context[CONTEXT_KEYS[type]]));
}

/**
 * Runs every evaluator on an output and returns one score per spec, in
 * order.
 * @param {Array<object>} specs the prompt version's evaluators
 * @param {string} output the generated text
 * @param {{finishReason?: string, latencyMs?: number, ttftMs?: number,
 *   tokensPerSecond?: number, embed?: (texts: string[]) => Promise<ArrayLike<number>[]>}} [context]
 * @returns {Promise<Array<{name: string, data_type: string, value: (number|boolean|null),
 *   label: (string|null), passed: (boolean|null)}>>}
 * @throws {Error} for invalid specs, never for the output's content
 */
export async function evaluate(specs, output, context = {}) {
  if (typeof output !== "string") {
    throw new TypeError(`output must be a string, got ${kindOf(output)}.`);
  }
  const normalised = validateSpecs(specs);
  const scores = [];
  for (const spec of normalised) scores.push(await evaluateOne(spec, output, context ?? {}));
  return scores;
}
