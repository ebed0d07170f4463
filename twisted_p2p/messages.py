"""The messages of SPEC §2 as values: the eight message types, the handshake, and our
authentication extension's proof. What they look like as bytes is :mod:`twisted_p2p.wire`'s.

Tests: tests/test_wire.py (the messages as the bytes decode to them).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from twisted_p2p.bitfield import PieceSet


class MessageType(IntEnum):
    CHOKE = 0
    UNCHOKE = 1
    INTERESTED = 2
    NOT_INTERESTED = 3
    HAVE = 4
    BITFIELD = 5
    REQUEST = 6
    PIECE = 7


@dataclass(frozen=True, slots=True)
class Choke:
    pass


@dataclass(frozen=True, slots=True)
class Unchoke:
    pass


@dataclass(frozen=True, slots=True)
class Interested:
    pass


@dataclass(frozen=True, slots=True)
class NotInterested:
    pass


@dataclass(frozen=True, slots=True)
class Have:
    index: int


@dataclass(frozen=True, slots=True)
class Bitfield:
    pieces: PieceSet


@dataclass(frozen=True, slots=True)
class Request:
    index: int


@dataclass(frozen=True, slots=True)
class Piece:
    index: int
    #: A view of the received bytes where they came whole in one read (no copy).
    data: bytes | memoryview


Message = Choke | Unchoke | Interested | NotInterested | Have | Bitfield | Request | Piece


@dataclass(frozen=True, slots=True)
class Handshake:
    peer_id: int
    pipelining: bool = False  # it announced our pipelining extension
    nonce: bytes | None = None  # it announced our authentication extension, with this challenge


@dataclass(frozen=True, slots=True)
class Proof:
    """Our authentication frame: the HMAC that answers the neighbour's challenge."""

    mac: bytes


#: What the framer gives: the handshake, then our proof where it is due, then messages.
Frame = Handshake | Proof | Message
