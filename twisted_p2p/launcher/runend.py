"""The end of ``p2p-swarm run``: no peer left on other hosts, every file checked, the
summary printed, the reports written, and the exit status."""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import TextIO

from twisted_p2p.config import SwarmConfig
from twisted_p2p.launcher.audit import audit
from twisted_p2p.launcher.display import Display
from twisted_p2p.launcher.progress import PeerProgress
from twisted_p2p.launcher.reactorrun import RunState
from twisted_p2p.launcher.remote import Hosts
from twisted_p2p.launcher.runpage import write_html_report
from twisted_p2p.launcher.runreport import (
    PeerResult,
    build_report,
    sha256_file,
    summary_table,
    write_plot,
    write_report,
)
from twisted_p2p.layout import data_path, event_log_path

EXIT_CODES = {"finished": 0, "failed": 1, "timeout": 124, "interrupted": 130, "terminated": 143}
AUDIT_LIMIT = 20_000_000  # bytes of logs the end of a run audits for the report (about 1.5 s)


def check_files(config: SwarmConfig, work_dir: Path, local_ids: set[int], statuses: dict[int, int | None],
                progress: dict[int, PeerProgress]) -> tuple[list[PeerResult], str | None]:
    """Each peer's result, its file compared with the first seed file readable here.

    A remote peer's file is checked when it is in the work dir too (a shared
    filesystem), else by the SHA-256 it printed when it finished; with neither, its
    check is None ("not here"), not a failure.
    """
    name = config.common.file_name
    seeds = [data_path(work_dir, peer.peer_id, name) for peer in config.peers if peer.has_file]
    reported = [progress[peer.peer_id].reported_sha256 for peer in config.peers if peer.has_file]
    expected = next((d for d in itertools.chain(map(sha256_file, seeds), reported) if d is not None), None)
    results = []
    for peer in config.peers:
        digest = sha256_file(data_path(work_dir, peer.peer_id, name))
        if digest is None and peer.peer_id not in local_ids:
            digest = progress[peer.peer_id].reported_sha256
        if digest is None:
            ok = False if peer.peer_id in local_ids else None
        else:
            ok = digest == expected
        results.append(PeerResult(progress[peer.peer_id], statuses.get(peer.peer_id), ok))
    return results, expected


def auditable(work_dir: Path, config: SwarmConfig) -> bool:
    """Whether the report includes the audit: every log is here (those of other hosts
    fetched), and they are small enough to read at once (32 peers on 20 MB write 100 MB
    of logs: 13 s of reading)."""
    total = 0
    for peer_id in config.peer_ids:
        try:
            total += event_log_path(work_dir, peer_id).stat().st_size
        except OSError:
            return False
    return total <= AUDIT_LIMIT


def stopped_everywhere(remote: Hosts, work_dir: Path, display: Display) -> bool:
    """Whether no peer is left running on the other hosts (each one left is said); if
    none is, their event logs are fetched into ``work_dir`` for the audit."""
    left = remote.make_sure_stopped()
    if left:
        for host, peer_ids in left.items():
            display.say(f"still running on {host}: peer {', '.join(map(str, peer_ids))}; stop it by hand")
        return False
    count = sum(len(host.peers) for host in remote.hosts.values())
    display.say(f"checked over ssh: none of the {count} peers started on "
                f"{len(remote.hosts)} other host{'s' if len(remote.hosts) != 1 else ''} is running")
    fetched = remote.fetch_logs(work_dir)
    if fetched:
        display.say(f"fetched the event logs of peer{'s' if len(fetched) != 1 else ''} "
                    f"{', '.join(map(str, fetched))} from their hosts into {work_dir}, for the audit "
                    "and its rubric")
    return True


def conclude(config: SwarmConfig, work_dir: Path, run: RunState, remote: Hosts, stdout: TextIO) -> int:
    """After the run: no peer left on other hosts, every file checked, the summary and the
    reports written; the exit status."""
    outcome = run.outcome
    if remote.hosts and not stopped_everywhere(remote, work_dir, run.display):
        outcome = "failed"
    swarm = run.swarm
    statuses = {process.launch.peer.peer_id: process.status for process in swarm.processes}
    local_ids = {launch.peer.peer_id for launch in swarm.launches if launch.tail}
    results, expected = check_files(config, work_dir, local_ids, statuses, run.progress)
    if outcome == "finished" and not all(result.ok for result in results):
        outcome = "failed"
    code = EXIT_CODES[outcome]
    print("", file=stdout)
    for line in summary_table(results):
        print(line, file=stdout)
    file_info = {"name": config.common.file_name, "size": config.common.file_size,
                 "pieces": config.common.num_pieces, "sha256": expected}
    report = build_report(results, outcome, code, run.duration, file_info)
    write_reports(config, work_dir, report, run.progress, stdout)
    verdict = "every peer has the seed's file" if code == 0 else f"not verified ({outcome})"
    print(f"swarm {outcome} in {run.duration:.1f} s: {verdict}; exit {code}", file=stdout)
    return code


def write_reports(config: SwarmConfig, work_dir: Path, report: dict, progress: dict[int, PeerProgress],
                  stdout: TextIO) -> None:
    """swarm-report.json, the HTML page (with the audit when it is quick) and the PNG
    plot (with the 'plot' extra) in ``work_dir``, each said where it went."""
    print(f"report: {write_report(report, work_dir)}", file=stdout)
    checked = audit(work_dir, config) if auditable(work_dir, config) else None
    print(f"html report: {write_html_report(work_dir, report, progress, config, checked)}", file=stdout)
    plot = write_plot(report, work_dir)
    if plot is None:
        print("png plot skipped: matplotlib is not installed (pip install .[plot]); the html report has the plot",
              file=stdout)
    else:
        print(f"plot: {plot}", file=stdout)
