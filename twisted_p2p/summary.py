"""``--echo-summary``: one short progress line every few seconds, for a launcher that
follows many peers on other hosts (our extension).

With ``--echo-events`` a peer echoes every event line, and a launcher following 32 peers
over ssh reads 900,000 lines for a 20 MB file. In summary mode the peer echoes instead
one line every SECONDS, on the injected clock, saying what the launcher shows: pieces
held, neighbours connected and neighbours known complete; besides it only the completion
sentence, twistd's log (errors, and the file's SHA-256 when done). The event log file
still gets every line. :func:`format_summary` and :func:`parse_summary` are each other's
inverse; :mod:`twisted_p2p.launcher.progress` reads the lines.

Tests: tests/test_summary.py.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from twisted_p2p.eventlog import TextSink, format_time, parse_time

_SENTENCE = ("peer {me} holds {held} of {total} pieces; {connected} of {neighbours} neighbours connected, "
             "{complete} complete")
# Compiled on the launcher's first parse: a peer only writes these lines.
_PATTERN = (r"(?P<time>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}): peer (?P<me>\d+) holds (?P<held>\d+) of "
            r"(?P<total>\d+) pieces; (?P<connected>\d+) of (?P<neighbours>\d+) neighbours connected, "
            r"(?P<complete>\d+) complete")
_COMPILED: list[re.Pattern[str]] = []


@dataclass(frozen=True)
class Summary:
    """One peer's progress at ``time`` (epoch seconds, to the millisecond)."""

    time: float
    me: int
    held: int
    total: int
    connected: int
    neighbours: int
    complete: int


def format_summary(summary: Summary) -> str:
    """The line, stamped like an event-log line, without its newline."""
    fields = {name: getattr(summary, name) for name in ("me", "held", "total", "connected", "neighbours", "complete")}
    return f"{format_time(summary.time)}: {_SENTENCE.format(**fields)}"


def parse_summary(line: str) -> Summary | None:
    """The summary on ``line``, or None if it is not exactly one."""
    if not _COMPILED:
        _COMPILED.append(re.compile(_PATTERN))
    found = _COMPILED[0].fullmatch(line.rstrip("\r\n"))
    if found is None:
        return None
    stamp = parse_time(found["time"])
    if stamp is None:
        return None
    counts = {name: int(found[name]) for name in ("me", "held", "total", "connected", "neighbours", "complete")}
    return Summary(time=stamp, **counts)


class SummaryEcho(Service):
    """Writes ``peer``'s summary to ``sink`` every ``interval`` seconds of ``clock``,
    at once when started and once more when stopped (the last word on how it ended)."""

    def __init__(self, peer: Any, sink: TextSink, interval: float, clock: IReactorTime) -> None:
        """``peer``: a :class:`~twisted_p2p.service.PeerService`."""
        self.peer = peer
        self.sink = sink
        self.interval = interval
        self._loop = LoopingCall(self.write)
        self._loop.clock = clock
        self.clock = clock

    def now(self) -> Summary:
        peer = self.peer
        held = peer.pieces.held
        return Summary(time=self.clock.seconds(), me=peer.peer_id, held=held.count, total=held.total,
                       connected=len(peer.neighbours), neighbours=len(peer.circle),
                       complete=len(peer.complete_peers & peer.circle))

    def write(self) -> None:
        self.sink.write(format_summary(self.now()) + "\n")
        self.sink.flush()

    def startService(self) -> None:
        super().startService()
        self._loop.start(self.interval, now=True)

    def stopService(self) -> None:
        super().stopService()
        if self._loop.running:
            self._loop.stop()
        self.write()
