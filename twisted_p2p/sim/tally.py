"""Count the messages a byte stream carries, by type, however the network splits it.

The simulator counts what its transports deliver, so the figures are the wire's and
need nothing from the peers. A stream is the 32-byte handshake, then frames of a
4-byte length and a type byte (SPEC §2); a proof of our authentication extension is a
frame of its own type.
"""
from __future__ import annotations

from collections import Counter

from twisted_p2p.wire import AUTH_TYPE, HANDSHAKE_LENGTH, MessageType

#: A message type's name by its code, as reports print it.
TYPE_NAMES = {int(kind): kind.name.lower() for kind in MessageType} | {AUTH_TYPE: "proof"}
_HAVE = int(MessageType.HAVE)
_HAVE_LENGTH = 9  # a 4-byte length of 5, the type, a 4-byte index


def only_haves(data: bytes, start: int) -> int:
    """How many haves ``data[start:]`` is, if it is nothing else, else 0: most of what a
    large swarm sends, counted by slicing (in C) rather than frame by frame."""
    count, rest = divmod(len(data) - start, _HAVE_LENGTH)
    if rest or not count:
        return 0
    frames = data[start:]
    if (frames[4::9].count(_HAVE) == count and frames[3::9].count(5) == count
            and frames[0::9].count(0) == count and frames[1::9].count(0) == count and frames[2::9].count(0) == count):
        return count
    return 0


class FrameTally:
    """Counts one direction of one connection into ``counts`` (a Counter shared with
    others, e.g. all of a host's sends)."""

    __slots__ = ("counts", "_skip", "_header", "_handshake")

    def __init__(self, counts: Counter[str]) -> None:
        self.counts = counts
        self._handshake = HANDSHAKE_LENGTH  # handshake bytes still to come
        self._skip = 0  # payload bytes of the current frame still to come
        self._header = b""  # a frame header split between chunks

    def feed(self, data: bytes) -> None:
        position, end = 0, len(data)
        if self._handshake:
            taken = min(self._handshake, end)
            self._handshake -= taken
            position = taken
            if not self._handshake:
                self.counts["handshake"] += 1
        if self._skip:
            taken = min(self._skip, end - position)
            self._skip -= taken
            position += taken
        if self._header:
            data = self._header + data[position:]
            position, end, self._header = 0, len(data), b""
        counts = self.counts
        haves = only_haves(data, position) if end - position >= 2 * _HAVE_LENGTH else 0
        if haves:
            counts["have"] += haves
            return
        while position < end:
            if end - position < 5:
                self._header = data[position:]
                return
            length = int.from_bytes(data[position:position + 4], "big")
            counts[TYPE_NAMES.get(data[position + 4], "unknown")] += 1
            frame_end = position + 4 + length
            if frame_end > end:
                self._skip = frame_end - end
                return
            position = frame_end
