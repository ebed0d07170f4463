"""The kit's reading of recorded bytes: each common wire bug named from the bytes alone."""
from __future__ import annotations

import struct

from twisted_p2p import wire
from twisted_p2p.bitfield import PieceSet
from twisted_p2p.config import Common
from twisted_p2p.launcher.check.frames import Chunk, Parsed, parse

COMMON = Common(1, 1, 2, "f", 600_000, 16384)  # 37 pieces, the last 10,176 bytes
N = COMMON.num_pieces
HANDSHAKE = wire.encode_handshake(1001)
FULL = wire.encode_bitfield(PieceSet.full(N))


def read(data: bytes, sender: int = 1001, cut: int = 7) -> Parsed:
    """As two chunks, the second sent at 2.0 and delivered at 2.5."""
    return parse([Chunk(1.0, 1.5, data[:cut]), Chunk(2.0, 2.5, data[cut:])], COMMON, sender)


def kinds(parsed: Parsed) -> list[str]:
    return [frame.kind for frame in parsed.frames]


def test_a_right_stream_is_read_frame_by_frame_with_the_times_of_its_last_byte():
    piece = wire.encode_piece_header(36, 10_176) + bytes(10_176)
    parsed = read(HANDSHAKE + FULL + wire.UNCHOKE + wire.encode_have(3) + piece + b"\x00\x00")
    assert kinds(parsed) == ["handshake", "bitfield", "unchoke", "have", "piece"]
    assert parsed.bad is None and parsed.unfinished == 2
    assert parsed.frames[0].peer_id == 1001 and parsed.frames[0].problem == ""
    assert (parsed.frames[0].sent, parsed.frames[0].delivered) == (2.0, 2.5)
    assert parsed.frames[1].pieces == PieceSet.full(N)
    assert parsed.frames[3].index == 3 and parsed.frames[4].index == 36 and len(parsed.frames[4].payload) == 10_176


def test_a_handshake_in_the_first_chunk_has_that_chunks_times():
    parsed = read(HANDSHAKE + wire.CHOKE, cut=32)
    assert (parsed.frames[0].sent, parsed.frames[0].delivered) == (1.0, 1.5)
    assert parsed.frames[1].sent == 2.0


def test_ascii_zeros_in_the_reserved_bytes():
    parsed = read(b"P2PFILESHARINGPROJ" + b"0" * 10 + struct.pack(">I", 1001) + FULL)
    assert "ASCII '0'" in parsed.frames[0].problem
    assert kinds(parsed) == ["handshake", "bitfield"]  # the rest is still read


def test_the_id_as_text_and_as_little_endian():
    assert "the text b'1001'" in read(b"P2PFILESHARINGPROJ" + bytes(10) + b"1001").frames[0].problem
    assert "little-endian" in read(b"P2PFILESHARINGPROJ" + bytes(10) + struct.pack("<I", 1001)).frames[0].problem
    assert "this peer is 1001" in read(wire.encode_handshake(1005)).frames[0].problem


def test_a_wrong_header_stops_the_reading_at_once():
    parsed = read(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(10))
    assert kinds(parsed) == ["bad"] and "expected b'P2PFILESHARINGPROJ'" in parsed.frames[0].problem


def test_little_endian_lengths():
    parsed = read(HANDSHAKE + struct.pack("<I", 6) + FULL[4:])
    assert parsed.bad is not None and "is 6 little-endian" in parsed.bad.problem


def test_a_length_without_the_type_byte():
    leaves_out = "the length leaves out the type byte"
    assert read(HANDSHAKE + b"\x00\x00\x00\x00\x02").bad.problem.startswith(leaves_out)  # interested
    assert read(HANDSHAKE + b"\x00\x00\x00\x04\x04\x00\x00\x00\x01").bad.problem.startswith(leaves_out)
    # a bitfield one short in length, followed by the one byte the length left out
    parsed = read(HANDSHAKE + struct.pack(">I", len(FULL) - 5) + FULL[4:])
    assert parsed.bad.problem.startswith("the length leaves out the type byte")
    # ... or by the next message, framed the same way
    parsed = read(HANDSHAKE + struct.pack(">I", len(FULL) - 5) + FULL[4:] + b"\x00\x00\x00\x00\x01")
    assert parsed.bad.problem.startswith("the length leaves out the type byte")


def test_a_short_bitfield_is_not_taken_for_a_length_bug():
    short = struct.pack(">I", len(FULL) - 5) + FULL[4:-1]
    assert read(HANDSHAKE + short).bad.problem == "a bitfield of 4 bytes; 5 expected for 37 pieces"
    assert read(HANDSHAKE + short + wire.INTERESTED).bad.problem.startswith("a bitfield of 4 bytes")


def test_an_lsb_first_bitfield_and_spare_bits():
    lsb_first = bytes(int(f"{byte:08b}"[::-1], 2) for byte in FULL[5:])
    parsed = read(HANDSHAKE + FULL[:5] + lsb_first)
    assert "LSB-first" in parsed.bad.problem and parsed.bad.head.startswith(FULL[:5])
    spare = FULL[:-1] + bytes([FULL[-1] | 1])
    problem = read(HANDSHAKE + spare).bad.problem
    assert "spare bits" in problem and "LSB-first" not in problem


def test_unknown_types_indexes_out_of_range_and_wrong_piece_sizes():
    assert read(HANDSHAKE + b"\x00\x00\x00\x01\x09").bad.problem == "unknown message type 9"
    assert "pieces are 0 to 36" in read(HANDSHAKE + wire.encode_have(37)).bad.problem
    assert "pieces are 0 to 36" in read(HANDSHAKE + wire.encode_piece_header(40, 16384) + bytes(16384)).bad.problem
    wrong = wire.encode_piece_header(36, 16384) + bytes(16384)  # the last piece is shorter
    assert "'piece' of length 16389; 10181 expected" in read(HANDSHAKE + wrong).bad.problem


def test_a_huge_length_is_named_without_waiting_for_its_bytes():
    parsed = read(HANDSHAKE + b"\xff\xff\xff\xff\x07" + bytes(100))
    assert parsed.bad.problem == "a length of 4294967295; 1 to 16389 is legal here"


def test_nothing_and_half_a_handshake():
    assert read(b"").frames == []
    half = read(HANDSHAKE[:20])
    assert half.frames == [] and half.unfinished == 20
