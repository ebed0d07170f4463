"""Real ``twistd p2ppeer`` processes beside a neighbour that is correct on the wire but
misbehaves (``fakepeer.py``): it never answers, answers at a trickle, flaps its choke,
hangs up after every handshake, or takes another peer's ID first.

The swarm is a seed S, the fake F and a leecher L, listed in that order, so F dials S
and L dials both. F claims the whole file, so S and L can see that every peer of
PeerInfo.cfg has it and stop by themselves (SPEC §3, termination): L must get every
piece, from S if F will not give it, exit 0 on its own, hold the seed's bytes, and log
each piece downloaded once. Every process started here is stopped by its pid, also when
a test fails.
"""
from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from support import free_ports, seed_bytes, stop_processes, swarm_config, twistd, write_config, write_seed_files

from twisted_p2p.eventlog import Event, parse_line

pytestmark = pytest.mark.slow

S, F, L = 1001, 1002, 1003
FILE_SIZE = 1 << 20  # 64 whole pieces of 16 KiB: each takes F as long to trickle
PIECE_SIZE = 16384
FINISH_LIMIT = 60.0  # seconds for L to finish by itself: a few request timeouts (up to 30 s each) fit well
FAKEPEER = Path(__file__).with_name("fakepeer.py")


class Swarm:
    """A working directory with the configs and seed files, and the processes run in it."""

    def __init__(self, root: Path, seeds: list[int]) -> None:
        self.root = root
        self.config = swarm_config([S, F, L], seeds, FILE_SIZE, PIECE_SIZE, k=2, p=1, m=2, ports=free_ports(3))
        self.conf = root / "conf"
        write_config(self.conf, self.config)
        self.content = seed_bytes(FILE_SIZE)
        write_seed_files(root, self.config, self.content)
        self.processes: dict[str, subprocess.Popen] = {}
        self.started: dict[str, float] = {}

    def _start(self, name: str, command: list[str]) -> subprocess.Popen:
        with open(self.root / f"{name}.out", "wb") as output:  # a file: a full pipe would block the peer
            process = subprocess.Popen(command, cwd=self.root, stdout=output, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
        self.processes[name] = process
        self.started[name] = time.monotonic()
        return process

    def peer(self, peer_id: int, *options: str) -> subprocess.Popen:
        return self._start(str(peer_id), twistd() + [
            "-n", "--pidfile=", "p2ppeer", "--id", str(peer_id),
            "--config-dir", str(self.conf), "--work-dir", str(self.root), "--interface", "127.0.0.1", *options,
        ])

    def fake(self, mode: str, *options: str, peer_id: int = F) -> subprocess.Popen:
        return self._start("fake", [
            sys.executable, str(FAKEPEER), "--mode", mode, "--id", str(peer_id),
            "--config-dir", str(self.conf), "--interface", "127.0.0.1", *options,
        ])

    def seed_file(self, peer_id: int) -> str:
        return str(self.root / f"peer_{peer_id}" / self.config.common.file_name)

    def events(self, peer_id: int) -> list[Event]:
        path = self.root / f"log_peer_{peer_id}.log"
        if not path.exists():
            return []
        return [event for event in map(parse_line, path.read_text().splitlines()) if event is not None]

    def output(self, name: str) -> str:
        path = self.root / f"{name}.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def pieces(self, peer_id: int) -> int:
        counts = [event.count for event in self.events(peer_id) if event.kind == "downloaded"]
        return max(counts, default=0)

    def file_matches(self, peer_id: int) -> bool:
        path = Path(self.seed_file(peer_id))
        return path.exists() and path.read_bytes() == self.content

    def summary(self) -> str:
        """Where every process stands, for failure messages and the measurement."""
        lines = []
        for name, process in self.processes.items():
            status = process.poll()
            state = "running" if status is None else f"exited {status}"
            if name.isdigit() and not self.config.peer(int(name)).has_file:
                state += f", {self.pieces(int(name))} of {self.config.common.num_pieces} pieces logged"
            lines.append(f"{name}: {state}")
        fake = self.output("fake").strip().splitlines()
        if fake:
            lines.append(f"fake said last: {fake[-1]}")
        return "; ".join(lines)

    def stop(self) -> None:
        stop_processes(self.processes.values())


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def exit_status(process: subprocess.Popen, timeout: float) -> int | None:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


@pytest.fixture
def make_swarm(tmp_path):
    swarms: list[Swarm] = []

    def make(seeds: list[int]) -> Swarm:
        swarms.append(Swarm(tmp_path, seeds))
        return swarms[-1]

    yield make
    for swarm in swarms:
        swarm.stop()


def assert_leecher_finished(swarm: Swarm, leecher: int, started: float) -> None:
    status = exit_status(swarm.processes[str(leecher)], FINISH_LIMIT - (time.monotonic() - started))
    elapsed = time.monotonic() - started
    sources = Counter(event.other for event in swarm.events(leecher) if event.kind == "downloaded")
    print(f"\npeer {leecher}: exit status {status} after {elapsed:.1f} s, pieces by source {dict(sources)}; "
          f"{swarm.summary()}")
    assert status == 0, f"peer {leecher} did not finish by itself in {FINISH_LIMIT} s: {swarm.summary()}"
    assert swarm.file_matches(leecher)
    events = swarm.events(leecher)
    downloaded = Counter(event.index for event in events if event.kind == "downloaded")
    assert sorted(downloaded) == list(range(swarm.config.common.num_pieces))
    twice = {index: count for index, count in downloaded.items() if count > 1}
    assert not twice, f"pieces logged as downloaded more than once: {twice}"
    assert [event.kind for event in events].count("complete") == 1


@pytest.mark.parametrize(
    "mode, seed_options",
    [
        (["never-answer"], []),
        # A piece from F takes 16.4 s; S is slowed down so that L is still downloading
        # when it arrives, long after L may have given up on F and fetched it from S.
        (["trickle", "--rate", "1000"], ["--upload-rate", "50000"]),
        (["trickle", "--rate", "10"], []),  # 27 minutes a piece
        # F sends a piece in about 16 ms, so most pieces straddle a choke or an unchoke;
        # S is slowed down so that most pieces come from F.
        (["flap", "--interval", "0.01", "--rate", "1000000"], ["--upload-rate", "100000"]),
    ],
    ids=["never-answer", "trickle-1000", "trickle-10", "flap-10ms"],
)
def test_leecher_finishes_beside_a_neighbour_that_misbehaves(make_swarm, mode, seed_options):
    swarm = make_swarm(seeds=[S, F])  # F claims the file, and serves it from its own copy
    swarm.peer(S, *seed_options)
    swarm.fake(*mode, "--seed-file", swarm.seed_file(F))
    started = time.monotonic()
    swarm.peer(L)
    assert_leecher_finished(swarm, L, started)
    # S learns from L's haves that every peer has the file and stops too.
    assert exit_status(swarm.processes[str(S)], 10) == 0, swarm.summary()
    assert swarm.processes["fake"].poll() is None, "the fake neighbour died: " + swarm.output("fake")


HANGUP_WATCH = 20.0  # seconds
HANGUP_MOST = 20  # connections to F that L may log meanwhile: a backoff, not a loop


def test_a_neighbour_that_hangs_up_after_each_handshake_is_not_redialled_in_a_loop(make_swarm):
    swarm = make_swarm(seeds=[S])
    swarm.peer(S)
    swarm.fake("hangup")
    swarm.peer(L)
    time.sleep(HANGUP_WATCH)
    dialled = [e for e in swarm.events(L) if e.kind == "connect_to" and e.other == F]
    print(f"\npeer {L} logged {len(dialled)} connections to the hanging-up peer {F} in {HANGUP_WATCH:.0f} s; "
          f"{swarm.summary()}")
    assert swarm.processes[str(L)].poll() is None, swarm.summary()  # F never says it has the file
    assert swarm.file_matches(L), swarm.summary()  # S's pieces came through all the same
    assert len(dialled) <= HANGUP_MOST, f"{len(dialled)} connections to peer {F} in {HANGUP_WATCH:.0f} s"


IMPOSTOR_LIMIT = 15.0  # seconds for L to take the real peer once it is up


def test_an_impostor_holding_a_peers_id_does_not_lock_the_real_peer_out(make_swarm):
    swarm = make_swarm(seeds=[S])  # F is the real, leeching peer 1002 here
    swarm.peer(S)
    swarm.peer(L)
    swarm.fake("impostor", "--target", str(L), peer_id=F)  # dials L as 1002 and says nothing more
    assert wait_until(lambda: any(e.kind == "connect_from" and e.other == F for e in swarm.events(L)), 10), \
        "L never accepted the impostor: " + swarm.summary()
    started = time.monotonic()
    swarm.peer(F)  # the real one

    def real_connected() -> bool:
        return any(e.kind == "connect_to" and e.other == F for e in swarm.events(L))

    connected = wait_until(real_connected, IMPOSTOR_LIMIT)
    waited = time.monotonic() - started
    refusals = sum(e.kind == "connect_from" and e.other == L for e in swarm.events(F))
    print(f"\nreal peer {F} connected to {L}: {connected} after {waited:.1f} s; "
          f"{refusals} connections from {L} logged by {F} meanwhile; {swarm.summary()}")
    assert connected, f"L did not connect to the real peer {F} within {IMPOSTOR_LIMIT} s: {swarm.summary()}"
    for peer_id in (F, L):
        assert_leecher_finished(swarm, peer_id, started)
    assert exit_status(swarm.processes[str(S)], 10) == 0, swarm.summary()
