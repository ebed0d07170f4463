"""Ours against libtorrent in one case: runs alternated (ours, libtorrent, ours, ...) so
the machine's load falls on both alike, each figure as the median and range of the runs,
and each ratio taken pair by pair (run i of ours over run i of libtorrent).

CPU is per GiB delivered (the leechers' bytes): ours is every peer process's user +
system time over its whole life (os.wait4), start-up included; libtorrent's is its one
process's over the sessions' lives (getrusage), the torrent's creation left out.
"""
from __future__ import annotations

import statistics
from collections.abc import Callable

from bench.common import log

GiB = 1 << 30


def status(result: dict) -> str:
    """One run, as the progress log says it."""
    text = "ok" if result.get("ok", True) else f"FAILED: {result.get('failure')}"
    if result.get("transfer_s") is not None:
        text += (f", transfer {result['transfer_s']:.2f} s, start-up {result['startup_s']:.2f} s, "
                 f"from start {result['time_to_last_complete_s']:.2f} s")
    if result.get("cpu_s_per_gib") is not None:
        text += f", {result['cpu_s_per_gib']:.2f} CPU s/GiB"
    return text


def cpu_per_gib(run: dict, delivered_bytes: int) -> float | None:
    """CPU seconds (``cpu_s_total``) per GiB delivered, for a run that finished."""
    if not run.get("ok", True) or run.get("cpu_s_total") is None or delivered_bytes <= 0:
        return None
    return run["cpu_s_total"] / (delivered_bytes / GiB)


def alternate(repeats: int, ours: Callable[[], dict], theirs: Callable[[], dict] | None, what: str,
              delivered_bytes: int) -> tuple[list[dict], list[dict]]:
    """``repeats`` runs of ours, each followed by one of theirs (if any); each run gets
    its ``cpu_s_per_gib``."""
    our_runs: list[dict] = []
    their_runs: list[dict] = []
    for attempt in range(repeats):
        for runs, once, who in ((our_runs, ours, ""), (their_runs, theirs, " libtorrent")):
            if once is None:
                continue
            result = once()
            result["cpu_s_per_gib"] = cpu_per_gib(result, delivered_bytes)
            log(f"  {what}{who} run {attempt + 1}/{repeats}: {status(result)}")
            runs.append(result)
    return our_runs, their_runs


def spread(values: list[float | None]) -> dict | None:
    """Median, lowest and highest of the values given (None: none given)."""
    present = [value for value in values if value is not None]
    if not present:
        return None
    return {"median": statistics.median(present), "low": min(present), "high": max(present), "n": len(present)}


def of(runs: list[dict], key: str) -> dict | None:
    """The spread of ``key`` over the runs that finished."""
    return spread([run.get(key) for run in runs if run.get("ok", True)])


def paired(ours: list[dict], theirs: list[dict], key: str) -> dict | None:
    """The spread of ours/theirs for ``key``, pair by pair (a pair with a failed or
    missing side is left out)."""
    ratios: list[float | None] = []
    for mine, other in zip(ours, theirs):
        a = mine.get(key) if mine.get("ok", True) else None
        b = other.get(key) if other.get("ok", True) else None
        ratios.append(a / b if a is not None and b else None)
    return spread(ratios)


def libtorrent_figures(ours: list[dict], theirs: list[dict]) -> dict:
    """What a swarm row says of libtorrent: its medians, the spreads and the paired ratios."""
    return {
        "libtorrent_s": _median(of(theirs, "time_to_last_complete_s")),  # from its first session
        "libtorrent_startup_s": _median(of(theirs, "startup_s")),
        "libtorrent_transfer_s": _median(of(theirs, "transfer_s")),
        "libtorrent_transfer": of(theirs, "transfer_s"),
        "libtorrent_share_before_all_connected": _median(of(theirs, "share_before_all_connected")),
        "libtorrent_cpu_s_per_gib": of(theirs, "cpu_s_per_gib"),
        # its CPU from every pair connected to the last seeding, per GiB delivered
        "libtorrent_cpu_s_per_gib_transfer": spread([
            run["cpu_s_transfer"] / (run["delivered_bytes"] / GiB) for run in theirs
            if run.get("ok") and run.get("cpu_s_transfer") is not None and run.get("delivered_bytes")]),
        "ratio_to_libtorrent": _median(paired(ours, theirs, "transfer_s")),
        "transfer_ratio": paired(ours, theirs, "transfer_s"),
        "from_spawn_ratio": paired(ours, theirs, "time_to_last_complete_s"),
        "cpu_ratio": paired(ours, theirs, "cpu_s_per_gib"),
    }


def _median(found: dict | None) -> float | None:
    return found["median"] if found else None
