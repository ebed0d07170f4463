"""The suite's results as a table: one row per figure, each beside its reference and target,
in Markdown (bench/results.md) and reStructuredText (bench/results.rst, for README.rst)."""
from __future__ import annotations

import json
import os
from collections.abc import Sequence

from bench import latency, push
from bench.common import fmt
from twisted_p2p.launcher.run import DEFAULT_PIPELINE  # (the launcher's depth)

HEADER = ["case", "figure", "start-up", "reference", "ratio", "CPU s", "peak RSS MiB/peer", "target"]


def table(results: dict) -> list[list[str]]:
    """Rows of the results table: the header first."""
    rows = [list(HEADER)]
    cases = results["cases"]
    if "dataplane" in cases:
        rows += _dataplane_rows(cases["dataplane"])
    if "pipeline" in cases:
        raw = cases.get("dataplane", {}).get("raw_tcp", {}).get("mib_per_s")
        rows += _pipeline_rows(cases["pipeline"], raw)
    for name in ("swarm", "pipeline", "scale", "capped"):
        if name in cases:
            for row in cases[name]["rows"]:
                rows.append(_swarm_row(name, row, cases))
                if name in ("swarm", "pipeline") and row.get("cpu_ratio"):
                    rows.append(_cpu_row(name, row))
    if "latency" in cases:
        rows += latency.table_rows(cases["latency"])
    if "push" in cases:
        rows += push.table_rows(cases["push"])
    return rows


def _dataplane_rows(dp: dict) -> list[list[str]]:
    raw = dp["raw_tcp"]
    rows = [[f"raw loopback TCP, {dp['file_mib']} MiB", f"{raw['mib_per_s']:.0f} MiB/s", "—", "—", "—",
             f"{raw['cpu_s_sender']:.2f} + {raw['cpu_s_receiver']:.2f}", "—", "reference"]]
    for row in dp["rows"]:
        target = ""
        if row["piece_kib"] == 256:
            target = "≥ 0.40 " + ("met" if (row["ratio_to_raw"] or 0) >= 0.4 else "missed")
        rows.append([
            f"1+1, {dp['file_mib']} MiB, {row['piece_kib']} KiB pieces ({dp['statistic']})",
            f"{fmt(row['mib_per_s'], 0)} MiB/s ({fmt(row['time_from_spawn_s'])} s from spawn)",
            f"{fmt(row['startup_s'])} s", f"{raw['mib_per_s']:.0f} MiB/s raw", fmt(row["ratio_to_raw"]),
            f"{fmt(row['cpu_s_seed'])} seed, {fmt(row['cpu_s_leecher'])} leecher",
            fmt(row["peak_rss_mib_max"], 0), target,
        ])
    return rows


def _pipeline_rows(pl: dict, raw: object) -> list[list[str]]:
    """The one-to-one rows of the pipeline case (``raw``: the raw TCP figure, if measured)."""
    rows = []
    for row in pl["one_to_one"]:
        depth = f"pipeline {row['pipeline']}" if row["pipeline"] else "plain"
        target, reference = "", f"plain {row['piece_kib']} KiB"
        if row["pipeline"] == DEFAULT_PIPELINE and row["piece_kib"] == 16:
            target = "≥ 3x plain " + ("met" if (row["ratio_to_plain"] or 0) >= 3 else "missed")
        if row["pipeline"] and row["piece_kib"] == 256 and raw:
            share = (row["mib_per_s"] or 0) / raw  # type: ignore[operator]
            reference += f"; {share:.2f} of raw"
            target = "≥ 0.40 raw " + ("met" if share >= 0.4 else "missed")
        rows.append([
            f"1+1, 100 MiB, {row['piece_kib']} KiB pieces, {depth} ({pl['statistic']})",
            f"{fmt(row['mib_per_s'], 0)} MiB/s ({fmt(row['time_from_spawn_s'])} s from spawn)",
            f"{fmt(row['startup_s'])} s", reference, fmt(row["ratio_to_plain"]),
            f"{fmt(row['cpu_s_seed'])} seed, {fmt(row['cpu_s_leecher'])} leecher",
            fmt(row["peak_rss_mib_max"], 0), target,
        ])
    return rows


def spread(found: dict | None, digits: int = 2, suffix: str = "") -> str:
    """A median with its range: "1.82 (1.60–2.05)"; one value alone; "—" for none."""
    if not found:
        return "—"
    text = f"{found['median']:.{digits}f}{suffix}"
    if found["n"] > 1:
        text += f" ({found['low']:.{digits}f}–{found['high']:.{digits}f})"
    return text


def _swarm_row(name: str, row: dict, cases: dict) -> list[str]:
    """One swarm of the swarm, pipeline, scale or capped case."""
    transfer = spread(row["transfer"]) if row.get("transfer") else fmt(row["transfer_s"])
    figure = (f"{transfer} s transfer ({fmt(row['time_to_last_complete_s'])} s from spawn, "
              f"all exited {fmt(row['wall_to_all_exited_s'])} s)")
    startup = f"{fmt(row['startup_s'])} s ({fmt(row['share_before_all_connected'], 0, '%', 100)} done)"
    if name != "scale" and row.get("libtorrent_startup_s") is not None:
        startup += (f"; libtorrent {row['libtorrent_startup_s']:.2f} s "
                    f"({fmt(row['libtorrent_share_before_all_connected'], 0, '%', 100)} done)")
    if row["ok_runs"] < row["runs"]:
        figure += f", {row['runs'] - row['ok_runs']} of {row['runs']} FAILED"
    if name == "capped":
        reference, ratio_text, target = _against_bound(row)
    elif name == "scale":
        reference, ratio_text, target = _against_six_peers(row, cases["scale"]["rows"][0])
    else:
        reference, ratio_text, target = _against_libtorrent(name, row)
    return [
        f"{row['case']}: 1+{row['peers'] - 1}, {row['file_mib']} MiB, {row['piece_kib']} KiB ({row['statistic']})",
        figure, startup, reference, ratio_text, fmt(row["cpu_s_total"], 1) + " total",
        fmt(row["peak_rss_mib_max"], 0), target,
    ]


def _against_bound(row: dict) -> tuple[str, str, str]:
    reference = f"bound {row['bound_s']:.2f} s"
    if row["libtorrent_s"] is not None:
        reference += (f"; libtorrent {row['libtorrent_s']:.2f} s from start "
                      f"({fmt(row['libtorrent_ratio_to_bound'])}x bound), "
                      f"{fmt(row['libtorrent_transfer_s'])} s transfer")
    target = "≤ 1.3x bound " + ("met" if row["ratio_to_bound"] and row["ratio_to_bound"] <= 1.3 else "missed")
    return reference, fmt(row["ratio_to_bound"]), target


def _against_six_peers(row: dict, six: dict) -> tuple[str, str, str]:
    reference = f"6 peers: {fmt(six['time_to_last_complete_s'])} s from spawn"
    ratio_text = f"{fmt(row['time_vs_6_peers'])} time from spawn, {fmt(row['cpu_vs_6_peers'])} CPU"
    target = ""
    if row["peers"] == 32:
        met = row["ok_runs"] == row["runs"] and (row["peak_rss_mib_max"] or 99) < 60
        target = "all complete, RSS < 60 MiB " + ("met" if met else "missed")
    return reference, ratio_text, target


def _against_libtorrent(name: str, row: dict) -> tuple[str, str, str]:
    """The reference, ratio and target of a swarm or pipeline row."""
    ratio_text, ratio = "—", row["ratio_to_libtorrent"]
    if row["libtorrent_s"] is not None:
        lt_transfer = spread(row["libtorrent_transfer"]) if row.get("libtorrent_transfer") else fmt(
            row["libtorrent_transfer_s"])
        reference = f"libtorrent {lt_transfer} s transfer ({row['libtorrent_s']:.2f} s from start)"
        ratio_text = spread(row["transfer_ratio"]) if row.get("transfer_ratio") else fmt(ratio)
    else:
        reference = "libtorrent not installed"
    if row["file_mib"] == 20:  # the demo: ours from spawn against libtorrent from its first session
        ratio, bound, what = _median(row.get("from_spawn_ratio")), 1.0, "from spawn"
        if row.get("from_spawn_ratio"):
            ratio_text += f"; from spawn {spread(row['from_spawn_ratio'])}"
    else:
        bound, what = (0.9 if name == "pipeline" else 1.2), "transfer"
    met = "met" if ratio is not None and ratio <= bound else "missed" if ratio is not None else "n/a"
    return reference, ratio_text, f"{what} ≤ {bound:.1f}x libtorrent {met}"


def _cpu_row(name: str, row: dict) -> list[str]:
    """CPU seconds per GiB delivered, ours against libtorrent's in the same runs."""
    transfer_share = row.get("libtorrent_cpu_s_per_gib_transfer")
    reference = f"libtorrent {spread(row.get('libtorrent_cpu_s_per_gib'))} s/GiB"
    if transfer_share:
        reference += f" ({spread(transfer_share)} of it in the transfer)"
    bound = 1.2 if name == "pipeline" else 1.6
    ratio = _median(row["cpu_ratio"])
    met = "met" if ratio is not None and ratio <= bound else "missed"
    return [
        f"{row['case']}: CPU per GiB delivered ({row['statistic']})",
        f"{spread(row.get('cpu_s_per_gib'))} s/GiB (every peer, whole lives)", "—", reference,
        spread(row["cpu_ratio"]), fmt(row["cpu_s_total"], 1) + " total", "—",
        f"CPU ≤ {bound:.1f}x libtorrent {met}" if row["file_mib"] != 20 else "",
    ]


def _median(found: dict | None) -> float | None:
    return found["median"] if found else None


def markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def rst(rows: list[list[str]]) -> str:
    """A list-table, which needs no column alignment."""
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in rows:
        for position, cell in enumerate(row):
            lines.append(("   * - " if position == 0 else "     - ") + (cell or ".."))
    return "\n".join(lines).replace("- ..", "-")


def machine_line(info: dict) -> str:
    return (f"{info['nproc']} CPUs ({info['cpu_model']}), {info['memory_gib']} GiB, {info['os']}, "
            f"Python {info['python']}, Twisted {info['twisted']}"
            + (f", libtorrent {info['libtorrent']}" if info.get("libtorrent")
               else f", libtorrent {info.get('libtorrent_note', 'not installed')}"))


def merge_earlier(results: dict, methods: dict[str, str], earlier_path: str, order: Sequence[str]) -> None:
    """Add to ``results`` the cases of an earlier results.json that it did not measure,
    each with the method text and the date and load of the run that measured it, and
    keep ``order`` (the cases' order in the table)."""
    try:
        with open(earlier_path) as handle:
            earlier = json.load(handle)
    except (OSError, ValueError):
        return
    # an older file has no per-case method or date: its methods are listed in its cases' order
    old_methods = dict(zip(earlier.get("cases", {}), earlier.get("methods", [])))
    merged: dict = {}
    for name in order:
        if name in results["cases"]:
            merged[name] = results["cases"][name]
        elif name in earlier.get("cases", {}):
            case = earlier["cases"][name]
            case.setdefault("measured", {"date": earlier["date"], "load_average": earlier.get("load_average")})
            merged[name] = case
            methods[name] = old_methods.get(name, "")
    results["cases"] = merged


def _dates_line(results: dict) -> str:
    """Which cases were measured when, where the table mixes runs (``--merge``)."""
    by_date: dict[str, list[str]] = {}
    for name, case in results["cases"].items():
        measured = case.get("measured") or {"date": results["date"]}
        load = measured.get("load_average")
        when = measured["date"][:10] + (f" (load {load[0]:.1f} before, {load[1]:.1f} after)" if load else "")
        by_date.setdefault(when, []).append(name)
    if len(by_date) < 2:
        return ""
    return " Cases measured on different days: " + "; ".join(
        f"{', '.join(names)} on {when}" for when, names in sorted(by_date.items(), reverse=True)) + "."


def write(results: dict, methods: list[str], peer_env: list[str], out_dir: str) -> None:
    """results.json, results.md and results.rst in ``out_dir``; the table on stdout too."""
    rows = table(results)
    results["methods"] = methods
    listed = "\n".join("- " + line for line in methods)
    header = (f"Measured {results['date'][:10]} on {machine_line(results['machine'])}; "
              f"`python -m bench` took {results['duration_s']:.0f} s.")
    if results.get("load_average"):
        before, after = results["load_average"]
        header += f" Load average (1 min): {before:.1f} before, {after:.1f} after."
    if peer_env:
        header += " Peers ran with " + " ".join(peer_env) + "."
    header += _dates_line(results)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as out:
        json.dump(results, out, indent=2)
        out.write("\n")
    with open(os.path.join(out_dir, "results.md"), "w") as out:
        out.write(header + "\n\n" + markdown(rows) + "\n\n" + listed + "\n")
    with open(os.path.join(out_dir, "results.rst"), "w") as out:
        out.write(header.replace("`", "``") + "\n\n" + rst(rows) + "\n\n" + listed + "\n")
    print(header)
    print()
    print(markdown(rows))
    print()
    print(listed)
