"""Any message as bytes, for tests that build streams: the peer never needs this (it
sends each kind with its own encoder, and a piece without copying its data)."""
from __future__ import annotations

from twisted_p2p import wire
from twisted_p2p.messages import Bitfield, Choke, Have, Interested, Message, NotInterested, Piece, Request, Unchoke


def encode(message: Message) -> bytes:
    """The bytes of ``message`` as a peer sends them (SPEC §2)."""
    match message:
        case Choke():
            return wire.CHOKE
        case Unchoke():
            return wire.UNCHOKE
        case Interested():
            return wire.INTERESTED
        case NotInterested():
            return wire.NOT_INTERESTED
        case Have(index):
            return wire.encode_have(index)
        case Request(index):
            return wire.encode_request(index)
        case Bitfield(pieces):
            return wire.encode_bitfield(pieces)
        case Piece(index, data):
            return wire.encode_piece_header(index, len(data)) + data
    raise TypeError(f"not a message: {message!r}")
