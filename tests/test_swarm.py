"""Whole peers exchanging a file: two wired in memory, then six on 127.0.0.1."""
from __future__ import annotations

import io
import random

import pytest_twisted
from support import free_ports, peer_settings, seed_bytes, swarm_config, write_seed_files
from twisted.internet import defer, reactor, task
from twisted.internet.task import Clock
from twisted.test import iosim

from twisted_p2p.eventlog import EventLog, parse_line
from twisted_p2p.factory import PeerClientFactory, PeerServerFactory
from twisted_p2p.layout import data_path, event_log_path
from twisted_p2p.node import PeerNode
from twisted_p2p.service import PeerService
from twisted_p2p.storage import PieceStore


def test_two_peers_wired_in_memory_exchange_the_file(tmp_path):
    content = seed_bytes(50_000)
    config = swarm_config([1001, 1002], [1001], len(content), 4096, k=1, p=5, m=15)
    write_seed_files(tmp_path, config, content)
    clock = Clock()
    logs, services = {}, {}
    for peer_id in (1001, 1002):
        store = PieceStore(data_path(tmp_path, peer_id, config.common.file_name), config.common, peer_id == 1001)
        logs[peer_id] = io.StringIO()
        services[peer_id] = PeerService(
            config, peer_id, store, EventLog(peer_id, logs[peer_id], clock), clock, random.Random(peer_id)
        )
        services[peer_id].startService()
    server = PeerServerFactory(services[1001]).buildProtocol(None)
    client = PeerClientFactory(services[1002], 1001).buildProtocol(None)
    pump = iosim.connect(
        server, iosim.makeFakeServer(server), client, iosim.makeFakeClient(client), clock=clock
    )
    done = [services[1001].done, services[1002].done]
    for _ in range(1000):
        if all(d.called for d in done):
            break
        pump.pump()
        clock.advance(0.1)  # the seed unchokes at its first p-second round
    assert all(d.called for d in done)
    assert data_path(tmp_path, 1002, config.common.file_name).read_bytes() == content
    leecher_events = [parse_line(line) for line in logs[1002].getvalue().splitlines()]
    assert None not in leecher_events
    assert leecher_events[0].kind == "connect_to" and leecher_events[-1].kind == "complete"
    assert sum(e.kind == "downloaded" for e in leecher_events) == config.common.num_pieces
    seed_events = [parse_line(line) for line in logs[1001].getvalue().splitlines()]
    assert seed_events[0].kind == "connect_from" and None not in seed_events


def _swarm_nodes(tmp_path, seeds, file_size=3_000_000, piece_size=16384):
    ids = [1001, 1002, 1003, 1004, 1005, 1006]
    config = swarm_config(ids, seeds, file_size, piece_size, k=2, p=1, m=2, ports=free_ports(6))
    content = seed_bytes(file_size)
    write_seed_files(tmp_path, config, content)
    nodes = [
        PeerNode(config, peer_id, tmp_path, reactor, peer_settings(random_seed=peer_id))
        for peer_id in ids
    ]
    return config, content, nodes


@defer.inlineCallbacks
def _run_swarm(nodes, limit=60, late=(), already_running=0):
    """Start ``nodes`` (but the last ``already_running``), and ``late`` ones half a
    second later; wait until all are done, then stop them all."""
    for node in nodes[: len(nodes) - already_running]:
        node.startService()
    try:
        if late:
            yield task.deferLater(reactor, 0.5, lambda: None)
            for node in late:
                node.startService()
            nodes = list(nodes) + list(late)
        finished = defer.gatherResults([node.peer.done for node in nodes], consumeErrors=True)
        finished.addTimeout(limit, reactor)
        yield finished
    finally:
        yield defer.gatherResults([node.stopService() for node in nodes if node.running])


def _check_swarm(tmp_path, config, content, nodes):
    for node in nodes:
        peer_id = node.info.peer_id
        assert data_path(tmp_path, peer_id, config.common.file_name).read_bytes() == content
        assert not node.running and node.port is None
        assert node.peer._connections == {}
        lines = event_log_path(tmp_path, peer_id).read_text().splitlines()
        events = [parse_line(line) for line in lines]
        assert None not in events, [line for line, e in zip(lines, events) if e is None]
        assert all(e.me == peer_id for e in events)
        others = {p.peer_id for p in config.peers} - {peer_id}
        earlier = {p.peer_id for p in config.peers_before(peer_id)}
        assert {e.other for e in events if e.kind == "connect_to"} == earlier
        assert {e.other for e in events if e.kind == "connect_from"} == others - earlier
        downloads = [e for e in events if e.kind == "downloaded"]
        if node.info.has_file:
            assert downloads == [] and "complete" not in {e.kind for e in events}
        else:
            assert [e.count for e in downloads] == list(range(1, config.common.num_pieces + 1))
            assert sorted(e.index for e in downloads) == list(range(config.common.num_pieces))
            assert [e.kind for e in events].count("complete") == 1


@pytest_twisted.inlineCallbacks
def test_six_peers_on_loopback_complete_the_swarm(tmp_path):
    config, content, nodes = _swarm_nodes(tmp_path, seeds=[1001])
    yield _run_swarm(nodes)
    _check_swarm(tmp_path, config, content, nodes)


@pytest_twisted.inlineCallbacks
def test_two_seeds_in_one_swarm(tmp_path):
    config, content, nodes = _swarm_nodes(tmp_path, seeds=[1001, 1004], file_size=1_000_000)
    yield _run_swarm(nodes)
    _check_swarm(tmp_path, config, content, nodes)


@pytest_twisted.inlineCallbacks
def test_peers_dial_again_until_earlier_peers_are_up(tmp_path):
    config, content, nodes = _swarm_nodes(tmp_path, seeds=[1001], file_size=500_000)
    yield _run_swarm(nodes[3:], late=nodes[:3])  # 1004-1006 first: their dials are refused
    _check_swarm(tmp_path, config, content, nodes)
