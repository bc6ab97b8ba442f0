/**
 * @file Tests of incremental decoding and stop-string hold-back.
 *
 * The decoder under test is fed byte ids decoded by the platform's UTF-8
 * TextDecoder, which writes U+FFFD for an incomplete sequence exactly as a
 * byte-level BPE decoder does.
 */

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  IncrementalDecoder,
  StopStringFilter,
} from "../../django_offload/static/django_offload/textstream.js";

const utf8 = new TextDecoder();
const decodeBytes = (ids) => utf8.decode(Uint8Array.from(ids));
const bytesOf = (text) => [...new TextEncoder().encode(text)];

/**
 * Streams `text` byte by byte through a decoder and a stop filter.
 * @returns {{pieces: string[], filter: StopStringFilter}}
 */
function stream(text, stop) {
  const decoder = new IncrementalDecoder(decodeBytes);
  const filter = new StopStringFilter(stop);
  const pieces = [];
  for (const id of bytesOf(text)) {
    pieces.push(filter.push(decoder.push(id)));
    if (filter.stopped) break;
  }
  if (!filter.stopped) {
    pieces.push(filter.push(decoder.flush()));
    if (!filter.stopped) pieces.push(filter.flush());
  }
  return { pieces: pieces.filter(Boolean), filter };
}

test("decoder_multibyte_character_never_split", () => {
  const decoder = new IncrementalDecoder(decodeBytes);
  const pieces = bytesOf("a€😀b").map((id) => decoder.push(id));
  // "€" is 3 bytes and "😀" 4: only their last byte completes them.
  assert.deepEqual(pieces, ["a", "", "", "€", "", "", "", "😀", "b"]);
  assert.equal(decoder.flush(), "");
});

test("decoder_flush_returns_incomplete_tail", () => {
  const decoder = new IncrementalDecoder(decodeBytes);
  decoder.push(0x41);
  assert.equal(decoder.push(0xe2), "");
  assert.equal(decoder.flush(), "\ufffd");
});

test("decoder_pieces_join_to_full_text", () => {
  const text = "Grüße, 世界! ✓ done";
  const { pieces } = stream(text, []);
  assert.equal(pieces.join(""), text);
  assert.ok(pieces.every((piece) => !piece.includes("\ufffd")));
});

test("stop_string_cut_from_text", () => {
  const { pieces, filter } = stream("Answer: 42\nUser: more", ["\nUser:"]);
  assert.equal(filter.text, "Answer: 42");
  assert.equal(pieces.join(""), "Answer: 42");
  assert.ok(filter.stopped);
});

test("stop_prefix_held_back_until_resolved", () => {
  const filter = new StopStringFilter(["END"]);
  assert.equal(filter.push("abc E"), "abc ");
  assert.equal(filter.push("N"), "");
  // "ENx" is no longer a prefix of "END", so it is released whole.
  assert.equal(filter.push("x"), "ENx");
  assert.equal(filter.text, "abc ENx");
  assert.equal(filter.stopped, false);
});

test("stop_prefix_released_at_flush", () => {
  const filter = new StopStringFilter(["</answer>"]);
  assert.equal(filter.push("yes </ans"), "yes ");
  assert.equal(filter.flush(), "</ans");
  assert.equal(filter.text, "yes </ans");
});

test("stop_earliest_of_several_wins", () => {
  const filter = new StopStringFilter(["BB", "A"]);
  assert.equal(filter.push("xxBBA"), "xx");
  assert.equal(filter.text, "xx");
});

test("stop_spanning_pieces_found", () => {
  const { pieces, filter } = stream("one two three", ["two"]);
  assert.equal(filter.text, "one ");
  assert.equal(pieces.join(""), "one ");
});

test("stop_multibyte_stop_string_cut", () => {
  const { filter } = stream("prix: 5€ fin", ["€"]);
  assert.equal(filter.text, "prix: 5");
});

test("stop_push_after_stop_throws", () => {
  const filter = new StopStringFilter(["x"]);
  filter.push("x");
  assert.throws(() => filter.push("y"), /after a stop string/);
  assert.equal(filter.flush(), "");
});

test("stop_none_releases_everything", () => {
  const filter = new StopStringFilter([]);
  assert.equal(filter.push("abc"), "abc");
  assert.equal(filter.flush(), "");
});
