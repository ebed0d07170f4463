"""The whole audit: read every log, run every rule, and the lines that are printed."""
from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from twisted_p2p.config import SwarmConfig

from .reading import Finding, PeerLog, missing_log, own_records, read_log
from .rules import RULES, Swarm, downloaded_pieces

STRAY_LOG = "log for a peer not in PeerInfo.cfg"
LOG_GLOB = "log_peer_*.log"
_LOG_NAME = re.compile(r"log_peer_(\d+)\.log")



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
    swarm = Swarm(config, logs, slack, downloads)
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
