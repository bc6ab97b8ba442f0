/**
 * @file Token selection for the device engine: greedy argmax or seeded
 * sampling with temperature, top-k and top-p, and the mulberry32 generator.
 *
 * The steps and the order of every sum match the server engine
 * (`django_offload/engine/sampling.py`), so one seed picks the same tokens in
 * Python and JavaScript. Sums run in a plain loop in float64, as numpy's
 * `cumsum` does. The only difference left is that `Math.exp` and numpy's `exp`
 * may round one unit in the last place apart. That can change a pick only
 * when a draw or `topP` lies within about 1e-15 of a boundary.
 * @module sampling
 */

const UINT32_RANGE = 4294967296;

/**
 * The mulberry32 pseudo-random generator: 32 bits of state, floats in [0, 1).
 */
export class Mulberry32 {
  /**
   * @param {number} seed Integer from 0 to 2**32 - 1.
   * @throws {RangeError} When the seed is not such an integer.
   */
  constructor(seed) {
    if (!Number.isInteger(seed) || seed < 0 || seed >= UINT32_RANGE) {
      throw new RangeError(
        `seed must be an integer from 0 to ${UINT32_RANGE - 1}, got ${String(seed)}.`,
      );
    }
    this.state = seed >>> 0;
  }

  /**
   * Advances the state and returns the next float in [0, 1).
   * @returns {number}
   */
  next() {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / UINT32_RANGE;
  }
}

/**
 * Returns a random uint32 seed for a generation that did not set one.
 * @returns {number}
 */
export function randomSeed() {
  const words = new Uint32Array(1);
  globalThis.crypto.getRandomValues(words);
  return words[0];
}

/**
 * Returns the index of the largest logit, the lowest index on ties.
 * @param {ArrayLike<number>} logits
 * @returns {number}
 */
export function greedy(logits) {
  let best = 0;
  let bestValue = logits[0];
  for (let i = 1; i < logits.length; i++) {
    if (logits[i] > bestValue) {
      best = i;
      bestValue = logits[i];
    }
  }
  return best;
}

// Above this top-k, sorting every value natively is faster than a heap.
const HEAP_TOP_K_LIMIT = 1024;

/**
 * Returns the `count` largest of `values` in a min-heap, smallest at index 0.
 * @param {Float64Array} values
 * @param {number} count
 * @returns {Float64Array}
 */
function largestValues(values, count) {
  const heap = new Float64Array(count);
  let size = 0;
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (size < count) {
      let child = size++;
      while (child > 0) {
        const parent = (child - 1) >> 1;
        if (heap[parent] <= value) break;
        heap[child] = heap[parent];
        child = parent;
      }
      heap[child] = value;
    } else if (value > heap[0]) {
      let parent = 0;
      for (;;) {
        let child = 2 * parent + 1;
        if (child >= count) break;
        if (child + 1 < count && heap[child + 1] < heap[child]) child++;
        if (heap[child] >= value) break;
        heap[parent] = heap[child];
        parent = child;
      }
      heap[parent] = value;
    }
  }
  return heap;
}

/**
 * Returns the values to sample from, highest first: the `topK` largest, or
 * all of them when `topK` is 0.
 *
 * Only values are sorted here, with the fast native numeric sort; the indices
 * of the few candidates that matter are recovered afterwards by `topIndices`.
 * @param {Float64Array} values
 * @param {number} topK
 * @returns {Float64Array}
 */
function rankedValues(values, topK) {
  const limited = topK > 0 && topK < values.length;
  const ranked =
    limited && topK <= HEAP_TOP_K_LIMIT ? largestValues(values, topK) : values.slice();
  ranked.sort();
  ranked.reverse();
  return limited ? ranked.subarray(0, topK) : ranked;
}

/**
 * Returns the indices of the `count` largest values, highest first, lower
 * index first on ties.
 * @param {Float64Array} values
 * @param {Float64Array} ranked The output of `rankedValues`.
 * @param {number} count At most `ranked.length`.
 * @returns {Uint32Array}
 */
function topIndices(values, ranked, count) {
  const threshold = ranked[count - 1];
  const candidates = [];
  for (let i = 0; i < values.length; i++) {
    if (values[i] >= threshold) candidates.push(i);
  }
  candidates.sort((a, b) => values[b] - values[a] || a - b);
  return Uint32Array.from(candidates.slice(0, count));
}

/**
 * Sums in a plain loop, first element first.
 * @param {Float64Array} values
 * @returns {number}
 */
function sequentialSum(values) {
  let total = 0;
  for (let i = 0; i < values.length; i++) total += values[i];
  return total;
}

/**
 * Computes the renormalised probabilities of the candidates, in rank order.
 * @param {ArrayLike<number>} logits
 * @param {number} temperature
 * @param {number} topK
 * @param {number} topP
 * @returns {{scaled: Float64Array, ranked: Float64Array,
 *   probabilities: Float64Array}}
 */
function nucleus(logits, temperature, topK, topP) {
  if (!(temperature > 0)) {
    throw new RangeError(
      `temperature must be greater than 0 for sampling, got ${String(temperature)}.`,
    );
  }
  const scaled = new Float64Array(logits.length);
  for (let i = 0; i < scaled.length; i++) scaled[i] = logits[i] / temperature;
  const ranked = rankedValues(scaled, topK);
  // The native sort puts NaN last, so after reversing it shows up first.
  if (Number.isNaN(ranked[0])) throw new RangeError("logits contain NaN.");

  const exps = new Float64Array(ranked.length);
  for (let i = 0; i < exps.length; i++) exps[i] = Math.exp(ranked[i] - ranked[0]);
  const total = sequentialSum(exps);

  // Shortest prefix whose cumulative probability reaches topP, at least one.
  let size = exps.length;
  let cumulative = 0;
  for (let i = 0; i < exps.length; i++) {
    exps[i] /= total;
    cumulative += exps[i];
    if (cumulative >= topP && size === exps.length) size = i + 1;
  }
  const probabilities = exps.subarray(0, size);
  const nucleusTotal = sequentialSum(probabilities);
  for (let i = 0; i < size; i++) probabilities[i] /= nucleusTotal;
  return { scaled, ranked, probabilities };
}

/**
 * Computes the candidate tokens and their renormalised probabilities.
 *
 * Candidates are sorted by probability, highest first, lower index first on
 * ties: the `topK` largest scaled logits (all when 0), then the shortest
 * prefix whose cumulative probability reaches `topP`, at least one token.
 * @param {ArrayLike<number>} logits
 * @param {number} temperature Greater than 0.
 * @param {number} topK Integer, 0 keeps every token.
 * @param {number} topP In (0, 1].
 * @returns {{indices: Uint32Array, probabilities: Float64Array}}
 * @throws {RangeError} When `temperature` is not greater than 0.
 */
export function samplingDistribution(logits, temperature, topK, topP) {
  const { scaled, ranked, probabilities } = nucleus(logits, temperature, topK, topP);
  const indices = topIndices(scaled, ranked, probabilities.length);
  return { indices, probabilities };
}

/**
 * Picks a token from `logits` with the uniform draw `u` in [0, 1).
 * @param {ArrayLike<number>} logits
 * @param {number} temperature Greater than 0.
 * @param {number} topK
 * @param {number} topP
 * @param {number} u
 * @returns {number}
 * @throws {RangeError} When `temperature` is not greater than 0.
 */
export function sample(logits, temperature, topK, topP, u) {
  const { scaled, ranked, probabilities } = nucleus(logits, temperature, topK, topP);

  // Rounding can leave the last cumulative value just under a draw close to 1;
  // the last candidate is then the one the draw falls in.
  let position = probabilities.length - 1;
  let cumulative = 0;
  for (let i = 0; i < probabilities.length; i++) {
    cumulative += probabilities[i];
    if (cumulative > u) {
      position = i;
      break;
    }
  }
  return topIndices(scaled, ranked, position + 1)[position];
}

/**
 * Chooses each next token of one generation and keeps its generator state.
 */
export class TokenSelector {
  /**
   * @param {{temperature: number, topK: number, topP: number,
   *   seed: (number|null)}} params Validated generation parameters.
   */
  constructor(params) {
    this.params = params;
    this.seed = params.seed ?? randomSeed();
    this.rng = params.temperature === 0 ? null : new Mulberry32(this.seed);
  }

  /**
   * Returns the next token id for the logits of the last position.
   * @param {ArrayLike<number>} logits
   * @returns {number}
   */
  select(logits) {
    if (this.rng === null) return greedy(logits);
    const { temperature, topK, topP } = this.params;
    return sample(logits, temperature, topK, topP, this.rng.next());
  }
}
