"""Runs one scenario: starts every peer in order, relays and records, knows when it is over.

A scenario ends when every peer has exited, when ``exit_within`` seconds have passed
since the last peer completed, when nothing has progressed for ``stall`` seconds, or
at ``deadline`` -- whichever comes first. Then everything still running is stopped,
and whatever a peer under test left in its session is noted and killed.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Optional

from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.error import CannotListenError
from twisted.internet.task import deferLater

from twisted_p2p.swarm.plan import local_command, twistd_command

from .processes import Child
from .relay import Recording, Relay
from .robust import Probe, probe
from .scenarios import Layout

TICK = 0.05
STAGGER = 0.2  # seconds between starting two peers, in PeerInfo.cfg order
COMPLETE = "has downloaded the complete file."


@dataclass(frozen=True)
class Limits:
    start: float = 10.0  # seconds a peer under test may take to listen
    exit_within: float = 10.0  # after the last peer completed
    stall: float = 8.0  # seconds without progress
    deadline: float = 60.0  # the whole scenario
    hold: float = 1.0  # the relay's handshake hold


@dataclass
class PeerRun:
    peer_id: int
    theirs: bool
    child: Child
    listening_at: Optional[float] = None
    complete_at: Optional[float] = None
    leftovers: bool = False


@dataclass
class ScenarioRun:
    """What one scenario showed; times are seconds since it started."""

    layout: Layout
    started: float
    peers: dict[int, PeerRun]
    recordings: list[Recording] = field(default_factory=list)
    all_complete_at: Optional[float] = None
    ended_at: float = 0.0
    ended_why: str = ""
    probes: list[Probe] = field(default_factory=list)

    def theirs(self) -> list[PeerRun]:
        return [run for run in self.peers.values() if run.theirs]

    def at(self, moment: Optional[float]) -> Optional[float]:
        return None if moment is None else moment - self.started


def listening_ports(candidates: set[int]) -> set[int]:
    """Which of ``candidates`` are listening on this machine. Linux's /proc tells without
    touching the peer; elsewhere a connection is tried (and closed at once)."""
    tables = [name for name in ("/proc/net/tcp", "/proc/net/tcp6") if os.path.exists(name)]
    if not tables:
        return {port for port in candidates if _accepts(port)}
    ports: set[int] = set()
    for name in tables:
        try:
            with open(name) as table:
                next(table, None)
                for row in table:
                    fields = row.split()
                    if len(fields) > 3 and fields[3] == "0A":
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except OSError:
            continue
    return ports & candidates


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def identify_by(ids: set[int]) -> Callable[[bytes], Optional[int]]:
    """Who sent this handshake: its ID as the SPEC has it, or as text if that is a peer."""
    def identify(handshake: bytes) -> Optional[int]:
        number = int.from_bytes(handshake[28:32], "big")
        if number in ids:
            return number
        text = handshake[28:32].strip(b"\0 ")
        return int(text) if text.isdigit() and int(text) in ids else None
    return identify


def their_argv(command: list[str], peer_id: int) -> list[str]:
    return [word.replace("{id}", str(peer_id)) for word in command]


@inlineCallbacks
def run_scenario(reactor: Any, layout: Layout, command: list[str], limits: Limits) -> Generator[Deferred[Any], Any, ScenarioRun]:
    scenario = layout.scenario
    relay = Relay(reactor, scenario.common, identify_by(set(scenario.ids)), hold=limits.hold,
                  rates_from={peer_id: scenario.their_rate for peer_id in scenario.theirs if scenario.their_rate},
                  rates_to={peer_id: scenario.their_download for peer_id in scenario.theirs if scenario.their_download})
    run = ScenarioRun(layout, reactor.seconds(), {})
    progress = [run.started]  # when the swarm last moved: a start, a listen, a piece
    twistd = twistd_command()

    def our_line(peer_id: int) -> Callable[[str], None]:
        def heard(line: str) -> None:
            if "has downloaded the piece" in line:
                progress[0] = reactor.seconds()
            if line.endswith(COMPLETE) and run.peers[peer_id].complete_at is None:
                run.peers[peer_id].complete_at = reactor.seconds()
        return heard

    for peer_id in scenario.ids:
        role = scenario.role(peer_id)
        if role.theirs:
            home = layout.their_dir(peer_id)
            child = Child(reactor, their_argv(command, peer_id), home, home / "output.txt")
        elif scenario.robust:
            continue  # the kit itself plays the neighbours
        else:
            argv = local_command(twistd, peer_id, layout.ours_dir, layout.ours_dir) + ["--echo-events"]
            if scenario.our_rate:
                argv += ["--upload-rate", str(scenario.our_rate)]
            child = Child(reactor, argv, layout.ours_dir, layout.ours_dir / f"output_{peer_id}.txt", our_line(peer_id))
        run.peers[peer_id] = PeerRun(peer_id, role.theirs, child, complete_at=run.started if role.seed else None)

    def start(peer: PeerRun) -> None:
        peer.child.spawn()
        progress[0] = reactor.seconds()

    for position, peer_id in enumerate(run.peers):
        peer = run.peers[peer_id]
        delay = position * STAGGER + (scenario.late if peer.theirs else 0.0)
        reactor.callLater(delay, start, peer)

    relayed: set[int] = set()
    refused: Optional[str] = None
    while True:
        yield deferLater(reactor, TICK, lambda: None)
        now = reactor.seconds()
        up = listening_ports({layout.real[peer.peer_id] for peer in run.peers.values()
                              if peer.listening_at is None and peer.child.running})
        for peer in run.peers.values():
            if peer.listening_at is None and peer.child.running and layout.real[peer.peer_id] in up:
                peer.listening_at = now
                progress[0] = now
            if peer.listening_at is not None and peer.peer_id not in relayed and not scenario.robust:
                relayed.add(peer.peer_id)
                try:
                    relay.listen(peer.peer_id, layout.public[peer.peer_id], layout.real[peer.peer_id],
                                 dialler=None if peer.theirs or len(scenario.theirs) > 1 else scenario.theirs[0])
                except CannotListenError as exc:
                    refused = f"the relay could not listen on port {layout.public[peer.peer_id]}: {exc.socketError}"
            if peer.theirs and peer.complete_at is None:
                peer.complete_at = relay.completed.get(peer.peer_id)
        progress[0] = max(progress[0], relay.last_piece)
        why = refused or _over(run, scenario.robust, now, progress[0], limits)
        if scenario.robust and why is None and all(p.listening_at for p in run.theirs()):
            run.probes = yield probe(reactor, layout, scenario.theirs[0], run.peers[scenario.theirs[0]].child)
            why = "the probes are done"
        if why is not None:
            run.ended_why = why
            break
    run.ended_at = reactor.seconds()
    run.recordings = relay.recordings
    for peer in run.peers.values():
        if peer.theirs and not peer.child.running and peer.child.started is not None and not peer.child.stopped_by_kit:
            peer.leftovers = peer.child.leftovers()
    yield DeferredList([peer.child.stop() for peer in run.peers.values()])
    relay.stop()
    layout.release()
    return run


def _over(run: ScenarioRun, robust: bool, now: float, last_progress: float, limits: Limits) -> Optional[str]:
    """Why the scenario is over, or None while it goes on."""
    peers = list(run.peers.values())
    if now - run.started > limits.deadline:
        return f"the {limits.deadline:.0f} s limit of a scenario"
    theirs = run.theirs()
    for peer in theirs:
        if peer.listening_at is None and peer.child.started is not None and now - peer.child.started > limits.start:
            return f"peer {peer.peer_id} under test did not listen within {limits.start:.0f} s"
        if peer.child.started is not None and not peer.child.running and peer.listening_at is None:
            return f"peer {peer.peer_id} under test exited before it listened"
    if robust:
        return None
    if all(peer.child.started is not None and not peer.child.running for peer in peers):
        return "every peer exited"
    gone = [peer.child.ended for peer in theirs]
    if all(moment is not None for moment in gone) and now - max(m for m in gone if m is not None) > 3.0 \
            and any(peer.complete_at is None for peer in peers):
        return "the peers under test exited before the swarm completed"
    complete = [peer.complete_at for peer in peers]
    if all(moment is not None for moment in complete):
        last = max(moment for moment in complete if moment is not None)
        run.all_complete_at = last
        if now - last > limits.exit_within:
            return f"{limits.exit_within:.0f} s after the last peer completed"
        if all(not peer.child.running for peer in theirs) and now - last > 3.0:
            return "the peers under test exited; ours were not done"
        return None
    if now - last_progress > limits.stall:
        return f"no progress for {limits.stall:.0f} s"
    return None
