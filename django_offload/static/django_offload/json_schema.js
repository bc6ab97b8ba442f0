/**
 * @file The JSON Schema subset shared with `django_offload/json_schema.py`:
 * `type`, `properties`, `required`, `additionalProperties`, `enum`, `const`,
 * `items`, `minItems`, `maxItems`, `minLength`, `maxLength`, `minimum`,
 * `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, and the annotations
 * `title` and `description`, with Draft 2020-12 meaning. Any other keyword is
 * rejected by `validateSchema`, so the server and the device never disagree
 * on what a schema means. String lengths count code points, as Python does.
 * @module json_schema
 */

const TYPE_NAMES = ["array", "boolean", "integer", "null", "number", "object", "string"];
const COUNT_KEYWORDS = ["minItems", "maxItems", "minLength", "maxLength"];
const NUMBER_KEYWORDS = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"];
const KEYWORDS = new Set([
  "type",
  "properties",
  "required",
  "additionalProperties",
  "enum",
  "const",
  "items",
  "title",
  "description",
  ...COUNT_KEYWORDS,
  ...NUMBER_KEYWORDS,
]);
const MAX_DEPTH = 16;

const isObject = (value) =>
  typeof value === "object" && value !== null && !Array.isArray(value);
const isNumber = (value) => typeof value === "number" && Number.isFinite(value);
const has = (object, key) => Object.prototype.hasOwnProperty.call(object, key);
const show = (value) => JSON.stringify(value) ?? String(value);

function checkType(value, path) {
  const names = Array.isArray(value) ? value : [value];
  if (names.length === 0 || names.some((name) => !TYPE_NAMES.includes(name))) {
    throw new Error(
      `${path}.type: expected one of ${show(TYPE_NAMES)} or a list of them, got ${show(value)}.`,
    );
  }
  if (new Set(names).size !== names.length) {
    throw new Error(`${path}.type: duplicate type names in ${show(value)}.`);
  }
}

function checkKeyword(key, value, path, depth) {
  const where = `${path}.${key}`;
  if (key === "type") checkType(value, path);
  else if (key === "title" || key === "description") {
    if (typeof value !== "string") throw new Error(`${where}: expected a string.`);
  } else if (key === "properties") {
    if (!isObject(value)) throw new Error(`${where}: expected an object of schemas.`);
    for (const [name, child] of Object.entries(value)) check(child, `${where}.${name}`, depth + 1);
  } else if (key === "required") {
    if (
      !Array.isArray(value) ||
      !value.every((name) => typeof name === "string") ||
      new Set(value).size !== value.length
    ) {
      throw new Error(`${where}: expected a list of distinct strings.`);
    }
  } else if (key === "additionalProperties") {
    if (typeof value !== "boolean") check(value, where, depth + 1);
  } else if (key === "enum") {
    if (!Array.isArray(value) || value.length === 0) {
      throw new Error(`${where}: expected a non-empty list.`);
    }
  } else if (key === "items") {
    check(value, where, depth + 1);
  } else if (COUNT_KEYWORDS.includes(key)) {
    if (!Number.isInteger(value) || value < 0) {
      throw new Error(`${where}: expected a whole number >= 0, got ${show(value)}.`);
    }
  } else if (NUMBER_KEYWORDS.includes(key) && !isNumber(value)) {
    throw new Error(`${where}: expected a number, got ${show(value)}.`);
  }
}

function check(schema, path, depth) {
  if (depth > MAX_DEPTH) throw new Error(`${path}: schemas nest deeper than ${MAX_DEPTH} levels.`);
  if (!isObject(schema)) throw new Error(`${path}: expected a schema object, got ${show(schema)}.`);
  const unknown = Object.keys(schema)
    .filter((key) => !KEYWORDS.has(key))
    .sort();
  if (unknown.length > 0) {
    throw new Error(
      `${path}.${unknown[0]}: keyword not supported on devices; use only ${show([...KEYWORDS].sort())}.`,
    );
  }
  for (const [key, value] of Object.entries(schema)) checkKeyword(key, value, path, depth);
}

/**
 * Checks that a schema uses only the supported subset.
 * @param {unknown} schema
 * @param {string} [path] prefix of error messages
 * @returns {object} the schema
 * @throws {Error} naming the path of the first problem
 */
export function validateSchema(schema, path = "schema") {
  check(schema, path, 0);
  return schema;
}

function typeMatches(name, value) {
  switch (name) {
    case "null":
      return value === null;
    case "boolean":
      return typeof value === "boolean";
    case "string":
      return typeof value === "string";
    case "number":
      return typeof value === "number";
    case "integer":
      return Number.isInteger(value);
    case "array":
      return Array.isArray(value);
    default:
      return isObject(value);
  }
}

/**
 * Compares two JSON values the way Python's jsonschema does: numbers by
 * value, booleans distinct from numbers, arrays in order, objects by keys.
 * @param {unknown} first
 * @param {unknown} second
 * @returns {boolean}
 */
export function jsonEqual(first, second) {
  if (Array.isArray(first) || Array.isArray(second)) {
    return (
      Array.isArray(first) &&
      Array.isArray(second) &&
      first.length === second.length &&
      first.every((item, index) => jsonEqual(item, second[index]))
    );
  }
  if (isObject(first) || isObject(second)) {
    if (!isObject(first) || !isObject(second)) return false;
    const keys = Object.keys(first);
    if (keys.length !== Object.keys(second).length) return false;
    return keys.every((key) => has(second, key) && jsonEqual(first[key], second[key]));
  }
  return first === second;
}

function validObject(schema, value) {
  const properties = schema.properties ?? {};
  if (schema.required && !schema.required.every((name) => has(value, name))) return false;
  for (const [key, item] of Object.entries(value)) {
    if (has(properties, key)) {
      if (!valid(properties[key], item)) return false;
    } else if (schema.additionalProperties === false) {
      return false;
    } else if (isObject(schema.additionalProperties)) {
      if (!valid(schema.additionalProperties, item)) return false;
    }
  }
  return true;
}

function validArray(schema, value) {
  if (has(schema, "minItems") && value.length < schema.minItems) return false;
  if (has(schema, "maxItems") && value.length > schema.maxItems) return false;
  return !schema.items || value.every((item) => valid(schema.items, item));
}

function validNumber(schema, value) {
  if (has(schema, "minimum") && value < schema.minimum) return false;
  if (has(schema, "maximum") && value > schema.maximum) return false;
  if (has(schema, "exclusiveMinimum") && value <= schema.exclusiveMinimum) return false;
  return !(has(schema, "exclusiveMaximum") && value >= schema.exclusiveMaximum);
}

function validString(schema, value) {
  const length = Array.from(value).length;
  if (has(schema, "minLength") && length < schema.minLength) return false;
  return !(has(schema, "maxLength") && length > schema.maxLength);
}

function valid(schema, value) {
  if (has(schema, "type")) {
    const names = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (!names.some((name) => typeMatches(name, value))) return false;
  }
  if (has(schema, "enum") && !schema.enum.some((item) => jsonEqual(item, value))) return false;
  if (has(schema, "const") && !jsonEqual(schema.const, value)) return false;
  if (isObject(value)) return validObject(schema, value);
  if (Array.isArray(value)) return validArray(schema, value);
  if (typeof value === "number") return validNumber(schema, value);
  if (typeof value === "string") return validString(schema, value);
  return true;
}

/**
 * Tells whether a parsed JSON value is valid against a schema that passed
 * `validateSchema`.
 * @param {object} schema
 * @param {unknown} value
 * @returns {boolean}
 */
export function validateInstance(schema, value) {
  return valid(schema, value);
}
