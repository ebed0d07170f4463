"""``python -m bench``: the benchmark suite. See ``python -m bench --help``.

Cases (each set against a reference measured in the same run):

dataplane  1 seed + 1 leecher, 100 MiB, pieces of 16 KiB, 32 KiB, 256 KiB, 1 MiB;
           reference: a raw TCP stream between two Python processes on 127.0.0.1
swarm      1 seed + 5 leechers, k=5, 1 s intervals: 20 MiB / 16 KiB (the course demo)
           and 100 MiB / 32 KiB; reference: libtorrent, where the system Python has it,
           runs alternated, both timed from every peer connected to the last complete
           (start-up apart), CPU per GiB delivered; medians and ranges of 5 runs
pipeline   our pipelining extension: 1+1 at 16 KiB with depths 2 to 32, against the plain
           protocol; the 100 MiB swarm at the launcher's depth, against libtorrent as in swarm
scale      1 seed + 15 and + 31 leechers, 20 MiB / 16 KiB; reference: the 6-peer swarm
capped     --upload-rate on every peer, 1 seed + 5 leechers, 10 MiB / 16 KiB;
           reference: the minimum distribution time max(F/u_s, N*F/(u_s + sum u_i)),
           and libtorrent under the same caps
latency    every peer behind a relay that delays each way by 0, 10, 25 ms (--delays):
           the 1+5 swarm, 20 MiB / 16 KiB, plain, pipelined and libtorrent; 1+1, 20 MiB
           at 16 KiB and 256 KiB, plain and pipelined (bench/latency.py)
push       ``p2p-swarm push`` to N namespace hosts with sshd, every upload capped with tbf
           (the seed's too); reference: parallel scp to the same hosts and the bound
           max(F/u, N*F/((N+1)*u)) (bench/push.py; needs root, sshd, tc)

Sizes are binary: MiB = 2**20 bytes, rates in MiB/s. Writes bench/results.json,
bench/results.md (the table) and bench/results.rst (the same, for README.rst).
"""
from __future__ import annotations

import argparse
import datetime
import os
import time
from typing import Any

from bench import latency, push, race, rawtcp, report, swarm
from bench.common import (
    HERE,
    SYSTEM_PYTHON,
    Files,
    KiB,
    MiB,
    libtorrent_version,
    log,
    median_of,
    ratio,
    repeat,
    run_libtorrent,
)
from bench.procs import machine
from twisted_p2p.launcher.run import DEFAULT_PIPELINE  # noqa: E402  (the launcher's depth)

CASES = ("dataplane", "swarm", "pipeline", "scale", "capped", "latency", "push")
DEPTHS = (2, 4, 8, 16, 32)  # --pipeline depths tried one seed to one leecher
#: How each case is timed, one line each: logged when the case starts, written under the table.
METHODS = {
    "dataplane": "dataplane: MiB/s = file size / (the leecher's first connection -> its last piece); "
                 "'from spawn' = first peer spawned -> leecher complete",
    "swarm": "swarm: each 1+5 swarm run N times (--swarm-repeats, default 5), each run of ours followed by one of "
             "libtorrent's; figures are medians with the range (lowest-highest), ratios are taken pair by pair "
             "(run i of ours / run i of libtorrent) and given as their median with the range. transfer = every pair "
             "of peers connected -> last leecher complete: ours from the event logs' stamps (the last pair's first "
             "connection line -> the last 'has downloaded the complete file'), libtorrent polled every 2 ms (every "
             "session seen with all the others as peers -> the last leecher seen seeding); libtorrent is set up as "
             "its users would: the seed's file checked when added (not seed_mode), the leechers held in upload_mode "
             "until every pair is connected, then released. start-up = first spawn (libtorrent: first session "
             "created) -> all connected, with the share of the download already done by then; 'from spawn' = "
             "start-up + transfer. CPU s/GiB = user + system CPU seconds per GiB the leechers received: ours every "
             "peer process over its whole life (os.wait4, six start-ups included), libtorrent its one process "
             "over the sessions' lives (getrusage; the torrent's creation left out), with its transfer phase's share",
    "pipeline": "pipeline: our extension (--pipeline N on every peer); 1+1 as in dataplane (16 KiB and 256 KiB "
                "pieces, best of --repeats), ratio = MiB/s / the plain protocol's at that piece size; the 1+5 swarm "
                "as in swarm, alternating with libtorrent runs of its own",
    "scale": "scale: ratio = time from spawn to last complete, against the 6-peer swarm's (the same clock for both); "
             "transfer and start-up as in swarm",
    "capped": "capped: ratio = time from spawn to last complete / the bound (start-up counted against us); "
              "libtorrent from its first session created; transfer and start-up as in swarm",
    "latency": latency.METHOD,
    "push": push.METHOD,
}


# -- cases -------------------------------------------------------------------------

def _one_to_one(path: str, size: int, piece: int, repeats: int, pipeline: int = 0) -> dict:
    """Best of ``repeats`` runs of one seed to one leecher."""
    label = f"{piece // KiB} KiB" + (f", pipeline {pipeline}" if pipeline else "")
    log(f"1+1: {label}")
    runs = repeat(repeats, lambda: swarm.run(swarm.SwarmSpec(path, piece, 1, preferred=1, pipeline=pipeline)), label)
    good = [run for run in runs if run["ok"] and run["leecher_transfer_s"]]
    best = min(good, key=lambda run: run["leecher_transfer_s"][str(swarm.FIRST_ID + 1)]) if good else None
    transfer = best["leecher_transfer_s"][str(swarm.FIRST_ID + 1)] if best else None
    return {
        "piece_kib": piece // KiB,
        "pipeline": pipeline,
        "ok": bool(good),
        "failures": [run["failure"] for run in runs if not run["ok"]],
        "mib_per_s": size / MiB / transfer if transfer else None,
        "transfer_s": transfer,
        "time_from_spawn_s": best["time_to_last_complete_s"] if best else None,
        "startup_s": best["startup_s"] if best else None,
        "cpu_s_seed": best["cpu_s"][str(swarm.FIRST_ID)] if best else None,
        "cpu_s_leecher": best["cpu_s"][str(swarm.FIRST_ID + 1)] if best else None,
        "peak_rss_mib_max": best["peak_rss_mib_max"] if best else None,
    }


def case_dataplane(files: Files, repeats: int) -> dict:
    size = 100 * MiB
    path = files.get(size)
    log(METHODS["dataplane"])
    log("dataplane: raw loopback TCP reference")
    raw_runs = [rawtcp.measure(size) for _ in range(repeats)]
    raw = max(raw_runs, key=lambda run: run["mib_per_s"])
    rows = []
    for piece in (16 * KiB, 32 * KiB, 256 * KiB, MiB):
        row = _one_to_one(path, size, piece, repeats)
        rows.append(dict(row, ratio_to_raw=ratio(row["mib_per_s"], raw["mib_per_s"])))
    return {
        "statistic": f"best of {repeats}",
        "file_mib": size // MiB,
        "raw_tcp": raw,
        "rows": rows,
    }


def case_pipeline(files: Files, repeats: int, swarm_repeats: int, lt_version: str | None) -> dict:
    """The extension at several depths, one seed to one leecher at 16 KiB (where a round
    trip per piece costs most), and the 100 MiB swarm at the launcher's depth, alternating
    with libtorrent."""
    log(METHODS["pipeline"])
    size = 100 * MiB
    path = files.get(size)
    base = _one_to_one(path, size, 16 * KiB, repeats)
    rows = [dict(base, ratio_to_plain=1.0)]
    for depth in DEPTHS:
        row = _one_to_one(path, size, 16 * KiB, repeats, pipeline=depth)
        rows.append(dict(row, ratio_to_plain=ratio(row["mib_per_s"], base["mib_per_s"])))
    large = _one_to_one(path, size, 256 * KiB, repeats)  # big pieces pay the round trip too
    rows.append(dict(large, ratio_to_plain=1.0))
    for depth in (8, DEFAULT_PIPELINE):
        row = _one_to_one(path, size, 256 * KiB, repeats, pipeline=depth)
        rows.append(dict(row, ratio_to_plain=ratio(row["mib_per_s"], large["mib_per_s"])))
    swarm_row = _swarm_case(files, f"100 MiB, pipeline {DEFAULT_PIPELINE}", size, 32 * KiB, 5, swarm_repeats,
                            lt_version, pipeline=DEFAULT_PIPELINE)
    return {"statistic": f"best of {repeats}", "one_to_one": rows, "rows": [swarm_row]}


def _swarm_case(files: Files, name: str, size: int, piece: int, leechers: int, repeats: int,
                lt_version: str | None, upload_rate: int | None = None,
                seed_upload_rate: int | None = None, timeout: float = 120.0, pipeline: int = 0) -> dict:
    """``repeats`` runs of our swarm, each followed by one of libtorrent's (when it is
    there): medians, ranges and ratios pair by pair (bench/race.py)."""
    path = files.get(size)
    log(f"{name}: ours, {leechers + 1} peers, {size // MiB} MiB, {piece // KiB} KiB pieces"
        + (f", alternating with libtorrent {lt_version}" if lt_version else ""))
    spec = swarm.SwarmSpec(path, piece, leechers, preferred=5, upload_rate=upload_rate,
                           seed_upload_rate=seed_upload_rate, timeout=timeout, pipeline=pipeline)
    args = {"file": path, "piece_size": piece, "leechers": leechers, "timeout": timeout,
            "upload_rate": upload_rate, "seed_upload_rate": seed_upload_rate}
    runs, lt_runs = race.alternate(repeats, lambda: swarm.run(spec),
                                   (lambda: run_libtorrent(args)) if lt_version else None, name, leechers * size)
    good = [run for run in runs if run["ok"]]
    row: dict[str, Any] = {
        "case": name,
        "peers": leechers + 1,
        "file_mib": size // MiB,
        "piece_kib": piece // KiB,
        "runs": len(runs),
        "ok_runs": len(good),
        "failures": [run["failure"] for run in runs if not run["ok"]],
        "statistic": f"median of {len(good)}" if len(good) != 1 else "1 run",
        "time_to_last_complete_s": median_of(runs, "time_to_last_complete_s"),
        "wall_to_all_exited_s": median_of(runs, "wall_to_all_exited_s"),
        "startup_s": median_of(runs, "startup_s"),
        "transfer_s": median_of(runs, "transfer_s"),
        "transfer": race.of(runs, "transfer_s"),
        "share_before_all_connected": median_of(runs, "share_before_all_connected"),
        "cpu_s_total": median_of(runs, "cpu_s_total"),
        "cpu_s_per_gib": race.of(runs, "cpu_s_per_gib"),
        "peak_rss_mib_max": max((run["peak_rss_mib_max"] for run in good), default=None),
        "upload_rate": upload_rate,
        "seed_upload_rate": seed_upload_rate,
    }
    if lt_version:
        row.update(race.libtorrent_figures(runs, lt_runs), libtorrent_runs=len(lt_runs),
                   libtorrent_failures=[run.get("failure") for run in lt_runs if not run.get("ok")])
    else:
        row.update(dict.fromkeys(("libtorrent_s", "libtorrent_startup_s", "libtorrent_transfer_s",
                                  "libtorrent_share_before_all_connected", "ratio_to_libtorrent")))
    return row


def case_swarm(files: Files, swarm_repeats: int, lt_version: str | None) -> dict:
    log(METHODS["swarm"])
    return {"rows": [
        _swarm_case(files, "demo 20 MiB", 20 * MiB, 16 * KiB, 5, swarm_repeats, lt_version),
        _swarm_case(files, "100 MiB", 100 * MiB, 32 * KiB, 5, swarm_repeats, lt_version),
    ]}


def case_scale(files: Files, quick: bool, base: dict | None) -> dict:
    log(METHODS["scale"])
    rows = []
    for peers in ((16,) if quick else (16, 32)):
        row = _swarm_case(files, f"scale {peers}", 20 * MiB, 16 * KiB, peers - 1, 1, None, timeout=240.0)
        rows.append(row)
    if base is None:
        base = _swarm_case(files, "scale 6", 20 * MiB, 16 * KiB, 5, 1, None)
    rows.insert(0, base)
    for row in rows:
        row["time_vs_6_peers"] = ratio(row["time_to_last_complete_s"], base["time_to_last_complete_s"])
        row["cpu_vs_6_peers"] = ratio(row["cpu_s_total"], base["cpu_s_total"])
    return {"rows": rows}


def bound(size_mib: float, leechers: int, seed_rate: float, leecher_rate: float) -> float:
    """Minimum distribution time (Kurose & Ross): max(F/u_s, N*F/(u_s + sum u_i)), where
    N counts the leechers that must receive the file and the sum runs over them."""
    return max(size_mib / seed_rate, leechers * size_mib / (seed_rate + leechers * leecher_rate))


def case_capped(files: Files, lt_version: str | None) -> dict:
    log(METHODS["capped"])
    rows = []
    for seed_rate, leecher_rate in ((2, 2), (10, 1)):
        row = _swarm_case(
            files, f"capped seed {seed_rate} / leechers {leecher_rate} MiB/s", 10 * MiB, 16 * KiB, 5, 1,
            lt_version, upload_rate=leecher_rate * MiB, seed_upload_rate=seed_rate * MiB,
        )
        row["bound_s"] = bound(10, 5, seed_rate, leecher_rate)
        row["ratio_to_bound"] = ratio(row["time_to_last_complete_s"], row["bound_s"])
        row["libtorrent_ratio_to_bound"] = ratio(row["libtorrent_s"], row["bound_s"])
        rows.append(row)
    return {"rows": rows}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks for the twisted_p2p peer, each figure next to a reference measured in the same run.",
        epilog="Cases: " + ", ".join(CASES) + ". Writes bench/results.json, bench/results.md and bench/results.rst.",
    )
    parser.add_argument("--quick", action="store_true", help="one run per case and no 32-peer scale run")
    parser.add_argument("--only", action="append", choices=CASES, metavar="CASE",
                        help=f"run only this case (repeatable): {', '.join(CASES)}")
    parser.add_argument("--repeats", type=int, default=None, help="runs per fast case (default 3, 1 with --quick)")
    parser.add_argument("--swarm-repeats", type=int, default=None, metavar="N",
                        help="runs of each 1+5 swarm of the swarm and pipeline cases, each followed by one of "
                             "libtorrent's (default 5, 1 with --quick)")
    parser.add_argument("--no-libtorrent", action="store_true", help="skip the libtorrent comparison")
    parser.add_argument("--peer-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for every peer process, for experiments "
                             "(e.g. MALLOC_MMAP_THRESHOLD_=8388608)")
    parser.add_argument("--delays", default=",".join(f"{d:g}" for d in latency.DELAYS_MS), metavar="MS[,MS...]",
                        help="one-way delays of the latency case, in ms (default %(default)s)")
    parser.add_argument("--latency-pipeline", type=int, default=DEFAULT_PIPELINE, metavar="N",
                        help="--pipeline depth of the latency case's pipelined runs "
                             "(default: the launcher's, %(default)s)")
    parser.add_argument("--push-hosts", type=int, default=8, metavar="N",
                        help="hosts of the push case (default %(default)s)")
    parser.add_argument("--push-size", type=int, default=200, metavar="MB",
                        help="file of the push case, in MB of 10**6 bytes (default %(default)s)")
    parser.add_argument("--push-rate", type=float, default=200.0, metavar="MBIT",
                        help="every upload's cap in the push case, the seed's too, in Mbit/s (default %(default)g)")
    parser.add_argument("--push-queue-ms", type=float, default=50.0, metavar="MS",
                        help="every cap's queue in the push case: a packet that would wait longer is dropped "
                             "(default %(default)g)")
    parser.add_argument("--push-no-scp", action="store_true", help="skip the push case's parallel scp (about a minute)")
    parser.add_argument("--out", default=HERE, help="directory for results.json/.md/.rst (default: bench/)")
    parser.add_argument("--merge", action="store_true",
                        help="keep the cases of the results.json in --out that this run does not measure, each "
                             "with the date and load of its own run (a partial run otherwise writes only its cases)")
    return parser


def _machine_and_libtorrent(skip: bool) -> tuple[dict, str | None]:
    """The machine's facts, with the libtorrent compared against (None: none)."""
    info = machine()
    lt_version = None if skip else libtorrent_version()
    info["libtorrent"] = lt_version
    if skip:
        info["libtorrent_note"] = "skipped (--no-libtorrent)"
    if lt_version is None:
        log("libtorrent: SKIPPED — python3-libtorrent is not importable by " + SYSTEM_PYTHON
            + (" (--no-libtorrent)" if skip else " (apt-get install python3-libtorrent to compare)"))
    return info, lt_version


def _run_cases(options: argparse.Namespace, chosen: list[str], repeats: int, delays: tuple[float, ...],
               lt_version: str | None) -> dict:
    """Each chosen case in the order of CASES; their results by name."""
    cases: dict = {}
    files = Files()
    try:
        if "dataplane" in chosen:
            cases["dataplane"] = case_dataplane(files, repeats)
        if "swarm" in chosen:
            cases["swarm"] = case_swarm(files, options.swarm_repeats, lt_version)
        if "pipeline" in chosen:
            cases["pipeline"] = case_pipeline(files, repeats, options.swarm_repeats, lt_version)
        if "scale" in chosen:
            base = cases.get("swarm", {}).get("rows", [None])[0]
            if base is not None:
                base = dict(base, case="scale 6")
            cases["scale"] = case_scale(files, options.quick, base)
        if "capped" in chosen:
            cases["capped"] = case_capped(files, lt_version)
        if "latency" in chosen:
            cases["latency"] = latency.case_latency(files, repeats, delays, options.latency_pipeline, lt_version)
        if "push" in chosen:
            cases["push"] = push.case_push(push.PushSpec(
                options.push_hosts, options.push_size, options.push_rate, repeats, not options.push_no_scp,
                options.push_queue_ms))
    finally:
        files.close()
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    options = parser.parse_args(argv)
    try:
        delays = latency.parse_delays(options.delays)
    except ValueError as exc:
        parser.error(str(exc))
    if options.push_hosts < 3 or options.push_size <= 0 or options.push_rate <= 0 or options.push_queue_ms <= 0:
        parser.error("--push-hosts must be at least 3 (the caps are measured between hosts), "
                     "--push-size, --push-rate and --push-queue-ms positive")
    chosen = options.only or list(CASES)
    swarm.PEER_ENV.update(item.split("=", 1) for item in options.peer_env)
    repeats = options.repeats or (1 if options.quick else 3)
    options.swarm_repeats = options.swarm_repeats or (1 if options.quick else 5)
    began, load_before = time.time(), os.getloadavg()[0]
    info, lt_version = _machine_and_libtorrent(options.no_libtorrent)
    results: dict = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": info,
        "options": {"quick": options.quick, "repeats": repeats, "swarm_repeats": options.swarm_repeats,
                    "only": chosen, "peer_env": options.peer_env,
                    "delays_ms": list(delays), "latency_pipeline": options.latency_pipeline,
                    "push": {"hosts": options.push_hosts, "size_mb": options.push_size,
                             "rate_mbit": options.push_rate, "queue_ms": options.push_queue_ms}},
        "cases": {},
    }
    results["cases"] = _run_cases(options, chosen, repeats, delays, lt_version)
    results["duration_s"] = time.time() - began
    # every figure moves with what else the machine runs: the 1-minute load, before and after
    results["load_average"] = [load_before, os.getloadavg()[0]]
    for case in results["cases"].values():
        case["measured"] = {"date": results["date"], "load_average": results["load_average"]}
    methods = {name: METHODS[name] for name in results["cases"]}
    if options.merge:
        report.merge_earlier(results, methods, os.path.join(options.out, "results.json"), CASES)
    report.write(results, [methods[name] for name in CASES if name in results["cases"]], options.peer_env,
                 options.out)
    return 0
