"""Per-peer progress of a running swarm, built from SPEC §5 event lines.

Everything here is pure: the launcher feeds lines (from a growing log file or from a
remote peer's stdout: its event lines, or with ``--echo-summary`` its progress lines)
and asks for text to show, so the same state drives the live display, the summary and
the report.
"""
from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from twisted_p2p.eventlog import Event, parse_line
from twisted_p2p.storage import parse_digest_report, parse_resume_report
from twisted_p2p.summary import Summary, parse_summary

RATE_WINDOW = 2.0  # seconds of recent downloads that the rate and "from" look at
LINES_KEPT = 50  # event-log lines kept per peer for the dashboard
RECEIVED = "' message from "  # in the sentences of a received have, interested, not interested


class LineBuffer:
    """Cuts a byte stream into whole lines, keeping a partial last line for later.

    Log files and pipes deliver arbitrary chunks; a half-written line must not be
    parsed until its newline arrives.
    """

    def __init__(self, skip: bytes | None = None) -> None:
        self._partial = b""
        self.skip = skip  # lines holding these bytes are dropped undecoded

    def feed(self, data: bytes) -> list[str]:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        skip = self.skip
        return [line.decode("utf-8", "replace") for line in lines if skip is None or skip not in line]

    def flush(self) -> list[str]:
        """The partial line, if any, once the stream has ended."""
        rest, self._partial = self._partial, b""
        return [rest.decode("utf-8", "replace")] if rest else []


@dataclass
class PeerProgress:
    """What one peer's event sentences say about it so far.

    Times are seconds since the launcher started (``start`` is that moment as wall
    time), so every peer's timeline shares one axis.
    """

    peer_id: int
    host: str
    total: int
    seed: bool
    start: float
    held: int = 0
    state: str = "waiting"
    completed_at: float | None = None
    received_from: Counter[int] = field(default_factory=Counter)
    unchoked_by: dict[int, bool] = field(default_factory=dict)
    timeline: list[tuple[float, int]] = field(default_factory=list)
    unchoke_timeline: list[tuple[float, int]] = field(default_factory=list)
    recent: deque[tuple[float, int]] = field(default_factory=deque)
    #: piece index -> the neighbour it came from (the pieces a seed starts with are not here)
    pieces: dict[int, int] = field(default_factory=dict)
    #: its own choice, as its log last said: preferred neighbours and the optimistic one
    preferred: tuple[int, ...] = ()
    optimistic: int | None = None
    #: its last event-log lines, (seconds since start, line)
    lines: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=LINES_KEPT))
    lines_seen: int = 0  # all its lines so far, kept or not: tells a reader which are new
    #: The SHA-256 a peer on another host printed when it finished (--echo-events).
    reported_sha256: str | None = None
    #: The pieces it started with, kept from before (a resumed leecher's report), if any.
    resumed: int | None = None
    #: Its last progress line (``--echo-summary``), and pieces per second since the one before.
    summary: Summary | None = None
    summary_rate: float | None = None

    def __post_init__(self) -> None:
        if self.seed:
            self.held = self.total
            self.completed_at = 0.0
        self.timeline.append((0.0, self.held))
        self.unchoke_timeline.append((0.0, 0))

    def feed_line(self, line: str) -> Event | None:
        """Apply one log line; lines that are not this peer's sentences are ignored, and so
        are the received 'have' / 'interested' / 'not interested' lines: they change
        nothing here and are most of a log (a 'have' from every neighbour for every piece),
        so the launcher does not spend its time reading them."""
        if RECEIVED in line:
            return None
        event = parse_line(line)
        if event is None:
            self._feed_other(line)
            return None
        if event.me != self.peer_id:
            return None
        self.apply(event)
        self.lines.append((max(0.0, event.time - self.start), line.strip()))
        self.lines_seen += 1
        return event

    def _feed_other(self, line: str) -> None:
        """A line that is no event: a progress line, or the digest or resume report."""
        summary = parse_summary(line)
        if summary is not None:
            if summary.me == self.peer_id:
                self.apply_summary(summary)
            return
        report = parse_digest_report(line)
        if report is not None and report[0] == self.peer_id:
            self.reported_sha256 = report[1]
        kept = parse_resume_report(line)
        if kept is not None and kept[0] == self.peer_id and self.resumed is None:
            self.resumed = kept[1]
            if kept[1] > self.held:
                self.held = kept[1]
                self.timeline.append((self.timeline[-1][0], self.held))

    def apply_summary(self, summary: Summary) -> None:
        """A progress line: what it holds, and its rate since the last such line (these
        lines, not every download, are all a launcher hears of a peer in summary mode)."""
        when = max(0.0, summary.time - self.start)
        last = self.summary
        if last is not None and summary.time > last.time:
            self.summary_rate = max(0, summary.held - last.held) / (summary.time - last.time)
        self.summary = summary
        if summary.held > self.held:
            self.held = summary.held
            self.timeline.append((when, self.held))
        if summary.held >= summary.total and self.completed_at is None:
            self.completed_at = when

    def apply(self, event: Event) -> None:
        when = max(0.0, event.time - self.start)
        if event.kind in ("connect_to", "connect_from") and event.other is not None:
            self.unchoked_by.setdefault(event.other, False)
        elif event.kind in ("choked", "unchoked") and event.other is not None:
            self.unchoked_by[event.other] = event.kind == "unchoked"
            self.unchoke_timeline.append((when, self.unchoked_count))
        elif event.kind == "preferred":
            self.preferred = event.others
        elif event.kind == "optimistic":
            self.optimistic = event.other
        elif event.kind == "downloaded" and event.other is not None and event.count is not None:
            self.received_from[event.other] += 1
            if event.index is not None:
                self.pieces.setdefault(event.index, event.other)
            self.recent.append((when, event.other))
            if event.count > self.held:
                self.held = event.count
                self.timeline.append((when, self.held))
        elif event.kind == "complete" and self.completed_at is None:
            self.completed_at = when
            self.held = self.total

    @property
    def unchoked_count(self) -> int:
        return sum(self.unchoked_by.values())

    def recent_downloads(self, now: float) -> list[tuple[float, int]]:
        """Downloads within RATE_WINDOW of ``now`` (seconds since start); older ones are dropped."""
        while self.recent and self.recent[0][0] < now - RATE_WINDOW:
            self.recent.popleft()
        return list(self.recent)

    def rate(self, now: float) -> float:
        """Pieces per second over the recent window; in summary mode, between its last
        two progress lines."""
        if self.summary_rate is not None:
            return self.summary_rate
        return len(self.recent_downloads(now)) / RATE_WINDOW

    def sources(self, now: float) -> list[int]:
        """Neighbours it downloaded from within the recent window."""
        return sorted({other for _, other in self.recent_downloads(now)})


def bar(held: int, total: int, width: int = 16) -> str:
    filled = width if total <= 0 else held * width // total
    return "#" * filled + "." * (width - filled)


def render_line(peer: PeerProgress, now: float, piece_size: int) -> str:
    """One display line: id, bar, held/total, rate, choke counts, state, recent sources.

    "unchoked 2/5" means two of its five neighbours unchoke it (three choke it). The
    sources come last because their length varies and a narrow terminal cuts the end.
    """
    digits = len(str(peer.total))
    megabytes = peer.rate(now) * piece_size / 1e6
    if peer.seed:
        done = " seed"
    else:
        done = "" if peer.completed_at is None else f" done {peer.completed_at:.1f}s"
    sources = ",".join(str(other) for other in peer.sources(now)) or "-"
    return (
        f"{peer.peer_id:>6} [{bar(peer.held, peer.total)}] {peer.held:>{digits}}/{peer.total}"
        f" {megabytes:5.1f} MB/s  unchoked {peer.unchoked_count}/{len(peer.unchoked_by)}"
        f"  {peer.state}{done}  from {sources}"
    )


def render(peers: Iterable[PeerProgress], now: float, piece_size: int) -> list[str]:
    return [render_line(peer, now, piece_size) for peer in peers]


#: More hosts than this and push packs several short cells into each line.
COMPACT_OVER = 12


def host_line(peer: PeerProgress, now: float, piece_size: int, name_width: int) -> str:
    """push's line for one host: its name, bar, pieces, rate and state."""
    digits = len(str(peer.total))
    megabytes = peer.rate(now) * piece_size / 1e6
    done = "" if peer.completed_at is None else f" done {peer.completed_at:.1f}s"
    kept = f" ({peer.resumed} resumed)" if peer.resumed else ""
    return (f"{peer.host:<{name_width}} [{bar(peer.held, peer.total)}] {peer.held:>{digits}}/{peer.total}"
            f" {megabytes:6.1f} MB/s  {peer.state}{done}{kept}{neighbours_said(peer)}")


def neighbours_said(peer: PeerProgress) -> str:
    """With progress lines: its neighbours connected and known complete, of how many."""
    summary = peer.summary
    if summary is None:
        return ""
    return f"  neighbours {summary.connected}/{summary.neighbours} up, {summary.complete} done"


def host_cell(peer: PeerProgress, now: float, piece_size: int) -> str:
    """A host in a few characters, for many hosts: percentage and rate, or done."""
    if peer.completed_at is not None:
        return f"{peer.host} done {peer.completed_at:.1f}s"
    if peer.state not in ("running", "waiting"):
        return f"{peer.host} {peer.state}"
    percent = 100 * peer.held // max(1, peer.total)
    return f"{peer.host} {percent}% {peer.rate(now) * piece_size / 1e6:.0f}MB/s"


def render_hosts(peers: Iterable[PeerProgress], now: float, piece_size: int, width: int = 100) -> list[str]:
    """One line per host that receives the file (the seed, this machine, left out);
    past COMPACT_OVER hosts, short cells packed into lines of ``width``, and a total."""
    hosts = [peer for peer in peers if not peer.seed]
    if not hosts:
        return []
    if len(hosts) <= COMPACT_OVER:
        name_width = max(len(peer.host) for peer in hosts)
        return [host_line(peer, now, piece_size, name_width) for peer in hosts]
    cells = [host_cell(peer, now, piece_size) for peer in hosts]
    cell_width = max(len(cell) for cell in cells) + 2
    per_line = max(1, width // cell_width)
    lines = ["".join(f"{cell:<{cell_width}}" for cell in cells[i:i + per_line]).rstrip()
             for i in range(0, len(cells), per_line)]
    done = sum(peer.completed_at is not None for peer in hosts)
    rate = sum(peer.rate(now) for peer in hosts) * piece_size / 1e6
    lines.append(f"{done} of {len(hosts)} hosts done, {rate:.0f} MB/s received in all")
    return lines
