"""PieceSet and its bitfield form (SPEC §2: piece 0 is the high bit of the first byte,
spare bits are zero)."""
from __future__ import annotations

import random

import pytest

from twisted_p2p.bitfield import BitfieldError, PieceSet, bitfield_length

SIZES = [0, 1, 7, 8, 9, 15, 16, 17, 306]


def reference_bitfield(total: int, pieces: set[int]) -> bytes:
    """The bitfield built bit by bit, the slow obvious way."""
    out = bytearray(bitfield_length(total))
    for index in pieces:
        out[index // 8] |= 0x80 >> (index % 8)
    return bytes(out)


def random_subset(rng: random.Random, total: int) -> set[int]:
    return {index for index in range(total) if rng.random() < 0.5}


@pytest.mark.parametrize(
    ("total", "length"),
    [(0, 0), (1, 1), (7, 1), (8, 1), (9, 2), (16, 2), (17, 3), (305, 39), (306, 39), (312, 39), (313, 40)],
)
def test_bitfield_length(total, length):
    assert bitfield_length(total) == length


@pytest.mark.parametrize(
    ("total", "pieces", "expected"),
    [
        (0, [], b""),
        (1, [], b"\x00"),
        (1, [0], b"\x80"),
        (7, [0, 1, 2, 3, 4, 5, 6], b"\xfe"),
        (7, [6], b"\x02"),
        (8, [0], b"\x80"),
        (8, [7], b"\x01"),
        (8, [1, 3, 5, 7], b"\x55"),
        (8, list(range(8)), b"\xff"),
        (9, [8], b"\x00\x80"),
        (9, [0, 8], b"\x80\x80"),
        (9, list(range(9)), b"\xff\x80"),
        (16, [0, 15], b"\x80\x01"),
        (306, [0], b"\x80" + b"\x00" * 38),
        (306, [305], b"\x00" * 38 + b"\x40"),
        (306, [9, 304], b"\x00\x40" + b"\x00" * 36 + b"\x80"),
        (306, list(range(306)), b"\xff" * 38 + b"\xc0"),
    ],
)
def test_to_bitfield_vectors_msb_first(total, pieces, expected):
    assert PieceSet(total, pieces).to_bitfield() == expected
    decoded = PieceSet.from_bitfield(expected, total)
    assert sorted(decoded) == sorted(pieces)
    assert decoded.count == len(set(pieces))


@pytest.mark.parametrize("total", SIZES)
@pytest.mark.parametrize("seed", range(5))
def test_round_trip_random_sets(total, seed):
    rng = random.Random(seed * 1000 + total)
    chosen = random_subset(rng, total)
    pieces = PieceSet(total, chosen)
    data = pieces.to_bitfield()
    assert len(data) == bitfield_length(total)
    assert data == reference_bitfield(total, chosen)
    back = PieceSet.from_bitfield(data, total)
    assert set(back) == chosen
    assert back.count == len(chosen) == len(back)
    assert back.complete == (len(chosen) == total)
    assert back == pieces


@pytest.mark.parametrize("total", SIZES)
def test_full_has_spare_bits_zero(total):
    data = PieceSet.full(total).to_bitfield()
    assert data == reference_bitfield(total, set(range(total)))
    spare = len(data) * 8 - total
    if data:
        assert data[-1] & ((1 << spare) - 1) == 0
    assert PieceSet.from_bitfield(data, total).complete


@pytest.mark.parametrize("total", SIZES)
def test_empty_and_full(total):
    empty = PieceSet(total)
    assert empty.to_bitfield() == bytes(bitfield_length(total))
    assert len(empty) == 0 and list(empty) == []
    assert empty.missing() == list(range(total))
    assert empty.complete == (total == 0)
    full = PieceSet.full(total)
    assert len(full) == total and list(full) == list(range(total))
    assert full.missing() == []
    assert full.complete
    # full() must behave like a set built one piece at a time
    assert full == PieceSet(total, range(total))
    if total:
        assert not full.add(0)
        assert full.count == total


@pytest.mark.parametrize(
    ("data", "total", "text"),
    [
        (b"\x00" * 38, 306, "a bitfield of 38 bytes; 39 expected for 306 pieces"),
        (b"\x00" * 40, 306, "a bitfield of 40 bytes; 39 expected for 306 pieces"),
        (b"", 1, "a bitfield of 0 bytes; 1 expected for 1 pieces"),
        (b"\x80\x00", 8, "a bitfield of 2 bytes; 1 expected for 8 pieces"),
        (b"\x00", 9, "a bitfield of 1 bytes; 2 expected for 9 pieces"),
        (b"\x00", 0, "a bitfield of 1 bytes; 0 expected for 0 pieces"),
        (b"\x01", 7, "a bitfield with spare bits set (last byte 0x01 for 7 pieces)"),
        (b"\xff", 1, "a bitfield with spare bits set (last byte 0xff for 1 pieces)"),
        (b"\x40", 1, "a bitfield with spare bits set (last byte 0x40 for 1 pieces)"),
        (b"\xff\xc0", 9, "a bitfield with spare bits set (last byte 0xc0 for 9 pieces)"),
        (b"\xff" * 38 + b"\xe0", 306, "a bitfield with spare bits set (last byte 0xe0 for 306 pieces)"),
        (b"\x00" * 38 + b"\x01", 306, "a bitfield with spare bits set (last byte 0x01 for 306 pieces)"),
    ],
)
def test_from_bitfield_errors(data, total, text):
    with pytest.raises(BitfieldError) as info:
        PieceSet.from_bitfield(data, total)
    assert str(info.value) == text
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("total", [1, 7, 9, 306])
def test_every_single_spare_bit_is_rejected(total):
    length = bitfield_length(total)
    spare = length * 8 - total
    for bit in range(spare):
        data = bytes(length - 1) + bytes([1 << bit])
        with pytest.raises(BitfieldError, match="spare bits set"):
            PieceSet.from_bitfield(data, total)


@pytest.mark.parametrize("total", [8, 16])
def test_no_spare_bits_when_whole_bytes(total):
    assert PieceSet.from_bitfield(b"\xff" * (total // 8), total).complete


def test_from_bitfield_accepts_memoryview_and_bytearray():
    data = PieceSet(306, [0, 100, 305]).to_bitfield()
    assert list(PieceSet.from_bitfield(memoryview(data), 306)) == [0, 100, 305]
    assert list(PieceSet.from_bitfield(bytearray(data), 306)) == [0, 100, 305]


def test_add_contains_count_complete_missing():
    pieces = PieceSet(5)
    assert pieces.total == 5
    assert pieces.add(3) is True
    assert pieces.add(3) is False
    assert pieces.count == 1 == len(pieces)
    assert 3 in pieces and 2 not in pieces
    assert pieces.missing() == [0, 1, 2, 4]
    assert not pieces.complete
    for index in (0, 1, 2):
        assert pieces.add(index)
    assert not pieces.complete
    assert pieces.add(4)
    assert pieces.complete
    assert pieces.missing() == []
    assert list(pieces) == [0, 1, 2, 3, 4]


def test_constructor_ignores_duplicates():
    pieces = PieceSet(10, [1, 1, 2, 9, 2])
    assert pieces.count == 3
    assert list(pieces) == [1, 2, 9]


@pytest.mark.parametrize("index", [-1, -5, 5, 6, 100])
def test_out_of_range_index_is_not_aliased(index):
    """A negative index must not silently mean 'from the end' (bytearray semantics)."""
    pieces = PieceSet.full(5)
    assert index not in pieces
    empty = PieceSet(5)
    with pytest.raises(IndexError):
        empty.add(index)
    assert empty.count == 0 and list(empty) == []


def test_as_int_one_byte_per_piece():
    assert PieceSet(0).as_int() == 0
    assert PieceSet(3, [0]).as_int() == 0x010000
    assert PieceSet(3, [2]).as_int() == 0x000001
    assert PieceSet(3, [0, 1, 2]).as_int() == 0x010101
    rng = random.Random(7)
    for total in SIZES:
        chosen = random_subset(rng, total)
        value = PieceSet(total, chosen).as_int()
        assert value.bit_count() == len(chosen)
        assert value == sum(1 << (8 * (total - 1 - index)) for index in chosen)


def test_equality_is_by_value():
    assert PieceSet(9, [1, 8]) == PieceSet(9, [8, 1])
    assert PieceSet(9, [1, 8]) != PieceSet(9, [1])
    assert PieceSet(9, []) != PieceSet(10, [])
    assert PieceSet(8, [0]) != b"\x80"
