"""The bench's race against libtorrent (bench/race.py) and how the table shows it: the
order of the runs, medians and ranges, ratios pair by pair, CPU per GiB delivered.
Figures here are made up; nothing is timed."""
from __future__ import annotations

import json

from bench import race, report
from bench.race import GiB


def _run(transfer: float | None, cpu: float | None = None, ok: bool = True, **more: object) -> dict:
    return {"ok": ok, "transfer_s": transfer, "startup_s": 0.5, "time_to_last_complete_s": (transfer or 0) + 0.5,
            "cpu_s_total": cpu, **more}


def test_alternate_runs_ours_then_theirs_and_sets_cpu_per_gib() -> None:
    order: list[str] = []

    def ours() -> dict:
        order.append("ours")
        return _run(2.0, cpu=4.0)

    def theirs() -> dict:
        order.append("theirs")
        return _run(1.0, cpu=1.0)

    mine, other = race.alternate(3, ours, theirs, "case", GiB // 2)
    assert order == ["ours", "theirs"] * 3
    assert [run["cpu_s_per_gib"] for run in mine] == [8.0] * 3
    assert [run["cpu_s_per_gib"] for run in other] == [2.0] * 3


def test_alternate_without_libtorrent_runs_only_ours() -> None:
    mine, other = race.alternate(2, lambda: _run(1.0, cpu=1.0), None, "case", GiB)
    assert len(mine) == 2 and other == []


def test_cpu_per_gib_is_none_for_a_failed_run() -> None:
    assert race.cpu_per_gib(_run(None, cpu=3.0, ok=False), GiB) is None
    assert race.cpu_per_gib(_run(1.0, cpu=3.0), 3 * GiB) == 1.0


def test_spread_gives_median_and_range_of_what_is_there() -> None:
    assert race.spread([3.0, None, 1.0, 2.0]) == {"median": 2.0, "low": 1.0, "high": 3.0, "n": 3}
    assert race.spread([None]) is None


def test_paired_ratios_leave_out_a_pair_with_a_failed_side() -> None:
    ours = [_run(2.0), _run(9.0, ok=False), _run(3.0), _run(4.0)]
    theirs = [_run(1.0), _run(1.0), _run(2.0), _run(1.0)]
    assert race.paired(ours, theirs, "transfer_s") == {"median": 2.0, "low": 1.5, "high": 4.0, "n": 3}


def test_libtorrent_figures_ratio_is_the_median_of_the_pairs_not_of_the_medians() -> None:
    ours = [_run(3.0), _run(1.0), _run(2.0)]
    theirs = [_run(1.0), _run(2.0), _run(4.0)]
    figures = race.libtorrent_figures(ours, theirs)
    assert figures["ratio_to_libtorrent"] == 0.5  # pairs 3.0, 0.5, 0.5; medians would give 1.0
    assert figures["libtorrent_transfer_s"] == 2.0


def test_libtorrent_transfer_cpu_is_per_gib_delivered() -> None:
    theirs = [_run(1.0, cpu=2.0, cpu_s_transfer=1.5, delivered_bytes=GiB // 2)]
    figures = race.libtorrent_figures([_run(1.0)], theirs)
    assert figures["libtorrent_cpu_s_per_gib_transfer"] == {"median": 3.0, "low": 3.0, "high": 3.0, "n": 1}


def test_report_spread_shows_the_range_only_for_several_runs() -> None:
    assert report.spread({"median": 1.8, "low": 1.6, "high": 2.05, "n": 5}) == "1.80 (1.60–2.05)"
    assert report.spread({"median": 1.8, "low": 1.8, "high": 1.8, "n": 1}) == "1.80"
    assert report.spread(None) == "—"


def _row(name: str, file_mib: int, cpu_ratio: float) -> dict:
    return {"case": name, "file_mib": file_mib, "statistic": "median of 5", "cpu_s_total": 8.0,
            "cpu_s_per_gib": {"median": 3.2, "low": 3.0, "high": 3.5, "n": 5},
            "libtorrent_cpu_s_per_gib": {"median": 2.0, "low": 1.9, "high": 2.1, "n": 5},
            "cpu_ratio": {"median": cpu_ratio, "low": cpu_ratio - 0.1, "high": cpu_ratio + 0.1, "n": 5}}


def test_cpu_row_holds_pipelined_to_1_2x_and_plain_to_1_6x() -> None:
    assert report._cpu_row("pipeline", _row("p", 100, 1.5))[-1] == "CPU ≤ 1.2x libtorrent missed"
    assert report._cpu_row("swarm", _row("s", 100, 1.5))[-1] == "CPU ≤ 1.6x libtorrent met"
    cells = report._cpu_row("swarm", _row("s", 100, 1.5))
    assert cells[1].startswith("3.20 (3.00–3.50) s/GiB") and cells[4] == "1.50 (1.40–1.60)"


def test_table_puts_a_cpu_row_under_each_swarm_raced_against_libtorrent() -> None:
    swarm_row = dict(_row("100 MiB", 100, 2.0), peers=6, piece_kib=32, runs=5, ok_runs=5,
                     transfer={"median": 2.0, "low": 1.8, "high": 2.4, "n": 5}, transfer_s=2.0,
                     time_to_last_complete_s=2.7, wall_to_all_exited_s=3.0, startup_s=0.7,
                     share_before_all_connected=0.01, peak_rss_mib_max=44, libtorrent_s=2.3,
                     libtorrent_startup_s=0.8, libtorrent_share_before_all_connected=0.0,
                     libtorrent_transfer_s=1.5, libtorrent_transfer={"median": 1.5, "low": 1.4, "high": 1.7, "n": 5},
                     ratio_to_libtorrent=1.3, transfer_ratio={"median": 1.3, "low": 1.1, "high": 1.6, "n": 5})
    rows = report.table({"cases": {"swarm": {"rows": [swarm_row]}}})
    assert [row[0] for row in rows[1:]] == ["100 MiB: 1+5, 100 MiB, 32 KiB (median of 5)",
                                            "100 MiB: CPU per GiB delivered (median of 5)"]
    assert rows[1][4] == "1.30 (1.10–1.60)"
    assert rows[1][7] == "transfer ≤ 1.2x libtorrent missed"


def test_written_header_says_the_load_the_figures_were_measured_under(tmp_path) -> None:
    results = {"date": "2026-12-04T01:39:00+00:00", "duration_s": 530.0, "load_average": [9.93, 12.5],
               "machine": {"nproc": 2, "cpu_model": "x", "memory_gib": 1.0, "os": "Linux", "python": "3.11",
                           "twisted": "26"},
               "cases": {}}
    report.write(results, [], [], str(tmp_path))
    assert "Load average (1 min): 9.9 before, 12.5 after." in (tmp_path / "results.md").read_text()


def test_merge_keeps_the_cases_not_measured_with_their_own_date_and_method(tmp_path) -> None:
    earlier = {"date": "2026-11-25T02:00:00+00:00", "cases": {"dataplane": {"rows": ["old dp"]},
                                                           "swarm": {"rows": ["old swarm"]}},
               "methods": ["dataplane: old method", "swarm: old method"]}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(earlier))
    now = {"date": "2026-12-04T05:00:00+00:00",
           "cases": {"swarm": {"rows": ["new swarm"], "measured": {"date": "2026-12-04T05:00:00+00:00",
                                                                  "load_average": [0.5, 1.5]}}}}
    methods = {"swarm": "swarm: new method"}
    report.merge_earlier(now, methods, str(path), ("dataplane", "swarm", "latency"))
    assert list(now["cases"]) == ["dataplane", "swarm"]
    assert now["cases"]["swarm"]["rows"] == ["new swarm"]
    assert now["cases"]["dataplane"]["measured"]["date"] == earlier["date"]
    assert methods == {"swarm": "swarm: new method", "dataplane": "dataplane: old method"}
    line = report._dates_line(now)
    assert "swarm on 2026-12-04 (load 0.5 before, 1.5 after)" in line and "dataplane on 2026-11-25" in line


def test_merge_without_an_earlier_file_keeps_only_this_run(tmp_path) -> None:
    now = {"date": "2026-12-04T05:00:00+00:00", "cases": {"swarm": {"rows": []}}}
    report.merge_earlier(now, {"swarm": "m"}, str(tmp_path / "absent.json"), ("dataplane", "swarm"))
    assert list(now["cases"]) == ["swarm"] and report._dates_line(now) == ""
