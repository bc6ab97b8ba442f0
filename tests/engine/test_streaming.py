import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from django_offload.engine.streaming import IncrementalDecoder, StopStringFilter

CORPUS = [
    "Le café est très bon, merci beaucoup.",
    "Grüße aus München und Zürich.",
    "日本語のテキストと中文文本。",
    "Emoji can be 🙂 or 🚀 or 👩‍💻 in a sentence.",
]


@pytest.fixture(scope="module")
def byte_tokenizer():
    # A small byte-level BPE, so characters outside ASCII span several tokens.
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS, trainer=trainer)
    return tokenizer


def decode_with(tokenizer):
    return lambda ids: tokenizer.decode(list(ids))


@pytest.mark.parametrize("text", [*CORPUS, "новый текст 🧪 ok"])
def test_incremental_decoder_pieces_join_to_text(byte_tokenizer, text):
    ids = byte_tokenizer.encode(text).ids
    decoder = IncrementalDecoder(decode_with(byte_tokenizer))
    pieces = [decoder.push(token) for token in ids]
    pieces.append(decoder.flush())
    assert "".join(pieces) == text


def test_incremental_decoder_never_splits_character(byte_tokenizer):
    text = "🙂🚀 日本語"
    ids = byte_tokenizer.encode(text).ids
    assert len(ids) > len(text)
    decoder = IncrementalDecoder(decode_with(byte_tokenizer))
    pieces = [decoder.push(token) for token in ids]
    assert all("\ufffd" not in piece for piece in pieces)
    assert "".join(pieces) + decoder.flush() == text


def test_incremental_decoder_flush_returns_incomplete_bytes(byte_tokenizer):
    ids = byte_tokenizer.encode("🙂").ids
    decoder = IncrementalDecoder(decode_with(byte_tokenizer))
    assert decoder.push(ids[0]) == ""
    assert decoder.flush() == "\ufffd"


def run_filter(stop, pieces):
    stops = StopStringFilter(stop)
    released = []
    for piece in pieces:
        released.append(stops.push(piece))
        if stops.stopped:
            break
    released.append(stops.flush())
    return stops, released


def test_stop_filter_cuts_stop_string():
    stops, released = run_filter(["STOP"], ["Hel", "lo ST", "OP", " more"])
    assert stops.stopped
    assert stops.text == "Hello "
    assert "".join(released) == "Hello "


def test_stop_filter_holds_back_possible_start():
    stops, released = run_filter(["STOP"], ["Hel", "lo ST", "OP"])
    assert released[:2] == ["Hel", "lo "]


def test_stop_filter_releases_false_start():
    stops, released = run_filter(["STOP"], ["a ST", "ART b"])
    assert not stops.stopped
    assert released == ["a ", "START b", ""]


def test_stop_filter_releases_held_text_on_flush():
    stops, released = run_filter(["</answer>"], ["done </ans"])
    assert not stops.stopped
    assert released == ["done ", "</ans"]
    assert stops.text == "done </ans"


def test_stop_filter_earliest_stop_wins():
    stops, _ = run_filter(["b", "ab"], ["xxabyy"])
    assert stops.text == "xx"


def test_stop_filter_stop_at_start():
    stops, released = run_filter(["\n\n"], ["\n", "\nrest"])
    assert stops.stopped
    assert stops.text == ""
    assert released == ["", "", ""]


def test_stop_filter_stop_inside_one_piece():
    stops, released = run_filter(["END"], ["one END two"])
    assert released == ["one ", ""]


def test_stop_filter_without_stops_releases_everything():
    stops, released = run_filter([], ["a", "b"])
    assert released == ["a", "b", ""]
    assert stops.text == "ab"


def test_stop_filter_push_after_stop_raises():
    stops, _ = run_filter(["x"], ["x"])
    with pytest.raises(RuntimeError):
        stops.push("more")


def test_stop_filter_overlapping_prefix_held():
    # "aab" contains the stop "ab" starting at index 1; "aa" must not be
    # released whole before the "b" arrives.
    stops, released = run_filter(["ab"], ["a", "a", "b"])
    assert stops.text == "a"
    assert "".join(released) == "a"
