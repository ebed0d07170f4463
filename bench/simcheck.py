"""``python -m bench.simcheck``: the simulator (:mod:`twisted_p2p.sim`) against real runs
of the same swarms, timed the same way from the same event logs.

Each setup is run for real (``twistd`` peers on 127.0.0.1, through the bench's delaying
relay where it has a delay) and simulated with several seeds; both are timed as the
bench times a swarm: from every pair connected to the last leecher complete, read from
the event logs (:class:`bench.swarm.Timeline`). The ratio is simulated over measured.

What the simulator models is the network: delays, link rates, a peer's own upload cap.
Peers on one machine's loopback are limited by its CPU instead, which the simulator
models only as a shared stage every delivery passes through (``--machine-rate``,
``--machine-cost``, ``--hop-ms``); ``--calibrate`` fits those three on the calibration
setups and the others are checked with what it found.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bench import swarm
from bench.common import HERE, Files, KiB, MiB, log
from bench.simscale import bounded, push_settings
from twisted_p2p.config import Common, PeerInfo, SwarmConfig
from twisted_p2p.launcher.push import piece_size_for
from twisted_p2p.launcher.pushmesh import degree_for
from twisted_p2p.settings import PeerSettings
from twisted_p2p.sim.swarm import LinkModel, simulate

FIRST_PORT = 6008


@dataclass(frozen=True)
class Setup:
    name: str
    leechers: int
    size: int
    piece: int
    preferred: int = 5
    p: int = 1
    m: int = 1
    pipeline: int = 0  # with --refill-slots, as the bench runs it
    delay_ms: float | None = None
    upload_rate: int | None = None
    calibration: bool = False  # fitted on, rather than checked

    def spec(self, path: str) -> swarm.SwarmSpec:
        return swarm.SwarmSpec(path, self.piece, self.leechers, preferred=self.preferred, unchoking_interval=self.p,
                               optimistic_interval=self.m, upload_rate=self.upload_rate, pipeline=self.pipeline,
                               delay_ms=self.delay_ms, timeout=300.0)

    def config(self) -> SwarmConfig:
        common = Common(self.preferred, self.p, self.m, swarm.FILE_NAME, self.size, self.piece)
        return SwarmConfig(common, tuple(PeerInfo(swarm.FIRST_ID + n, swarm.LOOPBACK, FIRST_PORT + n, n == 0)
                                         for n in range(self.leechers + 1)))

    def settings(self) -> PeerSettings:
        return PeerSettings(pipeline=self.pipeline, refill_slots=bool(self.pipeline),
                            upload_rate=self.upload_rate or 0)


SETUPS = (
    Setup("1+1, 100 MiB, 16 KiB, plain", 1, 100 * MiB, 16 * KiB, preferred=1, calibration=True),
    Setup("1+1, 100 MiB, 256 KiB, pipeline 256", 1, 100 * MiB, 256 * KiB, preferred=1, pipeline=256),
    Setup("1+5, 100 MiB, 32 KiB, pipeline 256", 5, 100 * MiB, 32 * KiB, pipeline=256, calibration=True),
    Setup("1+5, 20 MiB, 16 KiB, plain (the bench's demo)", 5, 20 * MiB, 16 * KiB),
    Setup("1+5, 100 MiB, 32 KiB, plain", 5, 100 * MiB, 32 * KiB),
    Setup("1+31, 20 MiB, 16 KiB, plain", 31, 20 * MiB, 16 * KiB),
    Setup("1+5, 20 MiB, 16 KiB, plain, 10 ms", 5, 20 * MiB, 16 * KiB, delay_ms=10),
    Setup("1+5, 20 MiB, 16 KiB, pipeline 256, 10 ms", 5, 20 * MiB, 16 * KiB, pipeline=256, delay_ms=10),
    Setup("1+5, 20 MiB, 16 KiB, plain, 25 ms", 5, 20 * MiB, 16 * KiB, delay_ms=25),
    Setup("1+5, 20 MiB, 16 KiB, pipeline 256, 25 ms", 5, 20 * MiB, 16 * KiB, pipeline=256, delay_ms=25),
    Setup("1+5, 20 MiB, 16 KiB, k=3 p=1 m=2, every upload 381,300 B/s (the paced demo)", 5, 20 * MiB, 16 * KiB,
          preferred=3, p=1, m=2, upload_rate=381_300),
)


@dataclass(frozen=True)
class Machine:
    """How one machine's loopback is modelled: a one-way delay per hop (a process waking
    and reading), and a stage every delivery passes through (its CPU)."""

    hop_ms: float = 0.0
    rate: float | None = None  # bytes/s
    cost: float = 0.0  # seconds per delivered segment

    def link(self, delay_ms: float | None) -> LinkModel:
        return LinkModel(delay=(self.hop_ms + (delay_ms or 0.0)) / 1000, machine_rate=self.rate,
                         machine_cost=self.cost)


def transfer(work: str, count: int) -> float | None:
    """Every pair connected to the last leecher complete, from the logs in ``work``."""
    timeline = swarm.Timeline.read(work, [swarm.FIRST_ID + n for n in range(count)])
    connected = timeline.all_connected(count)
    if connected is None or len(timeline.complete) != count - 1:
        return None
    return max(timeline.complete.values()) - connected


def simulated(setup: Setup, machine: Machine, seeds: Iterable[int]) -> list[float | None]:
    times = []
    for seed in seeds:
        work = tempfile.mkdtemp(prefix="simcheck-")
        try:
            simulate(setup.config(), Path(work), seed=seed, link=machine.link(setup.delay_ms),
                     settings=setup.settings(), limit=600.0)
            times.append(transfer(work, setup.leechers + 1))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return times


def push_row(results_path: str, seeds: Iterable[int]) -> dict:
    """A ``python -m bench --only push`` run's hosts, simulated: every host's link at the
    caps it measured both ways, the seed's upload at the same cap, push's Common.cfg and
    peer settings, the piece size push chose. Measured is push's 'peers started -> last
    complete' (start-up over ssh included); simulated, from the start to the last complete."""
    with open(results_path) as handle:
        case = json.load(handle)["cases"]["push"]
    hosts, size = case["hosts"], case["size_mb"] * 1_000_000
    rate = case["caps"]["host_to_host_bytes_per_s"]
    piece = piece_size_for(size).size
    config = SwarmConfig(Common(hosts, 1, 1, swarm.FILE_NAME, size, piece),
                         tuple(PeerInfo(swarm.FIRST_ID + n, swarm.LOOPBACK, FIRST_PORT + n, n == 0)
                               for n in range(hosts + 1)))
    degree = degree_for(None, hosts)  # push's own choice: the full mesh, or bounded sets past 16 hosts
    times: list[float | None] = []
    for seed in seeds:
        work = tempfile.mkdtemp(prefix="simcheck-")
        settings = bounded(hosts + 1, degree, seed, push_settings(degree))
        try:
            result = simulate(config, Path(work), seed=seed, link=LinkModel(delay=0.0001),
                              settings_for=settings.__getitem__,
                              rates_for=lambda peer: (rate, None) if peer == swarm.FIRST_ID else (rate, rate))
            times.append(result.completion)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    real = [run["phases"]["peers_until_last_complete"] for run in case["runs"] if run.get("ok")]
    mesh = "full mesh" if degree == 0 else f"{degree} neighbours"
    name = (f"push to {hosts} namespace hosts ({mesh}), {case['size_mb']} MB, every link {rate / 1e6:.1f} MB/s "
            f"(bound {case['bound_s']:.1f} s)")
    sim, meas = _median(times), _median(real)
    return {"setup": name, "calibration": False, "measured": real, "simulated": times,
            "ratio": sim / meas if sim and meas else None}


def measured(setup: Setup, files: Files, repeats: int) -> list[float | None]:
    path = files.get(setup.size)
    return [swarm.run(setup.spec(path))["transfer_s"] for _ in range(repeats)]


def _median(values: list[float | None]) -> float | None:
    good = [value for value in values if value is not None]
    return statistics.median(good) if good else None


def calibrate(real: dict[str, float], grid: Iterable[Machine]) -> Machine:
    """The machine whose simulated times are closest to the calibration setups' real
    ones (the largest relative error, smallest)."""
    best, best_error = Machine(), float("inf")
    for machine in grid:
        error = 0.0
        for setup in SETUPS:
            if setup.calibration and real.get(setup.name):
                time = _median(simulated(setup, machine, (1,)))
                error = max(error, abs((time or float("inf")) / real[setup.name] - 1))
        log(f"  machine {machine}: worst calibration error {error:.0%}")
        if error < best_error:
            best, best_error = machine, error
    return best


def _grid() -> Iterable[Machine]:
    for hop in (0.1, 0.15):
        for rate in (200 * MiB, 250 * MiB, 300 * MiB):
            for cost in (0.0, 10e-6, 20e-6):
                yield Machine(hop, rate, cost)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.simcheck", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="real runs per setup [%(default)s]")
    parser.add_argument("--seeds", type=int, default=3, help="simulated runs per setup, one per seed [%(default)s]")
    parser.add_argument("--only", action="append", default=None, metavar="TEXT",
                        help="only the setups whose name contains TEXT (repeatable)")
    parser.add_argument("--calibrate", action="store_true", help="fit the machine on the calibration setups")
    parser.add_argument("--hop-ms", type=float, default=0.1)
    parser.add_argument("--machine-rate", type=float, default=600 * MiB, metavar="BYTES_PER_S")
    parser.add_argument("--machine-cost", type=float, default=20e-6, metavar="SECONDS")
    parser.add_argument("--real", default=None, metavar="JSON", help="reuse the real times of an earlier run's json")
    parser.add_argument("--push", action="append", default=None, metavar="RESULTS_JSON",
                        help="also simulate the push of this 'python -m bench --only push' results.json")
    parser.add_argument("--out", default=os.path.join(HERE, "simcheck.json"))
    options = parser.parse_args(argv)
    setups = [s for s in SETUPS if not options.only or any(text in s.name for text in options.only)]
    files = Files()
    try:
        real: dict[str, list[float | None]] = {}
        if options.real:
            with open(options.real) as earlier:
                real = {row["setup"]: row["measured"] for row in json.load(earlier)["rows"]}
        for setup in setups:
            if setup.name not in real:
                log(f"real: {setup.name}")
                real[setup.name] = measured(setup, files, options.repeats)
    finally:
        files.close()
    machine = Machine(options.hop_ms, options.machine_rate, options.machine_cost)
    if options.calibrate:
        medians = {name: _median(times) for name, times in real.items()}
        machine = calibrate({name: time for name, time in medians.items() if time}, _grid())
    rows = []
    for setup in setups:
        log(f"simulated: {setup.name}")
        times = simulated(setup, machine, range(1, options.seeds + 1))
        real_median, sim_median = _median(real[setup.name]), _median(times)
        ratio = sim_median / real_median if real_median and sim_median else None
        rows.append({"setup": setup.name, "calibration": setup.calibration, "measured": real[setup.name],
                     "simulated": times, "ratio": ratio})
        log(f"  measured {real_median}, simulated {sim_median}, ratio {ratio}")
    for path in options.push or []:
        log(f"simulated: the push of {path}")
        rows.append(push_row(path, range(1, options.seeds + 1)))
    with open(options.out, "w") as out:
        json.dump({"machine": machine.__dict__, "rows": rows}, out, indent=2)
    with open(os.path.splitext(options.out)[0] + ".rst", "w") as out:
        out.write(rst(machine, rows, options.repeats, options.seeds))
    for row in rows:
        print(_line(row))
    return 0


def _spread(values: list[float | None]) -> str:
    good = sorted(v for v in values if v is not None)
    if not good:
        return "—"
    if len(good) == 1:
        return f"{good[0]:.2f} s"
    return f"{statistics.median(good):.2f} s ({good[0]:.2f}-{good[-1]:.2f})"


def rst(machine: Machine, rows: list[dict], repeats: int, seeds: int) -> str:
    """The table for the docs: each setup measured and simulated, and the ratio."""
    lines = [f"Measured {datetime.date.today().isoformat()}: real runs (median and range of {repeats}) and "
             f"simulated ones (of {seeds} seed{'s' if seeds != 1 else ''}), both timed from every pair "
             "connected to the last leecher complete, from their event logs. The machine stage: "
             f"{machine.hop_ms:g} ms a hop, {((machine.rate or 0) / MiB):.0f} MiB/s, "
             f"{machine.cost * 1e6:.0f} µs a segment; setups marked *fitted* chose it. A push row: measured is "
             "push's own 'peers started -> last complete' (their start over ssh included), simulated from the "
             "start, with no machine stage.", "",
             ".. list-table::", "   :header-rows: 1", "",
             "   * - setup", "     - measured", "     - simulated", "     - simulated / measured"]
    for row in rows:
        ratio = "—" if row["ratio"] is None else f"{row['ratio']:.2f}"
        lines += [f"   * - {row['setup']}{' (*fitted*)' if row['calibration'] else ''}",
                  f"     - {_spread(row['measured'])}", f"     - {_spread(row['simulated'])}", f"     - {ratio}"]
    return "\n".join(lines) + "\n"


def _line(row: dict) -> str:
    ratio = "—" if row["ratio"] is None else f"{row['ratio']:.2f}"
    return (f"{row['setup']}{' [fitted]' if row['calibration'] else ''}: measured {_spread(row['measured'])}, "
            f"simulated {_spread(row['simulated'])}, ratio {ratio}")


if __name__ == "__main__":
    raise SystemExit(main())

