"""Reading the event logs: every line that is a SPEC §5 sentence becomes a :class:`Record`.

Logs written by other implementations must not crash the audit: a line that is not
exactly a SPEC §5 sentence is a finding, and if it is one apart from its time stamp or
spacing it is still read (leniently) so that the rules can be checked on it too.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Optional

from twisted_p2p.eventlog import Event, parse_line

NOT_A_SENTENCE = "not a SPEC §5 sentence"
MISSING_LOG = "missing log"
UNREADABLE_LOG = "unreadable log"

_DAY = 86400.0

# Time stamps that other implementations write; tried when ours does not parse.
_LENIENT_TIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y/%m/%d %H:%M:%S.%f",
    "%Y/%m/%d %H:%M:%S",
    "%a %b %d %H:%M:%S %Y",  # java.util.Date without its zone
    "%H:%M:%S.%f",
    "%H:%M:%S",
)
_SENTENCE_START = re.compile(r"\bPeer\s+\d")
_PLACEHOLDER_TIME = "2000-01-01 00:00:00.000"


@dataclass(frozen=True)
class Finding:
    """One violation: where it is, the rule it breaks, what exactly was seen."""

    file: str
    line: Optional[int]
    rule: str
    detail: str
    peer: Optional[int]  # whose verdict it counts against; None for a stray log

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
    time: Optional[float]
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


def _lenient_time(stamp: str) -> tuple[Optional[float], float, bool]:
    """(seconds, resolution, has a date) for another implementation's time stamp.

    A stamp with only a time of day counts from midnight; :func:`read_log` adds days
    when it wraps, so intervals within one log still come out right.
    """
    stamp = stamp.strip().strip("[]()").strip()
    stamp = re.sub(r" [A-Z]{3,5} (?=\d{4}$)", " ", stamp)  # java.util.Date's zone: local time anyway
    for fmt in _LENIENT_TIME_FORMATS:
        try:
            parsed = datetime.strptime(stamp, fmt)
        except ValueError:
            continue
        resolution = 10.0 ** -len(stamp.rpartition(".")[2]) if "%f" in fmt else 1.0
        if fmt.startswith("%H"):
            midnight = parsed.replace(hour=0, minute=0, second=0, microsecond=0)
            return (parsed - midnight).total_seconds(), resolution, False
        try:
            return parsed.timestamp(), resolution, True
        except (ValueError, OverflowError, OSError):  # a date the platform cannot place
            return None, math.inf, True
    return None, math.inf, False


@dataclass(frozen=True)
class LenientLine:
    """A line read by :func:`parse_lenient`: the event, its time if it could be read,
    and what kept it from being exactly a SPEC §5 sentence."""

    event: Event
    stamp: str
    time: Optional[float]
    resolution: float
    dated: bool
    problems: tuple[str, ...]


def parse_lenient(text: str) -> Optional[LenientLine]:
    """Read a line that is a SPEC §5 sentence apart from its time stamp or spacing.

    Returns None when the line is no sentence at all. The sentence itself is matched
    by :func:`parse_line`, so the wording is never loosened -- only the stamp and the
    whitespace are.
    """
    start = _SENTENCE_START.search(text)
    if start is None:
        return None
    stamp = text[: start.start()].strip().removesuffix(":").rstrip()
    raw_sentence = text[start.start():]
    sentence = re.sub(r"\s*,\s*", ",", " ".join(raw_sentence.split()))
    event = parse_line(f"{_PLACEHOLDER_TIME}: {sentence}")
    if event is None:
        return None
    problems = []
    own = parse_line(f"{stamp}: {sentence}")
    if own is None:
        problems.append("time format")
        seconds, resolution, dated = _lenient_time(stamp)
    else:  # the stamp is ours; only the spacing was off
        seconds, resolution, dated = own.time, 0.001, True
    if sentence != raw_sentence or (own is not None and not text.startswith(f"{stamp}: ")) or not problems:
        problems.append("spacing")
    return LenientLine(event, stamp, seconds, resolution, dated, tuple(problems))


def read_log(path: Path, peer_id: int) -> PeerLog:
    """Read one log into records, reporting every line that is not exactly a sentence."""
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
    day_offset, last_time_of_day = 0.0, None
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r")
        try:
            event = parse_line(line)
            lenient = parse_lenient(line) if event is None else None
        except (ValueError, OverflowError, OSError):  # a stamp the platform cannot place
            event = lenient = None
        if event is not None:
            _check_list_order(log, number, event)
            log.records.append(Record(number, event, event.time, 0.001))
            continue
        if lenient is None:
            shown = line if len(line) <= 80 else line[:77] + "..."
            log.findings.append(Finding(path.name, number, NOT_A_SENTENCE, f"{shown!r} (skipped)", peer_id))
            continue
        seconds = lenient.time
        details = []
        if "time format" in lenient.problems:
            details.append(f"the time {lenient.stamp!r} is not 'YYYY-MM-DD HH:MM:SS.mmm'")
        if "spacing" in lenient.problems:
            details.append("extra or missing spaces")
        log.findings.append(
            Finding(path.name, number, f"{NOT_A_SENTENCE} ({', '.join(lenient.problems)})",
                    f"{'; '.join(details)} (the line is still checked)", peer_id)
        )
        if seconds is not None and not lenient.dated:  # a time of day alone: count the days by wrapping
            if last_time_of_day is not None and seconds < last_time_of_day - _DAY / 2:
                day_offset += _DAY
            last_time_of_day = seconds
            seconds += day_offset
        _check_list_order(log, number, lenient.event)
        log.records.append(Record(number, lenient.event, seconds, lenient.resolution))
    return log


def _check_list_order(log: PeerLog, number: int, event: Event) -> None:
    """SPEC §5 (Choice): the preferred list is in ascending order, each ID once."""
    if event.others != tuple(sorted(set(event.others))):
        log.findings.append(
            Finding(log.file, number, f"{NOT_A_SENTENCE} (preferred list order)",
                    f"{','.join(map(str, event.others))} is not in ascending order", log.peer_id)
        )


def missing_log(peer_id: int) -> PeerLog:
    log = PeerLog(peer_id, f"log_peer_{peer_id}.log", present=False)
    log.findings.append(Finding(log.file, None, MISSING_LOG, f"peer {peer_id} is in PeerInfo.cfg but wrote no log", peer_id))
    return log


def own_records(log: PeerLog) -> list[Record]:
    """The lines this peer wrote about itself; the others cannot be attributed."""
    return [record for record in log.records if record.event.me == log.peer_id]
