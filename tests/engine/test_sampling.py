import json
import shutil
import subprocess

import numpy as np
import pytest

from django_offload.engine import GenerationParams
from django_offload.engine.sampling import (
    Mulberry32,
    TokenSelector,
    greedy,
    sample,
    sampling_distribution,
)

# The reference generator as the browser engine writes it.
MULBERRY32_JS = """
function mulberry32(seed) {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const seeds = JSON.parse(process.argv[1]);
const out = seeds.map((seed) => {
  const next = mulberry32(seed);
  return Array.from({ length: 50 }, () => next());
});
console.log(JSON.stringify(out));
"""
SEEDS = [0, 1, 42, 123456789, 2**31 - 1, 2**31, 2**32 - 1]


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_mulberry32_matches_javascript_reference():
    completed = subprocess.run(
        ["node", "-e", MULBERRY32_JS, json.dumps(SEEDS)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    expected = json.loads(completed.stdout)
    for seed, draws in zip(SEEDS, expected, strict=True):
        rng = Mulberry32(seed)
        assert [rng.next() for _ in range(50)] == draws, seed


def test_mulberry32_draws_in_unit_interval():
    rng = Mulberry32(7)
    draws = [rng.next() for _ in range(10_000)]
    assert min(draws) >= 0.0
    assert max(draws) < 1.0
    assert 0.45 < sum(draws) / len(draws) < 0.55


def test_mulberry32_rejects_non_integer_seed():
    with pytest.raises(ValueError, match="seed"):
        Mulberry32(1.5)


def test_greedy_tie_picks_lowest_index():
    assert greedy(np.array([0.1, 3.0, 3.0, -1.0], dtype=np.float32)) == 1


def test_distribution_top_k_keeps_largest_ties_by_index():
    logits = np.array([1.0, 5.0, 2.0, 5.0, 2.0, 0.0])
    indices, probabilities = sampling_distribution(logits, 1.0, 3, 1.0)
    assert indices.tolist() == [1, 3, 2]
    assert probabilities.sum() == pytest.approx(1.0)
    assert probabilities[0] == probabilities[1]


def test_distribution_top_p_keeps_shortest_prefix():
    # Probabilities 0.5, 0.25, 0.125, 0.125 at temperature 1.
    logits = np.log(np.array([0.125, 0.5, 0.125, 0.25]))
    indices, probabilities = sampling_distribution(logits, 1.0, 0, 0.7)
    assert indices.tolist() == [1, 3]
    assert probabilities.tolist() == pytest.approx([2 / 3, 1 / 3])


def test_distribution_top_p_reached_exactly_stops_there():
    logits = np.log(np.array([0.5, 0.25, 0.25]))
    indices, _ = sampling_distribution(logits, 1.0, 0, 0.75)
    assert indices.tolist() == [0, 1]


def test_distribution_small_top_p_keeps_one_token():
    logits = np.array([0.0, 1.0, 0.5])
    indices, probabilities = sampling_distribution(logits, 1.0, 0, 1e-9)
    assert indices.tolist() == [1]
    assert probabilities.tolist() == [1.0]


def test_distribution_temperature_sharpens():
    logits = np.array([2.0, 1.0, 0.0])
    _, cold = sampling_distribution(logits, 0.5, 0, 1.0)
    _, hot = sampling_distribution(logits, 2.0, 0, 1.0)
    assert cold[0] > hot[0]
    assert cold[-1] < hot[-1]


def test_distribution_rejects_zero_temperature():
    with pytest.raises(ValueError, match="temperature"):
        sampling_distribution(np.zeros(3), 0.0, 0, 1.0)


def test_sample_picks_first_cumulative_above_draw():
    # Sorted by probability, ties by index: 1 (0.5), 0 (0.25), 3 (0.25).
    logits = np.log(np.array([0.25, 0.5, 1e-30, 0.25]))
    assert sample(logits, 1.0, 0, 1.0, 0.0) == 1
    assert sample(logits, 1.0, 0, 1.0, 0.4999) == 1
    assert sample(logits, 1.0, 0, 1.0, 0.5) == 0
    assert sample(logits, 1.0, 0, 1.0, 0.76) == 3


def test_sampling_frequencies_follow_distribution():
    logits = np.array([1.0, 2.0, 0.5, 3.0, -1.0])
    indices, probabilities = sampling_distribution(logits, 0.8, 4, 0.95)
    selector = TokenSelector(
        GenerationParams(temperature=0.8, top_k=4, top_p=0.95, seed=9)
    )
    draws = 20_000
    counts = np.bincount([selector(logits) for _ in range(draws)], minlength=5)
    for index, probability in zip(indices, probabilities, strict=True):
        assert counts[index] / draws == pytest.approx(probability, abs=0.015)
    outside = set(range(5)) - set(indices.tolist())
    assert all(counts[index] == 0 for index in outside)


def test_selector_same_seed_same_tokens():
    logits = np.linspace(0.0, 2.0, 50)
    params = GenerationParams(temperature=1.0, seed=1234)
    first = TokenSelector(params)
    second = TokenSelector(params)
    assert [first(logits) for _ in range(40)] == [second(logits) for _ in range(40)]


def test_selector_other_seed_other_tokens():
    logits = np.linspace(0.0, 2.0, 50)
    first = TokenSelector(GenerationParams(temperature=1.0, seed=1))
    second = TokenSelector(GenerationParams(temperature=1.0, seed=2))
    assert [first(logits) for _ in range(40)] != [second(logits) for _ in range(40)]


def test_selector_without_seed_draws_one():
    selector = TokenSelector(GenerationParams(temperature=1.0))
    assert 0 <= selector.seed < 2**32


def test_selector_greedy_ignores_seed():
    logits = np.array([0.0, 4.0, 1.0])
    selector = TokenSelector(GenerationParams(temperature=0.0, seed=5, top_k=2))
    assert [selector(logits) for _ in range(5)] == [1] * 5


def spec_sample(logits, temperature, top_k, top_p, u):
    """
    The sampling steps written out one by one, as a reference.
    """
    scaled = [float(value) / temperature for value in logits]
    order = sorted(range(len(scaled)), key=lambda index: (-scaled[index], index))
    if top_k > 0:
        order = order[:top_k]
    top = scaled[order[0]]
    exps = [np.exp(scaled[index] - top) for index in order]
    total = 0.0
    for value in exps:
        total += value
    probabilities = [value / total for value in exps]
    size, cumulative = len(order), 0.0
    for position, probability in enumerate(probabilities):
        cumulative += probability
        if cumulative >= top_p:
            size = position + 1
            break
    kept = probabilities[:size]
    kept_total = 0.0
    for value in kept:
        kept_total += value
    cumulative = 0.0
    for position, probability in enumerate(kept):
        cumulative += probability / kept_total
        if cumulative > u:
            return order[position]
    return order[size - 1]


def test_sample_matches_written_out_steps():
    generator = np.random.default_rng(5)
    for _ in range(150):
        logits = (generator.standard_normal(300) * 4).astype(np.float32)
        logits[generator.integers(0, 300, 20)] = logits[7]
        temperature = float(generator.uniform(0.1, 2.0))
        top_k = int(generator.choice([0, 1, 5, 50]))
        top_p = float(generator.choice([1.0, 0.9, 0.5]))
        u = float(generator.random())
        expected = spec_sample(logits, temperature, top_k, top_p, u)
        assert sample(logits, temperature, top_k, top_p, u) == expected


def test_sample_rejects_nan_logits():
    logits = np.array([0.0, np.nan, 1.0])
    with pytest.raises(ValueError, match="NaN"):
        sample(logits, 1.0, 0, 1.0, 0.5)
