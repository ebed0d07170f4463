"""Runs one scenario: starts every peer in order, relays and records, knows when it is over.

Peers start as the course has people start them: in PeerInfo.cfg order, each once every
peer listed before it is listening (seen in /proc/net/tcp, never by connecting: some
peers take the n-th connection they accept to be the n-th later peer of PeerInfo.cfg).
A scenario with ``theirs_first`` turns that round on purpose, to see whether a peer under
test retries an earlier peer that was not up yet.

A scenario ends when every peer has exited, when ``exit_within`` seconds have passed
since the last peer completed, when nothing has progressed for ``stall`` seconds, or
at ``deadline`` -- whichever comes first. Then everything still running is stopped,
and whatever a peer under test left in its session is noted and killed. Every
connection one of our peers closed, with its reason, is kept (:class:`Closed`), so that
the scorecard can say so and blame nothing of theirs for it.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.error import CannotListenError
from twisted.internet.task import deferLater

from twisted_p2p.launcher.plan import local_command, twistd_command

from .processes import Child
from .relay import Recording, Relay
from .robust import Probe, probe
from .scenarios import Layout, Scenario

TICK = 0.05
STAGGER = 0.2  # seconds between a peer listening and the next one starting, in PeerInfo.cfg order
ASSUMED_UP = 2.0  # where /proc/net/tcp cannot tell: seconds after which a started peer is taken to listen
RETRY_WAIT = 5.0  # seconds a peer started too early has to reach the earlier peers once they listen
COMPLETE = "has downloaded the complete file."
# Our peer's diagnostic when it drops a connection: "peer 1003 sent ...; closing the connection".
CLOSING = re.compile(r"\] ((?:peer (\d+)|\S+) .+?); closing(?: the connection)?$")


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
    listening_at: float | None = None
    complete_at: float | None = None
    leftovers: bool = False
    listening_assumed: bool = False  # no /proc/net/tcp here: taken to listen ASSUMED_UP s after its start


@dataclass(frozen=True)
class Closed:
    """One of our peers closed a connection to a peer under test, and said why."""

    at: float
    ours: int
    theirs: int | None  # None when its handshake named no peer under test, and several ran
    why: str  # our peer's words: "peer 1003 sent ..."


@dataclass
class ScenarioRun:
    """What one scenario showed; times are seconds since it started."""

    layout: Layout
    started: float
    peers: dict[int, PeerRun]
    recordings: list[Recording] = field(default_factory=list)
    all_complete_at: float | None = None
    ended_at: float = 0.0
    ended_why: str = ""
    probes: list[Probe] = field(default_factory=list)
    closed_by_us: list[Closed] = field(default_factory=list)

    def theirs(self) -> list[PeerRun]:
        return [run for run in self.peers.values() if run.theirs]

    def at(self, moment: float | None) -> float | None:
        return None if moment is None else moment - self.started

    def held_back(self, peer_id: int) -> bool:
        """Our last peer of a ``last_after`` scenario, never started because the peers under
        test never got done: nobody's neighbour, so nobody is faulted for missing it."""
        scenario = self.layout.scenario
        peer = self.peers.get(peer_id)
        return (scenario.last_after is not None and peer_id == scenario.ids[-1] and peer is not None
                and not peer.theirs and peer.child.started is None)


def listening_ports(candidates: set[int]) -> set[int] | None:
    """Which of ``candidates`` have a socket listening on this machine, from Linux's
    /proc/net/tcp and tcp6, without touching the peer (None: there is no such table)."""
    tables = [name for name in ("/proc/net/tcp", "/proc/net/tcp6") if os.path.exists(name)]
    if not tables:
        return None
    ports: set[int] = set()
    for name in tables:
        try:
            with open(name) as table:
                next(table, None)
                for row in table:
                    fields = row.split()
                    if len(fields) > 3 and fields[3] == "0A":  # TCP_LISTEN
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except OSError:
            continue
    return ports & candidates


def closed_by(line: str, ours: int, ids: list[int], theirs: list[int]) -> Closed | None:
    """The connection to a peer under test that our peer ``ours`` dropped, from one line
    of its output (None: no drop, or one between two of ours). Before a handshake names
    the other side, it is the peer under test if only one runs."""
    found = CLOSING.search(line.rstrip())
    if found is None:
        return None
    named = int(found.group(2)) if found.group(2) else None
    if named in theirs:
        return Closed(0.0, ours, named, found.group(1))
    if named in ids:
        return None
    return Closed(0.0, ours, theirs[0] if len(theirs) == 1 else None, found.group(1))


def identify_by(ids: set[int]) -> Callable[[bytes], int | None]:
    """Who sent this handshake: its ID as the SPEC has it, or as text if that is a peer."""
    def identify(handshake: bytes) -> int | None:
        number = int.from_bytes(handshake[28:32], "big")
        if number in ids:
            return number
        text = handshake[28:32].strip(b"\0 ")
        return int(text) if text.isdigit() and int(text) in ids else None
    return identify


def their_argv(command: list[str], peer_id: int) -> list[str]:
    return [word.replace("{id}", str(peer_id)) for word in command]


def _relay_for(reactor: Any, scenario: Scenario, limits: Limits) -> Relay:
    """The scenario's relay, pacing what the peers under test upload and download."""
    return Relay(reactor, scenario.common, identify_by(set(scenario.ids)), hold=limits.hold,
                 rates_from={peer_id: scenario.their_rate for peer_id in scenario.theirs if scenario.their_rate},
                 rates_to={peer_id: scenario.their_download for peer_id in scenario.theirs if scenario.their_download})


def _add_peers(reactor: Any, run: ScenarioRun, command: list[str], progress: list[float]) -> None:
    """A child for every peer of the run (none of ours in a robust scenario: the kit
    itself plays the neighbours); the lines ours echo move ``progress`` on."""
    layout, scenario = run.layout, run.layout.scenario
    twistd = twistd_command()

    def our_line(peer_id: int) -> Callable[[str], None]:
        def heard(line: str) -> None:
            if "has downloaded the piece" in line:
                progress[0] = reactor.seconds()
            if line.endswith(COMPLETE) and run.peers[peer_id].complete_at is None:
                run.peers[peer_id].complete_at = reactor.seconds()
            closed = closed_by(line, peer_id, scenario.ids, scenario.theirs)
            if closed is not None:
                run.closed_by_us.append(replace(closed, at=reactor.seconds()))
        return heard

    for peer_id in scenario.ids:
        role = scenario.role(peer_id)
        if role.theirs:
            home = layout.their_dir(peer_id)
            child = Child(reactor, their_argv(command, peer_id), home, home / "output.txt")
        elif scenario.robust:
            continue
        else:
            argv = local_command(twistd, peer_id, layout.ours_dir, layout.ours_dir) + ["--echo-events"]
            if scenario.our_rate:
                argv += ["--upload-rate", str(scenario.our_rate)]
            child = Child(reactor, argv, layout.ours_dir, layout.ours_dir / f"output_{peer_id}.txt", our_line(peer_id))
        run.peers[peer_id] = PeerRun(peer_id, role.theirs, child, complete_at=run.started if role.seed else None)


def _relay_the_listening(run: ScenarioRun, relay: Relay, relayed: set[int]) -> str | None:
    """Open the public port of each peer that has come to listen (``relayed``: those
    done); note when a peer under test was handed every piece. Why the relay cannot go
    on, if it cannot."""
    layout, scenario = run.layout, run.layout.scenario
    refused = None
    for peer in run.peers.values():
        if peer.listening_at is not None and peer.peer_id not in relayed and not scenario.robust:
            relayed.add(peer.peer_id)
            try:
                relay.listen(peer.peer_id, layout.public[peer.peer_id], layout.real[peer.peer_id],
                             dialler=None if peer.theirs or len(scenario.theirs) > 1 else scenario.theirs[0])
            except CannotListenError as exc:
                refused = f"the relay could not listen on port {layout.public[peer.peer_id]}: {exc.socketError}"
        if peer.theirs and peer.complete_at is None:
            peer.complete_at = relay.completed.get(peer.peer_id)
    return refused


@inlineCallbacks
def run_scenario(reactor: Any, layout: Layout, command: list[str],
                 limits: Limits) -> Generator[Deferred[Any], Any, ScenarioRun]:
    scenario = layout.scenario
    relay = _relay_for(reactor, scenario, limits)
    run = ScenarioRun(layout, reactor.seconds(), {})
    progress = [run.started]  # when the swarm last moved: a start, a listen, a piece
    _add_peers(reactor, run, command, progress)
    relayed: set[int] = set()
    refused: str | None = None
    while True:
        now = reactor.seconds()
        due = next_to_start(run, now)
        if due is not None:
            due.child.spawn()
            progress[0] = now
        yield deferLater(reactor, TICK, lambda: None)
        now = reactor.seconds()
        _see_listening(run, now, progress)
        refused = _relay_the_listening(run, relay, relayed) or refused
        progress[0] = max(progress[0], relay.last_piece)
        why = refused or _over(run, scenario.robust, now, progress[0], limits) or _retried(run, relay.recordings, now)
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
            peer.leftovers = peer.child.session_alive()
    yield DeferredList([peer.child.stop() for peer in run.peers.values()])
    relay.stop()
    layout.release()
    return run


def start_order(run: ScenarioRun) -> list[PeerRun]:
    """PeerInfo.cfg order; in a ``theirs_first`` scenario the peers under test come first."""
    peers = list(run.peers.values())
    if run.layout.scenario.theirs_first is None:
        return peers
    return [peer for peer in peers if peer.theirs] + [peer for peer in peers if not peer.theirs]


def next_to_start(run: ScenarioRun, now: float) -> PeerRun | None:
    """The peer to start now, if any: the next in :func:`start_order`, once every peer
    before it has been listening for STAGGER s (``theirs_first`` s for the first of ours
    after the peers under test), a peer under test no sooner than ``late``, and the last
    of ours, with ``last_after``, only that long after the peers under test are done."""
    scenario = run.layout.scenario
    order = start_order(run)
    waiting = next((peer for peer in order if peer.child.started is None), None)
    if waiting is None:
        return None
    before = order[: order.index(waiting)]
    first_of_ours = bool(before) and not waiting.theirs and before[-1].theirs and scenario.theirs_first is not None
    up = [_up_for_retry(peer) if first_of_ours and peer.theirs else peer.listening_at for peer in before]
    if any(moment is None for moment in up):
        return None
    ready = max((moment for moment in up if moment is not None), default=None)
    if ready is not None:
        ready += scenario.theirs_first if first_of_ours and scenario.theirs_first is not None else STAGGER
    if waiting.theirs:
        ready = max(ready or run.started, run.started + scenario.late)
    if scenario.last_after is not None and waiting is order[-1] and not waiting.theirs:
        done = [peer.complete_at or peer.child.ended for peer in run.theirs()]
        if any(moment is None for moment in done):
            return None
        ready = max([ready or run.started] + [moment + scenario.last_after for moment in done if moment is not None])
    return waiting if ready is None or now >= ready else None


def _up_for_retry(peer: PeerRun) -> float | None:
    """When a peer under test counts as up in a ``theirs_first`` scenario: once it listens,
    or ASSUMED_UP s after its start if it dials the earlier peers before it listens (so
    that it has someone to reach)."""
    if peer.listening_at is not None or peer.child.started is None:
        return peer.listening_at
    return peer.child.started + ASSUMED_UP


def _see_listening(run: ScenarioRun, now: float, progress: list[float]) -> None:
    """Mark the peers whose real port now has a listening socket (or, with no
    /proc/net/tcp, that have run ASSUMED_UP s)."""
    real = run.layout.real
    starting = [peer for peer in run.peers.values() if peer.listening_at is None and peer.child.running]
    up = listening_ports({real[peer.peer_id] for peer in starting})
    for peer in starting:
        assumed = up is None and now - (peer.child.started or now) >= ASSUMED_UP
        if assumed or (up is not None and real[peer.peer_id] in up):
            peer.listening_at, peer.listening_assumed = now, assumed
            progress[0] = now


def _retried(run: ScenarioRun, recordings: list[Recording], now: float) -> str | None:
    """In a ``theirs_first`` scenario: over once each peer under test reached every earlier
    peer, or RETRY_WAIT s after the last of those began to listen."""
    scenario = run.layout.scenario
    if scenario.theirs_first is None:
        return None
    earlier = [peer for peer in run.peers.values() if not peer.theirs]
    if any(peer.listening_at is None for peer in earlier):
        return None
    reached = {(r.dialler, r.acceptor) for r in recordings if r.up.chunks}
    if all((me, peer.peer_id) in reached for me in scenario.theirs for peer in earlier
           if scenario.ids.index(peer.peer_id) < scenario.ids.index(me)):
        return "the peers under test reached every earlier peer"
    if now - max(peer.listening_at for peer in earlier if peer.listening_at is not None) > RETRY_WAIT:
        return f"{RETRY_WAIT:.0f} s after the earlier peers began to listen"
    return None


def _over(run: ScenarioRun, robust: bool, now: float, last_progress: float, limits: Limits) -> str | None:
    """Why the scenario is over, or None while it goes on."""
    peers = list(run.peers.values())
    if now - run.started > limits.deadline:
        return f"the {limits.deadline:.0f} s limit of a scenario"
    theirs = run.theirs()
    for peer in peers:
        if peer.listening_at is None and peer.child.running and now - (peer.child.started or now) > limits.start:
            who = f"peer {peer.peer_id} under test" if peer.theirs else f"our peer {peer.peer_id}"
            return f"{who} did not listen within {limits.start:.0f} s"
    for peer in theirs:
        if peer.child.started is not None and not peer.child.running and peer.listening_at is None:
            return f"peer {peer.peer_id} under test exited before it listened"
    if robust:
        return None
    complete = [peer.complete_at for peer in peers]
    done = [moment for moment in complete if moment is not None]
    last = max(done) if len(done) == len(complete) else None
    # Noted before any verdict below: the last completion and every exit may be seen in
    # one tick, and the checks judge each exit against it.
    run.all_complete_at = last
    if all(peer.child.started is not None and not peer.child.running for peer in peers):
        return "every peer exited"
    gone = [peer.child.ended for peer in theirs]
    if all(moment is not None for moment in gone) and now - max(m for m in gone if m is not None) > 3.0 \
            and last is None:
        return "the peers under test exited before the swarm completed"
    if last is not None:
        if now - last > limits.exit_within:
            return f"{limits.exit_within:.0f} s after the last peer completed"
        if all(not peer.child.running for peer in theirs) and now - last > 3.0:
            return "the peers under test exited; ours were not done"
        return None
    if now - last_progress > limits.stall:
        return f"no progress for {limits.stall:.0f} s"
    return None
