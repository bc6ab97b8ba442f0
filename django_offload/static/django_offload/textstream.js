/**
 * @file Text pieces from a stream of token ids: incremental decoding that never
 * splits a multi-byte character, and stop strings that are cut from the text
 * and never partly sent. Mirrors `django_offload/engine/streaming.py`.
 * @module textstream
 */

// The character a byte-level decoder writes for an incomplete UTF-8 sequence.
const REPLACEMENT = "\ufffd";

/**
 * Turns token ids, pushed one at a time, into text pieces.
 *
 * Each push decodes a short window of ids: the ids already returned as text
 * (from `prefix`) and those that are not yet (from `read`). New text is
 * returned only when it grows and does not end in an incomplete character, so
 * a character spread over several byte tokens comes out whole. Decoding a
 * window rather than one id keeps decoders that drop a leading space
 * (SentencePiece-style) from losing it.
 */
export class IncrementalDecoder {
  /**
   * @param {(ids: number[]) => string} decode Decodes ids to text.
   */
  constructor(decode) {
    this.decode = decode;
    this.ids = [];
    this.prefix = 0;
    this.read = 0;
  }

  /**
   * Adds one token id and returns the text it completes, possibly "".
   * @param {number} tokenId
   * @returns {string}
   */
  push(tokenId) {
    this.ids.push(tokenId);
    return this.advance(false);
  }

  /**
   * Returns any text still held back, incomplete characters included.
   * @returns {string}
   */
  flush() {
    return this.advance(true);
  }

  /**
   * @param {boolean} final
   * @returns {string}
   */
  advance(final) {
    const settled = this.decode(this.ids.slice(this.prefix, this.read));
    const current = this.decode(this.ids.slice(this.prefix));
    if (current.length <= settled.length) return "";
    if (!final && current.endsWith(REPLACEMENT)) return "";
    this.prefix = this.read;
    this.read = this.ids.length;
    return current.slice(settled.length);
  }
}

/**
 * Releases text that cannot be part of a stop string and finds stop strings.
 *
 * Text that could be the start of a stop string is held back until the next
 * pieces show whether the stop string follows. Once a stop string is found,
 * `stopped` is true and the text before it is all that was released.
 */
export class StopStringFilter {
  /**
   * @param {string[]} stop Non-empty stop strings; may be empty.
   */
  constructor(stop) {
    this.stop = [...stop];
    this.longest = Math.max(0, ...this.stop.map((item) => item.length - 1));
    this.buffer = "";
    this.released = 0;
    this.stopped = false;
  }

  /**
   * The text released so far.
   * @returns {string}
   */
  get text() {
    return this.buffer.slice(0, this.released);
  }

  /**
   * Adds decoded text and returns the part that is safe to release.
   * @param {string} piece
   * @returns {string}
   * @throws {Error} When called after a stop string was found.
   */
  push(piece) {
    if (this.stopped) {
      throw new Error("push() was called after a stop string was found.");
    }
    this.buffer += piece;
    const start = this.findStop();
    if (start >= 0) {
      this.stopped = true;
      return this.release(start);
    }
    return this.release(this.buffer.length - this.heldLength());
  }

  /**
   * Releases the held-back text at the end of generation.
   * @returns {string}
   */
  flush() {
    if (this.stopped) return "";
    return this.release(this.buffer.length);
  }

  /**
   * @param {number} end
   * @returns {string}
   */
  release(end) {
    const piece = this.buffer.slice(this.released, end);
    this.released = Math.max(this.released, end);
    return piece;
  }

  /**
   * Returns where the earliest stop string starts, or -1.
   * @returns {number}
   */
  findStop() {
    // A stop string cannot start inside released text: while it was being
    // completed, its beginning was a held-back suffix.
    let found = -1;
    for (const item of this.stop) {
      const index = this.buffer.indexOf(item, this.released);
      if (index >= 0 && (found < 0 || index < found)) found = index;
    }
    return found;
  }

  /**
   * Returns the length of the longest suffix of the unreleased text that is a
   * proper prefix of a stop string.
   * @returns {number}
   */
  heldLength() {
    const pending = this.buffer.slice(this.released);
    for (let length = Math.min(this.longest, pending.length); length > 0; length--) {
      const suffix = pending.slice(-length);
      if (this.stop.some((item) => item.startsWith(suffix))) return length;
    }
    return 0;
  }
}
