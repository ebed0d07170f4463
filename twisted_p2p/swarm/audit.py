"""``p2p-swarm audit WORK_DIR``: check a finished swarm's event logs against the protocol.

The event logs (SPEC §5) are all that a grader can see of a swarm, so this reads every
``log_peer_*.log`` together with Common.cfg and PeerInfo.cfg and checks what the spec
makes observable there. Each rule is one pure function over parsed lines that returns
its findings; :func:`audit` runs them all and :func:`main` prints the result.

Logs written by other implementations must not crash it: a line that is not exactly a
SPEC §5 sentence is a finding, and if it is one apart from its time stamp or spacing it
is still read (leniently) so that the structural rules can be checked on it too.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Optional, Sequence

from twisted_p2p.config import COMMON_CFG, ConfigError, SwarmConfig, load
from twisted_p2p.eventlog import Event, parse_line

# The rules, as printed after ``file:line:`` -- each names what was broken.
NOT_A_SENTENCE = "not a SPEC §5 sentence"
WRONG_WRITER = "ID1 is not the peer writing the log"
UNKNOWN_PEER = "unknown peer"
PIECE_OUT_OF_RANGE = "piece index out of range"
MISSING_CONNECTION = "missing connection"
WRONG_DIRECTION = "connection in the wrong direction"
CONNECTION_TWICE = "connection logged twice"
TOO_MANY_PREFERRED = "more than k preferred neighbors"
OPTIMISTIC_TOO_SOON = "optimistic neighbor changed sooner than m seconds"
COUNT_NOT_RISING = "download count does not rise by one"
COUNT_TOO_HIGH = "download count above the number of pieces"
DOWNLOADED_TWICE = "piece downloaded twice"
SEED_DOWNLOADED = "a seed downloaded"
NO_COMPLETION = "no completion line"
COMPLETION_TWICE = "completion line twice"
EARLY_COMPLETION = "completion before the last piece"
DOWNLOAD_AFTER_COMPLETION = "download after the completion line"
HAVE_NOT_DOWNLOADED = "'have' for a piece the sender never downloaded"
SOURCE_LACKED_PIECE = "piece from a peer that never had it"
MISSING_LOG = "missing log"
UNREADABLE_LOG = "unreadable log"
STRAY_LOG = "log for a peer not in PeerInfo.cfg"

RULES_HELP = """\
rules checked (each violation is printed as FILE:LINE: RULE: DETAIL):
  * every line is exactly a SPEC §5 sentence with the time as
    YYYY-MM-DD HH:MM:SS.mmm and the preferred list ascending; a line that is one
    apart from its time format or spacing is reported and still read for the
    rules below, any other line is reported and skipped
  * ID1 of every sentence is the peer whose log it is; every other ID is in
    PeerInfo.cfg and not the writer; piece indexes are below ceil(FileSize/PieceSize)
  * each peer 'makes a connection to' every peer listed before it and 'is
    connected from' every peer listed after it, once each
  * never more than k (NumberOfPreferredNeighbors) preferred neighbors
  * consecutive optimistic-neighbor lines are at least m
    (OptimisticUnchokingInterval) seconds apart, less the slack (--slack)
  * download counts rise by one from 1 and never pass the number of pieces;
    no piece is downloaded twice
  * a seed (hasFile 1) downloads nothing and logs no completion; every other peer
    logs exactly one completion line, once it has downloaded every piece, and
    downloads nothing after it
  * each 'have' from X for piece i matches a 'downloaded the piece i' line in X's
    log (when it is there; a seed never sends one), and each piece downloaded from
    X is one X is a seed for or logged downloading
  * there is a log for every peer of PeerInfo.cfg and for no other

exit status: 0 clean, 1 violations found, 2 usage or configuration error"""

LOG_GLOB = "log_peer_*.log"
_LOG_NAME = re.compile(r"log_peer_(\d+)\.log")
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


# -- the rules, one function each -----------------------------------------------------------


def own_records(log: PeerLog) -> list[Record]:
    """The lines this peer wrote about itself; the others cannot be attributed."""
    return [record for record in log.records if record.event.me == log.peer_id]


def sentences_name_their_writer(log: PeerLog) -> list[Finding]:
    """SPEC §5: ID1 is always the peer writing the log."""
    return [
        Finding(log.file, record.line, WRONG_WRITER,
                f"the sentence is about peer {record.event.me}, in the log of peer {log.peer_id}", log.peer_id)
        for record in log.records
        if record.event.me != log.peer_id
    ]


def ids_and_pieces_exist(log: PeerLog, config: SwarmConfig) -> list[Finding]:
    """Every other ID is a peer of PeerInfo.cfg other than the writer; every index a piece."""
    findings = []
    known = config.peer_ids
    pieces = config.common.num_pieces
    for record in own_records(log):
        event = record.event
        others = event.others if event.kind == "preferred" else ((event.other,) if event.other is not None else ())
        for other in others:
            if other not in known or other == log.peer_id:
                why = "itself" if other == log.peer_id else "a peer not in PeerInfo.cfg"
                findings.append(Finding(log.file, record.line, UNKNOWN_PEER, f"{other} is {why}", log.peer_id))
        if event.index is not None and event.index >= pieces:
            findings.append(Finding(log.file, record.line, PIECE_OUT_OF_RANGE,
                                    f"piece {event.index}; the file has {pieces} pieces (0-{pieces - 1})", log.peer_id))
    return findings


def connections_follow_start_order(log: PeerLog, config: SwarmConfig) -> list[Finding]:
    """SPEC §3: a peer dials every peer listed before it and is dialled by every later one.

    A second connection line for the same neighbour is reported too: the protocol keeps
    one connection per pair, and a restarted peer appending to its log shows up here.
    """
    findings = []
    order = [peer.peer_id for peer in config.peers]
    position = order.index(log.peer_id)
    earlier, later = set(order[:position]), set(order[position + 1:])
    seen: dict[int, int] = {}
    for record in own_records(log):
        event = record.event
        if event.kind not in ("connect_to", "connect_from") or event.other not in config.peer_ids:
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
        if other in seen:
            findings.append(Finding(log.file, record.line, CONNECTION_TWICE,
                                    f"with {other}, first on line {seen[other]} (a restart, or a dropped connection dialled again?)", log.peer_id))
        else:
            seen[other] = record.line
    for other in order:
        if other != log.peer_id and other not in seen:
            expected = "makes a connection to" if other in earlier else "is connected from"
            findings.append(Finding(log.file, None, MISSING_CONNECTION,
                                    f"no 'Peer {log.peer_id} {expected} Peer {other}.'", log.peer_id))
    return findings


def at_most_k_preferred(log: PeerLog, config: SwarmConfig) -> list[Finding]:
    """SPEC §3: k preferred neighbours are chosen each interval, never more."""
    k = config.common.preferred_neighbors
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


def optimistic_changes_every_m_seconds(log: PeerLog, config: SwarmConfig, slack: Optional[float] = None) -> list[Finding]:
    """SPEC §3: the optimistic neighbour is chosen every m seconds, so the lines that log
    a change are at least m seconds apart (less the slack and the stamps' precision)."""
    m = config.common.optimistic_unchoking_interval
    slack = default_slack(m) if slack is None else slack
    findings = []
    previous: Optional[Record] = None
    for record in own_records(log):
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


def download_counts_rise_by_one(log: PeerLog, config: SwarmConfig) -> list[Finding]:
    """SPEC §5: 'Now the number of pieces it has is [count]' -- one more each time, from
    nothing (hasFile 0) up to the number of pieces. A drop (a restarted peer) is reported."""
    if config.peer(log.peer_id).has_file:
        return []  # a seed has no downloads to count; seed_downloads_nothing reports any
    findings = []
    pieces = config.common.num_pieces
    count = 0
    for record in own_records(log):
        event = record.event
        if event.kind != "downloaded" or event.count is None:
            continue
        if event.count != count + 1:
            findings.append(Finding(log.file, record.line, COUNT_NOT_RISING,
                                    f"count {event.count} after {count}; expected {count + 1}", log.peer_id))
        if event.count > pieces:
            findings.append(Finding(log.file, record.line, COUNT_TOO_HIGH,
                                    f"count {event.count}; the file has {pieces} pieces", log.peer_id))
        count = event.count
    return findings


def no_piece_downloaded_twice(log: PeerLog) -> list[Finding]:
    """A peer requests only pieces it lacks (SPEC §3), so each index is downloaded once."""
    findings = []
    first: dict[int, int] = {}
    for record in own_records(log):
        event = record.event
        if event.kind != "downloaded" or event.index is None:
            continue
        if event.index in first:
            findings.append(Finding(log.file, record.line, DOWNLOADED_TWICE,
                                    f"piece {event.index}, first on line {first[event.index]}", log.peer_id))
        else:
            first[event.index] = record.line
    return findings


def seed_downloads_nothing(log: PeerLog, config: SwarmConfig) -> list[Finding]:
    """A seed starts with the whole file: it downloads nothing and never 'completes'."""
    if not config.peer(log.peer_id).has_file:
        return []
    return [
        Finding(log.file, record.line, SEED_DOWNLOADED,
                f"peer {log.peer_id} has hasFile 1 but logged "
                + (f"downloading piece {record.event.index}" if record.event.kind == "downloaded" else "a completion"),
                log.peer_id)
        for record in own_records(log)
        if record.event.kind in ("downloaded", "complete")
    ]


def one_completion_after_last_piece(log: PeerLog, config: SwarmConfig) -> list[Finding]:
    """A peer without the file logs 'has downloaded the complete file' exactly once,
    once it has downloaded every piece, and downloads nothing after it.

    Pieces are counted as distinct indexes downloaded, not by the logged count, so a
    wrong count is reported once (by download_counts_rise_by_one), not here as well.
    """
    if config.peer(log.peer_id).has_file:
        return []
    findings = []
    pieces = config.common.num_pieces
    have: set[int] = set()
    completed_on: Optional[int] = None
    for record in own_records(log):
        event = record.event
        if event.kind == "downloaded" and event.index is not None:
            if completed_on is not None:
                findings.append(Finding(log.file, record.line, DOWNLOAD_AFTER_COMPLETION,
                                        f"piece {event.index} after the completion on line {completed_on}", log.peer_id))
            if event.index < pieces:
                have.add(event.index)
        elif event.kind == "complete":
            if completed_on is not None:
                findings.append(Finding(log.file, record.line, COMPLETION_TWICE,
                                        f"first on line {completed_on}", log.peer_id))
                continue
            completed_on = record.line
            if len(have) != pieces:
                findings.append(Finding(log.file, record.line, EARLY_COMPLETION,
                                        f"{len(have)} of {pieces} pieces downloaded so far", log.peer_id))
    if completed_on is None:
        findings.append(Finding(log.file, None, NO_COMPLETION,
                                f"peer {log.peer_id} has hasFile 0 and downloaded {len(have)} of {pieces} pieces",
                                log.peer_id))
    return findings


def downloaded_pieces(log: PeerLog) -> set[int]:
    return {r.event.index for r in own_records(log) if r.event.kind == "downloaded" and r.event.index is not None}


def haves_match_downloads(log: PeerLog, config: SwarmConfig, downloads: dict[int, set[int]]) -> list[Finding]:
    """SPEC §3: a peer sends 'have' after each piece it completes, so a 'have' from X for
    piece i needs X's line 'downloaded the piece i'. ``downloads`` holds the pieces of the
    peers whose logs are there; a seed never downloads, so it never sends 'have'."""
    findings = []
    for record in own_records(log):
        event = record.event
        if event.kind != "have" or event.other not in config.peer_ids or event.other == log.peer_id:
            continue
        sender = event.other
        if config.peer(sender).has_file:
            findings.append(Finding(log.file, record.line, HAVE_NOT_DOWNLOADED,
                                    f"{sender} is a seed (hasFile 1) and downloads nothing, "
                                    f"yet sent 'have' for piece {event.index}", log.peer_id))
        elif sender in downloads and event.index not in downloads[sender]:
            findings.append(Finding(log.file, record.line, HAVE_NOT_DOWNLOADED,
                                    f"log_peer_{sender}.log never downloads piece {event.index}", log.peer_id))
    return findings


def sources_had_the_piece(log: PeerLog, config: SwarmConfig, downloads: dict[int, set[int]]) -> list[Finding]:
    """SPEC §3: a peer answers a request only for a piece it has, so a piece downloaded
    from X is one X is a seed for or logged downloading (when X's log is there)."""
    findings = []
    for record in own_records(log):
        event = record.event
        if event.kind != "downloaded" or event.other not in config.peer_ids or event.other == log.peer_id:
            continue
        source = event.other
        if not config.peer(source).has_file and source in downloads and event.index not in downloads[source]:
            findings.append(Finding(log.file, record.line, SOURCE_LACKED_PIECE,
                                    f"piece {event.index} from {source}, whose log never downloads it "
                                    f"and which is not a seed", log.peer_id))
    return findings


# -- the whole audit ------------------------------------------------------------------------


@dataclass
class AuditResult:
    """Everything :func:`main` prints: findings in file order and the logs they are about."""

    config: SwarmConfig
    logs: dict[int, PeerLog]
    findings: list[Finding]

    def for_peer(self, peer_id: Optional[int]) -> list[Finding]:
        return [finding for finding in self.findings if finding.peer == peer_id]

    @property
    def clean(self) -> bool:
        return not self.findings


def find_logs(work_dir: Path) -> tuple[dict[int, Path], list[Path]]:
    """(log path by peer ID, files named like logs whose name carries no peer ID)."""
    by_id: dict[int, Path] = {}
    odd: list[Path] = []
    for path in sorted(work_dir.glob(LOG_GLOB)):
        match = _LOG_NAME.fullmatch(path.name)
        if match:
            by_id[int(match[1])] = path
        else:
            odd.append(path)
    return by_id, odd


def audit(work_dir: Path, config: SwarmConfig, slack: Optional[float] = None) -> AuditResult:
    """Read every log of ``work_dir`` and apply every rule; never raises on log content."""
    paths, odd = find_logs(work_dir)
    logs: dict[int, PeerLog] = {}
    for peer in config.peers:
        path = paths.get(peer.peer_id)
        logs[peer.peer_id] = read_log(path, peer.peer_id) if path is not None else missing_log(peer.peer_id)
    downloads = {peer_id: downloaded_pieces(log) for peer_id, log in logs.items() if log.present}
    findings: list[Finding] = []
    for peer_id, log in logs.items():
        found = list(log.findings)
        if log.present:
            found += sentences_name_their_writer(log)
            found += ids_and_pieces_exist(log, config)
            found += connections_follow_start_order(log, config)
            found += at_most_k_preferred(log, config)
            found += optimistic_changes_every_m_seconds(log, config, slack)
            found += download_counts_rise_by_one(log, config)
            found += no_piece_downloaded_twice(log)
            found += seed_downloads_nothing(log, config)
            found += one_completion_after_last_piece(log, config)
            found += haves_match_downloads(log, config, downloads)
            found += sources_had_the_piece(log, config, downloads)
        found.sort(key=lambda finding: math.inf if finding.line is None else finding.line)
        findings += found
    stray = [path for peer_id, path in paths.items() if peer_id not in config.peer_ids] + odd
    for path in stray:
        findings.append(Finding(path.name, None, STRAY_LOG, "the audit does not read it", None))
    return AuditResult(config, logs, findings)


def verdict(result: AuditResult, peer_id: int) -> str:
    """One line for one peer: OK with what it achieved, or how many violations."""
    log = result.logs[peer_id]
    pieces = result.config.common.num_pieces
    count = len({index for index in downloaded_pieces(log) if index < pieces})
    complete = any(record.event.kind == "complete" for record in own_records(log))
    if result.config.peer(peer_id).has_file:
        state = f"seed, {pieces} pieces"
    elif complete and count == pieces:
        state = f"{pieces} pieces, complete"
    elif complete:
        state = f"{count} of {pieces} pieces, logged complete"
    else:
        state = f"{count} of {pieces} pieces, incomplete"
    found = len(result.for_peer(peer_id))
    if not found:
        return f"peer {peer_id}: OK ({state})"
    return f"peer {peer_id}: {found} violation{'s' if found != 1 else ''} ({state})"


def report(result: AuditResult, limit: int) -> list[str]:
    """The printed lines: findings (at most ``limit`` per file and rule, 0 for all), then
    a verdict per peer, then one final line."""
    lines: list[str] = []
    by_file: dict[str, list[Finding]] = defaultdict(list)
    for finding in result.findings:  # already in file order
        by_file[finding.file].append(finding)
    for file, findings in by_file.items():
        shown: dict[str, int] = defaultdict(int)
        for finding in findings:
            shown[finding.rule] += 1
            if not limit or shown[finding.rule] <= limit:
                lines.append(str(finding))
        for rule, total in shown.items():
            if limit and total > limit:
                lines.append(f"{file}: {rule}: {total - limit} more not shown (--limit 0 shows all)")
    for peer in result.config.peers:
        lines.append(verdict(result, peer.peer_id))
    peers = len(result.config.peers)
    if result.clean:
        lines.append(f"audit: clean: {peers} peers followed the protocol")
    else:
        bad = {finding.peer for finding in result.findings}
        lines.append(
            f"audit: {len(result.findings)} violation{'s' if len(result.findings) != 1 else ''}"
            f" ({len(bad - {None})} of {peers} peers"
            + (", and logs of peers not in PeerInfo.cfg" if None in bad else "")
            + ")"
        )
    return lines


# -- command line ---------------------------------------------------------------------------


def choose_config_dir(work_dir: Path, given: Optional[str]) -> tuple[Path, str]:
    """(config dir, why): as given, else WORK_DIR if it holds Common.cfg, else ./conf if
    it exists, else the current directory -- the places a swarm's config usually is."""
    if given is not None:
        return Path(given), "--config-dir"
    if (work_dir / COMMON_CFG).is_file():
        return work_dir, "WORK_DIR holds Common.cfg"
    if Path("conf").is_dir():
        return Path("conf"), "./conf exists"
    return Path("."), "the current directory"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="p2p-swarm audit",
        description="Check the event logs (log_peer_*.log) of a finished swarm against the "
        "P2PFILESHARINGPROJ protocol, using its Common.cfg and PeerInfo.cfg.",
        epilog=RULES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("work_dir", metavar="WORK_DIR", help="the directory the peers ran in (holds the logs)")
    parser.add_argument("--config-dir", metavar="DIR",
                        help="directory with Common.cfg and PeerInfo.cfg "
                        "[default: WORK_DIR if it holds Common.cfg, else ./conf if it exists, else .]")
    parser.add_argument("--slack", type=float, metavar="SECONDS",
                        help="timing slack for the optimistic interval [default: the larger of 0.5 s and 10%% of m]")
    parser.add_argument("--limit", type=int, default=20, metavar="N",
                        help="print at most N findings per file and rule, 0 for all [default: 20]")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the audit; 0 when clean, 1 with violations, 2 for usage or config errors."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else 2
    work_dir = Path(args.work_dir)
    if not work_dir.is_dir():
        print(f"p2p-swarm audit: {work_dir}: not a directory", file=sys.stderr)
        return 2
    if args.limit < 0 or (args.slack is not None and args.slack < 0):
        print("p2p-swarm audit: --limit and --slack must not be negative", file=sys.stderr)
        return 2
    config_dir, why = choose_config_dir(work_dir, args.config_dir)
    try:
        config = load(config_dir)
    except ConfigError as exc:
        print(f"p2p-swarm audit: {exc}", file=sys.stderr)
        return 2
    print(f"auditing {work_dir} with the config in {config_dir} ({why}): "
          f"{len(config.peers)} peers, {config.common.num_pieces} pieces")
    result = audit(work_dir, config, args.slack)
    for line in report(result, args.limit):
        print(line)
    return 0 if result.clean else 1

