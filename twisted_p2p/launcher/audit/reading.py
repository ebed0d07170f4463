"""Reading the event logs: every line that is a SPEC §5 sentence becomes a :class:`Record`.

Logs written by other implementations must not crash the audit, nor be called wrong
for what the course leaves open. A line that is a sentence with another time stamp
(:mod:`.stamps`) or other spacing is read like ours; only a stamp without a date (the
course: [Time] "contains the date, hour, minute, and second") is a violation, told once
per log. A line that is no sentence at all is a violation too (the course: "Each peer
process should generate logs for a peer as follows"). Other spacing, the course's own
typographic apostrophes, and stamps the audit cannot read are no violation.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from twisted_p2p.eventlog import Event, parse_line
from twisted_p2p.layout import event_log_name

from .stamps import Stamp, read_stamp

# The reading rules, as printed after ``file:line:`` (rules.REQUIRED_BY says which the course requires).
NOT_A_SENTENCE = "not a SPEC §5 sentence"
SPACING = f"{NOT_A_SENTENCE} (spacing)"
LIST_ORDER = f"{NOT_A_SENTENCE} (preferred list order)"
NO_DATE = "time without a date"
NO_TIME = "line without a time"
UNREAD_TIME = "time the audit cannot read"
MISSING_LOG = "missing log"
UNREADABLE_LOG = "unreadable log"
STRAY_LOG = "log for a peer not in PeerInfo.cfg"

_DAY = 86400.0
_SENTENCE_START = re.compile(r"\bPeer\s+\d")
_OUR_STAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}")
_PLACEHOLDER_TIME = "2000-01-01 00:00:00.000"
_COURSE_QUOTES = str.maketrans("\u2018\u2019", "''")  # 'have' as the course prints it


@dataclass(frozen=True)
class Finding:
    """One finding: where it is, the rule it breaks, what exactly was seen. Whether it is
    a violation or advice depends on the rule (see rules.is_required)."""

    file: str
    line: int | None
    rule: str
    detail: str
    peer: int | None  # whose verdict it counts against; None for a stray log

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.rule}: {self.detail}"


@dataclass(frozen=True)
class Note:
    """Something the audit recognised and tells, not a violation (a restart)."""

    file: str
    line: int
    text: str
    peer: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.text}"


@dataclass(frozen=True)
class Record:
    """A line that could be read: its number, its event, and how far to trust its time.

    ``time`` is None when the stamp could not be read at all; ``resolution`` is the
    stamp's precision in seconds (0.001 for ours, 1 for whole seconds), so that timing
    rules do not blame rounding.
    """

    line: int
    event: Event
    time: float | None
    resolution: float


@dataclass
class PeerLog:
    """One peer's log as read: its readable lines and the findings made while reading."""

    peer_id: int
    file: str
    present: bool = True
    records: list[Record] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


# -- reading -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LenientLine:
    """A line read by :func:`parse_lenient`: the event, its stamp as written and as read,
    and whether its spacing differs from the SPEC §5 sentence."""

    event: Event
    stamp: str
    when: Stamp
    spacing: bool


def parse_lenient(text: str) -> LenientLine | None:
    """Read a line that is a SPEC §5 sentence apart from its time stamp or spacing.

    Returns None when the line is no sentence at all. The sentence itself is matched
    by :func:`parse_line`, so the wording is never loosened -- only the stamp, the
    whitespace and the apostrophes are (the course's text has typographic ones).
    """
    text = text.translate(_COURSE_QUOTES)
    start = _SENTENCE_START.search(text)
    if start is None:
        return None
    stamp = text[: start.start()].strip().removesuffix(":").rstrip()
    raw_sentence = text[start.start():]
    sentence = re.sub(r"\s*,\s*", ",", " ".join(raw_sentence.split()))
    event = parse_line(f"{_PLACEHOLDER_TIME}: {sentence}")
    if event is None:
        return None
    ours = _OUR_STAMP.fullmatch(stamp) is not None  # then the whole line's layout is known
    spacing = sentence != raw_sentence or (ours and text != f"{stamp}: {sentence}")
    return LenientLine(event, stamp, read_stamp(stamp), spacing)


@dataclass
class _Tally:
    """Lines of one log that share a problem with their stamp: told once, at the first."""

    rule: str
    first: int = 0
    stamp: str = ""
    lines: int = 0

    def add(self, number: int, stamp: str) -> None:
        if not self.lines:
            self.first, self.stamp = number, stamp
        self.lines += 1

    def finding(self, log: PeerLog) -> Finding:
        like = "the only such line" if self.lines == 1 else f"{self.lines} lines of this log are like it"
        if self.rule == NO_DATE:
            what = f"the time {self.stamp!r} has the hour, minute and second but no date"
        elif self.rule == NO_TIME:
            what = f"{self.stamp!r} before the sentence is no time" if self.stamp else "no time before the sentence"
        else:
            what = f"the audit cannot read the time {self.stamp!r}, so it does not time these lines"
        return Finding(log.file, self.first, self.rule, f"{what} ({like}; all still checked)", log.peer_id)


def read_log(path: Path, peer_id: int) -> PeerLog:
    """Read one log into records, reporting lines that are not exactly a sentence and,
    once per log, stamps without a date or that cannot be read."""
    log = PeerLog(peer_id, path.name)
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        log.present = False
        log.findings.append(Finding(path.name, None, UNREADABLE_LOG, exc.strerror or str(exc), peer_id))
        return log
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    tallies = {rule: _Tally(rule) for rule in (NO_DATE, NO_TIME, UNREAD_TIME)}
    day_offset, last_time_of_day = 0.0, None
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r")
        try:
            event = parse_line(line)
        except (ValueError, OverflowError, OSError):  # our layout, but a date the platform cannot place
            event = None
        if event is not None:
            _check_list_order(log, number, event)
            log.records.append(Record(number, event, event.time, 0.001))
            continue
        lenient = parse_lenient(line)
        if lenient is None and not line.strip():
            log.findings.append(Finding(path.name, number, SPACING, "an empty line", peer_id))
            continue
        if lenient is None:
            shown = line if len(line) <= 80 else line[:77] + "..."
            log.findings.append(Finding(path.name, number, NOT_A_SENTENCE, f"{shown!r} (skipped)", peer_id))
            continue
        if lenient.spacing:
            log.findings.append(Finding(path.name, number, SPACING,
                                        "extra or missing spaces (the line is still checked)", peer_id))
        when, seconds = lenient.when, lenient.when.seconds
        if not when.readable:
            tallies[UNREAD_TIME if re.search(r"\d", lenient.stamp) else NO_TIME].add(number, lenient.stamp)
        elif not when.dated and seconds is not None:  # a time of day alone: count the days by wrapping
            tallies[NO_DATE].add(number, lenient.stamp)
            if last_time_of_day is not None and seconds < last_time_of_day - _DAY / 2:
                day_offset += _DAY
            last_time_of_day = seconds
            seconds += day_offset
        _check_list_order(log, number, lenient.event)
        log.records.append(Record(number, lenient.event, seconds, when.resolution))
    log.findings += [tally.finding(log) for tally in tallies.values() if tally.lines]
    return log


def _check_list_order(log: PeerLog, number: int, event: Event) -> None:
    """SPEC §5 (Choice): the preferred list is in ascending order, each ID once."""
    if event.others != tuple(sorted(set(event.others))):
        log.findings.append(
            Finding(log.file, number, LIST_ORDER,
                    f"{','.join(map(str, event.others))} is not in ascending order", log.peer_id)
        )


def missing_log(peer_id: int) -> PeerLog:
    log = PeerLog(peer_id, event_log_name(peer_id), present=False)
    log.findings.append(Finding(log.file, None, MISSING_LOG, f"peer {peer_id} is in PeerInfo.cfg but wrote no log",
                                peer_id))
    return log


def own_records(log: PeerLog) -> list[Record]:
    """The lines this peer wrote about itself; the others cannot be attributed."""
    return [record for record in log.records if record.event.me == log.peer_id]


def other_peer(record: Record) -> int:
    """The other peer a line names: every sentence with an ``{other}`` has one (parse_line
    reads it as a number), so only a 'preferred' line must not be asked."""
    other = record.event.other
    assert other is not None, f"line {record.line} ({record.event.kind}) names no other peer"
    return other
