"""A set of piece indices and its bitfield form (SPEC §2: piece 0 is the high bit of
the first byte, spare bits are zero)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator


class BitfieldError(ValueError):
    """Bitfield bytes that cannot describe ``total`` pieces."""


def bitfield_length(total: int) -> int:
    return (total + 7) // 8


class PieceSet:
    """Which of ``total`` pieces are held; O(1) add, membership and count."""

    __slots__ = ("_flags", "count", "total")

    def __init__(self, total: int, pieces: Iterable[int] = ()) -> None:
        self.total = total
        self._flags = bytearray(total)
        self.count = 0
        for index in pieces:
            self.add(index)

    @classmethod
    def full(cls, total: int) -> PieceSet:
        pieces = cls(total)
        pieces._flags = bytearray(b"\x01" * total)
        pieces.count = total
        return pieces

    def add(self, index: int) -> bool:
        """Add ``index``; True if it was not there before. IndexError outside 0..total-1
        (a negative index must not silently mean a piece counted from the end)."""
        if not 0 <= index < self.total:
            raise IndexError(f"piece {index} out of range for {self.total} pieces")
        if self._flags[index]:
            return False
        self._flags[index] = 1
        self.count += 1
        return True

    def update(self, other: PieceSet) -> int:
        """Add every piece of ``other`` (of the same total); how many were new."""
        merged = (self.as_int() | other.as_int()).to_bytes(self.total, "big")
        added = merged.count(1) - self.count
        if added:
            self._flags = bytearray(merged)
            self.count += added
        return added

    def __contains__(self, index: int) -> bool:
        try:
            return 0 <= index < self.total and bool(self._flags[index])
        except TypeError:
            return False

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PieceSet):
            return NotImplemented
        return self.total == other.total and self._flags == other._flags

    __hash__ = None  # type: ignore[assignment]  # mutable, like set

    def __repr__(self) -> str:
        return f"PieceSet({self.total}, {list(self)!r})"

    def __iter__(self) -> Iterator[int]:
        flags = self._flags
        return (index for index in range(self.total) if flags[index])

    def __len__(self) -> int:
        return self.count

    @property
    def complete(self) -> bool:
        return self.count == self.total

    @property
    def flags(self) -> bytearray:
        """One byte per piece, 1 where held: for hot loops; do not modify."""
        return self._flags

    def as_int(self) -> int:
        """The flags as one integer with a byte per piece (0 or 1): cheap set algebra."""
        return int.from_bytes(self._flags, "big")

    def missing(self) -> list[int]:
        flags = self._flags
        return [index for index in range(self.total) if not flags[index]]

    def to_bitfield(self) -> bytes:
        length = bitfield_length(self.total)
        if not self.total:
            return b""
        value = int(bytes(self._flags).translate(_FLAG_TO_ASCII), 2)
        return (value << (length * 8 - self.total)).to_bytes(length, "big")

    @classmethod
    def from_bitfield(cls, data: bytes | memoryview, total: int) -> PieceSet:
        expected = bitfield_length(total)
        if len(data) != expected:
            raise BitfieldError(f"a bitfield of {len(data)} bytes; {expected} expected for {total} pieces")
        spare = expected * 8 - total
        value = int.from_bytes(data, "big")
        if value & ((1 << spare) - 1):
            raise BitfieldError(f"a bitfield with spare bits set (last byte {data[-1]:#04x} for {total} pieces)")
        bits = bin(value >> spare)[2:].zfill(total) if total else ""
        pieces = cls(total)
        pieces._flags = bytearray(bits.encode("ascii").translate(_ASCII_TO_FLAG))
        pieces.count = bits.count("1")
        return pieces


_FLAG_TO_ASCII = bytes.maketrans(b"\x00\x01", b"01")
_ASCII_TO_FLAG = bytes.maketrans(b"01", b"\x00\x01")
