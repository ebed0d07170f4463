"""Crash and restart: the resume journal and state, kill -9 and SIGTERM mid-download,
disk trouble."""
from __future__ import annotations

import errno
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import pytest_twisted
from support import (
    free_ports,
    peer_settings,
    seed_bytes,
    start_peer,
    swarm_config,
    twistd,
    wait_for_peers,
    write_config,
    write_seed_files,
)
from test_swarm import _run_swarm
from twisted.internet import defer, reactor, task
from wirebytes import encode

from twisted_p2p.bitfield import PieceSet
from twisted_p2p.eventlog import parse_line
from twisted_p2p.layout import data_path, journal_path
from twisted_p2p.node import PeerNode
from twisted_p2p.resume import Resume, current_boot_id, decode_state, encode_state, forget
from twisted_p2p.storage import PieceStore, StorageError

CONFIG = swarm_config([1001, 1002, 1003], [1001], 1050, 100)
COMMON = CONFIG.common
CONTENT = seed_bytes(1050)
BOOT = "boot-one"


def piece(index: int) -> bytes:
    return CONTENT[index * 100 : index * 100 + COMMON.piece_length(index)]


class Leecher:
    """A leecher's files as PeerNode opens them: restore, then the store, then start."""

    def __init__(self, tmp_path: Path, boot_id: str | None = BOOT) -> None:
        self.resume = Resume(data_path(tmp_path, 1002, COMMON.file_name), COMMON, boot_id)
        self.restored = self.resume.restore()
        self.store = PieceStore(self.resume.data, COMMON, has_file=False, held=self.restored.held)
        self.resume.start(self.restored)

    def write(self, *indexes: int) -> None:
        for index in indexes:
            self.store.write(index, piece(index))
            self.resume.piece_written(index)

    def checkpoint(self) -> None:
        state = self.resume.snapshot(self.store.held, [1001])
        assert state is not None
        self.resume.commit(state, self.store.sync)

    def kill(self) -> None:
        """What kill -9 leaves: the descriptors closed by the kernel, nothing saved."""
        self.store.close()
        self.resume.close()


# -- the journal and the state ---------------------------------------------------------


def test_every_written_piece_survives_a_crash_of_the_process(tmp_path):
    leecher = Leecher(tmp_path)
    leecher.write(0, 3, 10)
    leecher.kill()  # never synced, never checkpointed
    again = Leecher(tmp_path)
    assert list(again.store.held) == [0, 3, 10]
    assert again.store.read(10) == piece(10)


def test_after_a_reboot_only_the_synced_checkpoint_is_trusted(tmp_path):
    leecher = Leecher(tmp_path)
    leecher.write(0, 3)
    leecher.checkpoint()  # data synced, state written
    leecher.write(5, 6)  # only in the page cache and the journal
    leecher.kill()
    rebooted = Leecher(tmp_path, boot_id="boot-two")
    assert list(rebooted.store.held) == [0, 3]
    assert rebooted.restored.complete_peers == {1001}


def test_without_a_boot_id_the_journal_is_never_trusted(tmp_path):
    leecher = Leecher(tmp_path, boot_id=None)
    leecher.write(1, 2)
    leecher.kill()
    assert Leecher(tmp_path, boot_id=None).store.held.count == 0


def test_a_restart_carries_on_the_same_records_across_several_crashes(tmp_path):
    first = Leecher(tmp_path)
    first.write(0, 1)
    first.checkpoint()
    first.write(2)
    first.kill()
    second = Leecher(tmp_path)
    second.write(7)
    second.kill()
    third = Leecher(tmp_path)
    assert list(third.store.held) == [0, 1, 2, 7]
    assert list(third.restored.durable) == [0, 1]


def test_a_torn_last_record_is_ignored_and_the_rest_kept(tmp_path):
    leecher = Leecher(tmp_path)
    leecher.write(4, 8)
    leecher.kill()
    path = journal_path(leecher.resume.data)
    path.write_bytes(path.read_bytes()[:-2])  # killed in the middle of the last record
    assert list(Leecher(tmp_path).store.held) == [4]


@pytest.mark.parametrize(
    "spoil",
    [
        lambda journal: journal.write_bytes(b"\x00\xff garbage"),
        lambda journal: journal.write_bytes(journal.read_bytes() + b"P\x00\x00\x00\x63"),  # piece 99 of 11
        lambda journal: journal.write_bytes(journal.read_bytes() + b"X\x00\x00\x00\x01"),
        lambda journal: journal.write_bytes(journal.read_bytes().replace(b'"file_size": 1050', b'"file_size": 2100')),
    ],
    ids=["garbage", "piece-out-of-range", "unknown-record", "other-file"],
)
def test_a_journal_that_cannot_be_trusted_leaves_only_the_checkpoint(tmp_path, spoil):
    leecher = Leecher(tmp_path)
    leecher.write(0)
    leecher.checkpoint()
    leecher.write(1, 2)
    leecher.kill()
    spoil(journal_path(leecher.resume.data))
    assert list(Leecher(tmp_path).store.held) == [0]


@pytest.mark.parametrize(
    "spoil",
    [
        lambda state, data: state.write_bytes(state.read_bytes()[:40]),  # torn
        lambda state, data: state.write_bytes(state.read_bytes().replace(b'"pieces": "', b'"pieces": "ff')),
        lambda state, data: state.write_bytes(b"\x00\xff garbage"),
        lambda state, data: state.write_bytes(b"[1, 2, 3]"),
        lambda state, data: state.write_bytes(
            encode_state(swarm_config([1], [1], 2100, 100).common, PieceSet(21, range(21)))
        ),  # another file's state
    ],
    ids=["torn", "altered", "garbage", "not-a-dict", "other-file"],
)
def test_a_state_that_cannot_be_trusted_is_ignored(tmp_path, spoil):
    leecher = Leecher(tmp_path)
    leecher.write(*range(6))
    leecher.checkpoint()
    leecher.kill()
    spoil(leecher.resume.state_path, leecher.resume.data)
    rebooted = Leecher(tmp_path, boot_id="boot-two")  # so that only the state could vouch
    assert rebooted.store.held.count == 0
    assert rebooted.store.path.stat().st_size == COMMON.file_size


@pytest.mark.parametrize(
    "spoil", [lambda data: data.unlink(), lambda data: os.truncate(data, 1000)], ids=["no-data", "short-data"]
)
def test_records_without_their_data_mean_nothing_is_trusted(tmp_path, spoil):
    leecher = Leecher(tmp_path)
    leecher.write(*range(6))
    leecher.checkpoint()
    leecher.kill()
    spoil(leecher.resume.data)
    assert Leecher(tmp_path).store.held.count == 0


def test_only_a_first_start_leaves_its_state_unsynced(tmp_path, monkeypatch):
    """A first start's state claims nothing and replaces no file, so it is not synced (a
    disk flush before the peer listens); a later start's is, even one that claims
    nothing, since it replaces a state that may claim more."""
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    first = Leecher(tmp_path)
    assert synced == []
    assert decode_state(first.resume.state_path.read_bytes(), COMMON) == (PieceSet(11), set(), set())
    first.kill()
    Leecher(tmp_path)
    assert len(synced) == 1


def test_the_state_lists_only_pieces_written_before_its_snapshot(tmp_path):
    leecher = Leecher(tmp_path)
    assert leecher.resume.snapshot(leecher.store.held, []) is None  # nothing new: nothing to save
    leecher.write(2)
    state = leecher.resume.snapshot(leecher.store.held, [])
    leecher.write(3)  # written while the snapshot is being committed in its thread
    leecher.resume.commit(state, leecher.store.sync)
    assert decode_state(leecher.resume.state_path.read_bytes(), COMMON) == (PieceSet(11, [2]), set(), set())


def test_peers_learned_complete_or_not_are_remembered(tmp_path):
    leecher = Leecher(tmp_path)
    leecher.resume.peer_learned(1001, True)
    leecher.resume.peer_learned(1003, True)
    leecher.resume.peer_learned(1003, False)  # it restarted with less
    leecher.kill()
    assert Leecher(tmp_path).restored.complete_peers == {1001}


def test_forget_leaves_nothing_to_resume(tmp_path):
    leecher = Leecher(tmp_path)
    leecher.write(1)
    leecher.kill()
    forget(leecher.resume.data)
    assert Leecher(tmp_path).store.held.count == 0


def test_unwritable_work_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "peer_1002"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(StorageError, match="cannot use .*peer_1002/TheFile.dat"):
        PieceStore(data_path(tmp_path, 1002, COMMON.file_name), COMMON, has_file=False)


# -- real processes -----------------------------------------------------------------


def _slow_swarm(tmp_path: Path, rate: str = "400000"):
    """Four peers; the seed uploads at ``rate`` B/s so a 1.2 MB download takes seconds."""
    ids = [1001, 1002, 1003, 1004]
    config = swarm_config(ids, [1001], 1_200_000, 16384, k=3, p=1, m=2, ports=free_ports(4))
    write_config(tmp_path, config)
    content = seed_bytes(config.common.file_size)
    write_seed_files(tmp_path, config, content)
    processes = {1001: start_peer(tmp_path, 1001, "--upload-rate", rate)}
    for peer_id in ids[1:]:
        processes[peer_id] = start_peer(tmp_path, peer_id)
    return config, content, processes


def _downloads(log: Path) -> list:
    events = [parse_line(line) for line in log.read_text().splitlines()] if log.exists() else []
    assert None not in events
    return [e for e in events if e.kind == "downloaded"]


def _wait(condition, what: str, limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"never {what}")


def _connected(log: Path, me: int, earlier: list[int]) -> bool:
    text = log.read_text() if log.exists() else ""
    return all(f"Peer {me} makes a connection to Peer {other}." in text for other in earlier)


_RESUMING = re.compile(r"resuming with (\d+) of (\d+) pieces")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill -9", "SIGTERM"])
def test_a_peer_stopped_mid_download_resumes_and_fetches_only_the_rest(tmp_path, how):
    config, content, processes = _slow_swarm(tmp_path)
    common = config.common
    victim = 1003
    log = tmp_path / f"log_peer_{victim}.log"
    _wait(lambda: len(_downloads(log)) >= 8, "downloaded 8 pieces")
    _wait(lambda: _connected(log, victim, [1001, 1002]), "connected to both earlier peers")
    _wait(lambda: _connected(tmp_path / "log_peer_1004.log", 1004, [victim]), "connected from the later peer")
    processes[victim].send_signal(how)
    output = processes[victim].communicate(timeout=30)[0].decode()
    if how == signal.SIGTERM:
        assert processes[victim].returncode == 0, output
        assert f"peer {victim} stopping with" in output
    else:
        assert processes[victim].returncode == -signal.SIGKILL
    first_run = _downloads(log)
    lines_before = len(log.read_text().splitlines())
    processes[victim] = start_peer(tmp_path, victim)
    outputs = wait_for_peers(processes)
    for peer_id, process in processes.items():
        assert process.returncode == 0, outputs[peer_id]
        assert (tmp_path / f"peer_{peer_id}" / "TheFile.dat").read_bytes() == content
    restored = int(_RESUMING.search(outputs[victim]).group(1))
    assert len(first_run) <= restored < common.num_pieces  # every logged piece, maybe more
    second_run = [parse_line(line) for line in log.read_text().splitlines()[lines_before:]]
    downloads = [e for e in second_run if e.kind == "downloaded"]
    assert [e.count for e in downloads] == list(range(restored + 1, common.num_pieces + 1))  # only the rest
    assert not {e.index for e in first_run} & {e.index for e in downloads}  # nothing fetched twice
    # The neighbours took it back: earlier ones accepted it again, the later one redialled.
    for peer_id, sentence in ((1001, "is connected from Peer 1003."), (1004, "makes a connection to Peer 1003.")):
        assert (tmp_path / f"log_peer_{peer_id}.log").read_text().count(sentence) == 2


def test_kill_9_again_and_again_loses_no_written_piece(tmp_path):
    """Killed at several moments, the first within the first second, and restarted at
    once each time: every piece logged before a kill is held after it (the journal
    has at least what the log shows), no piece is downloaded twice, the file is exact."""
    config, content, processes = _slow_swarm(tmp_path, rate="300000")
    common = config.common
    victim = 1002
    log = tmp_path / f"log_peer_{victim}.log"
    rng = random.Random(8)
    moments = [0.3 + rng.random() * 0.5, 0.2 + rng.random() * 0.3, 0.5 + rng.random()]
    outputs = []
    unlogged: set[int] = set()  # held at a restart, its log line not written
    for moment in moments:
        time.sleep(moment)
        processes[victim].kill()
        outputs.append(processes[victim].communicate(timeout=30)[0].decode())
        logged = {e.index for e in _downloads(log)}
        held = Resume(data_path(tmp_path, victim, common.file_name), common, current_boot_id()).restore().held
        assert logged <= set(held), "a piece logged as downloaded was lost"
        unlogged |= set(held) - logged
        processes[victim] = start_peer(tmp_path, victim)
    final = wait_for_peers(processes)
    for peer_id, process in processes.items():
        assert process.returncode == 0, final[peer_id]
        assert data_path(tmp_path, peer_id, common.file_name).read_bytes() == content
    indexes = [e.index for e in _downloads(log)]
    assert len(indexes) == len(set(indexes)), "a piece was downloaded twice"
    # The log is flushed once a reactor turn (after the journal): a kill loses the lines
    # of the turn it lands in, at most a piece from each neighbour (one request each).
    # Every other piece is logged once, and those are held from before the kill.
    missing = set(range(common.num_pieces)) - set(indexes)
    assert missing <= unlogged, "a piece neither logged nor held at a restart"
    assert len(missing) <= len(moments) * (len(processes) - 1), missing


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
    from test_protocol import CONTENT as PIECES_CONTENT
    from test_protocol import Peer

    from twisted_p2p import wire
    from twisted_p2p.service import PeerFailed

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
    seed.dataReceived(encode(wire.Piece(request.index, data)))
    assert len(failures) == 1 and failures[0].check(PeerFailed)
    assert "No space left on device" in str(failures[0].value)
    assert peer.store.held.count == 0
    assert "downloaded" not in [e.kind for e in peer.events()]


def _complete_download(peer, seed, transport, content):
    """Answer every request of ``peer`` from ``seed`` until it holds the file."""
    from twisted_p2p import wire

    while not peer.store.held.complete:
        (request,) = [m for m in peer.sent(transport) if isinstance(m, wire.Request)]
        start = request.index * 100
        end = start + peer.common.piece_length(request.index)
        seed.dataReceived(encode(wire.Piece(request.index, content[start:end])))


def test_a_save_never_overlaps_the_one_under_way_in_the_background(tmp_path):
    from test_protocol import CONTENT as PIECES_CONTENT
    from test_protocol import Peer
    from twisted.internet.defer import Deferred

    peer = Peer(tmp_path, 1003, seeds=(1001,), resume=True)
    handed = []
    under_way: Deferred[None] = Deferred()

    def run_in_thread(function, *args):
        handed.append((function, args))
        return under_way

    peer.service.checkpoints.run_in_thread = run_in_thread
    peer.store.write(0, PIECES_CONTENT[:100])
    peer.resume.piece_written(0)
    peer.clock.advance(peer.service.checkpoints.interval)  # the periodic save goes to the "thread"
    assert len(handed) == 1
    peer.store.write(1, PIECES_CONTENT[100:200])
    peer.resume.piece_written(1)
    peer.service.save_state()  # a final save waits for the one under way
    assert len(handed) == 1
    function, args = handed[0]
    function(*args)  # the thread's work: piece 0 only
    assert decode_state(peer.resume.state_path.read_bytes(), peer.common)[0] == PieceSet(11, [0])
    under_way.callback(None)
    assert len(handed) == 2  # then the next one, with both
    function, args = handed[1]
    function(*args)
    assert decode_state(peer.resume.state_path.read_bytes(), peer.common)[0] == PieceSet(11, [0, 1])


def test_completion_never_syncs_on_the_reactor_thread(tmp_path, monkeypatch):
    """The last piece arrives while neighbours still download from us: every sync is
    handed to the worker thread, none is made in the reactor's turn."""
    from test_protocol import CONTENT as PIECES_CONTENT
    from test_protocol import Peer

    from twisted_p2p import wire

    peer = Peer(tmp_path, 1003, seeds=(1001,), resume=True)
    handed = []
    peer.service.checkpoints.run_in_thread = lambda function, *args: handed.append(function) or defer.Deferred()

    def no_sync_here(*args):
        raise AssertionError("a sync on the reactor thread")

    monkeypatch.setattr(os, "fsync", no_sync_here)
    monkeypatch.setattr(os, "fdatasync", no_sync_here)
    seed, transport = peer.neighbour(1001, pieces=range(11), dialled=True)
    seed.dataReceived(wire.UNCHOKE)
    _complete_download(peer, seed, transport, PIECES_CONTENT)
    for other in (1002, 1004, 1005):  # every other peer is complete: the swarm is done
        peer.neighbour(other, pieces=range(11))
    assert handed, "nothing was synced at all"
    assert not peer.service.done.called  # done only once the data is on disk


def test_a_leecher_restarted_after_its_swarm_finished_says_so_and_is_done(tmp_path):
    from test_protocol import CONTENT as PIECES_CONTENT
    from test_protocol import Peer

    from twisted_p2p import wire

    first = Peer(tmp_path, 1003, seeds=(1001,), resume=True)
    seed, transport = first.neighbour(1001, pieces=range(11), dialled=True)
    seed.dataReceived(wire.UNCHOKE)
    _complete_download(first, seed, transport, PIECES_CONTENT)
    for other in (1002, 1004, 1005):
        first.neighbour(other, pieces=range(11))
    assert first.service.done.called
    first.store.close()
    first.resume.close()
    again = Peer(tmp_path, 1003, seeds=(1001,), resume=True)  # every other peer is gone now
    again.clock.advance(0)
    assert again.service.done.called and again.service.done.result is None
    assert again.store.held.complete


@defer.inlineCallbacks
def _crash(node):
    """What SIGKILL does to a peer, in-process: connections dropped without a word,
    timers gone, files closed with nothing more saved."""
    service = node.peer
    service.running = 0  # a dead process reacts to nothing that follows
    service.choker.stop()
    service.checkpoints.stop()
    for protocol in list(service._connections):
        protocol.transport.abortConnection()
    node.store.close()
    node.resume.close()
    node.events.flush()
    node._event_file.close()
    yield defer.gatherResults([defer.maybeDeferred(dialler.stopService) for dialler in list(node)[1:]]
                              + [node.port.stopListening()])


@pytest_twisted.inlineCallbacks
def test_in_process_kill_and_restart_fetches_only_the_rest(tmp_path):
    ids = [1001, 1002, 1003, 1004]
    config = swarm_config(ids, [1001], 600_000, 16384, k=3, p=1, m=2, ports=free_ports(4))
    content = seed_bytes(config.common.file_size)
    write_seed_files(tmp_path, config, content)

    def node(peer_id):
        settings = peer_settings(random_seed=peer_id, upload_rate=300_000 if peer_id == 1001 else 0)
        return PeerNode(config, peer_id, tmp_path, reactor, settings, boot_id="this-boot")

    nodes = {peer_id: node(peer_id) for peer_id in ids}
    for each in nodes.values():
        each.startService()
    for _ in range(500):
        if nodes[1003].store.held.count >= 5:
            break
        yield task.deferLater(reactor, 0.02, lambda: None)
    yield _crash(nodes[1003])
    restored = nodes[1003].store.held.count  # every piece written, synced or not
    assert 5 <= restored < config.common.num_pieces
    log = tmp_path / "log_peer_1003.log"
    lines_before = len(log.read_text().splitlines())
    nodes[1003] = node(1003)
    assert nodes[1003].store.held.count == restored  # announced in its bitfield
    yield _run_swarm([nodes[1003]] + [nodes[i] for i in ids if i != 1003], already_running=3)
    for peer_id in ids:
        assert data_path(tmp_path, peer_id, config.common.file_name).read_bytes() == content
    downloads = [parse_line(line) for line in log.read_text().splitlines()[lines_before:]]
    downloads = [e for e in downloads if e.kind == "downloaded"]
    assert [e.count for e in downloads] == list(range(restored + 1, config.common.num_pieces + 1))


def test_a_leecher_started_again_after_its_swarm_finished_exits_at_once(tmp_path):
    config = swarm_config([1001, 1002], [1001], 300_000, 16384, ports=free_ports(2))
    write_config(tmp_path, config)
    content = seed_bytes(config.common.file_size)
    write_seed_files(tmp_path, config, content)
    first = wait_for_peers({1001: start_peer(tmp_path, 1001), 1002: start_peer(tmp_path, 1002)})
    assert "every peer has the file" in first[1002]
    again = start_peer(tmp_path, 1002)  # alone: the seed is gone
    output = wait_for_peers({1002: again}, limit=30)[1002]
    assert again.returncode == 0, output
    assert "the swarm finished before this start" in output
    assert data_path(tmp_path, 1002, config.common.file_name).read_bytes() == content
