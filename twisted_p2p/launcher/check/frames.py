"""What one side of a recorded connection said, frame by frame, and what was wrong with it.

The kit records raw bytes; this reads them after the run, strictly by SPEC §2, and where
the bytes stop making sense it says so with the bytes themselves and the usual cause
(ASCII zeros, a decimal ID, little-endian or off-by-one lengths, an LSB-first or short
bitfield). Parsing stops at the first bad frame: after it, nothing can be trusted.
"""
from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass, field

from twisted_p2p.bitfield import BitfieldError, PieceSet, bitfield_length
from twisted_p2p.config import Common
from twisted_p2p.wire import HANDSHAKE_HEADER, HANDSHAKE_LENGTH, MessageType

KINDS = {kind.value: kind.name.lower().replace("_", " ") for kind in MessageType}
_NO_PAYLOAD = {0, 1, 2, 3}
_INDEX_ONLY = {4, 6}


@dataclass(frozen=True)
class Chunk:
    """Bytes as the relay got them from the sender, and when it handed them on."""

    received: float
    delivered: float
    data: bytes


@dataclass(frozen=True)
class Frame:
    """One handshake or message: when it was sent and delivered, what it was, its bytes.

    ``kind`` is 'handshake', a message name ('choke' ... 'piece'), or 'bad' for the
    first frame that breaks SPEC §2 (then ``problem`` says how and ``head`` holds its
    first bytes).
    """

    kind: str
    sent: float
    delivered: float
    offset: int
    head: bytes
    index: int | None = None
    peer_id: int | None = None
    pieces: PieceSet | None = None
    payload: bytes = b""
    problem: str = ""


@dataclass
class Parsed:
    frames: list[Frame] = field(default_factory=list)
    unfinished: int = 0  # bytes of a frame the sender never finished

    @property
    def bad(self) -> Frame | None:
        return self.frames[-1] if self.frames and self.frames[-1].kind == "bad" else None


def hexdump(data: bytes, limit: int = 40) -> str:
    shown = data[:limit].hex(" ")
    return shown + (" ..." if len(data) > limit else "")


def diagnose_handshake(data: bytes, expected_id: int | None) -> str:
    """'' for a right handshake, else what is wrong with these 32 bytes."""
    header, reserved, id_bytes = data[:18], data[18:28], data[28:32]
    if header != HANDSHAKE_HEADER:
        return f"header {header!r}; expected {HANDSHAKE_HEADER!r}"
    if reserved != bytes(10):
        if reserved == b"0" * 10:
            return "the ten reserved bytes are ASCII '0' characters (0x30), not zero bytes"
        return f"the ten reserved bytes are {reserved.hex(' ')}, not zero bytes"
    (big,) = struct.unpack(">I", id_bytes)
    if expected_id is None or big == expected_id:
        return ""
    if id_bytes.lstrip(b"\0 ").isdigit() and int(id_bytes.lstrip(b"\0 ")) == expected_id:
        return f"the peer ID is the text {id_bytes!r}, not a 4-byte big-endian integer"
    if struct.unpack("<I", id_bytes)[0] == expected_id:
        return f"the peer ID {expected_id} is little-endian ({id_bytes.hex(' ')})"
    return f"the peer ID is {big}; this peer is {expected_id}"


def _legal_length(kind: int, common: Common, index: int | None) -> int | None:
    """The length a message of this type must have (None when the type is unknown)."""
    if kind in _NO_PAYLOAD:
        return 1
    if kind in _INDEX_ONLY:
        return 5
    if kind == MessageType.BITFIELD:
        return 1 + bitfield_length(common.num_pieces)
    if kind == MessageType.PIECE:
        if index is None or index >= common.num_pieces:
            return None
        return 5 + common.piece_length(index)
    return None


def _well_framed(data: bytes, position: int, common: Common) -> bool | None:
    """Whether a right message starts at ``position`` (None: too few bytes to tell)."""
    if len(data) - position < 5:
        return None
    (length,) = struct.unpack_from(">I", data, position)
    rest = data[position + 4 : position + 9]
    return rest[0] in KINDS and _legal_length(rest[0], common, _index(rest)) == length


def diagnose_length(data: bytes, position: int, common: Common) -> str:
    """'' if the message at ``position`` is well framed, else what is wrong with it."""
    (length,) = struct.unpack_from(">I", data, position)
    rest = data[position + 4 : position + 9]
    limit = max(common.piece_size + 5, bitfield_length(common.num_pieces) + 1)
    off_by_one = "the length leaves out the type byte (it must count the type and the payload)"
    if length == 0 or length > limit:
        swapped = struct.unpack("<I", struct.pack(">I", length))[0]
        if rest and _legal_length(rest[0], common, _index(rest)) == swapped:
            return (f"length {length} ({data[position:position + 4].hex(' ')}) is {swapped} little-endian: "
                    "lengths must be big-endian")
        if rest and _legal_length(rest[0], common, _index(rest)) == length + 1:
            return off_by_one
        return f"a length of {length}; 1 to {limit} is legal here"
    if not rest:
        return ""
    kind = rest[0]
    if kind not in KINDS:
        return f"unknown message type {kind}"
    legal = _legal_length(kind, common, _index(rest))
    if legal is None:
        if len(rest) < 5:
            return ""  # the index is still to come
        return f"a 'piece' for piece {_index(rest)}; pieces are 0 to {common.num_pieces - 1}"
    if legal == length:
        return ""
    if kind == MessageType.BITFIELD:
        short = f"a bitfield of {length - 1} bytes; {legal - 1} expected for {common.num_pieces} pieces"
        if legal != length + 1:
            return short
        after = len(data) - (position + 4 + length)  # bytes after it, if it is a short bitfield
        if after in (0, 1):  # all it sent: a short bitfield, or one byte over: its length is one short
            return short if after == 0 else off_by_one
        following = _well_framed(data, position + 4 + length, common)
        if following is None:
            return f"{short} (or a length that leaves out the type byte)"
        return short if following else off_by_one
    if legal == length + 1:
        return off_by_one
    return f"a '{KINDS[kind]}' of length {length}; {legal} expected"


def _index(rest: bytes) -> int | None:
    return struct.unpack(">I", rest[1:5])[0] if len(rest) >= 5 else None


def diagnose_bitfield(payload: bytes, total: int) -> tuple[PieceSet | None, str]:
    try:
        return PieceSet.from_bitfield(payload, total), ""
    except BitfieldError as exc:
        reversed_bits = bytes(int(f"{byte:08b}"[::-1], 2) for byte in payload)
        try:
            PieceSet.from_bitfield(reversed_bits, total)
        except BitfieldError:
            return None, str(exc)
        return None, f"{exc}: the bits are LSB-first (piece 0 must be the high bit of the first byte)"


def parse(chunks: list[Chunk], common: Common, sender: int | None) -> Parsed:
    """Every frame of one direction of a connection, stopping at the first bad one."""
    data = b"".join(chunk.data for chunk in chunks)
    ends: list[int] = []
    total = 0
    for chunk in chunks:
        total += len(chunk.data)
        ends.append(total)

    def when(last_byte: int) -> tuple[float, float]:
        chunk = chunks[bisect.bisect_right(ends, last_byte)]
        return chunk.received, chunk.delivered

    parsed = Parsed()

    def add(kind: str, start: int, end: int, **extra: object) -> None:
        sent, delivered = when(max(start, min(end, len(data)) - 1))
        parsed.frames.append(Frame(kind, sent, delivered, start, data[start:min(end, start + 40)], **extra))  # type: ignore[arg-type]

    if not data:
        return parsed
    if len(data) < HANDSHAKE_LENGTH:
        if not HANDSHAKE_HEADER.startswith(data[:18]):
            add("bad", 0, len(data), problem=f"a handshake starting {data[:18]!r}; expected {HANDSHAKE_HEADER!r}")
        else:
            parsed.unfinished = len(data)
        return parsed
    problem = diagnose_handshake(data[:HANDSHAKE_LENGTH], sender)
    if problem.startswith("header"):
        add("bad", 0, HANDSHAKE_LENGTH, problem=problem)
        return parsed
    add("handshake", 0, HANDSHAKE_LENGTH, peer_id=struct.unpack(">I", data[28:32])[0], problem=problem)
    position = HANDSHAKE_LENGTH
    while len(data) - position >= 4:
        (length,) = struct.unpack_from(">I", data, position)
        problem = diagnose_length(data, position, common)
        if problem:
            add("bad", position, position + 9, problem=problem)
            return parsed
        end = position + 4 + length
        if end > len(data):
            break
        kind, payload = data[position + 4], data[position + 5 : end]
        name = KINDS[kind]
        if kind in _INDEX_ONLY or kind == MessageType.PIECE:
            index = struct.unpack_from(">I", payload)[0]
            if index >= common.num_pieces:
                add("bad", position, end,
                    problem=f"a '{name}' for piece {index}; pieces are 0 to {common.num_pieces - 1}")
                return parsed
            add(name, position, end, index=index, payload=payload[4:] if kind == MessageType.PIECE else b"")
        elif kind == MessageType.BITFIELD:
            pieces, problem = diagnose_bitfield(payload, common.num_pieces)
            if pieces is None:
                add("bad", position, end, problem=problem)
                return parsed
            add(name, position, end, pieces=pieces)
        else:
            add(name, position, end)
        position = end
    parsed.unfinished = len(data) - position
    return parsed
