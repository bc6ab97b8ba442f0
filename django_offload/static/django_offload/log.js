/**
 * @file Small logger gated by level, so the runtime's console output can be
 * turned up for debugging and off in production. It never logs prompt or
 * model text: callers pass ids, sizes and error messages only.
 * @module django_offload/log
 */

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };
let threshold = LEVELS.warn;

/**
 * Sets the level below which messages are dropped.
 * @param {string} level One of "debug", "info", "warn", "error", "silent".
 * @throws {Error} When the level is unknown.
 */
export function setLevel(level) {
  if (!(level in LEVELS)) {
    throw new Error(
      `django-offload: unknown log level ${JSON.stringify(level)}; use one of ` +
        Object.keys(LEVELS).join(", "),
    );
  }
  threshold = LEVELS[level];
}

/**
 * Creates a logger whose messages start with `[offload:<name>]`.
 * @param {string} name Module name shown in each message.
 * @returns {{debug: Function, info: Function, warn: Function, error: Function}}
 */
export function getLogger(name) {
  const prefix = `[offload:${name}]`;
  const emit = (level, method) => (...args) => {
    if (LEVELS[level] >= threshold) console[method](prefix, ...args);
  };
  return {
    debug: emit("debug", "debug"),
    info: emit("info", "info"),
    warn: emit("warn", "warn"),
    error: emit("error", "error"),
  };
}
