"""A run's report: each peer's result, the summary table, swarm-report.json and the plot
(``run`` and ``push`` write it; :mod:`twisted_p2p.launcher.runpage` is its HTML page)."""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted_p2p.launcher.progress import PeerProgress
from twisted_p2p.storage import file_sha256

REPORT_JSON = "swarm-report.json"
REPORT_PNG = "swarm-report.png"


def sha256_file(path: Path) -> str | None:
    """The file's SHA-256 in hex, or None when it cannot be read here."""
    try:
        return file_sha256(path)
    except OSError:
        return None


@dataclass
class PeerResult:
    """How one peer ended: its progress, its exit status and whether its file is right.

    ``exit_status`` is the exit code, minus the signal number if it was killed, or None
    if it never ran. ``sha256_ok`` is None when the file is not on this machine.
    """

    progress: PeerProgress
    exit_status: int | None
    sha256_ok: bool | None

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and self.sha256_ok is not False and self.progress.completed_at is not None


def describe_status(status: int | None) -> str:
    if status is None:
        return "not run"
    if status < 0:
        return f"signal {-status}"
    return str(status)


def file_verdict(ok: bool | None, seed: bool, completed: bool) -> str:
    """The file check in a word: a leecher stopped before it completed has an incomplete
    file, not a wrong one; 'WRONG' is a complete file that differs from the seed's."""
    if ok is None:
        return "not here"
    if ok:
        return "ok"
    return "WRONG" if seed or completed else "incomplete"


def summary_table(results: Iterable[PeerResult]) -> list[str]:
    """Per peer: time to complete, pieces received from each neighbour, exit status, file check."""
    rows = [("peer", "host", "exit", "complete", "file", "pieces received from")]
    for result in results:
        progress = result.progress
        if progress.seed:
            complete = "seed"
        elif progress.completed_at is None:
            complete = "no"
        else:
            complete = f"{progress.completed_at:.2f} s"
        check = file_verdict(result.sha256_ok, progress.seed, progress.completed_at is not None)
        received = " ".join(f"{other}:{count}" for other, count in sorted(progress.received_from.items())) or "-"
        rows.append(
            (str(progress.peer_id), progress.host, describe_status(result.exit_status), complete, check, received)
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1] for row in rows]


def build_report(
    results: list[PeerResult], outcome: str, exit_code: int, duration: float, file_info: dict[str, Any]
) -> dict[str, Any]:
    """The JSON-ready report: the summary per peer and each peer's timeline of pieces held."""
    return {
        "outcome": outcome,
        "exit_code": exit_code,
        "duration": round(duration, 3),
        "file": file_info,
        "peers": [
            {
                "id": result.progress.peer_id,
                "host": result.progress.host,
                "seed": result.progress.seed,
                "exit_status": result.exit_status,
                "seconds_to_complete": None
                if result.progress.completed_at is None
                else round(result.progress.completed_at, 3),
                "received_from": {str(other): count for other, count in sorted(result.progress.received_from.items())},
                "sha256_ok": result.sha256_ok,
            }
            for result in results
        ],
        "timeline": {
            str(result.progress.peer_id): [[round(t, 3), held] for t, held in result.progress.timeline]
            for result in results
        },
        "unchoked_timeline": {
            str(result.progress.peer_id): [[round(t, 3), count] for t, count in result.progress.unchoke_timeline]
            for result in results
        },
    }


def write_report(report: dict[str, Any], work_dir: Path) -> Path:
    path = work_dir / REPORT_JSON
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return path


def write_plot(report: dict[str, Any], work_dir: Path) -> Path | None:
    """swarm-report.png, the drawing of :func:`plot_figure`, or None when matplotlib
    (the ``plot`` extra) is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    path = work_dir / REPORT_PNG
    plot_figure(report).savefig(path)
    return path


def plot_figure(report: dict[str, Any]) -> Any:
    """The report's plot as a matplotlib Figure (needs matplotlib), one step line per peer.

    Top: pieces held per peer over time. Bottom, on the same time axis: how many
    neighbours unchoke each peer, so choked periods show as drops to zero. The figure
    is not registered with pyplot, so nothing needs closing.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 7))
    pieces, unchoked = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    for peer_id, points in report["timeline"].items():
        line = pieces.step(*_extend(points, report["duration"]), where="post", label=f"peer {peer_id}")
        unchoke_points = report["unchoked_timeline"][peer_id]
        unchoked.step(*_extend(unchoke_points, report["duration"]), where="post", color=line[0].get_color())
    pieces.set_ylabel("pieces held")
    pieces.set_title(f"{report['file']['name']}: {report['file']['pieces']} pieces, outcome {report['outcome']}")
    pieces.legend(loc="lower right")
    unchoked.set_ylabel("unchoked by")
    unchoked.set_xlabel("seconds since start")
    figure.tight_layout()
    return figure


def _extend(points: list[list[float]], end: float) -> tuple[list[float], list[float]]:
    """x and y lists with the last value held until ``end``, so a step plot reaches the end."""
    xs = [point[0] for point in points] + [max(end, points[-1][0])]
    ys = [point[1] for point in points] + [points[-1][1]]
    return xs, ys
