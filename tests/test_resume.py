"""Crash and restart: the resume state, kill -9 and SIGTERM mid-download, disk trouble."""
from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from twisted_p2p.bitfield import PieceSet
from twisted_p2p.eventlog import parse_line
from twisted_p2p.node import PeerNode
from twisted_p2p.storage import PieceStore, StorageError, data_path, decode_state, encode_state

from test_swarm import _run_swarm
from support import (
    free_ports, seed_bytes, start_peer, swarm_config, twistd, wait_for_peers, write_config,
    write_seed_files,
)

CONFIG = swarm_config([1001, 1002], [1001], 1050, 100)
COMMON = CONFIG.common
CONTENT = seed_bytes(1050)


def piece(index: int) -> bytes:
    return CONTENT[index * 100 : index * 100 + COMMON.piece_length(index)]


def leecher_store(tmp_path: Path) -> PieceStore:
    return PieceStore(data_path(tmp_path, 1002, COMMON), COMMON, has_file=False)


# -- the state file -----------------------------------------------------------------


def test_saved_pieces_are_restored_and_unsaved_ones_are_not(tmp_path):
    store = leecher_store(tmp_path)
    for index in (0, 3, 10):
        store.write(index, piece(index))
    store.save_state()
    store.write(5, piece(5))  # written, never saved: as if killed right now
    os.close(store._fd)  # no close(): a kill saves nothing more
    again = leecher_store(tmp_path)
    assert list(again.held) == [0, 3, 10]
    assert again.read(10) == piece(10)


def test_state_is_not_saved_before_a_piece_is_written(tmp_path):
    store = leecher_store(tmp_path)
    store.save_state()
    assert not store.state_path.exists()
    store.write(2, piece(2))
    store.save_state()
    assert decode_state(store.state_path.read_bytes(), COMMON) == PieceSet(11, [2])
    store.close()


@pytest.mark.parametrize(
    "spoil",
    [
        lambda state, data: state.write_bytes(state.read_bytes()[:40]),  # torn
        lambda state, data: state.write_bytes(state.read_bytes().replace(b'"pieces": "', b'"pieces": "ff')),
        lambda state, data: state.write_bytes(b"\x00\xff garbage"),
        lambda state, data: state.write_bytes(b"[1, 2, 3]"),
        lambda state, data: data.unlink(),  # state without its data
        lambda state, data: os.truncate(data, 1000),  # data of the wrong size
        lambda state, data: state.write_bytes(
            encode_state(swarm_config([1], [1], 2100, 100).common, PieceSet(21, range(21)))
        ),  # another file's state
    ],
    ids=["torn", "altered", "garbage", "not-a-dict", "no-data", "short-data", "other-file"],
)
def test_a_state_that_cannot_be_trusted_means_nothing_is_trusted(tmp_path, spoil):
    store = leecher_store(tmp_path)
    for index in range(6):
        store.write(index, piece(index))
    store.close()
    spoil(store.state_path, store.path)
    again = leecher_store(tmp_path)
    assert again.held.count == 0
    assert again.path.stat().st_size == COMMON.file_size


def test_unwritable_work_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "peer_1002"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(StorageError, match="cannot use .*peer_1002/TheFile.dat"):
        leecher_store(tmp_path)


# -- real processes -----------------------------------------------------------------


def _saved_count(state: Path, common) -> int:
    try:
        return decode_state(state.read_bytes(), common).count
    except (OSError, ValueError):
        return 0


def _slow_swarm(tmp_path: Path):
    """Four peers; the seed uploads at 400 kB/s so a 1.2 MB download takes seconds."""
    ids = [1001, 1002, 1003, 1004]
    config = swarm_config(ids, [1001], 1_200_000, 16384, k=3, p=1, m=2, ports=free_ports(4))
    write_config(tmp_path, config)
    content = seed_bytes(config.common.file_size)
    write_seed_files(tmp_path, config, content)
    processes = {1001: start_peer(tmp_path, 1001, "--upload-rate", "400000")}
    for peer_id in ids[1:]:
        processes[peer_id] = start_peer(tmp_path, peer_id)
    return config, content, processes


def _wait_saved(state: Path, common, at_least: int, limit: float = 30) -> int:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        count = _saved_count(state, common)
        if count >= at_least:
            return count
        time.sleep(0.02)
    raise AssertionError(f"{state} never held {at_least} pieces")


def _wait_connected(log: Path, me: int, earlier: list[int], limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    sentences = [f"Peer {me} makes a connection to Peer {other}." for other in earlier]
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        if all(sentence in text for sentence in sentences):
            return
        time.sleep(0.02)
    raise AssertionError(f"peer {me} never connected to all of {earlier}")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill -9", "SIGTERM"])
def test_a_peer_stopped_mid_download_resumes_and_fetches_only_the_rest(tmp_path, how):
    config, content, processes = _slow_swarm(tmp_path)
    common = config.common
    victim = 1003
    state = tmp_path / f"peer_{victim}" / "TheFile.dat.state"
    _wait_saved(state, common, at_least=8)
    log = tmp_path / f"log_peer_{victim}.log"
    _wait_connected(log, victim, [1001, 1002])  # so that the restart is a return to both
    processes[victim].send_signal(how)
    output = processes[victim].communicate(timeout=30)[0].decode()
    if how == signal.SIGTERM:
        assert processes[victim].returncode == 0, output
        assert f"peer {victim} stopping with" in output
    else:
        assert processes[victim].returncode == -signal.SIGKILL
    restored = _saved_count(state, common)
    assert 8 <= restored < common.num_pieces
    lines_before = len(log.read_text().splitlines())
    processes[victim] = start_peer(tmp_path, victim)
    outputs = wait_for_peers(processes)
    for peer_id, process in processes.items():
        assert process.returncode == 0, outputs[peer_id]
        assert (tmp_path / f"peer_{peer_id}" / "TheFile.dat").read_bytes() == content
    assert f"resuming with {restored} of {common.num_pieces} pieces" in outputs[victim]
    second_run = [parse_line(line) for line in log.read_text().splitlines()[lines_before:]]
    assert None not in second_run
    downloads = [e for e in second_run if e.kind == "downloaded"]
    assert len(downloads) == common.num_pieces - restored  # only the rest
    assert [e.count for e in downloads] == list(range(restored + 1, common.num_pieces + 1))
    # The neighbours took it back: earlier ones accepted it again, the later one redialled.
    for peer_id, sentence in ((1001, "is connected from Peer 1003."), (1004, "makes a connection to Peer 1003.")):
        assert (tmp_path / f"log_peer_{peer_id}.log").read_text().count(sentence) == 2


def test_full_disk_at_start_is_a_clear_error(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.decode().strip()}")
    try:
        config = swarm_config([1001, 1002], [1001], 1_000_000, 16384, ports=free_ports(2))
        write_config(tmp_path, config)
        result = subprocess.run(
            twistd() + ["-n", "--pidfile=", "p2ppeer", "--id", "1002", "--config-dir", str(tmp_path),
                        "--work-dir", str(mount)],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        )
        assert result.returncode != 0
        assert os.strerror(errno.ENOSPC) in result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_write_that_fails_mid_download_stops_the_peer_without_claiming_the_piece(tmp_path):
    from twisted_p2p import wire
    from twisted_p2p.service import PeerFailed

    from test_protocol import CONTENT as PIECES_CONTENT, Peer

    peer = Peer(tmp_path, 1003, seeds=(1001,))
    failures = []
    peer.service.done.addErrback(failures.append)

    def full_disk(index, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    peer.store.write = full_disk
    seed, transport = peer.neighbour(1001, pieces=range(11), dialled=True)
    seed.dataReceived(wire.UNCHOKE)
    (request,) = [m for m in peer.sent(transport) if isinstance(m, wire.Request)]
    start = request.index * 100
    data = PIECES_CONTENT[start : start + peer.common.piece_length(request.index)]
    seed.dataReceived(wire.encode(wire.Piece(request.index, data)))
    assert len(failures) == 1 and failures[0].check(PeerFailed)
    assert "No space left on device" in str(failures[0].value)
    assert peer.store.held.count == 0
    assert "downloaded" not in [e.kind for e in peer.events()]


def test_a_save_never_overlaps_the_one_under_way_in_the_background(tmp_path):
    from twisted.internet.defer import Deferred

    from test_protocol import CONTENT as PIECES_CONTENT, Peer

    peer = Peer(tmp_path, 1003, seeds=(1001,))
    handed = []
    under_way: Deferred[None] = Deferred()

    def run_in_thread(function, *args):
        handed.append((function, args))
        return under_way

    peer.service.run_in_thread = run_in_thread
    peer.store.write(0, PIECES_CONTENT[:100])
    peer.clock.advance(0.5)  # the periodic save goes to the "thread"
    assert len(handed) == 1 and not peer.store.state_path.exists()
    peer.store.write(1, PIECES_CONTENT[100:200])
    peer.service.save_state()  # a final save waits for the one under way
    assert not peer.store.state_path.exists()
    function, args = handed[0]
    function(*args)  # the thread's work: pieces 0 only
    assert decode_state(peer.store.state_path.read_bytes(), peer.common) == PieceSet(11, [0])
    under_way.callback(None)
    assert decode_state(peer.store.state_path.read_bytes(), peer.common) == PieceSet(11, [0, 1])
    assert len(handed) == 1


@defer.inlineCallbacks
def _crash(node):
    """What SIGKILL does to a peer, in-process: connections dropped without a word,
    timers gone, files closed with nothing more saved."""
    service = node.peer
    service.running = 0  # a dead process reacts to nothing that follows
    for loop in (service._unchoke_loop, service._optimistic_loop, service._save_loop):
        if loop.running:
            loop.stop()
    for protocol in list(service._connections):
        protocol.transport.abortConnection()
    os.close(node.store._fd)
    node.store._fd = -1
    node.events.flush()
    node._event_file.close()
    yield defer.gatherResults([dialler.stopService() for dialler in list(node)[1:]] + [node.port.stopListening()])


@pytest_twisted.inlineCallbacks
def test_in_process_kill_and_restart_fetches_only_the_rest(tmp_path):
    ids = [1001, 1002, 1003, 1004]
    config = swarm_config(ids, [1001], 600_000, 16384, k=3, p=1, m=2, ports=free_ports(4))
    content = seed_bytes(config.common.file_size)
    write_seed_files(tmp_path, config, content)

    def node(peer_id):
        return PeerNode(config, peer_id, tmp_path, reactor, rng=random.Random(peer_id), interface="127.0.0.1",
                        upload_rate=300_000 if peer_id == 1001 else 0)

    nodes = {peer_id: node(peer_id) for peer_id in ids}
    for each in nodes.values():
        each.startService()
    state = tmp_path / "peer_1003" / "TheFile.dat.state"
    for _ in range(500):
        if _saved_count(state, config.common) >= 5:
            break
        yield task.deferLater(reactor, 0.02, lambda: None)
    yield _crash(nodes[1003])
    restored = _saved_count(state, config.common)
    assert 5 <= restored < config.common.num_pieces
    log = tmp_path / "log_peer_1003.log"
    lines_before = len(log.read_text().splitlines())
    nodes[1003] = node(1003)
    assert nodes[1003].store.held.count == restored  # announced in its bitfield
    yield _run_swarm([nodes[1003]] + [nodes[i] for i in ids if i != 1003], already_running=3)
    for peer_id in ids:
        assert data_path(tmp_path, peer_id, config.common).read_bytes() == content
    downloads = [parse_line(line) for line in log.read_text().splitlines()[lines_before:]]
    downloads = [e for e in downloads if e.kind == "downloaded"]
    assert [e.count for e in downloads] == list(range(restored + 1, config.common.num_pieces + 1))
