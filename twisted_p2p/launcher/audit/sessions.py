"""Sessions: the runs of one peer that its log holds.

The event log is opened for append, so a peer killed (even with kill -9) or stopped and
started again continues the same ``log_peer_N.log``. No SPEC §5 sentence says "I
started", so a restart is inferred from what the log does show. The heuristic:

1. A new session can only begin at a connection line with a neighbour that the current
   session is already connected to: a starting peer dials every peer listed before it,
   and the later ones dial it again.
2. Everything after that line fits a fresh start: each line about a neighbour comes
   after a connection line with that neighbour from that line on. A neighbour that
   reconnects on its own (it restarted, or a dropped connection was dialled again)
   fails this as soon as the log mentions a neighbour that has not reconnected.
3. And there is positive evidence: two or more neighbours connect within
   :data:`AT_ONCE` seconds of that line (a starting peer dials all earlier peers at
   once; the stamps must be readable), or the first download after it has a count that
   does not follow the last one (our peer counts on from the pieces it resumed, which
   may be more than the log showed, as the last lines before a kill can be lost, or
   fewer after a crash; other implementations start again from 1).

The session then starts at the first-time connection lines just before that line, if
any (a neighbour the old run never reached, dialled first by the new one).

What this cannot see: a restart with a continuous count that reconnects a single
neighbour stays one session -- harmless, as nothing in such a log contradicts one run.
Two neighbours restarting at once while this peer logs nothing else, or every
connection dropping at once, look like a restart; that only lets the rules allow what a
restart may do.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from twisted_p2p.config import SwarmConfig
from twisted_p2p.eventlog import Event

from .reading import PeerLog, Record, other_peer, own_records

AT_ONCE = 5.0  # seconds: our diallers retry at least every 2 s, others' may be slower
CONNECTIONS = ("connect_to", "connect_from")


@dataclass(frozen=True)
class Session:
    """One run of the peer: its own records, why it is a new run, and its piece counts.

    ``counted_before`` is the last count logged before it (0 for the first session);
    ``resumed`` the pieces it started with: 0 for the first session, one less than its
    first count for a later one, None when it logs no download.
    """

    records: Sequence[Record]
    evidence: str
    counted_before: int
    resumed: int | None

    @property
    def lost(self) -> int:
        """Pieces the restart lost by the counts: held earlier pieces that may come again."""
        return max(0, self.counted_before - self.resumed) if self.resumed is not None else 0

    @property
    def unlogged(self) -> int:
        """Pieces it resumed beyond the last count logged: their lines were lost."""
        return max(0, self.resumed - self.counted_before) if self.resumed is not None else 0


def mentioned(event: Event) -> tuple[int, ...]:
    """The neighbours a sentence is about."""
    if event.kind == "preferred":
        return event.others
    return () if event.other is None else (event.other,)


def _count(record: Record) -> int | None:
    return record.event.count if record.event.kind == "downloaded" else None


def _at_once(first: Record, record: Record) -> bool:
    if first.time is None or record.time is None:
        return False
    return record.time - first.time <= AT_ONCE + first.resolution + record.resolution


def restart_evidence(after: Sequence[Record], neighbours: frozenset[int], count: int) -> str:
    """Why the records ``after`` (from the connection lines that may begin a session on)
    are a new run of the peer that had logged ``count`` pieces, or "" if they are the
    old run going on."""
    since: set[int] = set()
    together: set[int] = set()
    next_count: int | None = None
    for record in after:
        event = record.event
        if event.kind in CONNECTIONS and event.other in neighbours:
            since.add(event.other)
            if _at_once(after[0], record):
                together.add(event.other)
        elif any(other in neighbours and other not in since for other in mentioned(event)):
            return ""
        if next_count is None:
            next_count = _count(record)
        if since == neighbours and next_count is not None:
            break  # nothing further can contradict a fresh start
    reasons = []
    if len(together) >= 2:
        reasons.append(f"{','.join(map(str, sorted(together)))} connected at once")
    if next_count is not None and next_count != count + 1:
        reasons.append(f"count {next_count} after {count}")
    return "; ".join(reasons)


def split_sessions(log: PeerLog, config: SwarmConfig) -> list[Session]:
    """The sessions of ``log``, in order; a log without a restart is one session."""
    records = own_records(log)
    neighbours = frozenset(config.peer_ids - {log.peer_id})
    starts: list[tuple[int, str]] = [(0, "")]
    first_connection: dict[int, int] = {}  # neighbour -> position, in the current session
    count = 0
    for at, record in enumerate(records):
        other = record.event.other
        if record.event.kind in CONNECTIONS and other in neighbours:
            if other in first_connection:  # a reconnection: perhaps a restart
                start = at  # which would begin at the first-time connections just before it
                while (start > starts[-1][0] and (before := records[start - 1].event.other) is not None
                       and first_connection.get(before) == start - 1):
                    start -= 1
                evidence = restart_evidence(records[start:], neighbours, count)
                if evidence:
                    starts.append((start, evidence))
                    first_connection = {other_peer(records[k]): k for k in range(start, at)}
            first_connection.setdefault(other, at)
        logged = _count(record)
        if logged is not None:
            count = logged
    sessions = []
    count = 0
    for number, (start, evidence) in enumerate(starts):
        end = starts[number + 1][0] if number + 1 < len(starts) else len(records)
        mine = records[start:end]
        counts = [c for c in map(_count, mine) if c is not None]
        resumed = 0 if number == 0 else (counts[0] - 1 if counts else None)
        sessions.append(Session(mine, evidence, count, resumed))
        count = counts[-1] if counts else count
    return sessions


def pieces_held(sessions: Sequence[Session], pieces: int) -> int:
    """Pieces the log shows the peer holding at its end: what its last session resumed
    with plus the distinct pieces it downloaded (a session without downloads keeps the
    previous one's)."""
    held = 0
    for session in sessions:
        if session.resumed is not None:
            got = {r.event.index for r in session.records if _count(r) is not None and r.event.index is not None}
            held = session.resumed + len({index for index in got if index < pieces})
    return held
