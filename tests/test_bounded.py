"""Our bounded neighbour set (``--neighbours``): whom a peer dials, whom it refuses,
and when it leaves; in memory, on StringTransports and a Clock."""
from __future__ import annotations

import hashlib
import random

import pytest_twisted
from support import (
    free_ports,
    peer_settings,
    seed_bytes,
    start_peer,
    swarm_config,
    wait_for_peers,
    write_config,
    write_seed_files,
)
from test_protocol import CONTENT, PIECE, Peer, warning_texts
from test_swarm import _run_swarm
from twisted.internet import reactor
from twisted.internet.testing import MemoryReactorClock
from wirebytes import encode

from twisted_p2p import wire
from twisted_p2p.bitfield import PieceSet
from twisted_p2p.eventlog import parse_line
from twisted_p2p.graph import neighbour_sets
from twisted_p2p.layout import data_path, event_log_path
from twisted_p2p.node import PeerNode
from twisted_p2p.storage import parse_digest_report
from twisted_p2p.summary import parse_summary


def test_a_peer_with_a_bounded_set_dials_only_its_earlier_neighbours(tmp_path):
    config = swarm_config([1001, 1002, 1003, 1004, 1005], [1001], 1000, 100, ports=[7001, 7002, 7003, 7004, 7005])
    reactor = MemoryReactorClock()
    node = PeerNode(config, 1004, tmp_path, reactor, peer_settings(neighbours=frozenset({1001, 1003, 1005})))
    node.startService()
    try:
        assert sorted(port for _, port, *_ in reactor.tcpClients) == [7001, 7003]  # not 1002, nor 1005 (later)
    finally:
        node.stopService()


def test_without_a_set_a_peer_dials_every_earlier_peer(tmp_path):
    config = swarm_config([1001, 1002, 1003, 1004], [1001], 1000, 100, ports=[7001, 7002, 7003, 7004])
    reactor = MemoryReactorClock()
    node = PeerNode(config, 1004, tmp_path, reactor, peer_settings())
    node.startService()
    try:
        assert sorted(port for _, port, *_ in reactor.tcpClients) == [7001, 7002, 7003]
    finally:
        node.stopService()


def test_a_seeds_neighbour_splits_its_pieces_only_with_the_peers_named(tmp_path):
    """With --split-among, the share is every n-th piece, n the named peers without the
    file (a seed's neighbours), not every peer of PeerInfo.cfg without it."""
    config = swarm_config([1001, 1002, 1003, 1004, 1005], [1001], 1000, 100)
    settings = peer_settings(split_seed=True, neighbours=frozenset({1001, 1005}), split_among=frozenset({1003, 1005}))
    node = PeerNode(config, 1005, tmp_path, MemoryReactorClock(), settings)
    try:
        rng, seed_holds = random.Random(1), PieceSet.full(10)
        asked = {node.peer.pieces.choose(rng, seed_holds) for _ in range(200)}
        assert asked == {1, 3, 5, 7, 9}  # the second of the two: the odd pieces
    finally:
        node.stopService()


def test_a_handshake_from_outside_the_set_is_refused(tmp_path, warnings):
    peer = Peer(tmp_path, 1003, neighbours=frozenset({1001, 1005}))
    protocol, transport = peer.connect()
    protocol.dataReceived(wire.encode_handshake(1004))
    assert transport.disconnecting and peer.service.neighbours == {}
    assert any("ID 1004, which is not one of our neighbours" in line for line in warning_texts(warnings))
    peer.neighbour(1005)
    assert set(peer.service.neighbours) == {1005}


def test_a_seed_with_a_bounded_set_leaves_once_its_neighbours_are_complete_and_not_before(tmp_path):
    peer = Peer(tmp_path, 1001, neighbours=frozenset({1002, 1004}))
    fired: list = []
    peer.service.done.addCallback(fired.append)
    peer.neighbour(1002, pieces=range(11))
    peer.clock.advance(1)
    assert fired == []  # 1004 is not known complete
    protocol, _ = peer.neighbour(1004, pieces=range(10))
    peer.clock.advance(1)
    assert fired == []
    protocol.dataReceived(wire.encode_have(10))
    assert fired == [None]  # 1003 and 1005, not its neighbours, were never waited for


def test_a_leecher_with_a_bounded_set_waits_to_tell_its_neighbours(tmp_path):
    """Complete, and its neighbours known complete, it leaves only once each has been
    told (our bitfield on a new connection tells it)."""
    peer = Peer(tmp_path, 1003, neighbours=frozenset({1001, 1005}))
    fired: list = []
    peer.service.done.addCallback(fired.append)
    seed, transport = peer.neighbour(1001, pieces=range(11), dialled=True)
    seed.dataReceived(wire.UNCHOKE)
    while not peer.store.held.complete:
        (request,) = [m for m in peer.sent(transport) if isinstance(m, wire.Request)]
        start = request.index * PIECE
        seed.dataReceived(encode(wire.Piece(request.index, CONTENT[start:start + PIECE])))
    peer.clock.advance(1)
    assert fired == []  # 1005 is neither known complete nor told
    peer.neighbour(1005, pieces=range(11))
    assert fired == [None]


@pytest_twisted.inlineCallbacks
def test_eight_peers_of_degree_three_on_loopback_complete_with_identical_files(tmp_path):
    ids = list(range(1001, 1009))
    config = swarm_config(ids, [1001], 1_000_000, 16384, k=2, p=1, m=2, ports=free_ports(8))
    content = seed_bytes(1_000_000)
    write_seed_files(tmp_path, config, content)
    sets = neighbour_sets(ids, 3, random.Random(5))
    assert any(len(neighbours) < 7 for neighbours in sets.values())  # not the full mesh
    # as push runs them: the seed's neighbours split its pieces among them
    nodes = [PeerNode(config, peer_id, tmp_path, reactor, peer_settings(
        random_seed=peer_id, neighbours=sets[peer_id], split_seed=True,
        split_among=sets[1001] if peer_id in sets[1001] else None)) for peer_id in ids]
    yield _run_swarm(nodes)
    for peer_id in ids:
        assert data_path(tmp_path, peer_id, config.common.file_name).read_bytes() == content
        events = [parse_line(line) for line in event_log_path(tmp_path, peer_id).read_text().splitlines()]
        connected = {e.other for e in events if e.kind in ("connect_to", "connect_from")}
        assert connected == sets[peer_id]


def test_four_twistd_processes_on_a_ring_finish_by_themselves_and_echo_progress_lines(tmp_path):
    """Each peer knows only its two ring neighbours (1001 and 1003 never meet) and
    echoes progress lines, the completion and its digest, but no other event line."""
    ids = [1001, 1002, 1003, 1004]
    ring = {1001: "1002,1004", 1002: "1001,1003", 1003: "1002,1004", 1004: "1003,1001"}
    config = swarm_config(ids, [1001], 500_000, 16384, k=2, p=1, m=2, ports=free_ports(4))
    write_config(tmp_path, config)
    content = seed_bytes(config.common.file_size)
    write_seed_files(tmp_path, config, content)
    processes = {peer_id: start_peer(tmp_path, peer_id, "--neighbours", ring[peer_id], "--echo-summary", "0.2")
                 for peer_id in ids}
    outputs = wait_for_peers(processes)
    for peer_id, process in processes.items():
        lines = outputs[peer_id].splitlines()
        assert process.returncode == 0, outputs[peer_id]
        assert data_path(tmp_path, peer_id, "TheFile.dat").read_bytes() == content
        summaries = [summary for summary in map(parse_summary, lines) if summary is not None]
        assert summaries and summaries[-1].held == summaries[-1].total and summaries[-1].neighbours == 2
        events = [event.kind for event in map(parse_line, lines) if event is not None]
        assert events == ([] if peer_id == 1001 else ["complete"])
        assert (peer_id, hashlib.sha256(content).hexdigest()) in [parse_digest_report(line) for line in lines]
        logged = [parse_line(line) for line in event_log_path(tmp_path, peer_id).read_text().splitlines()]
        assert {e.other for e in logged if e.kind in ("connect_to", "connect_from")} == {
            int(other) for other in ring[peer_id].split(",")}
