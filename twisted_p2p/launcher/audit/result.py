"""The whole audit: read every log, run every rule, and the lines that are printed."""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from twisted_p2p.config import SwarmConfig
from twisted_p2p.layout import EVENT_LOG_GLOB, event_log_peer

from .reading import STRAY_LOG, Finding, Note, PeerLog, missing_log, read_log
from .required import course_sentence, is_required
from .rules import RULES, AuditedSwarm, ends_complete
from .sessions import Session, pieces_held


@dataclass
class AuditResult:
    """Everything :func:`main` prints: the violations (findings of rules the course
    requires) and the advice (findings of our choices), each in file order, the logs they
    are about, the sessions of each log that is there, and a note for each restart."""

    config: SwarmConfig
    logs: dict[int, PeerLog]
    findings: list[Finding]
    sessions: dict[int, list[Session]]
    notes: list[Note]
    advice: list[Finding] = field(default_factory=list)

    def for_peer(self, peer_id: int | None) -> list[Finding]:
        """The violations counted against ``peer_id`` (None: logs of no peer of PeerInfo.cfg)."""
        return [finding for finding in self.findings if finding.peer == peer_id]

    def advice_for(self, peer_id: int | None) -> list[Finding]:
        return [finding for finding in self.advice if finding.peer == peer_id]

    @property
    def clean(self) -> bool:
        return not self.findings


def find_logs(work_dir: Path) -> tuple[dict[int, Path], list[Path]]:
    """(log path by peer ID, files named like logs whose name carries no peer ID)."""
    by_id: dict[int, Path] = {}
    odd: list[Path] = []
    for path in sorted(work_dir.glob(EVENT_LOG_GLOB)):
        peer_id = event_log_peer(path.name)
        if peer_id is not None:
            by_id[peer_id] = path
        else:
            odd.append(path)
    return by_id, odd


def audit(work_dir: Path, config: SwarmConfig, slack: float | None = None) -> AuditResult:
    """Read every log of ``work_dir`` and apply every rule; never raises on log content."""
    paths, odd = find_logs(work_dir)
    logs: dict[int, PeerLog] = {}
    for peer in config.peers:
        path = paths.get(peer.peer_id)
        logs[peer.peer_id] = read_log(path, peer.peer_id) if path is not None else missing_log(peer.peer_id)
    swarm = AuditedSwarm.of(config, logs, slack)
    findings: list[Finding] = []
    for log in logs.values():
        found = list(log.findings)
        if log.present:
            for check in RULES:
                found += check(log, swarm)
        found.sort(key=lambda finding: math.inf if finding.line is None else finding.line)
        findings += found
    stray = [path for peer_id, path in paths.items() if peer_id not in config.peer_ids] + odd
    for path in stray:
        findings.append(Finding(path.name, None, STRAY_LOG, "the audit does not read it", None))
    notes = [restart_note(logs[peer_id], session, config)
             for peer_id, sessions in swarm.sessions.items() for session in sessions[1:]]
    return AuditResult(config, logs, [f for f in findings if is_required(f)], swarm.sessions, notes,
                       [f for f in findings if not is_required(f)])


def restart_note(log: PeerLog, session: Session, config: SwarmConfig) -> Note:
    """'peer N restarted (new session) with C pieces (why)' at the session's first line."""
    if config.peer(log.peer_id).has_file:
        held = " as a seed"
    elif session.resumed is None:
        held = " and logged no download"
    else:
        held = f" with {session.resumed} pieces"
    return Note(log.file, session.records[0].line,
                f"peer {log.peer_id} restarted (new session){held} ({session.evidence})", log.peer_id)


def verdict(result: AuditResult, peer_id: int) -> str:
    """One line for one peer: OK with what it achieved, or how many violations."""
    pieces = result.config.common.num_pieces
    sessions = result.sessions.get(peer_id, [])
    count = pieces_held(sessions, pieces)
    complete = ends_complete(sessions)
    if result.config.peer(peer_id).has_file:
        state = f"seed, {pieces} pieces"
    elif complete and count == pieces:
        state = f"{pieces} pieces, complete"
    elif complete:
        state = f"{count} of {pieces} pieces, logged complete"
    else:
        state = f"{count} of {pieces} pieces, incomplete"
    if len(sessions) > 1:
        state += f"; restarted {'once' if len(sessions) == 2 else f'{len(sessions) - 1} times'}"
    found, advised = len(result.for_peer(peer_id)), len(result.advice_for(peer_id))
    said = f"{found} violation{'s' if found != 1 else ''}" if found else "OK"
    if advised:
        said += f", {advised} advice"
    return f"peer {peer_id}: {said} ({state})"


def _place(item: Finding | Note) -> tuple[float, bool]:
    """Line order, the restart note first on its line, findings without a line last."""
    return (math.inf if item.line is None else item.line, isinstance(item, Finding))


def _shown(finding: Finding) -> str:
    """A violation as ``file:line: rule: detail``; advice says it is advice after the place."""
    if is_required(finding):
        return str(finding)
    where = finding.file if finding.line is None else f"{finding.file}:{finding.line}"
    return f"{where}: advice: {finding.rule}: {finding.detail}"


def report(result: AuditResult, limit: int) -> list[str]:
    """The printed lines: findings (at most ``limit`` per file and rule, 0 for all) and
    restart notes in file and line order, then the course's words for each rule broken,
    a verdict per peer, and one final line that counts violations and advice apart."""
    lines: list[str] = []
    by_file: dict[str, list[Finding | Note]] = defaultdict(list)
    for item in result.findings + result.advice + result.notes:
        by_file[item.file].append(item)
    rank = {log.file: number for number, log in enumerate(result.logs.values())}  # PeerInfo order, strays last
    for file, items in sorted(by_file.items(), key=lambda pair: rank.get(pair[0], len(rank))):
        shown: dict[str, int] = defaultdict(int)
        for item in sorted(items, key=_place):
            if isinstance(item, Note):
                lines.append(str(item))
                continue
            shown[item.rule] += 1
            if not limit or shown[item.rule] <= limit:
                lines.append(_shown(item))
        for rule, total in shown.items():
            if limit and total > limit:
                kind = "" if course_sentence(rule) else "advice: "
                lines.append(f"{file}: {kind}{rule}: {total - limit} more not shown (--limit 0 shows all)")
    for rule in dict.fromkeys(finding.rule for finding in result.findings):
        lines.append(f"{rule}: required by the course: {course_sentence(rule)}")
    for peer in result.config.peers:
        lines.append(verdict(result, peer.peer_id))
    peers, advice = len(result.config.peers), len(result.advice)
    advised = f"; {advice} advice (our choices, not the course's: they do not fail the audit)" if advice else ""
    if result.clean:
        lines.append(f"audit: clean: {peers} peers followed the protocol{advised}")
    else:
        bad = {finding.peer for finding in result.findings}
        lines.append(
            f"audit: {len(result.findings)} violation{'s' if len(result.findings) != 1 else ''}"
            f" ({len(bad)} of {peers} peers){advised}"
        )
    return lines
