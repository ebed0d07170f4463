"""The wire codec of SPEC §2 and the malformed input of SPEC §4 it is responsible for."""
from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wirebytes import encode

from twisted_p2p import wire
from twisted_p2p.bitfield import PieceSet
from twisted_p2p.config import Common
from twisted_p2p.wire import (
    Bitfield,
    Choke,
    Decoder,
    Have,
    Interested,
    NotInterested,
    Piece,
    ProtocolViolation,
    Request,
    Unchoke,
)

HEADER = b"P2PFILESHARINGPROJ"

# The spec's example: 306 pieces of 32768 bytes, the last one 5,992 bytes.
SPEC = Common(2, 5, 15, "TheFile.dat", 10000232, 32768)
# Small geometries so that a stream can be split at every byte boundary quickly.
SMALL = Common(2, 5, 15, "f", 23, 8)  # 3 pieces: 8, 8, 7 bytes; bitfield 1 byte; max length 13
TEN = Common(2, 5, 15, "f", 75, 8)  # 10 pieces, the last 3 bytes; bitfield 2 bytes
WIDE = Common(2, 5, 15, "f", 1000, 1)  # 1000 one-byte pieces: the bitfield (126) is the largest message


def be32(value: int) -> bytes:
    return struct.pack(">I", value)


def frame(length_type: int, payload: bytes = b"", length: int | None = None) -> bytes:
    body = bytes([length_type]) + payload
    return be32(len(body) if length is None else length) + body


# -- the framer, fed the way a connection feeds it ---------------------------------


class Framed:
    """What :class:`wire.Framer` made of a stream fed chunk by chunk: the handshake's
    peer ID, the messages, and the bytes not framed yet. Without ``handshake`` the
    stream is messages only, and a valid handshake is fed first."""

    def __init__(self, common: Common, handshake: bool = False) -> None:
        self.framer = wire.Framer(Decoder(common))
        self.peer_id: int | None = None
        self.messages: list[wire.Message] = []
        self.fed = bytearray()
        if not handshake:
            self.feed(wire.encode_handshake(1))
            self.peer_id = None

    def feed(self, chunk: bytes) -> None:
        self.fed += chunk
        self.framer.feed(chunk)
        while (frame := self.framer.next()) is not None:
            if isinstance(frame, wire.Handshake):
                self.peer_id = frame.peer_id
            else:
                self.messages.append(frame)

    @property
    def buffer(self) -> bytes:
        """What was fed but is not in a frame yet: each frame's encoding is unique."""
        return unframed(self.fed, self.framer.handshaken, self.messages)


def unframed(fed: bytes, handshaken: bool, messages: list) -> bytes:
    """The bytes of ``fed`` after the handshake (if framed) and ``messages``."""
    framed = (wire.HANDSHAKE_LENGTH if handshaken else 0) + sum(len(encode(m)) for m in messages)
    return bytes(fed[framed:])


def run(common: Common, chunks, handshake: bool = False) -> Framed:
    framed = Framed(common, handshake)
    for chunk in chunks:
        framed.feed(chunk)
    return framed


def splits(stream: bytes):
    """Every way to cut ``stream`` in two, plus one byte at a time."""
    for point in range(len(stream) + 1):
        yield [stream[:point], stream[point:]]
    yield [stream[i : i + 1] for i in range(len(stream))]


def outcome(common: Common, chunks, handshake: bool = False):
    """(messages decoded, violation text or None, leftover bytes)."""
    framed = Framed(common, handshake)
    try:
        for chunk in chunks:
            framed.feed(chunk)
    except ProtocolViolation as violation:
        assert framed.framer.broken and framed.framer.next() is None  # it takes nothing more
        return framed.messages, str(violation), None
    return framed.messages, None, framed.buffer


# -- handshake -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer_id", "tail"),
    [
        (1001, b"\x00\x00\x03\xe9"),
        (1, b"\x00\x00\x00\x01"),
        (256, b"\x00\x00\x01\x00"),
        (0x01020304, b"\x01\x02\x03\x04"),
        (2**32 - 1, b"\xff\xff\xff\xff"),
    ],
)
def test_handshake_bytes(peer_id, tail):
    data = wire.encode_handshake(peer_id)
    assert data == HEADER + b"\x00" * 10 + tail
    assert len(data) == wire.HANDSHAKE_LENGTH == 32
    assert data[:18] == b"P2PFILESHARINGPROJ"
    assert wire.decode_handshake(data) == peer_id


@pytest.mark.parametrize(
    "reserved",
    [b"0" * 10, b"\xff" * 10, b"\x00" * 9 + b"\x01", bytes(range(1, 11))],
    ids=["ascii-zeros", "ff", "last-set", "counting"],
)
def test_handshake_reserved_bytes_are_not_checked(reserved):
    assert wire.decode_handshake(HEADER + reserved + be32(1002)) == 1002


@pytest.mark.parametrize(
    ("header", "shown"),
    [
        (b"P2PFILESHARINGPROK", "b'P2PFILESHARINGPROK'"),
        (b"p2pfilesharingproj", "b'p2pfilesharingproj'"),
        (b"\x00" * 18, repr(b"\x00" * 18)),
        (b"P2PFILESHARINGPRO ", "b'P2PFILESHARINGPRO '"),
    ],
)
def test_handshake_wrong_header(header, shown):
    with pytest.raises(ProtocolViolation) as info:
        wire.decode_handshake(header + b"\x00" * 10 + be32(1001))
    assert str(info.value) == f"a handshake header {shown}; expected b'P2PFILESHARINGPROJ'"


@pytest.mark.parametrize("length", [0, 18, 31, 33, 64])
def test_handshake_wrong_length(length):
    data = (wire.encode_handshake(1001) * 2)[:length]
    with pytest.raises(ProtocolViolation) as info:
        wire.decode_handshake(data)
    assert str(info.value) == f"a handshake of {length} bytes; 32 expected"


def test_check_handshake_start_accepts_every_prefix():
    handshake = wire.encode_handshake(1001)
    for end in range(len(handshake) + 1):
        wire.check_handshake_start(handshake[:end])  # must not raise
        wire.check_handshake_start(bytearray(handshake[:end]))
    # bytes after the header are not its business (reserved and ID are free)
    wire.check_handshake_start(HEADER + b"\xff" * 5)


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        (b"X", "b'X'"),
        (b"P2Q", "b'P2Q'"),
        (b"\x00\x00\x00\x01\x00", repr(b"\x00\x00\x00\x01\x00")),  # a choke instead of a handshake
        (b"P2PFILESHARINGPROK", "b'P2PFILESHARINGPROK'"),
        (b"P2PFILESHARINGPROX" + b"\x00" * 10, "b'P2PFILESHARINGPROX'"),
    ],
)
def test_check_handshake_start_fails_early(data, shown):
    with pytest.raises(ProtocolViolation) as info:
        wire.check_handshake_start(data)
    assert str(info.value) == f"a handshake starting {shown}; expected b'P2PFILESHARINGPROJ'"


def test_bad_handshake_fails_on_the_first_wrong_byte():
    framed = Framed(SMALL, handshake=True)
    framed.feed(b"P2P")
    with pytest.raises(ProtocolViolation):
        framed.feed(b"x")  # the 4th byte is wrong: no need to wait for 32


# -- message bytes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "constant", "data"),
    [
        (Choke(), wire.CHOKE, b"\x00\x00\x00\x01\x00"),
        (Unchoke(), wire.UNCHOKE, b"\x00\x00\x00\x01\x01"),
        (Interested(), wire.INTERESTED, b"\x00\x00\x00\x01\x02"),
        (NotInterested(), wire.NOT_INTERESTED, b"\x00\x00\x00\x01\x03"),
    ],
)
def test_no_payload_messages(message, constant, data):
    assert constant == data
    assert encode(message) == data
    assert Decoder(SPEC).decode(data[4:]) == message


@pytest.mark.parametrize(
    ("index", "tail"), [(0, b"\x00\x00\x00\x00"), (1, b"\x00\x00\x00\x01"), (305, b"\x00\x00\x01\x31")]
)
def test_have_and_request_bytes(index, tail):
    assert wire.encode_have(index) == b"\x00\x00\x00\x05\x04" + tail
    assert encode(Have(index)) == b"\x00\x00\x00\x05\x04" + tail
    assert wire.encode_request(index) == b"\x00\x00\x00\x05\x06" + tail
    assert encode(Request(index)) == b"\x00\x00\x00\x05\x06" + tail
    assert len(wire.encode_have(index)) == 9


def test_have_index_is_big_endian_full_width():
    assert wire.encode_have(0x01020304) == b"\x00\x00\x00\x05\x04\x01\x02\x03\x04"
    assert wire.encode_request(2**32 - 1) == b"\x00\x00\x00\x05\x06\xff\xff\xff\xff"


@pytest.mark.parametrize(
    ("total", "pieces", "data"),
    [
        (306, [0, 9, 305], b"\x00\x00\x00\x28\x05\x80\x40" + b"\x00" * 36 + b"\x40"),
        (306, [], b"\x00\x00\x00\x28\x05" + b"\x00" * 39),
        (3, [0, 2], b"\x00\x00\x00\x02\x05\xa0"),
        (8, [7], b"\x00\x00\x00\x02\x05\x01"),
        (9, [8], b"\x00\x00\x00\x03\x05\x00\x80"),
        (10, list(range(10)), b"\x00\x00\x00\x03\x05\xff\xc0"),
    ],
)
def test_bitfield_bytes(total, pieces, data):
    message = Bitfield(PieceSet(total, pieces))
    assert wire.encode_bitfield(message.pieces) == data
    assert encode(message) == data
    common = Common(1, 1, 1, "f", total, 1)
    assert Decoder(common).decode(data[4:]) == message


def test_piece_bytes():
    data = b"abcdefg"
    expected = b"\x00\x00\x00\x0c\x07\x00\x00\x00\x02" + data
    assert encode(Piece(2, data)) == expected
    assert wire.encode_piece_header(2, 7) == expected[:9]
    assert Decoder(SMALL).decode(expected[4:]) == Piece(2, data)


def test_piece_bytes_full_size_spec_geometry():
    data = bytes(range(256)) * 128
    encoded = encode(Piece(305 - 1, data))
    assert encoded[:9] == b"\x00\x00\x80\x05\x07\x00\x00\x01\x30"
    assert encoded[9:] == data
    assert len(encoded) == 4 + 32773


def test_encode_rejects_non_messages():
    with pytest.raises(TypeError):
        encode("choke")  # type: ignore[arg-type]


def _spec_messages():
    rng_data = bytes((i * 7 + 3) % 256 for i in range(32768))
    return [
        Choke(),
        Unchoke(),
        Interested(),
        NotInterested(),
        Have(0),
        Have(305),
        Request(0),
        Request(305),
        Bitfield(PieceSet(306)),
        Bitfield(PieceSet.full(306)),
        Bitfield(PieceSet(306, range(0, 306, 3))),
        Piece(0, rng_data),
        Piece(304, rng_data[::-1]),
        Piece(305, rng_data[:5992]),
    ]


@pytest.mark.parametrize("message", _spec_messages(), ids=lambda m: type(m).__name__)
def test_round_trip_spec_geometry(message):
    data = encode(message)
    (length,) = struct.unpack(">I", data[:4])
    assert length == len(data) - 4  # the length counts the type byte and payload, not itself
    assert data[4] == {
        Choke: 0, Unchoke: 1, Interested: 2, NotInterested: 3, Have: 4, Bitfield: 5, Request: 6, Piece: 7
    }[type(message)]
    decoder = Decoder(SPEC)
    decoder.check_length(length)
    assert decoder.decode(data[4:]) == message
    assert decoder.decode(memoryview(data)[4:]) == message  # the protocol hands over a view


def test_decoded_piece_data_is_a_copy():
    body = bytearray(encode(Piece(2, b"1234567"))[4:])
    message = Decoder(SMALL).decode(memoryview(body))
    body[5:] = b"xxxxxxx"
    assert message == Piece(2, b"1234567")
    assert type(message.data) is bytes


# -- lengths ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("common", "largest"),
    [(SPEC, 32773), (SMALL, 13), (TEN, 13), (WIDE, 126), (Common(1, 1, 1, "f", 16, 16), 21)],
)
def test_largest_legal_length(common, largest):
    decoder = Decoder(common)
    assert decoder.max_length == largest
    decoder.check_length(largest)  # legal
    decoder.check_length(1)
    for length in (largest + 1, largest + 1000, 2**32 - 1):
        with pytest.raises(ProtocolViolation) as info:
            decoder.check_length(length)
        assert str(info.value) == f"a message of length {length}; at most {largest} is legal here"


def test_length_zero():
    with pytest.raises(ProtocolViolation) as info:
        Decoder(SPEC).check_length(0)
    assert str(info.value) == "a message of length 0"
    with pytest.raises(ProtocolViolation) as info:
        Decoder(SPEC).decode(b"")
    assert str(info.value) == "a message of length 0"


def test_wide_geometry_bitfield_is_legal():
    pieces = PieceSet(1000, range(0, 1000, 7))
    data = encode(Bitfield(pieces))
    assert len(data) == 4 + 126
    assert run(WIDE, [data]).messages == [Bitfield(pieces)]


# -- malformed bodies (SMALL: 3 pieces of 8, 8, 7 bytes; TEN: 10 pieces) ---------------

MALFORMED = [
    # (common, stream, exact violation text)
    (SMALL, be32(0), "a message of length 0"),
    (SMALL, be32(14) + b"\x07", "a message of length 14; at most 13 is legal here"),
    (SMALL, be32(2**32 - 1), "a message of length 4294967295; at most 13 is legal here"),
    (SPEC, be32(32774), "a message of length 32774; at most 32773 is legal here"),
    (SMALL, frame(8), "a message of unknown type 8"),
    (SMALL, frame(255, b"abcd"), "a message of unknown type 255"),
    (SMALL, frame(0, b"\x00"), "a 'choke' with 1 payload bytes; 0 expected"),
    (SMALL, frame(1, b"\x00\x00"), "a 'unchoke' with 2 payload bytes; 0 expected"),
    (SMALL, frame(2, b"\x00" * 12), "a 'interested' with 12 payload bytes; 0 expected"),
    (SMALL, frame(3, b"\x01"), "a 'not interested' with 1 payload bytes; 0 expected"),
    (SMALL, frame(4), "a 'have' with 0 payload bytes; 4 expected"),
    (SMALL, frame(4, b"\x00\x00\x00"), "a 'have' with 3 payload bytes; 4 expected"),
    (SMALL, frame(4, b"\x00\x00\x00\x00\x00"), "a 'have' with 5 payload bytes; 4 expected"),
    (SMALL, frame(6, b"\x00"), "a 'request' with 1 payload bytes; 4 expected"),
    (SMALL, frame(6, b"\x00" * 8), "a 'request' with 8 payload bytes; 4 expected"),
    (SMALL, frame(4, be32(3)), "a 'have' for piece 3; pieces are 0 to 2"),
    (SMALL, frame(4, be32(2**32 - 1)), "a 'have' for piece 4294967295; pieces are 0 to 2"),
    (SMALL, frame(6, be32(3)), "a 'request' for piece 3; pieces are 0 to 2"),
    (SPEC, frame(6, be32(306)), "a 'request' for piece 306; pieces are 0 to 305"),
    (SMALL, frame(4, be32(3)[::-1]), "a 'have' for piece 50331648; pieces are 0 to 2"),  # little-endian
    (SMALL, frame(5), "a bitfield of 0 bytes; 1 expected for 3 pieces"),
    (SMALL, frame(5, b"\xe0\x00"), "a bitfield of 2 bytes; 1 expected for 3 pieces"),
    (TEN, frame(5, b"\xff"), "a bitfield of 1 bytes; 2 expected for 10 pieces"),
    (SPEC, frame(5, b"\xff" * 38), "a bitfield of 38 bytes; 39 expected for 306 pieces"),
    (SMALL, frame(5, b"\x10"), "a bitfield with spare bits set (last byte 0x10 for 3 pieces)"),
    (SMALL, frame(5, b"\xff"), "a bitfield with spare bits set (last byte 0xff for 3 pieces)"),
    (TEN, frame(5, b"\xff\xe0"), "a bitfield with spare bits set (last byte 0xe0 for 10 pieces)"),
    (TEN, frame(5, b"\x00\x01"), "a bitfield with spare bits set (last byte 0x01 for 10 pieces)"),
    (SMALL, frame(7), "a 'piece' with 0 payload bytes; at least 4 expected"),
    (SMALL, frame(7, b"\x00\x00\x00"), "a 'piece' with 3 payload bytes; at least 4 expected"),
    (SMALL, frame(7, be32(3) + b"x" * 8), "a 'piece' for piece 3; pieces are 0 to 2"),
    (SMALL, frame(7, be32(0)), "piece 0 with 0 bytes; 8 expected"),
    (SMALL, frame(7, be32(0) + b"x" * 7), "piece 0 with 7 bytes; 8 expected"),
    (SMALL, frame(7, be32(1) + b"x" * 3), "piece 1 with 3 bytes; 8 expected"),
    (SMALL, frame(7, be32(2) + b"x" * 8), "piece 2 with 8 bytes; 7 expected"),  # the short last piece, too long
    (SMALL, frame(7, be32(2) + b"x" * 6), "piece 2 with 6 bytes; 7 expected"),  # ... and too short
    (SMALL, frame(7, be32(0) + b"x" * 9), "a message of length 14; at most 13 is legal here"),
    (TEN, frame(7, be32(9) + b"x" * 8), "piece 9 with 8 bytes; 3 expected"),
]


@pytest.mark.parametrize(("common", "stream", "text"), MALFORMED)
def test_malformed_message_at_every_split(common, stream, text):
    """Alone, after valid messages, and split at every byte boundary: always exactly
    this violation, never another exception and never a silent pass."""
    prefix = wire.CHOKE + wire.encode_have(1)
    for whole in (stream, prefix + stream):
        expected_messages = [] if whole is stream else [Choke(), Have(1)]
        for chunks in splits(whole):
            messages, violation, _ = outcome(common, chunks)
            assert violation == text, chunks
            assert messages == expected_messages


@pytest.mark.parametrize(("common", "stream", "text"), MALFORMED)
def test_malformed_body_decode_directly(common, stream, text):
    (length,) = struct.unpack(">I", stream[:4])
    body = stream[4:]
    with pytest.raises(ProtocolViolation) as info:
        decoder = Decoder(common)
        decoder.check_length(length)
        decoder.decode(body)
    assert str(info.value) == text


@pytest.mark.parametrize(
    "handshake",
    [
        b"P2PFILESHARINGPROK" + b"\x00" * 10 + be32(1001),
        b"\x00\x00\x00\x01\x00" + b"\x00" * 27,
        b"P2PFILESHARINGPROJ"[::-1] + b"\x00" * 10 + be32(1001),
        b"p" + HEADER[1:] + b"\x00" * 10 + be32(1001),
    ],
)
def test_malformed_handshake_at_every_split(handshake):
    stream = handshake + wire.CHOKE
    for chunks in splits(stream):
        messages, violation, _ = outcome(SMALL, chunks, handshake=True)
        assert violation is not None and violation.startswith("a handshake "), chunks
        assert messages == []


# -- valid streams ----------------------------------------------------------------

VALID_SMALL = [
    Bitfield(PieceSet(3, [0, 2])),
    Interested(),
    Unchoke(),
    Request(2),
    Piece(2, b"1234567"),
    Have(1),
    Piece(0, b"abcdefgh"),
    NotInterested(),
    Choke(),
    Request(0),
    Piece(1, b"\x00" * 8),
    Have(2),
]
VALID_TEN = [
    Bitfield(PieceSet(10, [0, 3, 9])),
    Have(9),
    Piece(9, b"end"),
    Request(5),
    Piece(5, b"\xff" * 8),
    Bitfield(PieceSet.full(10)),  # the codec does not know it came late; the service does
    Interested(),
]


@pytest.mark.parametrize(("common", "messages"), [(SMALL, VALID_SMALL), (TEN, VALID_TEN)])
def test_valid_stream_same_messages_at_every_split(common, messages):
    stream = b"".join(encode(message) for message in messages)
    for chunks in splits(stream):
        got, violation, leftover = outcome(common, chunks)
        assert violation is None
        assert got == messages
        assert leftover == b""


def test_valid_stream_with_handshake_at_every_split():
    stream = wire.encode_handshake(1002) + b"".join(encode(m) for m in VALID_SMALL[:6])
    for chunks in splits(stream):
        framer = run(SMALL, chunks, handshake=True)
        assert framer.peer_id == 1002
        assert framer.messages == VALID_SMALL[:6]
        assert framer.buffer == b""


def test_truncated_stream_is_held_back_not_decoded():
    """EOF in the middle of a message is the connection's to report: the codec must
    neither decode the partial message nor complain about it."""
    stream = wire.CHOKE + encode(Piece(0, b"abcdefgh"))
    for end in range(len(wire.CHOKE), len(stream)):
        messages, violation, leftover = outcome(SMALL, [stream[:end]])
        assert violation is None
        assert messages == [Choke()]
        assert leftover == stream[len(wire.CHOKE) : end]


# -- property: any bytes, any split: messages or ProtocolViolation, nothing else ------

_SOME_VALID = [encode(m) for m in VALID_SMALL] + [wire.encode_handshake(1001)]


@st.composite
def streams(draw):
    """Random bytes, or valid messages with a few bytes changed, cut into chunks."""
    if draw(st.booleans()):
        data = bytearray(draw(st.binary(max_size=80)))
    else:
        parts = draw(st.lists(st.sampled_from(_SOME_VALID), max_size=6))
        data = bytearray(b"".join(parts))
        for _ in range(draw(st.integers(0, 3))):
            if data:
                data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    bounds = [0, *cuts, len(data)]
    return bytes(data), [bytes(data[a:b]) for a, b in zip(bounds, bounds[1:])]


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.booleans())
def test_any_stream_yields_messages_or_violation(stream_and_chunks, handshake):
    stream, chunks = stream_and_chunks
    try:
        got, violation, leftover = outcome(SMALL, chunks, handshake)
    except Exception as exc:  # pragma: no cover - this is the failure being looked for
        pytest.fail(f"{type(exc).__name__}: {exc} for {chunks!r}")
    assert all(isinstance(m, (Choke, Unchoke, Interested, NotInterested, Have, Bitfield, Request, Piece)) for m in got)
    if not handshake:
        # Without the handshake (whose early check sees a prefix of varying length) the
        # outcome cannot depend on where the stream was cut.
        assert outcome(SMALL, [stream]) == (got, violation, leftover)
        assert outcome(SMALL, [stream[i : i + 1] for i in range(len(stream))]) == (got, violation, leftover)
    for message in got:  # whatever decoded re-encodes to a legal message
        data = encode(message)
        assert Decoder(SMALL).decode(data[4:]) == message


def test_a_hostile_length_is_refused_on_its_prefix_before_its_payload_comes():
    framed = Framed(SMALL)
    with pytest.raises(ProtocolViolation, match="a message of length 4294967295; at most 13 is legal here"):
        framed.feed(b"\xff\xff\xff\xff")
    assert framed.framer.broken and framed.framer.unfinished() is None  # nothing kept, nothing reserved


def test_what_a_closing_sender_left_half_sent_is_described():
    framer = wire.Framer(Decoder(SMALL))
    assert framer.unfinished() is None
    framer.feed(wire.encode_handshake(1)[:10])
    assert framer.next() is None and framer.unfinished() == "10 of the 32 handshake bytes"
    framer.feed(wire.encode_handshake(1)[10:] + b"\x00\x00")
    assert framer.next() == wire.Handshake(1) and framer.next() is None
    assert framer.unfinished() == "2 of the 4 bytes of a message length"
    framer.feed(b"\x00\x09\x07\x00\x00")
    assert framer.unfinished() == "3 of the 9 bytes of a message"


# -- Framer.take: every whole frame of a chunk in one pass ---------------------------


def taken(common: Common, chunks, handshake: bool = False):
    """What :meth:`wire.Framer.take` makes of the chunks, as ``outcome`` reports it."""
    framer = wire.Framer(Decoder(common))
    if not handshake:
        framer.feed(wire.encode_handshake(1))
        assert framer.take() == ([wire.Handshake(1)], None)
    messages: list = []
    fed = bytearray() if handshake else bytearray(wire.encode_handshake(1))
    for chunk in chunks:
        fed += chunk
        framer.feed(chunk)
        frames, violation = framer.take()
        messages += [frame for frame in frames if not isinstance(frame, wire.Handshake)]
        if violation is not None:
            assert framer.broken and framer.take() == ([], None)  # it takes nothing more
            return messages, str(violation), None
    return messages, None, unframed(fed, framer.handshaken, messages)


HAVES_AND_OTHERS = [Have(0), Have(2), Have(1), Interested(), Have(9), Have(3), Request(4), Have(5),
                    Piece(5, b"\xff" * 8), Have(8), Have(7), Choke(), Have(6), Have(4)]


@pytest.mark.parametrize(("common", "messages"), [(SMALL, VALID_SMALL), (TEN, VALID_TEN), (TEN, HAVES_AND_OTHERS)])
def test_take_gives_what_next_gives_at_every_split(common, messages):
    stream = b"".join(encode(message) for message in messages)
    for chunks in splits(stream):
        assert taken(common, chunks) == outcome(common, chunks) == (messages, None, b"")
    tail = wire.encode_have(1) + wire.encode_have(2)[:7]  # a have and most of another: held back
    assert taken(common, [stream + tail]) == (messages + [Have(1)], None, tail[9:])


@pytest.mark.parametrize(("common", "stream", "text"), MALFORMED)
def test_take_gives_the_frames_before_a_violation_and_the_violation(common, stream, text):
    prefix = wire.encode_have(1) + wire.encode_have(0) + wire.CHOKE + wire.encode_have(2)
    for whole in (stream, prefix + stream):
        for chunks in splits(whole):
            assert taken(common, chunks) == outcome(common, chunks)
            assert taken(common, chunks)[1] == text


def test_take_with_the_handshake_at_every_split():
    stream = wire.encode_handshake(1002) + b"".join(encode(m) for m in HAVES_AND_OTHERS)
    for chunks in splits(stream):
        framer = wire.Framer(Decoder(TEN))
        frames: list = []
        for chunk in chunks:
            framer.feed(chunk)
            got, violation = framer.take()
            assert violation is None
            frames += got
        assert frames == [wire.Handshake(1002), *HAVES_AND_OTHERS]


def test_take_refuses_a_bad_handshake_and_what_follows_it():
    framer = wire.Framer(Decoder(TEN))
    framer.feed(b"P2PFILESHARINGPROK" + bytes(14) + wire.encode_have(1))
    frames, violation = framer.take()
    assert frames == [] and str(violation).startswith("a handshake header")


def test_a_have_out_of_range_is_refused_on_the_fast_path_too():
    framer = wire.Framer(Decoder(TEN))
    framer.feed(wire.encode_handshake(1) + wire.encode_have(9) + wire.encode_have(10) + wire.encode_have(1))
    frames, violation = framer.take()
    assert frames == [wire.Handshake(1), Have(9)]
    assert str(violation) == "a 'have' for piece 10; pieces are 0 to 9"


def test_a_have_is_decoded_once_per_index_and_shared():
    decoder = Decoder(TEN)
    assert decoder.decode(wire.encode_have(3)[4:]) is decoder.decode(wire.encode_have(3)[4:]) == Have(3)
    assert decoder.have(3) is decoder.decode(wire.encode_have(3)[4:])


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.booleans())
def test_take_and_next_agree_on_any_stream(stream_and_chunks, handshake):
    _, chunks = stream_and_chunks
    assert taken(SMALL, chunks, handshake) == outcome(SMALL, chunks, handshake)


# -- pieces framed where they lie ------------------------------------------------------


def test_a_piece_that_came_whole_in_one_chunk_is_a_view_of_that_chunk():
    chunk = wire.encode_handshake(1002) + encode(Have(1)) + encode(Piece(2, b"1234567"))
    framer = wire.Framer(Decoder(SMALL))
    framer.feed(chunk)
    frames, violation = framer.take()
    assert violation is None
    piece = frames[-1]
    assert piece == Piece(2, b"1234567")
    assert isinstance(piece.data, memoryview) and piece.data.obj is chunk  # no copy made


def test_a_piece_split_across_chunks_is_a_copy_and_the_whole_ones_after_it_views():
    first, second, third = encode(Piece(0, b"abcdefgh")), encode(Piece(1, b"ijklmnop")), encode(Piece(2, b"qrstuvw"))
    framer = wire.Framer(Decoder(SMALL))
    framer.feed(wire.encode_handshake(1002) + first[:6])
    assert [type(frame).__name__ for frame in framer.take()[0]] == ["Handshake"]
    tail = first[6:] + second
    framer.feed(tail)  # the rest of piece 0 (completed in a bytearray), then all of piece 1
    frames, _ = framer.take()
    assert frames == [Piece(0, b"abcdefgh"), Piece(1, b"ijklmnop")]
    assert type(frames[0].data) is bytes and frames[1].data.obj is tail
    framer.feed(third)  # nothing held over: framed in place again
    (piece,), _ = framer.take()
    assert piece == Piece(2, b"qrstuvw") and piece.data.obj is third


def test_a_chunk_that_ends_inside_a_piece_keeps_that_part_for_the_next():
    stream = encode(Have(0)) + encode(Piece(1, b"12345678")) + encode(Request(2))
    framer = wire.Framer(Decoder(SMALL))
    framer.handshaken = True
    framer.feed(stream[:12])
    assert framer.take() == ([Have(0)], None)
    framer.feed(stream[12:20])
    assert framer.take() == ([], None)
    assert framer.unfinished() == "7 of the 13 bytes of a message"  # 11 held: 4 of length, 7 of body
    framer.feed(stream[20:])
    assert framer.take() == ([Piece(1, b"12345678"), Request(2)], None)
    assert framer.unfinished() is None


def test_haves_after_a_completed_frame_are_framed_from_the_rest_of_the_chunk():
    stream = encode(Piece(0, b"abcdefgh")) + encode(Have(1)) + encode(Have(2)) + encode(Request(0))
    framer = wire.Framer(Decoder(SMALL))
    framer.handshaken = True
    framer.feed(stream[:7])
    assert framer.take() == ([], None)
    framer.feed(stream[7:-3])  # the piece's last 10 bytes, two haves, most of a request
    assert framer.take() == ([Piece(0, b"abcdefgh"), Have(1), Have(2)], None)
    assert framer.unfinished() == "2 of the 5 bytes of a message"
    framer.feed(stream[-3:])
    assert framer.take() == ([Request(0)], None)


def test_bytes_fed_twice_before_a_take_are_framed_in_order():
    stream = encode(Piece(0, b"abcdefgh")) + encode(Have(1)) + encode(Piece(2, b"1234567"))
    framer = wire.Framer(Decoder(SMALL))
    framer.handshaken = True
    framer.feed(stream[:5])
    framer.feed(stream[5:15])  # completes piece 0, leaves a have's start as the rest
    framer.feed(stream[15:])  # before any take: the rest and these are joined
    assert framer.take() == ([Piece(0, b"abcdefgh"), Have(1), Piece(2, b"1234567")], None)
    assert framer.unfinished() is None
