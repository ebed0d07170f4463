"""Mixed swarms: two of our peers beside two peers that deviate from our choices only as
far as the course text allows (``deviantpeers.py``), as a student's swarm would mix them.

Four peers, a file whose last piece is short, started in PeerInfo.cfg order, each once
every earlier one listens (as the course has people start them), and the last only once
the earlier ones have the whole file: then the peers done first meet one still
downloading for seconds, which is when a repeated bitfield, a close after completing or
a complete peer gone can keep a peer from ending. Two arrangements: a
seed of theirs, one more of theirs, then two of ours; and the reverse, with our seed.
Every file must end exact and every peer exit 0 by itself within a bound: ours because
SPEC §3 says they never hang beside a peer that completes, theirs because each is our
peer with one deviation and completes on its own. Ours must also connect to each other
peer exactly once (SPEC §3: every pair by exactly one connection): nothing these peers
do is a reason to drop a connection or to dial again. Every process started here is
stopped by its pid, also when a test fails.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from deviantpeers import TOLERABLE
from support import (
    free_ports,
    listening,
    seed_bytes,
    stop_processes,
    swarm_config,
    twistd,
    write_config,
    write_seed_files,
)

from twisted_p2p.eventlog import parse_line

pytestmark = pytest.mark.slow

DEVIANT = Path(__file__).with_name("deviantpeers.py")
IDS = (1001, 1002, 1003, 1004)
FILE_SIZE = 400_000  # 25 pieces of 16 KiB, the last 6,784 bytes
PIECE_SIZE = 16384
#: Bytes/s each peer uploads, so that the swarm lasts several seconds: long enough for a
#: complete peer's repeated bitfields or closes to meet peers still downloading.
UPLOAD_RATE = 100_000
LISTEN_LIMIT = 15.0  # seconds for a started peer to listen
START_GAP = 0.5  # seconds at least between two starts
COMPLETE_LIMIT = 60.0  # seconds for the earlier leechers to complete before the last starts
FINISH_LIMIT = 45.0  # seconds, after the last start, for every peer to exit

#: Which peers are theirs (deviant) and which are seeds, in PeerInfo.cfg order.
ARRANGEMENTS = {
    "their-seed": ((True, True), (True, False), (False, False), (False, False)),
    "our-seed": ((False, True), (False, False), (True, False), (True, False)),
}


class MixedSwarm:
    """One course-layout directory (Common.cfg, PeerInfo.cfg, peer_ID/) where all four run."""

    def __init__(self, root: Path, deviation: str, arrangement: str) -> None:
        self.root = root
        self.deviation = deviation
        roles = ARRANGEMENTS[arrangement]
        self.theirs = {peer_id for peer_id, (theirs, _) in zip(IDS, roles) if theirs}
        seeds = [peer_id for peer_id, (_, seed) in zip(IDS, roles) if seed]
        self.config = swarm_config(IDS, seeds, FILE_SIZE, PIECE_SIZE, k=2, p=1, m=2, ports=free_ports(len(IDS)))
        write_config(root, self.config)
        self.content = seed_bytes(FILE_SIZE)
        write_seed_files(root, self.config, self.content)
        self.processes: dict[int, subprocess.Popen] = {}
        self.ended: dict[int, float] = {}

    def command(self, peer_id: int) -> list[str]:
        options = ["--interface", "127.0.0.1", "--upload-rate", str(UPLOAD_RATE)]
        if peer_id in self.theirs:
            return [sys.executable, str(DEVIANT), self.deviation, str(peer_id), *options]
        return twistd() + ["-n", "--pidfile=", "p2ppeer", "--id", str(peer_id), *options]

    def start_in_order(self) -> None:
        """Each peer once every peer before it listens (or has ended), START_GAP s after
        the one before; the last once every earlier leecher logged its complete file."""
        for peer_id in IDS:
            if self.processes:
                time.sleep(START_GAP)
            if peer_id == IDS[-1]:
                self.wait_for_complete(IDS[:-1], COMPLETE_LIMIT)
            with open(self.root / f"{peer_id}.out", "wb") as output:  # a file: a full pipe would block it
                self.processes[peer_id] = subprocess.Popen(
                    self.command(peer_id), cwd=self.root, stdout=output, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL)
            port = self.config.peer(peer_id).port
            deadline = time.monotonic() + LISTEN_LIMIT
            while not listening(port) and self.processes[peer_id].poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)

    def wait_for_complete(self, peer_ids: tuple[int, ...], limit: float) -> None:
        """Until each leecher of ``peer_ids`` has logged 'has downloaded the complete file'
        (or has ended), or ``limit`` seconds have passed."""
        leechers = [peer_id for peer_id in peer_ids if not self.config.peer(peer_id).has_file]
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and not all(
                self.logged_complete(peer_id) or self.processes[peer_id].poll() is not None for peer_id in leechers):
            time.sleep(0.05)

    def logged_complete(self, peer_id: int) -> bool:
        path = self.root / f"log_peer_{peer_id}.log"
        return path.exists() and f"Peer {peer_id} has downloaded the complete file." in path.read_text()

    def wait(self, limit: float) -> None:
        """Until every process has exited, or ``limit`` seconds have passed."""
        began = time.monotonic()
        deadline = began + limit
        while time.monotonic() < deadline and len(self.ended) < len(self.processes):
            for peer_id, process in self.processes.items():
                if peer_id not in self.ended and process.poll() is not None:
                    self.ended[peer_id] = time.monotonic() - began
            time.sleep(0.05)

    def status(self, peer_id: int) -> int | None:
        return self.processes[peer_id].poll()

    def file_exact(self, peer_id: int) -> bool:
        path = self.root / f"peer_{peer_id}" / self.config.common.file_name
        return path.exists() and path.read_bytes() == self.content

    def connections(self, peer_id: int) -> dict[int, int]:
        """How many connections our peer ``peer_id`` logged with each other peer."""
        path = self.root / f"log_peer_{peer_id}.log"
        events = map(parse_line, path.read_text().splitlines()) if path.exists() else []
        counts = {other: 0 for other in IDS if other != peer_id}
        for event in events:
            if event is not None and event.kind in ("connect_to", "connect_from"):
                counts[event.other] += 1
        return counts

    def output(self, peer_id: int) -> str:
        path = self.root / f"{peer_id}.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def summary(self) -> str:
        """Where every peer stands, with the last diagnostic line of any that did not exit 0."""
        parts = []
        for peer_id in IDS:
            status = self.status(peer_id)
            who = "theirs" if peer_id in self.theirs else "ours"
            state = "running" if status is None else f"exit {status} after {self.ended.get(peer_id, 0):.1f} s"
            part = f"{peer_id} ({who}): {state}, file {'exact' if self.file_exact(peer_id) else 'NOT exact'}"
            if peer_id not in self.theirs:
                part += f", connections {self.connections(peer_id)}"
            if status != 0:
                lines = [line for line in self.output(peer_id).splitlines() if line.strip()]
                part += f" [last said: {lines[-1].strip()[:300] if lines else 'nothing'}]"
            parts.append(part)
        return "; ".join(parts)

    def stop(self) -> None:
        stop_processes(self.processes.values())


@pytest.fixture
def mixed_swarm(tmp_path):
    swarms: list[MixedSwarm] = []

    def make(deviation: str, arrangement: str) -> MixedSwarm:
        swarms.append(MixedSwarm(tmp_path, deviation, arrangement))
        return swarms[-1]

    yield make
    for swarm in swarms:
        swarm.stop()


@pytest.mark.parametrize("arrangement", sorted(ARRANGEMENTS))
@pytest.mark.parametrize("deviation", sorted(TOLERABLE))
def test_every_peer_finishes_beside_a_tolerable_deviation(mixed_swarm, deviation, arrangement):
    swarm = mixed_swarm(deviation, arrangement)
    swarm.start_in_order()
    swarm.wait(FINISH_LIMIT)
    print(f"\n{deviation} / {arrangement}: {swarm.summary()}")
    for peer_id in IDS:
        assert swarm.file_exact(peer_id), f"peer {peer_id}'s file is not the seed's: {swarm.summary()}"
    ours = sorted(set(IDS) - swarm.theirs)
    assert {peer_id: swarm.status(peer_id) for peer_id in ours} == {peer_id: 0 for peer_id in ours}, \
        f"our peers did not all exit 0 by themselves within {FINISH_LIMIT:.0f} s: {swarm.summary()}"
    for peer_id in ours:
        assert swarm.connections(peer_id) == {other: 1 for other in IDS if other != peer_id}, \
            f"peer {peer_id} did not connect to each other peer exactly once: {swarm.summary()}"
    theirs = sorted(swarm.theirs)
    assert {peer_id: swarm.status(peer_id) for peer_id in theirs} == {peer_id: 0 for peer_id in theirs}, \
        f"the deviant peers did not all exit 0 by themselves: {swarm.summary()}"
