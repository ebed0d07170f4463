"""Our pipelining extension, negotiated in the handshake's reserved bytes: both sides on,
one on, both off -- and nothing changes on the wire for a peer that does not ask for it.
PeerProtocol and PeerService on in-memory transports, as in test_protocol."""
from __future__ import annotations

import struct

import pytest
from test_protocol import Peer

from twisted_p2p import wire
from twisted_p2p.bitfield import PieceSet
from twisted_p2p.config import Common


def handshake_of(transport) -> bytes:
    return transport.value()[:32]


def requests(peer: Peer, transport) -> list[int]:
    return [m.index for m in peer.sent(transport) if isinstance(m, wire.Request)]


def unchoked_by_a_seed(peer: Peer, seed: int, announce: bool):
    """A neighbour with every piece, which announced the extension or not, unchoking us
    (our handshake is cleared from the transport)."""
    protocol, transport = peer.connect()
    transport.clear()
    protocol.dataReceived(wire.encode_handshake(seed, pipelining=announce)
                          + wire.encode_bitfield(PieceSet.full(peer.common.num_pieces))
                          + wire.UNCHOKE)
    return protocol, transport


def test_the_bit_is_byte_27_bit_0_and_a_plain_handshake_keeps_ten_zero_bytes():
    plain, extended = wire.encode_handshake(1001), wire.encode_handshake(1001, pipelining=True)
    assert plain[18:28] == bytes(10)
    assert extended[18:28] == bytes(9) + b"\x01" and extended[:18] == plain[:18] and extended[28:] == plain[28:]
    assert wire.decode_handshake(extended) == 1001
    assert not wire.announces_pipelining(plain) and wire.announces_pipelining(extended)
    framer = wire.Framer(wire.Decoder(Common(1, 1, 1, "f", 10, 10)))
    framer.feed(extended + plain)
    assert framer.next() == wire.Handshake(1001, pipelining=True)


def test_off_by_default_our_handshake_is_the_plain_one_even_to_a_peer_that_announces_it(tmp_path):
    peer = Peer(tmp_path, 1002)
    protocol, transport = peer.connect()
    assert handshake_of(transport)[18:28] == bytes(10)
    transport.clear()
    protocol.dataReceived(wire.encode_handshake(1001, pipelining=True)
                          + wire.encode_bitfield(PieceSet.full(peer.common.num_pieces)) + wire.UNCHOKE)
    assert len(requests(peer, transport)) == 1


@pytest.mark.parametrize("ours, theirs, outstanding", [(8, True, 8), (8, False, 1), (0, True, 1), (0, False, 1)])
def test_pipelined_only_when_both_announce_it(tmp_path, ours, theirs, outstanding):
    peer = Peer(tmp_path, 1002, pipeline=ours)
    protocol, transport = peer.connect()
    announced = handshake_of(transport)
    assert wire.announces_pipelining(announced) == (ours > 1)
    transport.clear()
    protocol.dataReceived(wire.encode_handshake(1001, pipelining=theirs)
                          + wire.encode_bitfield(PieceSet.full(peer.common.num_pieces)) + wire.UNCHOKE)
    asked = requests(peer, transport)
    assert len(asked) == outstanding and len(set(asked)) == outstanding
    assert peer.service.neighbours[1001].requests.depth == outstanding


def test_every_pipelined_request_goes_back_on_a_choke_and_is_asked_again(tmp_path):
    peer = Peer(tmp_path, 1002, pipeline=4)
    protocol, transport = unchoked_by_a_seed(peer, 1001, announce=True)
    first = requests(peer, transport)
    assert len(first) == 4
    protocol.dataReceived(wire.CHOKE)
    assert peer.service.pieces.in_flight == set()
    protocol.dataReceived(wire.UNCHOKE)
    again = requests(peer, transport)
    assert len(again) == 4 and peer.service.pieces.in_flight == set(again)


def test_a_disconnect_returns_them_to_the_other_neighbours(tmp_path):
    peer = Peer(tmp_path, 1002, pipeline=4)
    protocol, transport = unchoked_by_a_seed(peer, 1001, announce=True)
    first = set(requests(peer, transport))
    other, other_transport = unchoked_by_a_seed(peer, 1003, announce=False)
    before = set(requests(peer, other_transport))
    assert len(before) == 1 and not before & first
    protocol.connectionLost(None)
    assert peer.service.pieces.in_flight == before  # the four came back to the pool
    piece = before.pop()
    content = peer_content(peer, piece)
    other.dataReceived(wire.encode_piece_header(piece, len(content)) + content)
    assert len(requests(peer, other_transport)) == 1  # the plain neighbour: one at a time, still


def peer_content(peer: Peer, index: int) -> bytes:
    from test_protocol import CONTENT

    start = peer.common.piece_offset(index)
    return CONTENT[start:start + peer.common.piece_length(index)]


def test_pipelined_pieces_arrive_in_order_and_each_is_stored_once(tmp_path):
    peer = Peer(tmp_path, 1002, pipeline=3)
    protocol, transport = unchoked_by_a_seed(peer, 1001, announce=True)
    got = []
    for _ in range(20):
        asked = requests(peer, transport)
        if not asked and not peer.service.neighbours[1001].requests.outstanding:
            break
        for index in list(peer.service.neighbours[1001].requests.outstanding):
            protocol.dataReceived(wire.encode_piece_header(index, peer.common.piece_length(index))
                                  + peer_content(peer, index))
            got.append(index)
    assert sorted(got) == list(range(peer.common.num_pieces))  # each piece once
    assert peer.path.read_bytes() == b"".join(peer_content(peer, i) for i in range(peer.common.num_pieces))
    downloads = [e for e in peer.events() if e.kind == "downloaded"]
    assert [e.count for e in downloads] == list(range(1, peer.common.num_pieces + 1))


def test_a_plain_strict_neighbour_sees_ten_zero_bytes_from_a_peer_without_the_option(tmp_path):
    """The strict fake of other implementations drops any handshake whose reserved bytes
    are not zero: our peer, not told to pipeline, never sets one, dialled or dialling."""
    peer = Peer(tmp_path, 1002)
    for dialled in (None, 1001):
        _, transport = peer.connect(dialled)
        data = handshake_of(transport)
        assert data == b"P2PFILESHARINGPROJ" + bytes(10) + struct.pack(">I", 1002)


def test_a_plain_neighbour_stays_at_one_request_however_fast_it_answers(tmp_path):
    """The window that deepens a pipelined connection never applies to a plain one."""
    peer = Peer(tmp_path, 1002, pipeline=256)
    protocol, transport = unchoked_by_a_seed(peer, 1001, announce=False)
    assert peer.service.neighbours[1001].requests.window is None
    for _ in range(min(12, peer.common.num_pieces - 1)):
        asked = requests(peer, transport)
        assert len(asked) == 1
        transport.clear()
        index = asked[0]
        protocol.dataReceived(wire.encode_piece_header(index, peer.common.piece_length(index))
                              + peer_content(peer, index))
    assert peer.service.neighbours[1001].requests.depth == 1
