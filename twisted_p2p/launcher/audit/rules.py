"""The rules, one function each, registered with :func:`rule` and run by :func:`audit`.

Each rule is a pure function of one peer's log and the :class:`AuditedSwarm` it belongs to
(the configuration and every other log), returning its findings. A finding is a
violation only if its rule rests on a sentence of the course (:data:`REQUIRED_BY`, in
:mod:`.required` with the rules' names); any other is advice -- our own choices -- and
never fails the audit (SPEC §6).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from twisted_p2p.config import SwarmConfig
from twisted_p2p.layout import event_log_name

from .reading import Finding, PeerLog, Record, other_peer, own_records
from .required import (
    COMPLETION_TWICE,
    CONNECTION_TWICE,
    COUNT_NOT_RISING,
    COUNT_TOO_HIGH,
    DOWNLOAD_AFTER_COMPLETION,
    DOWNLOADED_TWICE,
    EARLY_COMPLETION,
    HAVE_NOT_DOWNLOADED,
    MISSING_CONNECTION,
    NO_COMPLETION,
    OPTIMISTIC_TOO_SOON,
    PIECE_OUT_OF_RANGE,
    SEED_DOWNLOADED,
    SEED_SENT_HAVE,
    SOURCE_LACKED_PIECE,
    TOO_MANY_PREFERRED,
    UNKNOWN_PEER,
    WRONG_DIRECTION,
    WRONG_WRITER,
)
from .sessions import CONNECTIONS, Session, mentioned, pieces_held, split_sessions


@dataclass(frozen=True)
class AuditedSwarm:
    """What a rule may look at besides the log it checks: the configuration, every log,
    the sessions of each log that is there, and the pieces each such log shows its peer
    had (see :func:`pieces_shown`)."""

    config: SwarmConfig
    logs: dict[int, PeerLog]
    slack: float | None
    sessions: dict[int, list[Session]]
    pieces: dict[int, set[int]]

    @classmethod
    def of(cls, config: SwarmConfig, logs: dict[int, PeerLog], slack: float | None = None) -> AuditedSwarm:
        present = {peer_id: log for peer_id, log in logs.items() if log.present}
        sessions = {peer_id: split_sessions(log, config) for peer_id, log in present.items()}
        return cls(config, logs, slack, sessions, pieces_shown(present, sessions))


Rule = Callable[[PeerLog, AuditedSwarm], list[Finding]]
RULES: list[Rule] = []


def rule(check: Rule) -> Rule:
    """Register ``check``: the audit runs every registered rule on every log that is there."""
    RULES.append(check)
    return check


@rule
def sentences_name_their_writer(log: PeerLog, swarm: AuditedSwarm) -> list[Finding]:
    """SPEC §5: ID1 is always the peer writing the log."""
    return [
        Finding(log.file, record.line, WRONG_WRITER,
                f"the sentence is about peer {record.event.me}, in the log of peer {log.peer_id}", log.peer_id)
        for record in log.records
        if record.event.me != log.peer_id
    ]


@rule
def ids_and_pieces_exist(log: PeerLog, swarm: AuditedSwarm) -> list[Finding]:
    """Every other ID is a peer of PeerInfo.cfg other than the writer; every index a piece."""
    config = swarm.config
    findings = []
    known = config.peer_ids
    pieces = config.common.num_pieces
    for record in own_records(log):
        event = record.event
        for other in mentioned(event):
            if other not in known or other == log.peer_id:
                why = "itself" if other == log.peer_id else "a peer not in PeerInfo.cfg"
                findings.append(Finding(log.file, record.line, UNKNOWN_PEER, f"{other} is {why}", log.peer_id))
        if event.index is not None and event.index >= pieces:
            findings.append(Finding(log.file, record.line, PIECE_OUT_OF_RANGE,
                                    f"piece {event.index}; the file has {pieces} pieces (0-{pieces - 1})", log.peer_id))
    return findings


@rule
def connections_follow_start_order(log: PeerLog, swarm: AuditedSwarm) -> list[Finding]:
    """SPEC §3: a peer dials every peer listed before it and is dialled by every later one.

    A connection may be made again -- after a restart of either peer, or a dropped
    connection dialled again -- but both sides log every connection, so a neighbour's log
    (when it is there) must show as many connections with us, less one per restart of
    the neighbour (the lines a kill lost). More is reported, as connections logged twice.
    """
    config = swarm.config
    findings = []
    order = [peer.peer_id for peer in config.peers]
    position = order.index(log.peer_id)
    earlier, later = set(order[:position]), set(order[position + 1:])
    mine = connections(log)
    seen: dict[int, int] = {}
    for record in own_records(log):
        event = record.event
        if event.kind not in CONNECTIONS or event.other not in config.peer_ids:
            continue
        other = event.other
        if event.kind == "connect_to" and other in later:
            findings.append(Finding(log.file, record.line, WRONG_DIRECTION,
                                    f"made a connection to {other}, which is listed after {log.peer_id} "
                                    f"and should dial it", log.peer_id))
        elif event.kind == "connect_from" and other in earlier:
            findings.append(Finding(log.file, record.line, WRONG_DIRECTION,
                                    f"connected from {other}, which is listed before {log.peer_id} "
                                    f"and should be dialled by it", log.peer_id))
        if other not in seen:
            seen[other] = record.line
        elif other in swarm.sessions:
            theirs = connections(swarm.logs[other])[log.peer_id]
            if mine[other] > theirs + len(swarm.sessions[other]) - 1:
                findings.append(Finding(log.file, record.line, CONNECTION_TWICE,
                                        f"with {other}, first on line {seen[other]}; {event_log_name(other)} shows "
                                        f"{theirs} connection{'s' if theirs != 1 else ''} with {log.peer_id}, "
                                        f"this log {mine[other]}", log.peer_id))
    for other in order:
        if other != log.peer_id and other not in seen:
            expected = "makes a connection to" if other in earlier else "is connected from"
            findings.append(Finding(log.file, None, MISSING_CONNECTION,
                                    f"no 'Peer {log.peer_id} {expected} Peer {other}.'", log.peer_id))
    return findings


def connections(log: PeerLog) -> Counter[int]:
    """How many connection lines the log has with each neighbour."""
    return Counter(r.event.other for r in own_records(log) if r.event.kind in CONNECTIONS and r.event.other is not None)


@rule
def at_most_k_preferred(log: PeerLog, swarm: AuditedSwarm) -> list[Finding]:
    """SPEC §3: k preferred neighbours are chosen each interval, never more."""
    k = swarm.config.common.preferred_neighbors
    return [
        Finding(log.file, record.line, TOO_MANY_PREFERRED,
                f"{len(record.event.others)} preferred neighbors ({','.join(map(str, record.event.others))}); "
                f"k is {k}", log.peer_id)
        for record in own_records(log)
        if record.event.kind == "preferred" and len(record.event.others) > k
    ]


def default_slack(m: int) -> float:
    """Timers fire late and our peer restarts its m-second timer when it picks the first
    optimistic neighbour early, so allow the larger of half a second and 10% of m."""
    return max(0.5, 0.1 * m)


@rule
def optimistic_changes_every_m_seconds(log: PeerLog, swarm: AuditedSwarm) -> list[Finding]:
    """SPEC §3: the optimistic neighbour is chosen every m seconds, so the lines that log
    a change are at least m seconds apart (less the slack and the stamps' precision) --
    within a session: a restarted peer picks its first one afresh."""
    m = swarm.config.common.optimistic_unchoking_interval
    slack = default_slack(m) if swarm.slack is None else swarm.slack
    findings = []
    for session in swarm.sessions[log.peer_id]:
        previous: Record | None = None
        for record in session.records:
            if record.event.kind != "optimistic" or record.time is None:
                continue
            if previous is not None and previous.time is not None:
                gap = record.time - previous.time
                if gap < m - slack - previous.resolution - record.resolution:
                    findings.append(Finding(log.file, record.line, OPTIMISTIC_TOO_SOON,
                                            f"{gap:.3f} s after the change on line {previous.line}; "
                                            f"m is {m} s (slack {slack:g} s)", log.peer_id))
            previous = record
    return findings


@rule
def download_counts_rise_by_one(log: PeerLog, swarm: AuditedSwarm) -> list[Finding]:
    """SPEC §5: 'Now the number of pieces it has is [count]' -- one more each time, from
    nothing (hasFile 0) up to the number of pieces. A restarted session counts on from
    the pieces it resumed with, so its first count may be any from 1."""
    config = swarm.config
    if config.peer(log.peer_id).has_file:
        return []  # a seed has no downloads to count; seed_downloads_nothing reports any
    findings = []
    pieces = config.common.num_pieces
    for number, session in enumerate(swarm.sessions[log.peer_id]):
        count = 0 if number == 0 else None
        for record in session.records:
            event = record.event
            if event.kind != "downloaded" or event.count is None:
                continue
            if count is not None and event.count != count + 1:
                findings.append(Finding(log.file, record.line, COUNT_NOT_RISING,
                                        f"count {event.count} after {count}; expected {count + 1}", log.peer_id))
            elif count is None and event.count < 1:
                findings.append(Finding(log.file, record.line, COUNT_NOT_RISING,
                                        f"count {event.count} after a restart; expected 1 or more", log.peer_id))
            if event.count > pieces:
                findings.append(Finding(log.file, record.line, COUNT_TOO_HIGH,
                                        f"count {event.count}; the file has {pieces} pieces", log.peer_id))
            count = event.count
    return findings


@rule
def no_piece_downloaded_twice(log: PeerLog, swarm: AuditedSwarm) -> list[Finding]:
    """A peer requests only pieces it lacks (SPEC §3), so a session downloads each index
    once. A piece from an earlier session may come again only if it was lost: as many
    such pieces as the counts at the restarts went down by (see Session.lost)."""
    findings = []
    earlier: dict[int, int] = {}
    may_come_again = 0
    for session in swarm.sessions[log.peer_id]:
        may_come_again += session.lost
        first: dict[int, int] = {}
        for record in session.records:
            index = record.event.index
            if record.event.kind != "downloaded" or index is None:
                continue
            if index in first:
                findings.append(Finding(log.file, record.line, DOWNLOADED_TWICE,
                                        f"piece {index}, first on line {first[index]}", log.peer_id))
                continue
            first[index] = record.line
            if index in earlier and may_come_again:
                may_come_again -= 1
            elif index in earlier:
                findings.append(Finding(log.file, record.line, DOWNLOADED_TWICE,
                                        f"piece {index}, first on line {earlier[index]} before a restart, "
                                        f"and the counts show no more pieces lost", log.peer_id))
        earlier.update(first)
    return findings


@rule
def seed_downloads_nothing(log: PeerLog, swarm: AuditedSwarm) -> list[Finding]:
    """A seed starts with the whole file: it downloads nothing and never 'completes'."""
    if not swarm.config.peer(log.peer_id).has_file:
        return []
    return [
        Finding(log.file, record.line, SEED_DOWNLOADED,
                f"peer {log.peer_id} has hasFile 1 but logged "
                + (f"downloading piece {record.event.index}" if record.event.kind == "downloaded" else "a completion"),
                log.peer_id)
        for record in own_records(log)
        if record.event.kind in ("downloaded", "complete")
    ]


@rule
def one_completion_after_last_piece(log: PeerLog, swarm: AuditedSwarm) -> list[Finding]:
    """A peer without the file logs 'has downloaded the complete file' once a session,
    once it holds every piece, and downloads nothing after it in that session; the last
    session that downloads (or a later one) logs it.

    A session holds what it resumed with (see Session.resumed) plus the distinct pieces it
    downloaded -- not the logged count, so a wrong count is reported once (by
    download_counts_rise_by_one), not here as well. A restarted session that logs no
    download resumed with an unknown number of pieces, so its completion is not judged.
    """
    config = swarm.config
    if config.peer(log.peer_id).has_file:
        return []
    findings = []
    pieces = config.common.num_pieces
    for session in swarm.sessions[log.peer_id]:
        have: set[int] = set()
        completed_on: int | None = None
        for record in session.records:
            event = record.event
            if event.kind == "downloaded" and event.index is not None:
                if completed_on is not None:
                    findings.append(Finding(log.file, record.line, DOWNLOAD_AFTER_COMPLETION,
                                            f"piece {event.index} after the completion on line {completed_on}",
                                            log.peer_id))
                if event.index < pieces:
                    have.add(event.index)
            elif event.kind == "complete":
                if completed_on is not None:
                    findings.append(Finding(log.file, record.line, COMPLETION_TWICE,
                                            f"first on line {completed_on}", log.peer_id))
                    continue
                completed_on = record.line
                held = None if session.resumed is None else session.resumed + len(have)
                if held is not None and held < pieces:
                    findings.append(Finding(log.file, record.line, EARLY_COMPLETION,
                                            f"{held} of {pieces} pieces so far", log.peer_id))
    if not ends_complete(swarm.sessions[log.peer_id]):
        held = pieces_held(swarm.sessions[log.peer_id], pieces)
        findings.append(Finding(log.file, None, NO_COMPLETION,
                                f"peer {log.peer_id} has hasFile 0 and ends with {held} of {pieces} pieces",
                                log.peer_id))
    return findings


def ends_complete(sessions: list[Session]) -> bool:
    """Whether the last session that downloads anything, or a later one, logs the completion."""
    kinds = [{record.event.kind for record in session.records} for session in sessions]
    last = max((number for number, seen in enumerate(kinds) if "downloaded" in seen), default=0)
    return any("complete" in seen for seen in kinds[last:])


def downloaded_pieces(log: PeerLog) -> set[int]:
    return {r.event.index for r in own_records(log) if r.event.kind == "downloaded" and r.event.index is not None}


def pieces_shown(logs: dict[int, PeerLog], sessions: dict[int, list[Session]]) -> dict[int, set[int]]:
    """The pieces each log shows its peer had: those it logged downloading and, when its
    restarts resumed more pieces than it had logged (their lines lost at a kill), the
    pieces other logs saw it have ('have' from it, a piece from it) but it never logged,
    as long as there are no more of them than that."""
    seen: dict[int, set[int]] = defaultdict(set)
    for log in logs.values():
        for record in own_records(log):
            if record.event.kind in ("have", "downloaded") and record.event.index is not None:
                seen[other_peer(record)].add(record.event.index)
    shown = {}
    for peer_id, log in logs.items():
        logged = downloaded_pieces(log)
        unlogged = seen[peer_id] - logged
        shown[peer_id] = logged | unlogged if len(unlogged) <= sum(s.unlogged for s in sessions[peer_id]) else logged
    return shown


def _about_other_peers(log: PeerLog, swarm: AuditedSwarm, kind: str) -> Iterator[Record]:
    """The log's own records of ``kind`` about another peer of PeerInfo.cfg (the rules
    that compare two logs skip the rest: other rules report them)."""
    for record in own_records(log):
        event = record.event
        if event.kind == kind and event.other in swarm.config.peer_ids and event.other != log.peer_id:
            yield record


@rule
def haves_match_downloads(log: PeerLog, swarm: AuditedSwarm) -> list[Finding]:
    """SPEC §3: a peer sends 'have' after each piece it completes, so a 'have' from X for
    piece i needs X's line 'downloaded the piece i' (when X's log is there). A seed has
    no reason to send one, but it does have the piece: that is only advice."""
    config, downloads = swarm.config, swarm.pieces
    findings = []
    for record in _about_other_peers(log, swarm, "have"):
        event = record.event
        sender = other_peer(record)
        if config.peer(sender).has_file:
            findings.append(Finding(log.file, record.line, SEED_SENT_HAVE,
                                    f"{sender} is a seed (hasFile 1): its bitfield already said it has piece "
                                    f"{event.index}", log.peer_id))
        elif sender in downloads and event.index not in downloads[sender]:
            findings.append(Finding(log.file, record.line, HAVE_NOT_DOWNLOADED,
                                    f"{event_log_name(sender)} never downloads piece {event.index}", log.peer_id))
    return findings


@rule
def sources_had_the_piece(log: PeerLog, swarm: AuditedSwarm) -> list[Finding]:
    """SPEC §3: a peer answers a request only for a piece it has, so a piece downloaded
    from X is one X is a seed for or logged downloading (when X's log is there)."""
    config, downloads = swarm.config, swarm.pieces
    findings = []
    for record in _about_other_peers(log, swarm, "downloaded"):
        event = record.event
        source = other_peer(record)
        if not config.peer(source).has_file and source in downloads and event.index not in downloads[source]:
            findings.append(Finding(log.file, record.line, SOURCE_LACKED_PIECE,
                                    f"piece {event.index} from {source}, whose log never downloads it "
                                    f"and which is not a seed", log.peer_id))
    return findings

