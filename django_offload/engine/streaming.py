"""
Text pieces from a stream of token ids: incremental decoding that never splits
a multi-byte character, and stop strings that are cut and never partly sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

# Replacement character a byte-level decoder emits for an incomplete UTF-8
# sequence.
_REPLACEMENT = "\ufffd"


class IncrementalDecoder:
    """
    Turns token ids, pushed one at a time, into text pieces.

    Each push decodes a short window of ids: the ids already returned as text
    (``prefix``) and those that are not yet (``read`` onward). New text is
    returned only when it grows and does not end in an incomplete character,
    so a character spread over several byte tokens comes out whole. Decoding a
    window rather than one id keeps decoders that drop a leading space
    (SentencePiece-style) from losing it.
    """

    def __init__(self, decode: Callable[[Sequence[int]], str]) -> None:
        self._decode = decode
        self._ids: list[int] = []
        self._prefix = 0
        self._read = 0

    def push(self, token_id: int) -> str:
        """
        Add one token id and return the text it completes, possibly "".
        """
        self._ids.append(token_id)
        return self._advance(final=False)

    def flush(self) -> str:
        """
        Return any text still held back, incomplete characters included.
        """
        return self._advance(final=True)

    def _advance(self, *, final: bool) -> str:
        settled = self._decode(self._ids[self._prefix : self._read])
        current = self._decode(self._ids[self._prefix :])
        if len(current) <= len(settled):
            return ""
        if current.endswith(_REPLACEMENT) and not final:
            return ""
        self._prefix = self._read
        self._read = len(self._ids)
        return current[len(settled) :]


class StopStringFilter:
    """
    Releases text that cannot be part of a stop string and finds stop strings.

    Text that could be the start of a stop string is held back until the next
    pieces show whether the stop string follows. Once a stop string is found,
    ``stopped`` is true and the text before it is all that was released.
    """

    def __init__(self, stop: Sequence[str]) -> None:
        self._stop = tuple(stop)
        self._text = ""
        self._released = 0
        self.stopped = False

    @property
    def text(self) -> str:
        """
        The text released so far.
        """
        return self._text[: self._released]

    def push(self, piece: str) -> str:
        """
        Add decoded text and return the part that is safe to release.
        """
        if self.stopped:
            raise RuntimeError("push() was called after a stop string was found.")
        self._text += piece
        start = self._find_stop()
        if start is not None:
            self.stopped = True
            return self._release(start)
        return self._release(len(self._text) - self._held_length())

    def flush(self) -> str:
        """
        Release the held-back text at the end of generation.
        """
        if self.stopped:
            return ""
        return self._release(len(self._text))

    def _release(self, end: int) -> str:
        piece = self._text[self._released : end]
        self._released = max(self._released, end)
        return piece

    def _find_stop(self) -> int | None:
        # A stop string cannot start inside released text: while it was being
        # completed, its beginning was a held-back suffix.
        found = [
            index
            for index in (self._text.find(stop, self._released) for stop in self._stop)
            if index >= 0
        ]
        return min(found) if found else None

    def _held_length(self) -> int:
        # Longest suffix of the unreleased text that is a proper prefix of a
        # stop string.
        pending = self._text[self._released :]
        longest = max((len(stop) - 1 for stop in self._stop), default=0)
        for length in range(min(longest, len(pending)), 0, -1):
            suffix = pending[-length:]
            if any(stop.startswith(suffix) for stop in self._stop):
                return length
        return 0
