"""The recordings read back: each connection as the peer under test saw it.

A :class:`View` is one connection from one peer under test's side: what it sent
(parsed, with times it sent them) and what it was handed (with the times the relay
handed them on). What a peer can have known when it sent something is what it was
handed before; the checks reason only with that.
"""
from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from twisted_p2p.launcher.audit import rules as audit_rules
from twisted_p2p.launcher.audit.reading import Finding, PeerLog, missing_log, read_log
from twisted_p2p.layout import event_log_path

from .frames import Frame, Parsed, parse
from .relay import Recording
from .runner import ScenarioRun

LOG_LIMIT = 8 << 20  # bytes of an event log the kit reads


@dataclass
class View:
    run: ScenarioRun
    me: int
    other: int | None
    recording: Recording
    out: Parsed  # what the peer under test sent
    into: Parsed  # what it was handed

    @property
    def dialled(self) -> bool:
        return self.recording.dialler == self.me

    def where(self, moment: float | None = None, mine: bool = True) -> str:
        """'[scenario] 1002 -> 1001 at 1.23 s' for evidence lines: who sent, and when."""
        who = f"{self.me} -> {self.other}" if mine else f"{self.other} -> {self.me}"
        at = "" if moment is None else f" at {moment - self.run.started:.2f} s"
        return f"[{self.run.layout.scenario.name}] {who}{at}"

    def timeline(self) -> Iterator[tuple[float, bool, Frame]]:
        """(time, sent by the peer under test, frame), in time order: its frames when it
        sent them, the other side's when they were handed to it."""
        events = [(frame.sent, True, frame) for frame in self.out.frames]
        events += [(frame.delivered, False, frame) for frame in self.into.frames]
        events.sort(key=lambda event: (event[0], not event[1]))
        return iter(events)


@dataclass
class Holdings:
    """One peer under test's pieces over time: handed to it, and announced by it."""

    total: int
    seed: bool
    arrivals: list[tuple[float, int]] = field(default_factory=list)  # (handed over, index), sorted
    announcements: list[tuple[float, frozenset[int]]] = field(default_factory=list)

    def held(self, moment: float) -> set[int]:
        """Every piece it could have had at ``moment`` (all it was handed by then)."""
        if self.seed:
            return set(range(self.total))
        upto = bisect.bisect_right(self.arrivals, (moment, self.total))
        return {index for _, index in self.arrivals[:upto]}

    def announced(self, moment: float) -> set[int]:
        """The pieces it had said it has (bitfields, haves) by ``moment``: it has them."""
        pieces: set[int] = set()
        for when, said in self.announcements:
            if when > moment:
                break
            pieces |= said
        return pieces

    def first_arrival(self, index: int) -> float | None:
        for when, each in self.arrivals:
            if each == index:
                return when
        return None


def _read(path: Path, peer_id: int) -> PeerLog:
    if not path.is_file():
        return missing_log(peer_id)
    if path.stat().st_size > LOG_LIMIT:
        log = PeerLog(peer_id, path.name, present=False)
        log.findings.append(Finding(path.name, None, "log too large", f"{path.stat().st_size:,} bytes; not read",
                                    peer_id))
        return log
    return read_log(path, peer_id)


def log_findings(run: ScenarioRun) -> dict[int, list[Finding]]:
    """The audit's findings about each peer under test's log, with the whole swarm's logs;
    a peer of ours held back for theirs and never started is left out of the swarm, so no
    log is faulted for missing a connection to it."""
    layout = run.layout
    logs = {}
    for peer_id in layout.scenario.ids:
        home = layout.their_dir(peer_id) if layout.scenario.role(peer_id).theirs else layout.ours_dir
        logs[peer_id] = _read(event_log_path(home, peer_id), peer_id)
    config = layout.config_for(None)
    started = tuple(peer for peer in config.peers if not run.held_back(peer.peer_id))
    swarm = audit_rules.AuditedSwarm.of(replace(config, peers=started), logs)
    found = {}
    for peer_id in layout.scenario.theirs:
        log = logs[peer_id]
        found[peer_id] = list(log.findings) + ([f for rule in audit_rules.RULES for f in rule(log, swarm)]
                                               if log.present else [])
    return found


class Observed:
    """Every scenario run, with the views and holdings of each peer under test.

    ``runs`` are the swarms every check reads; ``every_run`` adds the scenarios made for
    one check alone (``Scenario.only``), which that check finds with :meth:`runs_for`.
    """

    def __init__(self, runs: list[ScenarioRun]) -> None:
        self.every_run = runs
        self.runs = [run for run in runs if not run.layout.scenario.only]

    def runs_for(self, key: str) -> list[ScenarioRun]:
        return [run for run in self.every_run if run.layout.scenario.only == key]

    @property
    def views(self) -> list[View]:
        """The connections of the swarms every check reads."""
        return [view for view in self.every_view if not view.run.layout.scenario.only]

    @cached_property
    def every_view(self) -> list[View]:
        views = []
        for run in self.every_run:
            common = run.layout.scenario.common
            theirs = set(run.layout.scenario.theirs)
            for recording in run.recordings:
                for me, other in ((recording.acceptor, recording.dialler), (recording.dialler, recording.acceptor)):
                    if me in theirs:
                        out = recording.direction_from(me)
                        into = recording.down if out is recording.up else recording.up
                        views.append(View(run, me, other, recording, parse(out.chunks, common, me),
                                          parse(into.chunks, common, other)))
        return views

    @property
    def completed(self) -> bool:
        """Whether every swarm (not the bad-input probes) ended with every peer complete."""
        return all(run.all_complete_at is not None for run in self.runs if not run.layout.scenario.robust)

    @cached_property
    def log_findings(self) -> dict[int, dict[int, list[Finding]]]:
        """By id of the run: the audit's findings on each peer under test's log. Every
        log check reads these, so the logs are read and audited once."""
        return {id(run): log_findings(run) for run in self.runs if not run.layout.scenario.robust}

    def views_of(self, run: ScenarioRun, me: int) -> list[View]:
        return [view for view in self.every_view if view.run is run and view.me == me]

    def closes(self, run: ScenarioRun, theirs: int | None = None) -> list[str]:
        """What our peers said when they closed a connection to a peer under test (to
        ``theirs`` only, when given), one line each."""
        return [f"our peer {c.ours} closed the connection to theirs-{c.theirs if c.theirs is not None else '?'} "
                f"at {c.at - run.started:.2f} s: {c.why}"
                for c in run.closed_by_us if theirs is None or c.theirs in (theirs, None)]

    def stalled_by_us(self) -> str:
        """'' -- or, when a swarm that did not complete had a connection closed by one of
        ours, '; [scenario] our peer ... closed the connection to ...: why' for the first."""
        for run in self.runs:
            if run.all_complete_at is None and not run.layout.scenario.robust and run.closed_by_us:
                return f"; [{run.layout.scenario.name}] {self.closes(run)[0]}"
        return ""

    @cached_property
    def holdings(self) -> dict[tuple[int, int], Holdings]:
        """By (id of the run, peer under test)."""
        result = {}
        for run in self.runs:
            scenario = run.layout.scenario
            for me in scenario.theirs:
                holding = Holdings(scenario.common.num_pieces, scenario.role(me).seed)
                for view in self.views_of(run, me):
                    holding.arrivals += [(f.delivered, f.index) for f in view.into.frames
                                         if f.kind == "piece" and f.index is not None]
                    for frame in view.out.frames:
                        if frame.kind == "have" and frame.index is not None:
                            holding.announcements.append((frame.sent, frozenset({frame.index})))
                        elif frame.kind == "bitfield" and frame.pieces is not None:
                            holding.announcements.append((frame.sent, frozenset(frame.pieces)))
                holding.arrivals.sort()
                holding.announcements.sort(key=lambda pair: pair[0])
                result[(id(run), me)] = holding
        return result

    def holding(self, view: View) -> Holdings:
        return self.holdings[(id(view.run), view.me)]

    def theirs(self) -> Iterator[tuple[ScenarioRun, int]]:
        for run in self.runs:
            for me in run.layout.scenario.theirs:
                yield run, me


def transcript(observed: Observed, run: ScenarioRun) -> list[str]:
    """Every frame to and from the peers under test of one run, in time order: what a
    person reads to see what happened on the wire (``WORK_DIR/SCENARIO/wire.txt``)."""
    lines = []
    for view in observed.every_view:
        if view.run is not run:
            continue
        for moment, mine, frame in view.timeline():
            sender, receiver = (view.me, view.other) if mine else (view.other, view.me)
            what = frame.kind if frame.index is None else f"{frame.kind} {frame.index}"
            if frame.kind == "bitfield" and frame.pieces is not None:
                what += f" ({len(frame.pieces)} pieces)"
            if frame.problem:
                what += f": {frame.problem}: {frame.head[:16].hex(' ')}"
            lines.append((moment, f"{moment - run.started:9.3f}  {sender} -> {receiver}  {what}"))
    lines.sort(key=lambda pair: pair[0])  # stable: frames sent together stay in their order
    return [line for _, line in lines]
