/**
 * @file Runs the shared evaluator cases (tests/data/evaluator_vectors.json)
 * against evaluators.js with Node's built-in test runner.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { evaluate, validateSpecs } from "../../django_offload/static/django_offload/evaluators.js";
import { compilePattern, search } from "../../django_offload/static/django_offload/safe_regex.js";

const vectors = JSON.parse(
  readFileSync(new URL("../data/evaluator_vectors.json", import.meta.url), "utf-8"),
);

function toContext(context = {}, embeddings = null) {
  const result = {
    finishReason: context.finish_reason,
    latencyMs: context.latency_ms,
    ttftMs: context.ttft_ms,
    tokensPerSecond: context.tokens_per_second,
  };
  if (embeddings) result.embed = async (texts) => texts.map((text) => embeddings[text]);
  return result;
}

function assertScores(actual, expected) {
  assert.deepEqual(
    actual.map((score) => score.name),
    expected.map((score) => score.name),
  );
  actual.forEach((got, index) => {
    const want = expected[index];
    assert.deepEqual(Object.keys(got).sort(), Object.keys(want).sort(), got.name);
    for (const field of ["name", "data_type", "label", "passed"]) {
      assert.equal(got[field], want[field], `${got.name}.${field}`);
    }
    if (typeof want.value === "number") {
      assert.equal(typeof got.value, "number", `${got.name}.value`);
      assert.ok(Math.abs(got.value - want.value) <= 1e-12, `${got.name}.value ${got.value}`);
    } else {
      assert.equal(got.value, want.value, `${got.name}.value`);
    }
  });
}

for (const item of vectors.cases) {
  test(item.name, async () => {
    if (item.error !== undefined) {
      assert.throws(
        () => validateSpecs(item.specs),
        (error) => error.message.startsWith(`${item.error}:`) || assert.fail(error.message),
      );
      return;
    }
    const scores = await evaluate(item.specs, item.output, toContext(item.context, item.embeddings));
    assertScores(scores, item.expected);
  });
}

test("evaluate rejects non-string output", async () => {
  await assert.rejects(evaluate([], null), /output must be a string/);
});

test("regex hostile input bounded work", () => {
  const program = compilePattern("^(?:a|aa)*c$");
  assert.equal(search(program, "a".repeat(20000)), false);
});

test("embed failure gives a skipped score", async () => {
  const specs = [{ name: "e", type: "embedding_similarity", reference: "r", min: 0.5 }];
  const embed = async () => {
    throw new Error("model missing");
  };
  const [score] = await evaluate(specs, "out", { embed });
  assert.equal(score.value, null);
  assert.equal(score.passed, null);
});
