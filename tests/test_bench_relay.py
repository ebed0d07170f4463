"""The benchmark's delaying relay (bench/netrelay.py) and the relayed swarm's configs.

The delay itself is checked on a task.Clock; the relay process is checked for what it
forwards (every byte, in order, both ways) and for closing, never for how long it took.
"""
from __future__ import annotations

import os
import random
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from twisted.internet.task import Clock

from bench import latency, swarm
from bench.netrelay import DelayLine, RelayProcess
from bench.procs import LOOPBACK, free_ports
from twisted_p2p.config import load

WAIT_S = 20.0  # bound on any one socket operation of the network tests


class Ends:
    """What a DelayLine let out, and when (by the test's clock)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.delivered: list[tuple[float, bytes]] = []
        self.finished: list[float] = []

    def line(self, delay: float) -> DelayLine:
        return DelayLine(self.clock, delay,
                         lambda data: self.delivered.append((self.clock.seconds(), data)),
                         lambda: self.finished.append(self.clock.seconds()))

    def data(self) -> bytes:
        return b"".join(data for _, data in self.delivered)


def test_a_chunk_comes_out_delay_after_it_went_in_and_not_before() -> None:
    clock = Clock()  # whole seconds, so that the times add up exactly
    ends = Ends(clock)
    line = ends.line(10)
    line.push(b"first")
    clock.advance(4)
    line.push(b"second")
    clock.advance(5)  # t = 9
    assert ends.delivered == []
    clock.advance(1)  # t = 10
    assert ends.delivered == [(10, b"first")]
    clock.advance(3)  # t = 13
    assert ends.delivered == [(10, b"first")]
    clock.advance(1)  # t = 14
    assert ends.delivered == [(10, b"first"), (14, b"second")]


def test_one_timer_per_direction_however_many_chunks_wait() -> None:
    clock = Clock()
    ends = Ends(clock)
    line = ends.line(0.025)
    for index in range(100):
        line.push(bytes([index]))
        assert len(clock.getDelayedCalls()) == 1
        clock.advance(0.001)
    clock.advance(0.025)
    assert ends.data() == bytes(range(100))
    assert clock.getDelayedCalls() == []


def test_chunks_due_together_go_out_together_in_order() -> None:
    clock = Clock()
    ends = Ends(clock)
    line = ends.line(10)
    line.push(b"a")
    line.push(b"b")
    line.push(b"c")
    clock.advance(10)
    assert ends.delivered == [(10, b"abc")]


def test_the_end_of_the_stream_follows_the_bytes_before_it_after_the_same_delay() -> None:
    clock = Clock()
    ends = Ends(clock)
    line = ends.line(10)
    line.push(b"last words")
    clock.advance(2)
    line.end()
    line.end()  # a second end changes nothing
    clock.advance(8)  # t = 10: the bytes, not yet the end
    assert ends.delivered == [(10, b"last words")]
    assert ends.finished == []
    clock.advance(2)  # t = 12
    assert ends.finished == [12]
    clock.advance(100)
    assert ends.finished == [12]


def test_with_no_delay_bytes_and_end_go_out_at_once_without_a_timer() -> None:
    clock = Clock()
    ends = Ends(clock)
    line = ends.line(0.0)
    line.push(b"now")
    line.end()
    assert ends.delivered == [(0.0, b"now")]
    assert ends.finished == [0.0]
    assert clock.getDelayedCalls() == []


def test_cancel_drops_what_waits_and_its_timer() -> None:
    clock = Clock()
    ends = Ends(clock)
    line = ends.line(0.010)
    line.push(b"never")
    line.end()
    line.cancel()
    assert clock.getDelayedCalls() == []
    clock.advance(1)
    assert ends.delivered == [] and ends.finished == []


# -- the relay process, on 127.0.0.1 ----------------------------------------------------

def _listener() -> socket.socket:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind((LOOPBACK, 0))
    server.listen(4)
    server.settimeout(WAIT_S)
    return server


def _accept(server: socket.socket) -> socket.socket:
    conn, _ = server.accept()
    conn.settimeout(WAIT_S)
    return conn


def _receive(conn: socket.socket, size: int) -> bytes:
    got = bytearray()
    while len(got) < size:
        chunk = conn.recv(min(1 << 16, size - len(got)))
        if not chunk:
            break
        got += chunk
    return bytes(got)


def _write_in_pieces(conn: socket.socket, data: bytes, sizes: list[int]) -> None:
    position = 0
    for size in sizes:
        conn.sendall(data[position:position + size])
        position += size
    conn.sendall(data[position:])


def _in_thread(work: Callable[[], object]) -> tuple[threading.Thread, list]:
    out: list = []
    thread = threading.Thread(target=lambda: out.append(work()), daemon=True)
    thread.start()
    return thread, out


@pytest.mark.parametrize("delay_ms", [0.0, 2.0])
def test_the_relay_forwards_every_byte_in_order_both_ways(delay_ms: float) -> None:
    rng = random.Random(7)
    small = [rng.randint(1, 100) for _ in range(2000)]  # many small writes, then large ones
    upstream = rng.randbytes(sum(small) + 3 * (1 << 20))
    downstream = rng.randbytes(2 * (1 << 20) + 12345)
    server = _listener()
    try:
        with RelayProcess([server.getsockname()[1]], delay_ms) as relay:
            client = socket.create_connection((LOOPBACK, relay.ports[0]), timeout=WAIT_S)
            with client, _accept(server) as far:
                writers = [_in_thread(lambda: _write_in_pieces(client, upstream, small)),
                           _in_thread(lambda: _write_in_pieces(far, downstream, [1, 7, 1000, 1 << 20]))]
                reader, got_up = _in_thread(lambda: _receive(far, len(upstream)))
                got_down = _receive(client, len(downstream))
                reader.join(WAIT_S)
                for thread, _ in writers:
                    thread.join(WAIT_S)
            assert got_down == downstream
            assert got_up == [upstream]
        assert relay.summary == {"connections": 1, "bytes": len(upstream) + len(downstream)}
        assert relay.child.returncode == 0
    finally:
        server.close()


@pytest.mark.parametrize("closing", ["client", "server"])
def test_a_close_reaches_the_other_end_after_the_bytes_sent_before_it(closing: str) -> None:
    server = _listener()
    try:
        with RelayProcess([server.getsockname()[1]], 2.0) as relay:
            client = socket.create_connection((LOOPBACK, relay.ports[0]), timeout=WAIT_S)
            far = _accept(server)
            with client, far:
                closer, other = (client, far) if closing == "client" else (far, client)
                closer.sendall(b"last words")
                closer.close()
                assert _receive(other, 10) == b"last words"
                assert other.recv(1) == b""  # the end of the stream, passed on
    finally:
        server.close()


def test_the_relay_reaches_a_target_that_starts_listening_after_the_call() -> None:
    target = free_ports(1)[0]
    with RelayProcess([target], 0.0) as relay:
        client = socket.create_connection((LOOPBACK, relay.ports[0]), timeout=WAIT_S)
        with client:
            client.sendall(b"hello")
            server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with server:
                server.bind((LOOPBACK, target))
                server.listen(1)
                server.settimeout(WAIT_S)
                with _accept(server) as far:
                    assert _receive(far, 5) == b"hello"


def test_one_relay_process_serves_several_targets_each_on_its_own_port() -> None:
    servers = [_listener() for _ in range(3)]
    try:
        with RelayProcess([server.getsockname()[1] for server in servers], 0.0) as relay:
            assert len(set(relay.ports)) == 3
            for index, (server, port) in enumerate(zip(servers, relay.ports)):
                with socket.create_connection((LOOPBACK, port), timeout=WAIT_S) as client, _accept(server) as far:
                    client.sendall(bytes([index]))
                    assert _receive(far, 1) == bytes([index])
        assert relay.summary is not None and relay.summary["connections"] == 3
    finally:
        for server in servers:
            server.close()


def test_stopping_the_relay_ends_its_process() -> None:
    relay = RelayProcess([free_ports(1)[0]], 10.0)
    pid = relay.child.pid
    relay.stop()
    assert relay.child.returncode == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# -- the relayed swarm's configs and reports ------------------------------------------

def test_each_peer_sees_its_own_real_port_and_the_relay_ports_of_the_others(tmp_path: Path) -> None:
    common = ("NumberOfPreferredNeighbors 2\nUnchokingInterval 1\nOptimisticUnchokingInterval 1\n"
              "FileName TheFile.dat\nFileSize 1000\nPieceSize 100\n")
    (tmp_path / "Common.cfg").write_text(common)
    ids, real, relayed = [1001, 1002, 1003], [5001, 5002, 5003], [6001, 6002, 6003]
    dirs = swarm.write_peer_infos(str(tmp_path), ids, real, relayed)
    assert set(dirs) == set(ids)
    for me in ids:
        config = load(dirs[me])
        assert (Path(dirs[me]) / "Common.cfg").read_text() == common
        assert [info.peer_id for info in config.peers] == ids
        assert {info.peer_id: info.port for info in config.peers} == {
            peer: (real if peer == me else relayed)[index] for index, peer in enumerate(ids)}
        assert [info.has_file for info in config.peers] == [True, False, False]
        assert {info.host for info in config.peers} == {LOOPBACK}


def test_the_depth_a_peer_logs_is_read_and_none_when_it_logs_none(tmp_path: Path) -> None:
    logged = tmp_path / "twistd_1002.out"
    logged.write_text(
        "2026-01-01 [-] peer 1002 listening on port 5002\n"
        "2026-01-01 [PeerService] pipeline to peer 1001: depth 12 (highest 40, limits 2-256); "
        "shortest round trip 50.1 ms, delivering 300 pieces/s\n"
        "2026-01-01 [PeerService] pipeline to peer 1003: depth 7\n")
    assert swarm.logged_depths(str(logged)) == [(1001, 12, 40), (1003, 7, None)]
    silent = tmp_path / "twistd_1001.out"
    silent.write_text("2026-01-01 [-] peer 1001 listening on port 5001\n")
    assert swarm.logged_depths(str(silent)) == []
    assert swarm.logged_depths(str(tmp_path / "missing.out")) == []
    summary = latency.summarise([{"ok": True, "transfer_s": 1.0, "pipeline_depths": None, "pipeline_highest": None}])
    assert summary["pipeline_depth"] is None and summary["pipeline_highest"] is None


def test_summaries_take_the_median_of_the_finished_runs_and_keep_their_range() -> None:
    runs = [
        {"ok": True, "transfer_s": 5.0, "startup_s": 1.0, "pipeline_depths": [8, 16], "pipeline_highest": 20,
         "relayed": {"connections": 15, "bytes": 100 << 20}},
        {"ok": True, "transfer_s": 3.0, "startup_s": 0.5, "pipeline_depths": [32], "pipeline_highest": 40,
         "relayed": {"connections": 15, "bytes": 102 << 20}},
        {"ok": False, "failure": "a leecher never logged completion", "transfer_s": None},
    ]
    summary = latency.summarise(runs)
    assert summary["runs"] == 3 and summary["ok_runs"] == 2
    assert summary["failures"] == ["a leecher never logged completion"]
    assert summary["transfer_s"] == 4.0 and summary["transfer_s_runs"] == [5.0, 3.0]
    assert summary["pipeline_depth"] == 16 and summary["pipeline_highest"] == 40
    assert summary["relayed_mib"] == 101


def test_delays_are_read_from_a_comma_list() -> None:
    assert latency.parse_delays("0,10,25") == (0.0, 10.0, 25.0)
    assert latency.parse_delays("2.5") == (2.5,)
    for bad in ("", "-1", "5,-2"):
        with pytest.raises(ValueError):
            latency.parse_delays(bad)
