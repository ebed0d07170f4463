"""Real peers on real hosts that vanish, die and come back: one network namespace per peer.

Four peers, one per host made by :mod:`netns` in 10.213.8.0/24: a seed whose upload is
capped so that the swarm lasts long enough to hurt it, and three leechers. One leecher,
the victim, is hurt mid-swarm once it holds some pieces and is connected to all:

* its host's link goes down for longer than the bound and comes back: every other peer
  must forget it within 20 s (TCP keepalive and the user timeout), and it must be
  connected again within 30 s of the link's return;
* its process is killed (SIGKILL) and started again at once on the same host: it must be
  connected again to every other peer within 30 s;
* its host vanishes (the link goes down, the process is killed and the host forgets its
  connections, as a restart would, without a word on the wire) and comes back after 7 s
  with the peer started again, while the others still hold the old connections: a peer
  it dials replaces the old connection, silent for over 5 s, with the new one; a peer
  that dials it notices the old one gone at its next packet (or by the user timeout) and
  dials again; it must be connected again to every other peer within 30 s.

Each time the swarm must then complete: every peer exits 0 by itself and every file is
the seed's. Times are taken when a peer's output line arrives (the peers run with
--echo-events, so the event-log lines come on standard output with twistd's log), and
the measured figures are printed (``pytest -s`` shows them); every process's output is
kept in the test's temporary directory. Every process is started here, stopped by its
pid, and lives only in these namespaces. Needs root and iproute2.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from netns import Hosts, private_hosts
from support import seed_bytes, twistd, write_config, write_seed_files

from twisted_p2p.config import Common, PeerInfo, SwarmConfig

#: Three swarms across hosts that vanish and come back: about 80 s; CI runs them with -m slow.
pytestmark = pytest.mark.slow

SUBNET = "10.213.8"
TAG = f"p2pl{os.getpid()}"  # at most 11 characters, so interface names stay within 15
PEER_IDS = [1001, 1002, 1003, 1004]
SEED, VICTIM = 1001, 1003
OTHERS = [peer for peer in PEER_IDS if peer != VICTIM]
PORT = 6008
FILE_SIZE, PIECE_SIZE = 2_000_000, 16384  # 123 pieces
UPLOAD_RATE = 128_000  # the seed's cap, bytes/s: one copy of the file leaves it in about 16 s
PIECES_BEFORE_HARM = 8
LOST_WITHIN = 20.0  # a vanished neighbour is forgotten within this many seconds
DOWN_FOR = 25.0  # longer than LOST_WITHIN: every connection to the victim is gone
REJOIN_WITHIN = 30.0
SWARM_LIMIT = 90.0  # the whole run, from the first start to the last exit
ALONE_LIMIT = 10.0  # a peer still running this long after all the others exited never will

CONNECTED = re.compile(r"Peer (\d+) (?:makes a connection to|is connected from) Peer (\d+)\.")
PIECE_COUNT = re.compile(r"Peer (\d+) has downloaded the piece \d+ from \d+\. "
                         r"Now the number of pieces it has is (\d+)\.")


class Peer:
    """One peer's process on its host; every output line is kept with its arrival time."""

    def __init__(self, peer_id: int, command: list[str]) -> None:
        self.peer_id = peer_id
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[tuple[float, str]] = []
        self.exited: float | None = None
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, name=f"peer {peer_id} output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            with self._changed:
                self.lines.append((time.monotonic(), raw.decode(errors="replace").rstrip("\n")))
                self._changed.notify_all()
        with self._changed:
            self.exited = time.monotonic()
            self._changed.notify_all()

    def first(self, match: Callable[[str], object], since: float = 0.0) -> float | None:
        """When the first line since ``since`` that ``match`` accepts arrived; None if none did."""
        with self._changed:
            return next((at for at, line in self.lines if at >= since and match(line)), None)

    def pieces(self) -> int:
        """The count of pieces in the last download line of this process."""
        with self._changed:
            for _, line in reversed(self.lines):
                found = PIECE_COUNT.search(line)
                if found and int(found.group(1)) == self.peer_id:
                    return int(found.group(2))
        return 0

    def output(self) -> str:
        with self._changed:
            return "\n".join(line for _, line in self.lines)

    def kill(self) -> None:
        """SIGKILL, by pid, if it still runs; then reap it."""
        if self.process.poll() is None:
            try:
                os.kill(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=20)
        self._reader.join(timeout=5)


def lost(peer: int) -> Callable[[str], bool]:
    return lambda line: f"lost the connection to peer {peer}:" in line


def connection_with(peer: int, other: int) -> Callable[[str], bool]:
    """A connection event, on either side, between ``peer`` and ``other``."""
    def match(line: str) -> bool:
        found = CONNECTED.search(line)
        return bool(found) and {int(found.group(1)), int(found.group(2))} == {peer, other}
    return match


@dataclass
class Swarm:
    hosts: Hosts
    config_dir: Path
    work_dir: Path
    content: bytes
    #: Every process started, in order (a restarted peer has two); ``peers`` has the latest.
    started: list[Peer] = field(default_factory=list)
    peers: dict[int, Peer] = field(default_factory=dict)
    began: float = 0.0

    def address(self, peer_id: int) -> str:
        return self.hosts.addresses[PEER_IDS.index(peer_id)]

    def start(self, peer_id: int) -> Peer:
        extra = ["--upload-rate", str(UPLOAD_RATE)] if peer_id == SEED else []
        command = [*self.hosts.run_in(self.address(peer_id)), *twistd(), "-n", "--pidfile=", "p2ppeer",
                   "--id", str(peer_id), "--config-dir", str(self.config_dir), "--work-dir", str(self.work_dir),
                   "--echo-events", *extra]
        peer = Peer(peer_id, command)
        self.started.append(peer)
        self.peers[peer_id] = peer
        return peer

    def start_all(self) -> None:
        self.began = time.monotonic()
        for peer_id in PEER_IDS:
            self.start(peer_id)

    def describe(self) -> str:
        """Every process's output, for a failure's message."""
        return "\n".join(
            f"--- peer {peer.peer_id} (pid {peer.process.pid}, exit {peer.process.poll()}) ---\n{peer.output()[-6000:]}"
            for peer in self.started
        )

    def wait_until(self, condition: Callable[[], object], limit: float, what: str) -> object:
        deadline = time.monotonic() + limit
        while True:
            result = condition()
            if result:
                return result
            if time.monotonic() > deadline:
                pytest.fail(f"not within {limit:.0f} s: {what}\n{self.describe()}")
            for peer in self.peers.values():
                if peer.process.poll() is not None and peer.exited is not None and peer.process.returncode != 0:
                    pytest.fail(f"peer {peer.peer_id} exited with {peer.process.returncode} while waiting "
                                f"for: {what}\n{self.describe()}")
            time.sleep(0.05)

    def wait_for_harm(self) -> None:
        """Until the victim holds some pieces and is connected to every other peer."""
        victim = self.peers[VICTIM]
        self.wait_until(
            lambda: victim.pieces() >= PIECES_BEFORE_HARM
            and all(victim.first(connection_with(VICTIM, other)) is not None for other in OTHERS),
            30, f"peer {VICTIM} has {PIECES_BEFORE_HARM} pieces and is connected to all",
        )

    def reconnections(self, since: float) -> dict[int, float]:
        """For each other peer already connected again to the victim since ``since``, when."""
        found = {}
        for other in OTHERS:
            times = [at for peer in (self.peers[VICTIM], self.peers[other])
                     if (at := peer.first(connection_with(VICTIM, other), since)) is not None]
            if times:
                found[other] = min(times)
        return found

    def finish(self) -> float:
        """Wait for every peer to exit by itself; check the statuses and files; return
        the swarm's time from the first start to the last exit."""
        deadline = self.began + SWARM_LIMIT
        while any(peer.process.poll() is None for peer in self.peers.values()):
            running = [peer.peer_id for peer in self.peers.values() if peer.process.poll() is None]
            last_exit = max((peer.exited or 0.0 for peer in self.peers.values() if peer.process.poll() is not None),
                            default=0.0)
            if len(running) == 1 and last_exit and time.monotonic() - last_exit > ALONE_LIMIT:
                pytest.fail(f"peer {running[0]} still runs {ALONE_LIMIT:.0f} s after every other peer exited: "
                            f"no one is left to tell it anything\n{self.describe()}")
            if time.monotonic() > deadline:
                pytest.fail(f"the swarm did not finish within {SWARM_LIMIT:.0f} s\n{self.describe()}")
            time.sleep(0.1)
        for peer in self.peers.values():
            peer._reader.join(timeout=5)
        ended = max(peer.exited or time.monotonic() for peer in self.peers.values())
        statuses = {peer_id: peer.process.returncode for peer_id, peer in self.peers.items()}
        assert statuses == {peer_id: 0 for peer_id in PEER_IDS}, self.describe()
        for peer_id in PEER_IDS:
            data = (self.work_dir / f"peer_{peer_id}" / "TheFile.dat").read_bytes()
            assert data == self.content, f"peer {peer_id}'s file differs from the seed's"
        return ended - self.began

    def stop(self) -> None:
        """Kill what still runs, and keep every process's output beside the work directory."""
        for index, peer in enumerate(self.started):
            peer.kill()
            (self.work_dir.parent / f"output_{index}_peer_{peer.peer_id}.txt").write_text(peer.output() + "\n")


@pytest.fixture
def swarm(tmp_path) -> Iterator[Swarm]:
    with private_hosts(len(PEER_IDS), SUBNET, TAG) as hosts:
        common = Common(3, 1, 2, "TheFile.dat", FILE_SIZE, PIECE_SIZE)
        peers = tuple(PeerInfo(peer_id, address, PORT, peer_id == SEED)
                      for peer_id, address in zip(PEER_IDS, hosts.addresses))
        config = SwarmConfig(common, peers)
        content = seed_bytes(FILE_SIZE)
        write_config(tmp_path / "conf", config)
        write_seed_files(tmp_path / "work", config, content)
        running = Swarm(hosts, tmp_path / "conf", tmp_path / "work", content)
        try:
            yield running
        finally:
            running.stop()


def since(start: float, times: dict[int, float | None]) -> str:
    return ", ".join(f"{peer}: {'-' if at is None else f'{at - start:.1f} s'}" for peer, at in sorted(times.items()))


def test_a_host_whose_link_goes_down_mid_swarm_is_forgotten_and_rejoins(swarm):
    swarm.start_all()
    swarm.wait_for_harm()
    victim_pieces = swarm.peers[VICTIM].pieces()
    swarm.hosts.link_down(swarm.address(VICTIM))
    down = time.monotonic()

    def forgotten_by_all() -> dict[int, float] | None:
        times = {other: swarm.peers[other].first(lost(VICTIM), down) for other in OTHERS}
        return times if all(at is not None for at in times.values()) else None

    forgotten = swarm.wait_until(forgotten_by_all, LOST_WITHIN,
                                 f"every other peer lost the connection to peer {VICTIM}")
    assert all(at - down <= LOST_WITHIN for at in forgotten.values())
    time.sleep(max(0.0, down + DOWN_FOR - time.monotonic()))
    victim_lost = {other: swarm.peers[VICTIM].first(lost(other), down) for other in OTHERS}
    swarm.hosts.link_up(swarm.address(VICTIM))
    up = time.monotonic()

    swarm.wait_until(lambda: swarm.reconnections(up), REJOIN_WITHIN,
                     f"peer {VICTIM} is connected again after its link came back")
    time.sleep(1)  # the other reconnections, if they come at about the same time
    print(f"\nlink down with {victim_pieces} pieces at peer {VICTIM}; forgotten after {since(down, forgotten)};"
          f" peer {VICTIM} lost its neighbours after {since(down, victim_lost)};"
          f" link up after {up - down:.1f} s; connected again after {since(up, swarm.reconnections(up))}")
    print(f"swarm {swarm.finish():.1f} s; connected again after {since(up, swarm.reconnections(up))}")


def test_a_host_whose_peer_is_killed_and_started_again_completes(swarm):
    swarm.start_all()
    swarm.wait_for_harm()
    killed = swarm.peers[VICTIM]
    victim_pieces = killed.pieces()
    kill = time.monotonic()
    killed.kill()
    swarm.start(VICTIM)
    again = time.monotonic()

    swarm.wait_until(lambda: len(swarm.reconnections(again)) == len(OTHERS), REJOIN_WITHIN,
                     f"peer {VICTIM} is connected again to every other peer after its restart")
    forgotten = {other: swarm.peers[other].first(lost(VICTIM), kill) for other in OTHERS}
    print(f"\nkilled peer {VICTIM} with {victim_pieces} pieces; forgotten after {since(kill, forgotten)};"
          f" started again after {again - kill:.1f} s;"
          f" connected again after {since(again, swarm.reconnections(again))}")
    print(f"swarm {swarm.finish():.1f} s")


def test_a_vanished_host_whose_peer_is_started_again_rejoins_while_the_others_hold_the_old_connections(swarm):
    swarm.start_all()
    swarm.wait_for_harm()
    victim = swarm.peers[VICTIM]
    victim_pieces = victim.pieces()
    swarm.hosts.link_down(swarm.address(VICTIM))
    down = time.monotonic()
    time.sleep(1)
    victim.kill()
    swarm.hosts.forget_connections(swarm.address(VICTIM))  # the host restarts: nothing of the old ones is left
    time.sleep(max(0.0, down + 7 - time.monotonic()))  # silent for longer than the stale bound (5 s)
    still_held = [other for other in OTHERS if swarm.peers[other].first(lost(VICTIM), down) is None]
    assert still_held == OTHERS, f"the old connections were lost before the host came back\n{swarm.describe()}"
    swarm.hosts.link_up(swarm.address(VICTIM))
    up = time.monotonic()
    swarm.start(VICTIM)

    swarm.wait_until(lambda: len(swarm.reconnections(up)) == len(OTHERS), REJOIN_WITHIN,
                     f"peer {VICTIM} is connected again to every other peer after its host came back")
    # How each old connection ended: replaced by the new one, or lost.
    replaced = {other: swarm.peers[other].first(lambda line: f"peer {VICTIM} has a new connection;" in line, up)
                for other in OTHERS}
    forgotten = {other: swarm.peers[other].first(lost(VICTIM), down) for other in OTHERS}
    print(f"\nhost of peer {VICTIM} ({victim_pieces} pieces) down for {up - down:.1f} s, peer started again;"
          f" after the link came back: old connection replaced after {since(up, replaced)},"
          f" lost after {since(up, forgotten)}; connected again after {since(up, swarm.reconnections(up))}")
    print(f"swarm {swarm.finish():.1f} s")
