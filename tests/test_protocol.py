"""PeerProtocol and PeerService on in-memory transports, with a Clock and a seeded Random.

A test plays the neighbours: it feeds raw bytes to the protocol and reads what the
peer wrote back from a StringTransport.
"""
from __future__ import annotations

import io
import random
import struct
from pathlib import Path

import pytest
from support import peer_settings, seed_bytes, swarm_config
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, StringTransport
from wirebytes import encode

from twisted_p2p import auth, wire
from twisted_p2p.bitfield import PieceSet
from twisted_p2p.ending import TOLD_GRACE
from twisted_p2p.eventlog import EventLog, parse_line
from twisted_p2p.layout import data_path
from twisted_p2p.protocol import HAVE_INTERVAL, PeerProtocol
from twisted_p2p.resume import Resume
from twisted_p2p.service import PeerService
from twisted_p2p.storage import PieceStore

PIECE = 100
FILE_SIZE = 1050  # 11 pieces, the last of 50 bytes
CONTENT = seed_bytes(FILE_SIZE)


class Peer:
    """One PeerService under test, and the fake neighbours connected to it."""

    def __init__(self, tmp_path: Path, me: int, seeds=(1001,), k: int = 2, resume: bool = False,
                 piece_hashes=None, secret=None, new_nonce=auth.new_nonce, **settings):
        """``settings``: fields of PeerSettings (see support.peer_settings)."""
        self.config = swarm_config([1001, 1002, 1003, 1004, 1005], seeds, FILE_SIZE, PIECE, k=k, p=5, m=15)
        self.common = self.config.common
        self.me = me
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        path = data_path(tmp_path, me, self.common.file_name)
        if me in seeds:
            path.parent.mkdir(parents=True)
            path.write_bytes(CONTENT)
        self.path = path
        self.resume = Resume(path, self.common, "test-boot") if resume else None
        restored = self.resume.restore() if self.resume else None
        self.store = PieceStore(path, self.common, me in seeds, restored.held if restored else None)
        if self.resume:
            self.resume.start(restored)
        self.log = io.StringIO()
        # Most tests here are about other things than round timing: a free slot is
        # filled at once (our extension); the course's rounds are tested with it off.
        settings.setdefault("refill_slots", True)
        self.service = PeerService(
            self.config, me, self.store, EventLog(me, self.log, self.clock), self.clock, random.Random(3),
            peer_settings(**settings), piece_hashes=piece_hashes, resume=self.resume, restored=restored,
            secret=secret, new_nonce=new_nonce,
        )
        self.service.startService()
        self.decoder = wire.Decoder(self.common)

    def connect(self, dialled: int | None = None) -> tuple[PeerProtocol, StringTransport]:
        protocol = PeerProtocol(self.service, expected_peer_id=dialled)
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def neighbour(self, peer_id: int, pieces=(), bitfield: bool = True, dialled: bool = False):
        """A neighbour that has handshaken (and sent its bitfield); its transport is cleared."""
        protocol, transport = self.connect(peer_id if dialled else None)
        protocol.dataReceived(wire.encode_handshake(peer_id))
        if bitfield:
            protocol.dataReceived(wire.encode_bitfield(PieceSet(self.common.num_pieces, pieces)))
        transport.clear()
        return protocol, transport

    def sent(self, transport: StringTransport, handshake: bool = False) -> list:
        """The messages the peer wrote on ``transport`` since the last call."""
        data = transport.value()
        transport.clear()
        if handshake:
            assert wire.decode_handshake(data[:32]) == self.me
            data = data[32:]
        messages = []
        while data:
            (length,) = struct.unpack(">I", data[:4])
            messages.append(self.decoder.decode(data[4 : 4 + length]))
            data = data[4 + length :]
        return messages

    def events(self) -> list:
        lines = self.log.getvalue().splitlines()
        parsed = [parse_line(line) for line in lines]
        assert None not in parsed, lines  # nothing but SPEC §5 sentences
        return parsed


def warning_texts(observer: EventLoggingObserver) -> list[str]:
    from twisted.logger import formatEvent

    return [formatEvent(event) for event in observer]


# -- handshake ---------------------------------------------------------------------


def test_handshake_is_sent_at_once_on_connect(tmp_path):
    peer = Peer(tmp_path, 1001)
    _, transport = peer.connect()
    assert transport.value() == b"P2PFILESHARINGPROJ" + bytes(10) + b"\x00\x00\x03\xe9"


def test_handshake_accepted_byte_by_byte_then_bitfield_sent(tmp_path):
    peer = Peer(tmp_path, 1001)
    protocol, transport = peer.connect()
    for byte in wire.encode_handshake(1002):
        protocol.dataReceived(bytes([byte]))
    messages = peer.sent(transport, handshake=True)
    assert messages == [wire.Bitfield(PieceSet.full(11))] or (
        len(messages) == 1 and messages[0].pieces.complete
    )
    assert [e.kind for e in peer.events()] == ["connect_from"]
    assert peer.events()[0].other == 1002


def test_leecher_sends_an_all_zero_bitfield(tmp_path):
    peer = Peer(tmp_path, 1002)
    protocol, transport = peer.connect(dialled=1001)
    protocol.dataReceived(wire.encode_handshake(1001))
    (bitfield,) = peer.sent(transport, handshake=True)
    assert isinstance(bitfield, wire.Bitfield) and bitfield.pieces.count == 0
    assert peer.events()[0].kind == "connect_to"


@pytest.mark.parametrize(
    "handshake, dialled, text",
    [
        (b"P2PFILESHARINGPROJ" + b"0" * 10 + b"\x00\x00\x03\xea", None, None),  # reserved bytes unchecked
        (b"P2PFILESHARINGPROX" + bytes(10) + b"\x00\x00\x03\xea", None, "handshake header b'P2PFILESHARINGPROX'"),
        (b"GET / HTTP/1.1\r\n", None, "handshake starting b'GET / HTTP"),
        (wire.encode_handshake(1001), None, "our own ID 1001"),
        (wire.encode_handshake(9999), None, "ID 9999, which is not in PeerInfo.cfg"),
        (wire.encode_handshake(1003), 1002, "ID 1003 on the connection we dialled to 1002"),
    ],
)
def test_bad_handshakes_close_the_connection(tmp_path, warnings, handshake, dialled, text):
    peer = Peer(tmp_path, 1001)
    protocol, transport = peer.connect(dialled)
    protocol.dataReceived(handshake)
    if text is None:
        assert not transport.disconnecting
        assert 1002 in peer.service.neighbours
    else:
        assert transport.disconnecting
        assert peer.service.neighbours == {}
        assert any(text in line for line in warning_texts(warnings)), warning_texts(warnings)


def test_second_connection_with_a_connected_id_is_closed(tmp_path, warnings):
    peer = Peer(tmp_path, 1001)
    first, first_transport = peer.neighbour(1002)
    second, second_transport = peer.connect()
    second.dataReceived(wire.encode_handshake(1002))
    assert second_transport.disconnecting and not first_transport.disconnecting
    assert peer.service.neighbours[1002].protocol is first
    second.connectionLost(None)
    assert peer.service.neighbours[1002].protocol is first  # the first one is untouched
    assert any("already connected" in line for line in warning_texts(warnings))


def test_a_new_connection_replaces_a_connected_id_that_has_been_silent(tmp_path, warnings):
    """A host that crashed and came back: its old connection says nothing any more."""
    peer = Peer(tmp_path, 1001)
    first, first_transport = peer.neighbour(1002, pieces=[1])
    peer.clock.advance(peer.service.stale_after - 0.1)
    early, early_transport = peer.connect()
    early.dataReceived(wire.encode_handshake(1002))
    assert early_transport.disconnecting and peer.service.neighbours[1002].protocol is first  # too soon
    peer.clock.advance(0.1)
    second, second_transport = peer.connect()
    second.dataReceived(wire.encode_handshake(1002))
    assert not second_transport.disconnecting and first_transport.disconnecting
    assert peer.service.neighbours[1002].protocol is second
    first.connectionLost(None)  # the old socket going later changes nothing
    assert peer.service.neighbours[1002].protocol is second
    assert any("has a new connection; this one was silent for 5 s" in line for line in warning_texts(warnings))


def test_a_dropped_neighbour_is_forgotten_at_once_and_aborted_after_the_grace(tmp_path, warnings):
    """loseConnection waits for a neighbour that may never read: the slot and the
    request are freed at once, and the socket is aborted after the grace."""
    peer = Peer(tmp_path, 1003, seeds=(1001,))
    hostile, transport = peer.neighbour(1001, pieces=range(11), dialled=True)
    hostile.dataReceived(wire.INTERESTED + wire.UNCHOKE)
    (request,) = [m for m in peer.sent(transport) if isinstance(m, wire.Request)]
    assert 1001 in peer.service.choker.unchoked
    hostile.dataReceived(encode(wire.Have(99 % 11)) + b"\x00\x00\x00\x00")  # a length of 0
    assert transport.disconnecting and not transport.disconnected
    assert peer.service.neighbours == {}
    assert 1001 not in peer.service.choker.unchoked and 1001 not in peer.service.choker.interested
    assert request.index not in peer.service.pieces.in_flight
    peer.clock.advance(peer.service.drop_grace - 0.01)
    assert not transport.disconnected
    peer.clock.advance(0.01)
    assert transport.disconnected  # aborted
    hostile.connectionLost(None)
    assert peer.service._connections == {}


def test_a_neighbour_that_never_answers_loses_the_piece_to_one_that_does(tmp_path):
    peer = Peer(tmp_path, 1003, seeds=(1001, 1002))
    silent, silent_transport = peer.neighbour(1001, pieces=range(11), dialled=True)
    honest, honest_transport = peer.neighbour(1002, pieces=range(11), dialled=True)
    silent.dataReceived(wire.UNCHOKE)
    (held_back,) = [m.index for m in peer.sent(silent_transport) if isinstance(m, wire.Request)]
    honest.dataReceived(wire.UNCHOKE)
    while True:  # the honest one answers everything it is asked
        requests = [m.index for m in peer.sent(honest_transport) if isinstance(m, wire.Request)]
        if not requests:
            break
        for index in requests:
            honest.dataReceived(encode(wire.Piece(index, CONTENT[index * 100 : index * 100 + 100])))
    assert peer.store.held.count == 10 and held_back not in peer.store.held  # held hostage, for now
    peer.clock.advance(peer.service.requests.timeouts.initial)
    assert not [m for m in peer.sent(silent_transport) if isinstance(m, wire.Request)]  # snubbed
    (request,) = [m for m in peer.sent(honest_transport) if isinstance(m, wire.Request)]
    assert request.index == held_back
    honest.dataReceived(encode(wire.Piece(held_back, CONTENT[held_back * 100 : held_back * 100 + 100])))
    assert peer.store.held.complete
    late = CONTENT[held_back * 100 : held_back * 100 + 100]
    silent.dataReceived(encode(wire.Piece(held_back, late)))  # its late answer: dropped quietly
    assert not silent_transport.disconnecting
    downloaded = [e.index for e in peer.events() if e.kind == "downloaded"]
    assert sorted(downloaded) == list(range(11))  # each piece once


def test_keepalive_is_on_with_short_intervals_on_a_real_socket():
    import socket

    from twisted_p2p.protocol import KEEPALIVE_COUNT, KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, keep_alive

    class Transport:
        def __init__(self, sock):
            self.sock = sock

        def setTcpKeepAlive(self, enabled):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, int(enabled))

        def getHandle(self):
            return self.sock

    with socket.socket() as sock:
        keep_alive(Transport(sock))
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        if hasattr(socket, "TCP_KEEPIDLE"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == KEEPALIVE_IDLE
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == KEEPALIVE_INTERVAL
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == KEEPALIVE_COUNT


def test_connection_that_never_handshakes_is_closed_after_the_timeout(tmp_path, warnings):
    peer = Peer(tmp_path, 1001, handshake_timeout=10)
    protocol, transport = peer.connect()
    protocol.dataReceived(b"P2PFILE")
    peer.clock.advance(9.9)
    assert not transport.disconnecting
    peer.clock.advance(0.2)
    assert transport.disconnecting
    assert any("no handshake within 10" in line for line in warning_texts(warnings))


def test_handshake_timer_is_cancelled_by_the_handshake(tmp_path):
    peer = Peer(tmp_path, 1001, handshake_timeout=10)
    _, transport = peer.neighbour(1002)
    peer.clock.advance(60)
    assert not transport.disconnecting


# -- framing and bad input ----------------------------------------------------------------


def test_hostile_length_prefix_closes_without_buffering(tmp_path, warnings):
    peer = Peer(tmp_path, 1001)
    protocol, transport = peer.neighbour(1002)
    protocol.dataReceived(b"\xff\xff\xff\xff\x07")
    assert transport.disconnecting
    assert protocol.framer.broken and protocol.framer.unfinished() is None
    assert any("length 4294967295; at most 105" in line for line in warning_texts(warnings))


def test_messages_split_at_every_byte_are_all_handled(tmp_path):
    peer = Peer(tmp_path, 1002)
    protocol, transport = peer.connect(dialled=1001)
    stream = (
        wire.encode_handshake(1001)
        + wire.encode_bitfield(PieceSet.full(11))
        + wire.UNCHOKE
        + wire.encode_have(3)
    )
    for byte in stream:
        protocol.dataReceived(bytes([byte]))
    kinds = [e.kind for e in peer.events()]
    assert kinds == ["connect_to", "unchoked", "have"]
    messages = peer.sent(transport, handshake=True)
    assert isinstance(messages[0], wire.Bitfield)
    assert messages[1] == wire.Interested()
    assert isinstance(messages[2], wire.Request)


def test_a_whole_stream_in_one_chunk_is_handled_as_byte_by_byte(tmp_path):
    """The framer takes every frame of a chunk at once: the log and what is sent back
    are the same as when the frames come one by one."""
    stream = (
        wire.encode_handshake(1001) + wire.encode_bitfield(PieceSet(11, [0])) + wire.UNCHOKE
        + b"".join(wire.encode_have(index) for index in (3, 5, 3, 1, 10)) + wire.INTERESTED
        + wire.encode_have(7) + wire.CHOKE + wire.encode_have(8)
    )
    outcomes = []
    for chunks in ([stream], [bytes([byte]) for byte in stream]):
        peer = Peer(tmp_path / str(len(chunks)), 1002)
        protocol, transport = peer.connect(dialled=1001)
        for chunk in chunks:
            protocol.dataReceived(chunk)
        outcomes.append(([(e.kind, e.other, e.index) for e in peer.events()], peer.sent(transport, handshake=True)))
    assert outcomes[0] == outcomes[1]
    kinds = [kind for kind, _, _ in outcomes[0][0]]
    assert kinds == ["connect_to", "unchoked"] + ["have"] * 5 + ["interested", "preferred", "have", "choked", "have"]
    assert [index for kind, _, index in outcomes[0][0] if kind == "have"] == [3, 5, 3, 1, 10, 7, 8]


def test_frames_before_a_violation_in_the_same_chunk_are_handled(tmp_path, warnings):
    peer = Peer(tmp_path, 1001)
    protocol, transport = peer.neighbour(1002)
    protocol.dataReceived(wire.encode_have(1) + wire.INTERESTED + wire.encode_have(11) + wire.encode_have(2))
    assert transport.disconnecting
    assert [(e.kind, e.index) for e in peer.events()] == [
        ("connect_from", None), ("have", 1), ("interested", None), ("preferred", None)]
    assert any("a 'have' for piece 11; pieces are 0 to 10" in line for line in warning_texts(warnings))


def test_nothing_after_a_rejected_frame_in_the_same_chunk_is_handled(tmp_path, warnings):
    peer = Peer(tmp_path, 1001)
    protocol, transport = peer.neighbour(1002)
    unsolicited = encode(wire.Piece(0, CONTENT[:PIECE]))
    protocol.dataReceived(wire.encode_have(1) + unsolicited + wire.encode_have(2))
    assert transport.disconnecting
    assert [(e.kind, e.index) for e in peer.events()] == [("connect_from", None), ("have", 1)]
    assert any("piece 0, which we never requested from it" in line for line in warning_texts(warnings))


def test_a_late_bitfield_is_an_update_noted_once(tmp_path, warnings):
    """Some implementations re-send their bitfield every second once complete (SPEC §3,
    Accept): the pieces it adds count, it takes none away, and it is noted once."""
    peer = Peer(tmp_path, 1002)
    protocol, transport = peer.neighbour(1003, pieces=[1], dialled=True)
    protocol.dataReceived(wire.encode_have(2) + wire.encode_bitfield(PieceSet(11, [3, 4])))
    protocol.dataReceived(wire.encode_bitfield(PieceSet(11, [5])))
    assert not transport.disconnecting
    assert sorted(peer.service.neighbours[1003].pieces) == [1, 2, 3, 4, 5]
    assert peer.service.neighbours[1003].wanted == 5
    notes = [line for line in warning_texts(warnings) if "sent a bitfield after other messages" in line]
    assert len(notes) == 1 and "peer 1003" in notes[0]
    # A complete one makes it known complete, as the first bitfield would.
    protocol.dataReceived(wire.encode_bitfield(PieceSet.full(11)))
    assert 1003 in peer.service.complete_peers and peer.service.neighbours[1003].wanted == 11


def test_a_late_bitfield_after_interest_wakes_our_interest(tmp_path):
    peer = Peer(tmp_path, 1002)
    protocol, transport = peer.neighbour(1003, bitfield=False, dialled=True)
    protocol.dataReceived(wire.NOT_INTERESTED)
    assert peer.sent(transport) == []
    protocol.dataReceived(wire.encode_bitfield(PieceSet(11, [4])))
    assert peer.sent(transport) == [wire.Interested()]


def test_a_neighbour_that_skips_its_bitfield_is_no_longer_taken_as_complete(tmp_path):
    """A restarted neighbour with no pieces may skip its bitfield: what we knew of it
    before (complete) no longer holds."""
    peer = Peer(tmp_path, 1002)
    peer.service.complete_peers.add(1003)
    protocol, _ = peer.neighbour(1003, bitfield=False, dialled=True)
    protocol.dataReceived(wire.INTERESTED)
    assert 1003 not in peer.service.complete_peers


def test_missing_bitfield_is_tolerated(tmp_path):
    peer = Peer(tmp_path, 1002)
    protocol, transport = peer.neighbour(1001, bitfield=False, dialled=True)
    protocol.dataReceived(wire.encode_have(4))
    assert peer.sent(transport) == [wire.Interested()]
    assert not transport.disconnecting


def test_data_after_a_violation_is_ignored(tmp_path):
    peer = Peer(tmp_path, 1001)
    protocol, transport = peer.neighbour(1002)
    protocol.dataReceived(b"\x00\x00\x00\x00" + wire.INTERESTED)
    assert transport.disconnecting
    assert [e.kind for e in peer.events()] == ["connect_from"]


# -- requests and uploads ------------------------------------------------------------------


def test_request_while_choked_is_ignored_not_fatal(tmp_path):
    peer = Peer(tmp_path, 1001, k=1)
    _interested_neighbours(peer, [1002, 1003])  # one preferred, one optimistic
    protocol, transport = peer.neighbour(1004)
    protocol.dataReceived(wire.encode_request(2))
    assert 1004 not in peer.service.choker.unchoked
    assert peer.sent(transport) == []
    assert not transport.disconnecting


def test_unchoked_neighbour_gets_the_piece_it_requested(tmp_path):
    peer = Peer(tmp_path, 1001)
    protocol, transport = peer.neighbour(1002)
    protocol.dataReceived(wire.INTERESTED)
    assert peer.sent(transport) == [wire.Unchoke()]  # a free slot: no wait for the interval
    protocol.dataReceived(wire.encode_request(10))
    assert peer.sent(transport) == [wire.Piece(10, CONTENT[1000:])]


def test_upload_waits_while_the_transport_is_paused(tmp_path):
    peer = Peer(tmp_path, 1001)
    protocol, transport = peer.neighbour(1002)
    protocol.dataReceived(wire.INTERESTED)
    peer.sent(transport)
    protocol.pauseProducing()
    protocol.dataReceived(wire.encode_request(1) + wire.encode_request(2) + wire.encode_request(1))
    assert transport.value() == b""
    protocol.resumeProducing()
    assert peer.sent(transport) == [wire.Piece(1, CONTENT[100:200]), wire.Piece(2, CONTENT[200:300])]


def test_unsolicited_piece_is_a_violation_and_never_written(tmp_path, warnings):
    peer = Peer(tmp_path, 1002)
    protocol, transport = peer.neighbour(1001, pieces=range(11), dialled=True)
    protocol.dataReceived(encode(wire.Piece(4, b"x" * PIECE)))
    assert transport.disconnecting
    assert 4 not in peer.store.held
    assert peer.path.read_bytes()[400:500] == bytes(PIECE)
    assert any("piece 4, which we never requested" in line for line in warning_texts(warnings))


def test_piece_of_the_wrong_size_is_a_violation(tmp_path, warnings):
    peer = Peer(tmp_path, 1002)
    protocol, transport = peer.neighbour(1001, pieces=range(11), dialled=True)
    protocol.dataReceived(wire.UNCHOKE)
    (request,) = peer.sent(transport)
    protocol.dataReceived(encode(wire.Piece(request.index, b"x" * (PIECE - 1))))
    assert transport.disconnecting
    assert peer.store.held.count == 0


# -- interest, requests, choking ------------------------------------------------------------------


def test_interest_is_sent_only_when_it_changes(tmp_path):
    peer = Peer(tmp_path, 1003, seeds=(1001,))
    protocol, transport = peer.connect(dialled=1002)
    protocol.dataReceived(wire.encode_handshake(1002) + wire.encode_bitfield(PieceSet(11)))
    assert peer.sent(transport, handshake=True)[1:] == [wire.NotInterested()]
    protocol.dataReceived(wire.encode_have(1))
    protocol.dataReceived(wire.encode_have(2))
    protocol.dataReceived(wire.encode_have(2))
    assert peer.sent(transport) == [wire.Interested()]


def test_full_download_from_one_seed(tmp_path):
    peer = Peer(tmp_path, 1003, seeds=(1001,))
    seed, seed_transport = peer.connect(dialled=1001)
    seed.dataReceived(wire.encode_handshake(1001) + wire.encode_bitfield(PieceSet.full(11)))
    assert peer.sent(seed_transport, handshake=True)[1:] == [wire.Interested()]
    other, other_transport = peer.neighbour(1002, dialled=True)
    seed.dataReceived(wire.UNCHOKE)
    messages = peer.sent(seed_transport)
    requested = []
    while True:
        requests = [m for m in messages if isinstance(m, wire.Request)]
        assert len(requests) <= 1  # one outstanding request per neighbour
        if not requests:
            break
        index = requests[0].index
        requested.append(index)
        start = index * PIECE
        seed.dataReceived(encode(wire.Piece(index, CONTENT[start : start + PIECE])))
        messages = peer.sent(seed_transport)
        assert wire.Have(index) in messages
    assert sorted(requested) == list(range(11))  # each piece once, none twice
    assert requested != sorted(requested)  # random order (seeded)
    assert peer.path.read_bytes() == CONTENT
    peer.clock.advance(HAVE_INTERVAL)  # the haves of pieces that came within one interval went together
    other_messages = peer.sent(other_transport)
    assert [m.index for m in other_messages if isinstance(m, wire.Have)] == requested
    kinds = [e.kind for e in peer.events()]
    assert kinds.count("downloaded") == 11 and kinds[-1] == "complete"
    counts = [e.count for e in peer.events() if e.kind == "downloaded"]
    assert counts == list(range(1, 12))


def test_haves_within_an_interval_go_out_together_after_the_first(tmp_path):
    peer = Peer(tmp_path, 1001)
    protocol, transport = peer.neighbour(1002)
    protocol.send_have(wire.encode_have(1))
    assert transport.value() == wire.encode_have(1)  # the first at once
    peer.clock.advance(HAVE_INTERVAL / 2)
    protocol.send_have(wire.encode_have(2))
    protocol.send_have(wire.encode_have(3))
    assert peer.sent(transport) == [wire.Have(1)]  # the others wait for the interval's end
    peer.clock.advance(HAVE_INTERVAL / 2)
    assert peer.sent(transport) == [wire.Have(2), wire.Have(3)]
    peer.clock.advance(HAVE_INTERVAL)
    protocol.send_have(wire.encode_have(4))  # a full interval later: at once again
    assert peer.sent(transport) == [wire.Have(4)]


def test_a_held_have_goes_before_anything_sent_after_it(tmp_path):
    peer = Peer(tmp_path, 1001)
    protocol, transport = peer.neighbour(1002)
    for index in (1, 2, 3):
        protocol.send_have(wire.encode_have(index))
    protocol.send(wire.UNCHOKE)
    protocol.send_have(wire.encode_have(4))
    protocol.queue_upload(0)
    messages = peer.sent(transport)
    assert messages[:5] == [wire.Have(1), wire.Have(2), wire.Have(3), wire.Unchoke(), wire.Have(4)]
    assert isinstance(messages[5], wire.Piece) and len(messages) == 6
    peer.clock.advance(HAVE_INTERVAL)
    assert peer.sent(transport) == []  # nothing is sent twice


def test_held_haves_are_sent_before_a_close_and_dropped_with_a_lost_connection(tmp_path):
    peer = Peer(tmp_path, 1001)
    protocol, transport = peer.neighbour(1002)
    protocol.send_have(wire.encode_have(1))
    protocol.send_have(wire.encode_have(2))
    protocol.close(5)
    assert peer.sent(transport) == [wire.Have(1), wire.Have(2)] and transport.disconnecting
    other, other_transport = peer.neighbour(1003)
    other.send_have(wire.encode_have(1))
    other.send_have(wire.encode_have(2))
    other.connectionLost(None)
    peer.clock.advance(HAVE_INTERVAL)
    assert peer.sent(other_transport) == [wire.Have(1)]


def test_choke_returns_the_piece_to_the_pool_and_it_is_fetched_elsewhere(tmp_path):
    peer = Peer(tmp_path, 1003, seeds=(1001, 1002))
    first, first_transport = peer.neighbour(1001, pieces=range(11), dialled=True)
    second, second_transport = peer.neighbour(1002, pieces=[5], dialled=True)
    # Make piece 5 the only one left, so that both can only ever ask for it.
    for index in range(11):
        if index != 5:
            peer.service.pieces.write(index, CONTENT[index * PIECE : (index + 1) * PIECE])
    first.dataReceived(wire.UNCHOKE)
    assert wire.Request(5) in peer.sent(first_transport)
    second.dataReceived(wire.UNCHOKE)
    assert wire.Request(5) not in peer.sent(second_transport)  # in flight: never asked twice
    first.dataReceived(wire.CHOKE)
    assert wire.Request(5) in peer.sent(second_transport)  # back in the pool, asked elsewhere


def test_piece_arriving_after_a_choke_is_accepted_once(tmp_path):
    peer = Peer(tmp_path, 1003, seeds=(1001, 1002))
    first, first_transport = peer.neighbour(1001, pieces=range(11), dialled=True)
    first.dataReceived(wire.UNCHOKE)
    (request,) = [m for m in peer.sent(first_transport) if isinstance(m, wire.Request)]
    first.dataReceived(wire.CHOKE)
    index = request.index
    data = CONTENT[index * PIECE : index * PIECE + peer.common.piece_length(index)]
    first.dataReceived(encode(wire.Piece(index, data)))
    assert not first_transport.disconnecting
    assert index in peer.store.held
    first.dataReceived(encode(wire.Piece(index, data)))  # not asked again: a violation now
    assert first_transport.disconnecting
    assert [e.kind for e in peer.events()].count("downloaded") == 1


def test_lost_connection_returns_the_piece_to_the_pool(tmp_path):
    peer = Peer(tmp_path, 1003, seeds=(1001, 1002))
    first, first_transport = peer.neighbour(1001, pieces=range(11), dialled=True)
    first.dataReceived(wire.UNCHOKE)
    (request,) = [m for m in peer.sent(first_transport) if isinstance(m, wire.Request)]
    first.dataReceived(b"\x00\x00\x00\x69\x07\x00")  # EOF in the middle of a piece
    first.connectionLost(None)
    assert request.index not in peer.service.pieces.in_flight
    assert 1001 not in peer.service.neighbours
    second, second_transport = peer.neighbour(1002, pieces=range(11), dialled=True)
    second.dataReceived(wire.UNCHOKE)
    assert any(isinstance(m, wire.Request) for m in peer.sent(second_transport))


# -- choking rounds under the clock ----------------------------------------------------------------


def _interested_neighbours(peer: Peer, ids):
    pairs = {}
    for peer_id in ids:
        protocol, transport = peer.neighbour(peer_id)
        protocol.dataReceived(wire.INTERESTED)
        pairs[peer_id] = (protocol, transport)
    return pairs


def test_free_slots_are_filled_at_once_then_the_optimistic_one(tmp_path):
    peer = Peer(tmp_path, 1001, k=2)
    pairs = _interested_neighbours(peer, [1002, 1003, 1004, 1005])
    assert len(peer.service.choker.preferred) == 2
    assert peer.service.choker.optimistic is not None
    assert peer.service.choker.optimistic not in peer.service.choker.preferred
    assert peer.service.choker.unchoked == set(peer.service.choker.preferred) | {peer.service.choker.optimistic}
    unchokes = {pid: peer.sent(t).count(wire.Unchoke()) for pid, (_, t) in pairs.items()}
    assert sorted(unchokes.values()) == [0, 1, 1, 1]  # once each, never repeated


def test_course_rounds_only_nobody_is_unchoked_before_the_first_p_round(tmp_path):
    """The course's protocol (the default): preferred neighbours are chosen every p
    seconds and the optimistic one every m seconds, at those rounds only."""
    peer = Peer(tmp_path, 1001, k=2, refill_slots=False)  # p = 5, m = 15
    started = peer.clock.seconds()
    pairs = _interested_neighbours(peer, [1002, 1003, 1004, 1005])
    peer.clock.advance(4.99)
    assert peer.service.choker.unchoked == set()
    assert all(peer.sent(t) == [] for _, t in pairs.values())
    peer.clock.pump([0.01] + [0.5] * 120)  # to 65 s
    times = {kind: [e.time - started for e in peer.events() if e.kind == kind] for kind in ("preferred", "optimistic")}
    assert times["preferred"] and all(abs(t / 5 - round(t / 5)) < 1e-6 for t in times["preferred"]), times
    assert times["optimistic"] == pytest.approx([15, 30, 45, 60][: len(times["optimistic"])])
    assert len(times["optimistic"]) >= 3


def test_course_rounds_only_a_slot_freed_between_rounds_stays_free(tmp_path):
    peer = Peer(tmp_path, 1001, k=1, refill_slots=False)
    pairs = _interested_neighbours(peer, [1002, 1003, 1004])
    peer.clock.advance(5)
    (chosen,) = peer.service.choker.preferred
    for _, transport in pairs.values():
        transport.clear()
    peer.clock.advance(1)
    pairs[chosen][0].connectionLost(None)
    waiting = [pid for pid in pairs if pid != chosen]
    peer.clock.advance(3.99)  # still before the next round at 10 s
    assert peer.service.choker.preferred == frozenset()
    assert all(peer.sent(pairs[pid][1]) == [] for pid in waiting)
    peer.clock.advance(0.01)
    assert len(peer.service.choker.preferred) == 1 and peer.service.choker.preferred <= set(waiting)


def test_seed_picks_preferred_at_random_each_interval(tmp_path):
    peer = Peer(tmp_path, 1001, k=2)
    _interested_neighbours(peer, [1002, 1003, 1004, 1005])
    seen = set()
    for _ in range(12):
        peer.clock.advance(5)
        assert len(peer.service.choker.preferred) == 2
        seen.add(peer.service.choker.preferred)
    assert len(seen) > 1


def test_leecher_prefers_the_neighbours_that_sent_fastest(tmp_path):
    peer = Peer(tmp_path, 1005, seeds=(1001,), k=2)
    pairs = {}
    for peer_id in (1001, 1002, 1003, 1004):
        protocol, transport = peer.neighbour(peer_id, pieces=range(11), dialled=True)
        protocol.dataReceived(wire.INTERESTED + wire.UNCHOKE)
        pairs[peer_id] = (protocol, transport)
    # 1003 sends two pieces, 1004 one, the others none during this interval.
    for peer_id, pieces in ((1003, 2), (1004, 1)):
        protocol, transport = pairs[peer_id]
        for _ in range(pieces):
            (request,) = [m for m in peer.sent(transport) if isinstance(m, wire.Request)]
            start = request.index * PIECE
            protocol.dataReceived(encode(wire.Piece(request.index, CONTENT[start : start + PIECE])))
    peer.clock.advance(5)
    assert peer.service.choker.preferred == {1003, 1004}
    preferred_lines = [e.others for e in peer.events() if e.kind == "preferred"]
    assert preferred_lines[-1] == (1003, 1004)


def test_choked_neighbours_are_choked_except_the_optimistic_one(tmp_path):
    peer = Peer(tmp_path, 1001, k=1)
    pairs = _interested_neighbours(peer, [1002, 1003, 1004])
    for _ in range(6):
        before = set(peer.service.choker.unchoked)
        peer.clock.advance(5)
        expected = set(peer.service.choker.preferred) | {peer.service.choker.optimistic}
        assert peer.service.choker.unchoked == expected
        for peer_id in before - expected:
            assert wire.Choke() in peer.sent(pairs[peer_id][1])
        for _, transport in pairs.values():
            transport.clear()


def test_optimistic_is_chosen_among_choked_and_interested_only(tmp_path):
    peer = Peer(tmp_path, 1001, k=1)
    _interested_neighbours(peer, [1002, 1003])
    quiet, _ = peer.neighbour(1004)  # not interested: never optimistic
    for _ in range(10):
        peer.clock.advance(15)
        assert peer.service.choker.optimistic in (1002, 1003)
        assert peer.service.choker.optimistic != 1004
    lines = [e for e in peer.events() if e.kind == "optimistic"]
    assert lines and all(e.other in (1002, 1003) for e in lines)


def test_done_fires_when_every_peer_is_known_complete(tmp_path):
    peer = Peer(tmp_path, 1001)
    fired = []
    peer.service.done.addCallback(fired.append)
    full = range(11)
    for peer_id in (1002, 1003, 1004):
        peer.neighbour(peer_id, pieces=full)
    peer.clock.advance(0)
    assert fired == []
    protocol, _ = peer.neighbour(1005)
    for index in full:
        protocol.dataReceived(wire.encode_have(index))
    assert fired == [None]


def _leecher_with_neighbours(tmp_path, others=range(11)):
    """Peer 1003 with the seed 1001 and 1002, 1004, 1005 (holding ``others``) connected;
    what fired on its ``done``."""
    peer = Peer(tmp_path, 1003, seeds=(1001,))
    fired: list = []
    peer.service.done.addCallback(fired.append)
    seed, transport = peer.neighbour(1001, pieces=range(11), dialled=True)
    for other in (1002, 1004, 1005):
        peer.neighbour(other, pieces=others, dialled=other < 1003)
    return peer, fired, seed, transport


def _complete_leecher(peer: Peer, seed, transport) -> None:
    seed.dataReceived(wire.UNCHOKE)
    while not peer.store.held.complete:
        (request,) = [m for m in peer.sent(transport) if isinstance(m, wire.Request)]
        start = request.index * PIECE
        seed.dataReceived(encode(wire.Piece(request.index, CONTENT[start : start + PIECE])))


def test_a_peer_does_not_leave_before_every_peer_was_told_it_is_complete(tmp_path):
    """1005 was known complete, but its connection was lost before our last piece: it
    never heard that we are complete, and would wait for us for ever if we left."""
    peer, fired, seed, transport = _leecher_with_neighbours(tmp_path)
    gone = [n.protocol for n in peer.service.neighbours.values() if n.peer_id == 1005][0]
    gone.connectionLost(None)
    _complete_leecher(peer, seed, transport)
    peer.clock.advance(0)
    assert 1005 in peer.service.complete_peers and fired == []  # everyone has the file, but 1005 was not told
    peer.clock.advance(TOLD_GRACE - 1)
    assert fired == []
    _, again = peer.neighbour(1005, pieces=range(11))  # it comes back: our bitfield tells it
    peer.clock.advance(0)
    assert fired == [None]


def test_waiting_to_tell_a_neighbour_is_bounded(tmp_path, warnings):
    """A neighbour lost (not closed by it) before we completed is waited for, but only
    TOLD_GRACE seconds: it may be gone for good, and the course's rule is met."""
    peer, fired, seed, transport = _leecher_with_neighbours(tmp_path)
    peer.service.neighbours[1005].protocol.connectionLost(None)
    _complete_leecher(peer, seed, transport)
    peer.clock.advance(TOLD_GRACE - 0.01)
    assert fired == []
    peer.clock.advance(0.01)
    assert fired == [None]
    assert any("could not tell 1005 within" in line for line in warning_texts(warnings))


def test_a_complete_neighbour_that_closes_is_neither_waited_for_nor_dialled_again(tmp_path):
    """Some implementations close each connection once both ends are complete, and take
    the n-th connection they accept to be the n-th later peer: dialling them again kills
    them, and waiting to tell them would hang (SPEC §3, Choice)."""
    from twisted.internet.error import ConnectionDone
    from twisted.python.failure import Failure

    peer, fired, seed, transport = _leecher_with_neighbours(tmp_path)
    peer.service.neighbours[1002].protocol.connectionLost(Failure(ConnectionDone()))
    assert peer.service.should_dial(1002)  # we still lack pieces: it may come back with them
    peer.service.neighbours[1005].protocol.connectionLost(Failure(ConnectionDone()))
    _complete_leecher(peer, seed, transport)
    peer.clock.advance(0)
    assert fired == [None]  # 1002 and 1005 were not told, and need not be
    assert not peer.service.should_dial(1002) and peer.service.should_dial(1001)


def test_a_complete_neighbour_that_cannot_be_dialled_again_is_not_waited_for(tmp_path):
    peer, fired, seed, transport = _leecher_with_neighbours(tmp_path)
    peer.service.neighbours[1002].protocol.connectionLost(None)  # reset, not closed: it may be back
    _complete_leecher(peer, seed, transport)
    peer.clock.advance(1)
    assert fired == []
    peer.service.unreachable(1002)  # its dialler found nobody listening
    assert fired == [None]


def test_a_neighbour_closing_before_it_is_complete_is_still_waited_for(tmp_path):
    from twisted.internet.error import ConnectionDone
    from twisted.python.failure import Failure

    peer, _, seed, transport = _leecher_with_neighbours(tmp_path, others=range(5))
    peer.service.neighbours[1002].protocol.connectionLost(Failure(ConnectionDone()))
    peer.service.unreachable(1002)
    _complete_leecher(peer, seed, transport)
    assert 1002 not in peer.service.departed and peer.service.should_dial(1002)


def test_a_piece_asked_twice_and_answered_twice_is_kept_once_without_a_violation(tmp_path):
    """Choked and unchoked before our request arrived, the neighbour may answer the
    request we sent before the choke and the one we sent after it."""
    peer = Peer(tmp_path, 1003, seeds=(1001,))
    for index in range(11):
        if index != 7:  # leave one piece, so both requests are for it
            peer.service.pieces.write(index, CONTENT[index * PIECE : (index + 1) * PIECE])
    seed, transport = peer.neighbour(1001, pieces=range(11), dialled=True)
    seed.dataReceived(wire.UNCHOKE)
    seed.dataReceived(wire.CHOKE)
    seed.dataReceived(wire.UNCHOKE)
    assert [m for m in peer.sent(transport) if isinstance(m, wire.Request)] == [wire.Request(7)] * 2
    piece = encode(wire.Piece(7, CONTENT[700:800]))
    seed.dataReceived(piece + piece)
    assert not transport.disconnecting
    assert [e.kind for e in peer.events()].count("downloaded") == 1
    seed.dataReceived(piece)  # a third answer was never asked for
    assert transport.disconnecting


def test_a_lost_optimistic_neighbour_is_replaced_no_sooner_than_m_seconds(tmp_path):
    peer = Peer(tmp_path, 1001, k=1)
    pairs = _interested_neighbours(peer, [1002, 1003, 1004])
    first = peer.service.choker.optimistic
    assert first is not None
    peer.clock.advance(3)
    pairs[first][0].connectionLost(None)
    assert peer.service.choker.optimistic is None  # 3 s < m = 15 s since the last choice
    peer.clock.advance(12)
    assert peer.service.choker.optimistic not in (None, first)
    changes = [e.time for e in peer.events() if e.kind == "optimistic"]
    assert all(later - earlier >= 15 for earlier, later in zip(changes, changes[1:]))


def test_a_finished_peer_reports_its_files_digest_when_asked(tmp_path, warnings):
    import hashlib

    from twisted.logger import formatEvent

    from twisted_p2p.storage import parse_digest_report

    peer = Peer(tmp_path, 1001)
    peer.service.report_digest = True
    for peer_id in (1002, 1003, 1004, 1005):
        peer.neighbour(peer_id, pieces=range(11))
    assert peer.service.done.called
    reports = [parse_digest_report(formatEvent(e)) for e in warnings]
    assert (1001, hashlib.sha256(CONTENT).hexdigest()) in reports


def test_held_haves_go_to_the_transport_in_one_call(tmp_path):
    peer = Peer(tmp_path, 1001)
    protocol, transport = peer.neighbour(1002)
    protocol.send_have(wire.encode_have(1))
    calls: list[list[bytes]] = []
    write_sequence, write = transport.writeSequence, transport.write
    transport.writeSequence = lambda data: (calls.append(list(data)), write_sequence(data))
    transport.write = lambda data: (calls.append([data]), write(data))
    for index in (2, 3, 4):
        protocol.send_have(wire.encode_have(index))
    assert calls == []
    peer.clock.advance(HAVE_INTERVAL)
    assert calls == [[wire.encode_have(2), wire.encode_have(3), wire.encode_have(4)]]
    assert peer.sent(transport) == [wire.Have(1), wire.Have(2), wire.Have(3), wire.Have(4)]
