"""The latency case of ``python -m bench``: the swarm and the data plane with a round trip.

On loopback a round trip costs microseconds, so a protocol that waits for one per piece
looks as fast as one that does not. Here every peer is reached through a relay
(bench/netrelay.py, in its own process) that delays each chunk by D ms each way, at
D = 0, 10 and 25 ms (``--delays``):

- the 1+5 swarm (20 MiB, 16 KiB pieces, k=5, 1 s intervals): ours plain, ours with the
  pipelining extension, and libtorrent through the same relays;
- one seed to one leecher, 20 MiB at 16 KiB and 256 KiB pieces, plain and pipelined.
"""
from __future__ import annotations

import functools
import statistics

from bench import common, swarm
from bench.netrelay import RelayProcess
from bench.procs import free_ports

MiB = 1 << 20
KiB = 1 << 10
DELAYS_MS = (0.0, 10.0, 25.0)
FILE_SIZE = 20 * MiB
SWARM_PIECE = 16 * KiB
ONE_TO_ONE_PIECES = (16 * KiB, 256 * KiB)
#: Generous: one seed to one leecher on the plain protocol pays a round trip per piece
#: (1280 pieces x 50 ms at 25 ms each way is 64 s before any load on the machine).
TIMEOUT_S = 300.0

METHOD = ("latency: every peer reached through a relay in its own process that delays each chunk it reads by D ms "
          "each way (a FIFO per direction, buffering unbounded, the end of a stream delayed too); each peer has its "
          "own PeerInfo.cfg with its own real port and the relay's port for every other peer; libtorrent's sessions "
          "connect to the same relays; the relay dials a peer not yet listening again every 10 ms instead of "
          "refusing its caller; timed as in swarm (transfer = every pair connected -> last leecher complete), "
          "median of the runs with the range; depth = requests in flight per neighbour as the peers log it "
          "(— when they do not); relayed = MiB the relay forwarded, both ways")


def _libtorrent_relayed(args: dict, delay_ms: float) -> dict:
    """libtorrent's sessions on ports chosen here, each reached through the relay."""
    ports = free_ports(args["leechers"] + 1)
    with RelayProcess(ports, delay_ms) as relay:
        result = common.run_libtorrent(dict(args, ports=ports, connect_ports=relay.ports))
    result["relayed"] = relay.summary
    return result


def _relayed_mib(run: dict) -> float | None:
    relayed = run.get("relayed")
    return relayed["bytes"] / MiB if relayed else None


def summarise(runs: list[dict]) -> dict:
    """The median and range of the runs that finished, and what the peers logged of their depth."""
    good = [run for run in runs if run.get("ok")]
    transfers = [run["transfer_s"] for run in good if run.get("transfer_s") is not None]
    depths = [depth for run in good for depth in (run.get("pipeline_depths") or [])]
    highest = [run["pipeline_highest"] for run in good if run.get("pipeline_highest") is not None]
    relayed = [mib for mib in map(_relayed_mib, good) if mib is not None]
    return {
        "runs": len(runs),
        "ok_runs": len(good),
        "failures": [run.get("failure") for run in runs if not run.get("ok")],
        "transfer_s": statistics.median(transfers) if transfers else None,
        "transfer_s_runs": transfers,
        "startup_s": common.median_of(runs, "startup_s"),
        "time_to_last_complete_s": common.median_of(runs, "time_to_last_complete_s"),
        "cpu_s_total": common.median_of(runs, "cpu_s_total"),
        "peak_rss_mib_max": max((run["peak_rss_mib_max"] for run in good if run.get("peak_rss_mib_max")), default=None),
        # hook for the peers' own report of their depth: None until they log DEPTH_LINE
        "pipeline_depth": statistics.median(depths) if depths else None,
        "pipeline_highest": max(highest) if highest else None,
        "relayed_mib": statistics.median(relayed) if relayed else None,
    }


def _ours(path: str, delay_ms: float, piece: int, leechers: int, pipeline: int, repeats: int) -> dict:
    what = (f"latency {delay_ms:g} ms: 1+{leechers}, {piece // KiB} KiB, "
            + (f"pipeline {pipeline}" if pipeline else "plain"))
    common.log(what)
    spec = swarm.SwarmSpec(path, piece, leechers, preferred=5 if leechers > 1 else 1, pipeline=pipeline,
                           timeout=TIMEOUT_S, delay_ms=delay_ms)
    runs = common.repeat(repeats, lambda: swarm.run(spec), what)
    return dict(summarise(runs), who="ours", pipeline=pipeline)


def case_latency(files: common.Files, repeats: int, delays: tuple[float, ...], depth: int,
                 lt_version: str | None) -> dict:
    """Every delay: the swarm (plain, pipelined, libtorrent), then one seed to one leecher."""
    common.log(METHOD)
    path = files.get(FILE_SIZE)
    swarm_rows, one_to_one_rows = [], []
    for delay in delays:
        base = {"delay_ms": delay, "file_mib": FILE_SIZE // MiB}
        rows = [dict(base, peers=6, piece_kib=SWARM_PIECE // KiB,
                     **_ours(path, delay, SWARM_PIECE, 5, pipeline, repeats)) for pipeline in (0, depth)]
        if lt_version:
            what = f"latency {delay:g} ms: 1+5, {SWARM_PIECE // KiB} KiB, libtorrent {lt_version}"
            common.log(what)
            args = {"file": path, "piece_size": SWARM_PIECE, "leechers": 5, "timeout": TIMEOUT_S}
            runs = common.repeat(repeats, functools.partial(_libtorrent_relayed, args, delay), what)
            rows.append(dict(base, peers=6, piece_kib=SWARM_PIECE // KiB, who="libtorrent", pipeline=None,
                             **summarise(runs)))
        reference = rows[2]["transfer_s"] if lt_version else None
        for row in rows:
            row["ratio_to_libtorrent"] = common.ratio(row["transfer_s"], reference)
        swarm_rows += rows
        for piece in ONE_TO_ONE_PIECES:
            plain, pipelined = (dict(base, peers=2, piece_kib=piece // KiB,
                                     **_ours(path, delay, piece, 1, pipeline, repeats))
                                for pipeline in (0, depth))
            plain["ratio_to_plain"] = 1.0
            pipelined["ratio_to_plain"] = common.ratio(pipelined["transfer_s"], plain["transfer_s"])
            one_to_one_rows += [plain, pipelined]
    return {"statistic": f"median of {repeats}", "delays_ms": list(delays), "pipeline": depth,
            "swarm": swarm_rows, "one_to_one": one_to_one_rows}


def _spread(row: dict) -> str:
    runs = row["transfer_s_runs"]
    return f" ({min(runs):.2f}–{max(runs):.2f})" if len(runs) > 1 else ""


def table_rows(case: dict) -> list[list[str]]:
    """Rows for the results table (its columns: case, figure, start-up, reference, ratio,
    CPU s, peak RSS MiB/peer, target)."""
    fmt = common.fmt
    rows = []
    for row in case["swarm"] + case["one_to_one"]:
        protocol = ("libtorrent" if row["who"] == "libtorrent" else
                    f"pipeline {row['pipeline']}" if row["pipeline"] else "plain")
        name = (f"latency {row['delay_ms']:g} ms: 1+{row['peers'] - 1}, {row['file_mib']} MiB, "
                f"{row['piece_kib']} KiB, {protocol} ({case['statistic']})")
        figure = f"{fmt(row['transfer_s'])} s transfer{_spread(row)}"
        if row["who"] == "ours" and row["pipeline"]:
            figure += f", depth {fmt(row['pipeline_depth'], 0)} (highest {fmt(row['pipeline_highest'], 0)})"
        figure += f", relayed {fmt(row['relayed_mib'], 0)} MiB"
        if row["ok_runs"] < row["runs"]:
            figure += f", {row['runs'] - row['ok_runs']} of {row['runs']} FAILED"
        if "ratio_to_libtorrent" in row:
            reference = "—" if row["who"] == "libtorrent" or row["ratio_to_libtorrent"] is None else "libtorrent"
            ratio_text = fmt(row["ratio_to_libtorrent"]) if reference != "—" else "—"
        else:
            reference = "—" if not row["pipeline"] else "plain"
            ratio_text = fmt(row["ratio_to_plain"]) if row["pipeline"] else "—"
        cpu = fmt(row["cpu_s_total"], 1) + " total" if row["who"] == "ours" else "—"
        rows.append([name, figure, f"{fmt(row['startup_s'])} s", reference, ratio_text, cpu,
                     fmt(row["peak_rss_mib_max"], 0), ""])
    return rows


def parse_delays(text: str) -> tuple[float, ...]:
    """``--delays 0,10,25``: one-way delays in ms, each at least 0."""
    delays = tuple(float(part) for part in text.split(",") if part.strip())
    if not delays or any(delay < 0 for delay in delays):
        raise ValueError(f"delays must be one or more numbers of ms, each at least 0: {text!r}")
    return delays

