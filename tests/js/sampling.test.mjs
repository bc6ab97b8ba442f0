/**
 * @file Tests of the device engine's token selection against the shared
 * sampling vectors in tests/data/sampling_vectors.json.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  Mulberry32,
  TokenSelector,
  greedy,
  randomSeed,
  sample,
  samplingDistribution,
} from "../../django_offload/static/django_offload/sampling.js";

const vectors = JSON.parse(
  readFileSync(new URL("../data/sampling_vectors.json", import.meta.url), "utf8"),
);
const logitsOf = (name) => Float32Array.from(vectors.logits_sets[name]);

test("mulberry32_draws_match_vectors", () => {
  for (const { seed, draws } of vectors.prng) {
    const rng = new Mulberry32(seed);
    assert.deepEqual(
      draws.map(() => rng.next()),
      draws,
      `seed ${seed}`,
    );
  }
});

test("mulberry32_invalid_seed_rejected", () => {
  for (const seed of [-1, 2 ** 32, 1.5, "1", null]) {
    assert.throws(() => new Mulberry32(seed), /seed must be an integer/);
  }
});

test("random_seed_is_uint32", () => {
  const seed = randomSeed();
  assert.ok(Number.isInteger(seed), String(seed));
  assert.ok(seed >= 0, String(seed));
  assert.ok(seed < 2 ** 32, String(seed));
});

test("distribution_matches_vectors", () => {
  for (const item of vectors.distributions) {
    const label = JSON.stringify([item.logits, item.temperature, item.top_k, item.top_p]);
    const { indices, probabilities } = samplingDistribution(
      logitsOf(item.logits),
      item.temperature,
      item.top_k,
      item.top_p,
    );
    assert.deepEqual([...indices], item.indices, label);
    probabilities.forEach((value, i) => {
      const expected = item.probabilities[i];
      assert.ok(Math.abs(value - expected) <= 1e-12 * expected, `${label} [${i}]`);
    });
  }
});

test("sampled_sequences_match_vectors", () => {
  for (const item of vectors.sequences) {
    const label = JSON.stringify([item.logits, item.temperature, item.top_k, item.top_p]);
    const rng = new Mulberry32(item.seed);
    const logits = logitsOf(item.logits);
    const tokens = item.tokens.map(() =>
      sample(logits, item.temperature, item.top_k, item.top_p, rng.next()),
    );
    assert.deepEqual(tokens, item.tokens, `${label} seed ${item.seed}`);
  }
});

test("greedy_ties_pick_lowest_index", () => {
  assert.equal(greedy(Float32Array.from([1, 3, 3, 2])), 1);
  assert.equal(greedy(Float32Array.from([-5, -5])), 0);
  assert.equal(greedy(Float32Array.from([-Infinity, -1])), 1);
});

test("top_k_one_equals_greedy", () => {
  const logits = logitsOf("wide");
  for (const u of [0, 0.5, 0.999999]) {
    assert.equal(sample(logits, 0.8, 1, 1, u), greedy(logits));
  }
});

test("distribution_ties_order_by_index", () => {
  const { indices } = samplingDistribution(Float32Array.from([0, 2, 1, 2, 2]), 1, 0, 1);
  assert.deepEqual([...indices], [1, 3, 4, 2, 0]);
});

test("top_k_heap_matches_full_sort", () => {
  const logits = Float32Array.from({ length: 5000 }, (_, i) => Math.sin(i * 1.7) * 8);
  // A top-k past the heap limit takes the full sort; both must agree with
  // the full distribution cut to k.
  for (const topK of [7, 1500]) {
    const full = samplingDistribution(logits, 1, 0, 1).indices.slice(0, topK);
    const cut = samplingDistribution(logits, 1, topK, 1).indices;
    assert.deepEqual([...cut], [...full], `topK ${topK}`);
  }
});

test("sampling_nan_logits_rejected", () => {
  assert.throws(() => sample(Float32Array.from([0, NaN]), 1, 0, 1, 0.5), /NaN/);
});

test("sampling_zero_temperature_rejected", () => {
  assert.throws(() => sample(Float32Array.from([0, 1]), 0, 0, 1, 0.5), /temperature/);
});

test("selector_same_seed_same_tokens", () => {
  const logits = logitsOf("wide");
  const params = { temperature: 1.2, topK: 0, topP: 0.95, seed: 7 };
  const first = new TokenSelector(params);
  const second = new TokenSelector(params);
  const picks = (selector) => Array.from({ length: 20 }, () => selector.select(logits));
  assert.deepEqual(picks(first), picks(second));
  assert.equal(first.seed, 7);
});

test("selector_zero_temperature_is_greedy", () => {
  const logits = logitsOf("spread");
  const selector = new TokenSelector({ temperature: 0, topK: 0, topP: 1, seed: null });
  assert.equal(selector.select(logits), greedy(logits));
  assert.ok(Number.isInteger(selector.seed));
});
