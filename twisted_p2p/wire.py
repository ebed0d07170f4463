"""The wire format of SPEC §2: the bytes of the 32-byte handshake and of the eight
messages (:mod:`twisted_p2p.messages`), both ways.

Pure code, no I/O. Decoding checks everything the bytes alone can tell (SPEC §4);
what only the swarm state can tell (an unrequested piece, a late bitfield) is the
service's job. Every problem is a :class:`ProtocolViolation` whose text completes the
sentence "peer N sent ...".
"""
from __future__ import annotations

import struct

from twisted_p2p.bitfield import BitfieldError, PieceSet, bitfield_length
from twisted_p2p.config import Common
from twisted_p2p.messages import (  # noqa: F401  (wire.Have and the rest: what the bytes mean)
    Bitfield,
    Choke,
    Frame,
    Handshake,
    Have,
    Interested,
    Message,
    MessageType,
    NotInterested,
    Piece,
    Proof,
    Request,
    Unchoke,
)

HANDSHAKE_HEADER = b"P2PFILESHARINGPROJ"
HANDSHAKE_LENGTH = 32
_HANDSHAKE = struct.Struct(">18s10xI")
_LENGTH = struct.Struct(">I")
_LENGTH_TYPE_INDEX = struct.Struct(">IBI")
_INDEX = struct.Struct(">I")


class ProtocolViolation(Exception):
    """A neighbour broke SPEC §2 or §4; ``str()`` says exactly how."""


_TYPES = tuple(MessageType)  # by code: a tuple index is much cheaper than MessageType(code)
_HAVE = int(MessageType.HAVE)  # as a plain int, for the framer's fast path
_NAMES = {kind: kind.name.lower().replace("_", " ") for kind in MessageType}  # "not interested"
_NO_PAYLOAD: dict[MessageType, Message] = {
    MessageType.CHOKE: Choke(),
    MessageType.UNCHOKE: Unchoke(),
    MessageType.INTERESTED: Interested(),
    MessageType.NOT_INTERESTED: NotInterested(),
}
_INDEX_ONLY = (MessageType.HAVE, MessageType.REQUEST)


# -- handshake ---------------------------------------------------------------


# Our pipelining extension (docs/extensions.rst, "Pipelining"; SPEC §4 keeps the ten
# reserved bytes for such): bit 0x01 of the last reserved byte, handshake byte 27, says
# "I take up to N requests outstanding".
# Only a connection on which both sides announce it is pipelined; a peer that does not
# announce it gets the plain protocol, and a plain peer never sees the bit, as ours
# announce it only when told to (``--pipeline``).
PIPELINING_BYTE = 27
PIPELINING_BIT = 0x01


# Our authentication extension (twisted_p2p.auth; docs/extensions.rst, "Authentication"):
# bit 0x02 of byte 27 says "prove you hold this push's secret, as I will"; bytes 18-26
# then hold the sender's nonce, and its first frame after the handshake is a Proof
# (type AUTH_TYPE, a 32-byte HMAC). Set only by a peer given a secret.
AUTH_BIT = 0x02
NONCE_START, NONCE_LENGTH = 18, 9
AUTH_TYPE = 0xA0
PROOF_LENGTH = 32
_PROOF_HEADER = struct.Struct(">IB")


def encode_handshake(peer_id: int, pipelining: bool = False, nonce: bytes | None = None) -> bytes:
    """The 32-byte handshake; ``nonce`` (NONCE_LENGTH bytes) announces authentication."""
    data = bytearray(_HANDSHAKE.pack(HANDSHAKE_HEADER, peer_id))
    if pipelining:
        data[PIPELINING_BYTE] |= PIPELINING_BIT
    if nonce is not None:
        if len(nonce) != NONCE_LENGTH:
            raise ValueError(f"a nonce of {len(nonce)} bytes; {NONCE_LENGTH} expected")
        data[NONCE_START : NONCE_START + NONCE_LENGTH] = nonce
        data[PIPELINING_BYTE] |= AUTH_BIT
    return bytes(data)


def announces_pipelining(data: bytes) -> bool:
    """Whether a 32-byte handshake announces the pipelining extension."""
    return bool(data[PIPELINING_BYTE] & PIPELINING_BIT)


def announced_nonce(data: bytes) -> bytes | None:
    """The nonce of a 32-byte handshake that announces authentication, else None."""
    if not data[PIPELINING_BYTE] & AUTH_BIT:
        return None
    return bytes(data[NONCE_START : NONCE_START + NONCE_LENGTH])


def encode_proof(mac: bytes) -> bytes:
    return _PROOF_HEADER.pack(PROOF_LENGTH + 1, AUTH_TYPE) + mac


def check_handshake_start(data: bytes | bytearray) -> None:
    """Fail as soon as the first bytes cannot begin a handshake, not 32 bytes later."""
    start = bytes(data[: len(HANDSHAKE_HEADER)])
    if not HANDSHAKE_HEADER.startswith(start):
        raise ProtocolViolation(f"a handshake starting {start!r}; expected {HANDSHAKE_HEADER!r}")


def decode_handshake(data: bytes) -> int:
    """The peer ID of a 32-byte handshake. The ten reserved bytes are not checked."""
    if len(data) != HANDSHAKE_LENGTH:
        raise ProtocolViolation(f"a handshake of {len(data)} bytes; {HANDSHAKE_LENGTH} expected")
    header, peer_id = _HANDSHAKE.unpack(data)
    if header != HANDSHAKE_HEADER:
        raise ProtocolViolation(f"a handshake header {header!r}; expected {HANDSHAKE_HEADER!r}")
    return peer_id


# -- messages ----------------------------------------------------------------

CHOKE = b"\x00\x00\x00\x01\x00"
UNCHOKE = b"\x00\x00\x00\x01\x01"
INTERESTED = b"\x00\x00\x00\x01\x02"
NOT_INTERESTED = b"\x00\x00\x00\x01\x03"


def encode_have(index: int) -> bytes:
    return _LENGTH_TYPE_INDEX.pack(5, MessageType.HAVE, index)


def encode_request(index: int) -> bytes:
    return _LENGTH_TYPE_INDEX.pack(5, MessageType.REQUEST, index)


def encode_bitfield(pieces: PieceSet) -> bytes:
    payload = pieces.to_bitfield()
    return _LENGTH.pack(len(payload) + 1) + bytes([MessageType.BITFIELD]) + payload


def encode_piece_header(index: int, length: int) -> bytes:
    """The 9 bytes before a piece's data; send them and the data with writeSequence."""
    return _LENGTH_TYPE_INDEX.pack(length + 5, MessageType.PIECE, index)


class SharedHaves(dict[int, Have]):
    """One Have per index, made on first lookup: a hit costs one dict lookup, which the
    framer's fast path for haves relies on."""

    def __missing__(self, index: int) -> Have:
        have = self[index] = Have(index)
        return have


class Decoder:
    """Turns message bodies (type byte + payload) into messages for one swarm's geometry."""

    def __init__(self, common: Common) -> None:
        self.common = common
        self.num_pieces = common.num_pieces
        self.bitfield_length = bitfield_length(self.num_pieces)
        self.max_length = max(common.piece_size + 5, self.bitfield_length + 1)
        #: One shared Have per valid index, made on first use (``haves[index]``): haves
        #: are most of what a peer receives in a large swarm, and a message is immutable.
        self.haves = SharedHaves()

    def have(self, index: int) -> Have:
        """The Have for a valid ``index``."""
        return self.haves[index]

    def check_length(self, length: int) -> None:
        """Called on the 4-byte prefix, before a single payload byte is buffered."""
        if length == 0:
            raise ProtocolViolation("a message of length 0")
        if length > self.max_length:
            raise ProtocolViolation(f"a message of length {length}; at most {self.max_length} is legal here")

    def _index(self, name: str, payload: bytes | memoryview) -> int:
        (index,) = _INDEX.unpack_from(payload)
        if index >= self.num_pieces:
            raise ProtocolViolation(
                f"a '{name}' for piece {index}; pieces are 0 to {self.num_pieces - 1}"
            )
        return index

    def decode(self, body: bytes | memoryview, stable: bool = False) -> Message:
        """The message ``body`` holds. ``stable``: its bytes never change (a view of a
        ``bytes``), so a piece may keep a view of them instead of a copy."""
        self.check_length(len(body))
        code = body[0]
        if code >= len(_TYPES):
            raise ProtocolViolation(f"a message of unknown type {code}")
        kind = _TYPES[code]
        size = len(body) - 1
        name = _NAMES[kind]
        if kind in _NO_PAYLOAD:
            if size:
                raise ProtocolViolation(f"a '{name}' with {size} payload bytes; 0 expected")
            return _NO_PAYLOAD[kind]
        if kind in _INDEX_ONLY:
            if size != 4:
                raise ProtocolViolation(f"a '{name}' with {size} payload bytes; 4 expected")
            index = self._index(name, body[1:])
            return self.have(index) if kind is MessageType.HAVE else Request(index)
        if kind is MessageType.BITFIELD:
            try:
                return Bitfield(PieceSet.from_bitfield(body[1:], self.num_pieces))
            except BitfieldError as exc:
                raise ProtocolViolation(str(exc)) from None
        # PIECE
        if size < 4:
            raise ProtocolViolation(f"a 'piece' with {size} payload bytes; at least 4 expected")
        index = self._index(name, body[1:5])
        expected = self.common.piece_length(index)
        if size - 4 != expected:
            raise ProtocolViolation(f"piece {index} with {size - 4} bytes; {expected} expected")
        return Piece(index, body[5:] if stable else bytes(body[5:]))


class Framer:
    """The one framer of SPEC §2: the 32-byte handshake, then length-prefixed messages.

    Bytes go in with :meth:`feed`, however the network splits them; :meth:`next` gives
    the next whole frame (a :class:`Handshake` first, then messages), or None until more
    bytes come. It raises :class:`ProtocolViolation` as soon as the bytes cannot be
    right (a bad handshake start or a hostile length, before its payload is buffered),
    and takes nothing more after that.
    """

    def __init__(self, decoder: Decoder) -> None:
        self.decoder = decoder
        self.handshaken = False
        #: Set by a peer that requires authentication: the first frame after the
        #: handshake must then be a Proof, and is framed as one.
        self.expect_proof = False
        self.broken = False
        #: The bytes not yet framed and those before ``_position``: the received chunk
        #: itself while it is framed whole (so pieces are views of it, never copies),
        #: a bytearray once a frame spans chunks.
        self._buffer: bytes | bytearray = b""
        self._position = 0  # bytes of the buffer already framed
        #: The chunk to frame in place once ``_buffer`` (a held-over frame completed
        #: from its start) is framed, and where in it that frame ended.
        self._rest: bytes | None = None
        self._rest_at = 0

    def feed(self, data: bytes) -> None:
        if self.broken:
            return
        if self._rest is not None:
            self._merge_rest()
        buffer, position = self._buffer, self._position
        self._position = 0
        held = len(buffer) - position
        if not held:
            self._buffer = data  # nothing held over: frame the chunk where it lies
            return
        if held >= 4 and self.handshaken and not self.expect_proof:
            # Complete the held-over frame alone (its length was checked on arrival)
            # and frame the rest of the chunk where it lies.
            need = 4 + _LENGTH.unpack_from(buffer, position)[0] - held
            if 0 < need < len(data):
                frame = bytearray(memoryview(buffer)[position:])
                frame += memoryview(data)[:need]
                self._buffer, self._rest, self._rest_at = frame, data, need
                return
        if isinstance(buffer, bytes):
            joined = bytearray(memoryview(buffer)[position:])
            joined += data
            self._buffer = joined
        else:
            del buffer[:position]
            buffer += data

    def _switch_to_rest(self) -> None:
        """The completed frame is framed: go on in the chunk it was completed from."""
        if self._rest is not None and self._position == len(self._buffer):
            self._buffer, self._position, self._rest = self._rest, self._rest_at, None

    def _merge_rest(self) -> None:
        """Hold what is left of both in one bytearray (bytes fed before all were taken)."""
        self._switch_to_rest()
        if self._rest is not None:
            merged = bytearray(memoryview(self._buffer)[self._position :])
            merged += memoryview(self._rest)[self._rest_at :]
            self._buffer, self._position, self._rest = merged, 0, None

    def next(self) -> Frame | None:
        if self.broken:
            return None
        try:
            return self._next()
        except ProtocolViolation:
            self._break()
            raise

    def take(self) -> tuple[list[Frame], ProtocolViolation | None]:
        """Every whole frame the buffer holds, in order, and the violation that stopped
        the framing, if any (the frames before it are good and are returned).

        The same frames as calls of :meth:`next` until None, in one pass over the bytes:
        a have (9 bytes, the bulk of a large swarm's traffic) is framed in place."""
        frames: list[Frame] = []
        if self.broken:
            return frames, None
        try:
            if not self.handshaken:
                handshake = self._next()
                if handshake is None:
                    return frames, None
                frames.append(handshake)
            if self.expect_proof:  # before the fast path below: a have is no proof
                proof = self._next()
                if proof is None:
                    return frames, None
                frames.append(proof)
            append = frames.append
            haves, num_pieces = self.decoder.haves, self.decoder.num_pieces
            while True:  # the buffer, then the rest of the chunk if a frame was completed
                buffer, position, size = self._buffer, self._position, len(self._buffer)
                while size - position >= 9:
                    length, code, index = _LENGTH_TYPE_INDEX.unpack_from(buffer, position)
                    if length == 5 and code == _HAVE and index < num_pieces:
                        append(haves[index])
                        position += 9
                        continue
                    self._position = position
                    message = self._next()
                    if message is None:
                        return frames, None
                    append(message)
                    position = self._position
                    if buffer is not self._buffer:  # _next went on to the rest of the chunk
                        break
                self._position = position
                if self._rest is None or position < size:
                    break
                self._switch_to_rest()
            while (message := self._next()) is not None:  # fewer than 9 bytes: a short message?
                append(message)
        except ProtocolViolation as violation:
            self._break()
            return frames, violation
        return frames, None

    def _break(self) -> None:
        # The traceback may still hold views of the buffer, so it cannot be trimmed;
        # nothing more is framed anyway, so let go of it.
        self.broken = True
        self._buffer = b""
        self._position = 0
        self._rest = None

    def _next(self) -> Frame | None:
        if self._rest is not None:
            self._switch_to_rest()
        buffer, position = self._buffer, self._position
        available = len(buffer) - position
        if not self.handshaken:
            if available < HANDSHAKE_LENGTH:
                check_handshake_start(buffer[position:])
                return None
            self._position = position + HANDSHAKE_LENGTH
            self.handshaken = True
            raw = bytes(buffer[position : self._position])
            return Handshake(decode_handshake(raw), announces_pipelining(raw), announced_nonce(raw))
        if self.expect_proof:
            return self._proof(buffer, position, available)
        if available < 4:
            return None
        (length,) = _LENGTH.unpack_from(buffer, position)
        self.decoder.check_length(length)  # before buffering a hostile length's worth
        end = position + 4 + length
        if end > len(buffer):
            return None
        with memoryview(buffer) as view:
            message = self.decoder.decode(view[position + 4 : end], isinstance(buffer, bytes))
        self._position = end
        return message

    def _proof(self, buffer: bytes | bytearray, position: int, available: int) -> Proof | None:
        """The frame due right after the handshake when authentication is required."""
        if available < _PROOF_HEADER.size:
            return None
        length, code = _PROOF_HEADER.unpack_from(buffer, position)
        if length != PROOF_LENGTH + 1 or code != AUTH_TYPE:
            what = f"a '{_NAMES[_TYPES[code]]}'" if code < len(_TYPES) else f"a message of type {code}"
            raise ProtocolViolation(f"{what} (length {length}) where its authentication proof was due "
                                    f"(type {AUTH_TYPE}, length {PROOF_LENGTH + 1})")
        end = position + 4 + length
        if end > len(buffer):
            return None
        self._position = end
        self.expect_proof = False
        return Proof(bytes(buffer[position + _PROOF_HEADER.size : end]))

    def unfinished(self) -> str | None:
        """What the sender left half-sent, if anything (said when it closes)."""
        self._merge_rest()
        held = len(self._buffer) - self._position
        if not self.handshaken:
            return f"{held} of the {HANDSHAKE_LENGTH} handshake bytes" if held else None
        if held == 0:
            return None
        if held < 4:
            return f"{held} of the 4 bytes of a message length"
        (length,) = _LENGTH.unpack_from(self._buffer, self._position)
        return f"{held - 4} of the {length} bytes of a message"
