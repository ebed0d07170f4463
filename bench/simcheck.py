"""``python -m bench.simcheck``: the simulator (:mod:`twisted_p2p.sim`) against real runs
of the same swarms, timed the same way from the same event logs.

Each setup is run for real (``twistd`` peers on 127.0.0.1, through the bench's delaying
relay where it has a delay) and simulated with several seeds; both are timed as the
bench times a swarm: from every pair connected to the last leecher complete, read from
the event logs (:class:`bench.swarm.Timeline`). The ratio is simulated over measured.

The peers on one machine's loopback are limited by its CPU, which the simulator models
as processes sharing the machine's cores (:mod:`twisted_p2p.sim.cpu`): a cost per
reactor turn, per connection read or written, per have, per other message and per
byte, the bench's relay a process of its own. ``--calibrate`` fits those costs on the
setups marked ``calibration`` (one leecher, five and 31) and the others are checked
with what it found: the relayed setups, the paced demo, a push.

The real runs go in rounds, every setup once a round: a machine that is slower for a
while (a virtual machine on a shared host) slows every setup alike.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import multiprocessing
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
from twisted_p2p.sim.cpu import fitted
from twisted_p2p.sim.swarm import CpuModel, LinkModel, simulate

FIRST_PORT = 6008
#: The kernel waking a process on loopback, in ms, as the last ``--calibrate`` fitted it
#: (with the costs of :func:`twisted_p2p.sim.cpu.fitted`).
HOP_MS = 0.05


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
    Setup("1+1, 100 MiB, 256 KiB, pipeline 256", 1, 100 * MiB, 256 * KiB, preferred=1, pipeline=256,
          calibration=True),
    Setup("1+5, 100 MiB, 32 KiB, pipeline 256", 5, 100 * MiB, 32 * KiB, pipeline=256, calibration=True),
    Setup("1+5, 20 MiB, 16 KiB, plain (the bench's demo)", 5, 20 * MiB, 16 * KiB, calibration=True),
    Setup("1+5, 100 MiB, 32 KiB, plain", 5, 100 * MiB, 32 * KiB, calibration=True),
    Setup("1+31, 20 MiB, 16 KiB, plain", 31, 20 * MiB, 16 * KiB, calibration=True),
    Setup("1+5, 20 MiB, 16 KiB, plain, 10 ms", 5, 20 * MiB, 16 * KiB, delay_ms=10),
    Setup("1+5, 20 MiB, 16 KiB, pipeline 256, 10 ms", 5, 20 * MiB, 16 * KiB, pipeline=256, delay_ms=10),
    Setup("1+5, 20 MiB, 16 KiB, plain, 25 ms", 5, 20 * MiB, 16 * KiB, delay_ms=25),
    Setup("1+5, 20 MiB, 16 KiB, pipeline 256, 25 ms", 5, 20 * MiB, 16 * KiB, pipeline=256, delay_ms=25),
    Setup("1+5, 20 MiB, 16 KiB, k=3 p=1 m=2, every upload 381,300 B/s (the paced demo)", 5, 20 * MiB, 16 * KiB,
          preferred=3, p=1, m=2, upload_rate=381_300),
)


@dataclass(frozen=True)
class Machine:
    """How one machine's loopback is modelled: a one-way delay per hop (the kernel waking
    a process), and its CPU (:class:`~twisted_p2p.sim.cpu.CpuModel`): the peers'
    processes sharing its cores, and the relay's where there is one."""

    hop_ms: float = 0.0
    cpu: CpuModel = CpuModel()

    def link(self, delay_ms: float | None, start: float = 0.0) -> LinkModel:
        """The network of a setup: through the relay where it has a delay; ``start``: each
        peer's start in seconds of CPU."""
        cpu = dataclasses.replace(self.cpu, relay=delay_ms is not None, start=start)
        return LinkModel(delay=(self.hop_ms + (delay_ms or 0.0)) / 1000, cpu=cpu)


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


#: Seconds of CPU a peer takes to start (``twistd`` and its imports): a peer started and
#: stopped at once takes 0.50 s (docs/history.rst, "A lighter start").
PEER_START_CPU = 0.5


def push_row(results_path: str, seeds: Iterable[int], machine: Machine) -> dict:
    """A ``python -m bench --only push`` run's hosts, simulated: every host's link at the
    caps it measured both ways, the seed's upload at the same cap, push's Common.cfg and
    peer settings, and each run's piece size as push chose it (by the round trip it
    timed, which varies from run to run); the hosts are namespaces of one machine, so
    they share its cores as the loopback setups do, and each peer first spends
    :data:`PEER_START_CPU` starting. Timed both ways from the first piece any host
    downloaded to the last complete (the peers' own stamps), as the loopback setups are
    timed without their start-up; also kept, from the peers' start (over ssh, for real)."""
    with open(results_path) as handle:
        case = json.load(handle)["cases"]["push"]
    hosts, size = case["hosts"], case["size_mb"] * 1_000_000
    rate = case["caps"]["host_to_host_bytes_per_s"]
    degree = degree_for(None, hosts)  # push's own choice: the full mesh, or bounded sets past 16 hosts
    good = [run for run in case["runs"] if run.get("ok")]
    seeds = list(seeds)
    counts = [run.get("pieces") for run in good]
    by_pieces = {count: _simulated_push(hosts, size, push_piece(size, count), rate, degree, seeds, machine)
                 for count in set(counts)}
    mesh = "full mesh" if degree == 0 else f"{degree} neighbours"
    name = (f"push to {hosts} namespace hosts ({mesh}), {case['size_mb']} MB, every link {rate / 1e6:.1f} MB/s "
            f"with a {case.get('queue_ms', 50.0):g} ms queue (bound {case['bound_s']:.1f} s)")
    real = [run["phases"].get("first_piece_to_last_complete") for run in good]
    simulated = [_median(by_pieces[count][0]) for count in counts]
    real_from_start = [run["phases"]["peers_until_last_complete"] for run in good]
    from_start = [_median(by_pieces[count][1]) for count in counts]
    return {"setup": name, "calibration": False, "measured": real, "simulated": simulated,
            "pieces": counts, "ratio": _ratio(_median(simulated), _median(real)),
            "from_start": {"measured": real_from_start, "simulated": from_start,
                           "ratio": _ratio(_median(from_start), _median(real_from_start))}}


def push_piece(size: int, pieces: int | None) -> int:
    """The piece size push chose, from the count it cut ``size`` bytes into (a power of
    two); without the count, the one push chooses when it cannot time the round trip."""
    if not pieces:
        return piece_size_for(size).size
    return 1 << (-(-size // pieces) - 1).bit_length()


def _simulated_push(hosts: int, size: int, piece: int, rate: float, degree: int, seeds: list[int],
                    machine: Machine) -> tuple[list[float | None], list[float | None]]:
    """A push's hosts simulated with each seed: (first piece to last complete, start to
    last complete) of each."""
    config = SwarmConfig(Common(hosts, 1, 1, swarm.FILE_NAME, size, piece),
                         tuple(PeerInfo(swarm.FIRST_ID + n, swarm.LOOPBACK, FIRST_PORT + n, n == 0)
                               for n in range(hosts + 1)))
    link = machine.link(None, start=PEER_START_CPU)
    transfers: list[float | None] = []
    from_start: list[float | None] = []
    for seed in seeds:
        work = tempfile.mkdtemp(prefix="simcheck-")
        settings = bounded(hosts + 1, degree, seed, push_settings(degree))
        try:
            result = simulate(config, Path(work), seed=seed, link=link, settings_for=settings.__getitem__,
                              rates_for=lambda peer: (rate, None) if peer == swarm.FIRST_ID else (rate, rate))
            timeline = swarm.Timeline.read(work, [peer.peer_id for peer in config.peers])
            complete = len(timeline.complete) == hosts and timeline.downloaded
            transfers.append(max(timeline.complete.values()) - min(timeline.downloaded) if complete else None)
            from_start.append(result.completion)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return transfers, from_start


def _ratio(simulated: float | None, measured: float | None) -> float | None:
    return simulated / measured if simulated and measured else None


def measured(setups: list[Setup], files: Files, repeats: int) -> dict[str, list[float | None]]:
    """Each setup run ``repeats`` times, in rounds of one run each: a machine that is
    slower for a while (a shared host's) slows every setup alike."""
    times: dict[str, list[float | None]] = {setup.name: [] for setup in setups}
    for round_ in range(repeats):
        for setup in setups:
            log(f"real, round {round_ + 1}/{repeats}: {setup.name}")
            times[setup.name].append(swarm.run(setup.spec(files.get(setup.size)))["transfer_s"])
    return times


def _median(values: list[float | None]) -> float | None:
    good = [value for value in values if value is not None]
    return statistics.median(good) if good else None


def calibration_error(machine: Machine, real: dict[str, float]) -> float:
    """The largest relative error of ``machine``'s simulated times on the calibration setups."""
    error = 0.0
    for setup in SETUPS:
        if setup.calibration and real.get(setup.name):
            time = _median(simulated(setup, machine, (1,)))
            error = max(error, abs((time or float("inf")) / real[setup.name] - 1))
    return error


def calibrate(real: dict[str, float], grid: Iterable[Machine]) -> Machine:
    """The machine whose simulated times are closest to the calibration setups' real
    ones (the largest relative error, smallest); a process per core tries them."""
    machines = list(grid)
    with multiprocessing.Pool(os.cpu_count()) as pool:
        errors = pool.starmap(calibration_error, [(machine, real) for machine in machines])
    for machine, error in zip(machines, errors):
        log(f"  machine {machine}: worst calibration error {error:.0%}")
    return machines[errors.index(min(errors))]


def _grid() -> Iterable[Machine]:
    """Around what a turn of our peer costs on a two-core laptop-class machine: tens of
    microseconds a message or a system call, a byte's copies under a nanosecond each
    (1 ns fitted worse in every calibration that tried it); and the kernel waking a
    process on loopback, 50-100 µs. A have is cheaper than the other messages (framed in
    place, no disk, nothing sent back): 32 peers, where haves are 93% of the messages,
    against one and five, where they are a third and 70%, tell the two costs apart."""
    for hop in (0.05, 0.1):
        for turn in (5e-6, 10e-6):
            for io in (5e-6, 10e-6):
                for message in (35e-6, 45e-6, 55e-6, 65e-6):
                    for have in (10e-6, 15e-6, 20e-6):
                        yield Machine(hop, CpuModel(cores=os.cpu_count() or 1, per_turn=turn, per_read=io,
                                                    per_write=io, per_message=message, per_have=have,
                                                    per_byte=0.75e-9))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.simcheck", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="real runs per setup [%(default)s]")
    parser.add_argument("--seeds", type=int, default=3, help="simulated runs per setup, one per seed [%(default)s]")
    parser.add_argument("--only", action="append", default=None, metavar="TEXT",
                        help="only the setups whose name contains TEXT (repeatable)")
    parser.add_argument("--calibrate", action="store_true", help="fit the machine on the calibration setups")
    parser.add_argument("--hop-ms", type=float, default=HOP_MS, help="the kernel waking a process [%(default)s]")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="the machine's [%(default)s]")
    fit = fitted(os.cpu_count() or 1)  # the last --calibrate's, kept in the simulator for simulate --cores
    parser.add_argument("--per-turn-us", type=float, default=fit.per_turn * 1e6,
                        help="a reactor turn's CPU [%(default)s]")
    parser.add_argument("--per-io-us", type=float, default=fit.per_read * 1e6,
                        help="one connection read or written in a turn [%(default)s]")
    parser.add_argument("--per-message-us", type=float, default=fit.per_message * 1e6,
                        help="a message handled [%(default)s]")
    parser.add_argument("--per-have-us", type=float, default=fit.per_have * 1e6,
                        help="a have handled [%(default)s]")
    parser.add_argument("--per-byte-ns", type=float, default=fit.per_byte * 1e9,
                        help="a byte read or sent [%(default)s]")
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
        real.update(measured([setup for setup in setups if setup.name not in real], files, options.repeats))
    finally:
        files.close()
    machine = Machine(options.hop_ms, CpuModel(
        cores=options.cores, per_turn=options.per_turn_us * 1e-6, per_read=options.per_io_us * 1e-6,
        per_write=options.per_io_us * 1e-6, per_message=options.per_message_us * 1e-6,
        per_have=options.per_have_us * 1e-6,
        per_byte=options.per_byte_ns * 1e-9))
    if options.calibrate:
        medians = {name: _median(times) for name, times in real.items()}
        machine = calibrate({name: time for name, time in medians.items() if time}, _grid())
    rows = []
    for setup in setups:
        log(f"simulated: {setup.name}")
        times = simulated(setup, machine, range(1, options.seeds + 1))
        real_median, sim_median = _median(real[setup.name]), _median(times)
        ratio = _ratio(sim_median, real_median)
        rows.append({"setup": setup.name, "calibration": setup.calibration, "measured": real[setup.name],
                     "simulated": times, "ratio": ratio})
        log(f"  measured {real_median}, simulated {sim_median}, ratio {ratio}")
    for path in options.push or []:
        log(f"simulated: the push of {path}")
        rows.append(push_row(path, range(1, options.seeds + 1), machine))
    with open(options.out, "w") as out:
        json.dump({"machine": {"hop_ms": machine.hop_ms, "cpu": dataclasses.asdict(machine.cpu)}, "rows": rows},
                  out, indent=2)
    with open(os.path.splitext(options.out)[0] + ".rst", "w") as out:
        out.write(rst(machine, rows, options.repeats, options.seeds))
    for row in rows:
        print(_line(row))
    return 0


def _spread(values: list[float | None], usual: int | None = None) -> str:
    """Median (low-high); ``, of N`` when N is not the ``usual`` count."""
    good = sorted(v for v in values if v is not None)
    if not good:
        return "—"
    if len(good) == 1:
        return f"{good[0]:.2f} s"
    count = f", of {len(good)}" if usual is not None and len(good) != usual else ""
    return f"{statistics.median(good):.2f} s ({good[0]:.2f}-{good[-1]:.2f}{count})"


def rst(machine: Machine, rows: list[dict], repeats: int, seeds: int) -> str:
    """The table for the docs: each setup measured and simulated, and the ratio."""
    cpu = machine.cpu
    lines = [f"Measured {datetime.date.today().isoformat()}: real runs (median and range, of {repeats} in rounds "
             "unless another count is given) and "
             f"simulated ones (of {seeds} seed{'s' if seeds != 1 else ''}), both timed from every pair "
             "connected to the last leecher complete, from their event logs. The machine: "
             f"{cpu.cores} cores, {machine.hop_ms:g} ms a hop; a turn {cpu.per_turn * 1e6:g} µs, a connection "
             f"read or written {cpu.per_read * 1e6:g} µs, a have {cpu.per_have * 1e6:g} µs, another message "
             f"{cpu.per_message * 1e6:g} µs, a byte "
             f"{cpu.per_byte * 1e9:g} ns; setups marked *fitted* chose it. A push row is timed both ways from the "
             "first piece any host downloaded to the last complete (the peers' own stamps), each peer's start costing "
             f"{PEER_START_CPU:g} s of CPU in the simulation.", "",
             ".. list-table::", "   :header-rows: 1", "",
             "   * - setup", "     - measured", "     - simulated", "     - simulated / measured"]
    for row in rows:
        ratio = "—" if row["ratio"] is None else f"{row['ratio']:.2f}"
        lines += [f"   * - {row['setup']}{' (*fitted*)' if row['calibration'] else ''}",
                  f"     - {_spread(row['measured'], repeats)}", f"     - {_spread(row['simulated'])}",
                  f"     - {ratio}"]
    for row in rows:
        if "from_start" in row:
            whole = row["from_start"]
            ratio = "—" if whole["ratio"] is None else f"{whole['ratio']:.2f}"
            lines += ["", f"The push timed from the peers' start (push's 'started peer' to the last complete, "
                      f"their start over ssh included): measured {_spread(whole['measured'], repeats)}, "
                      f"simulated {_spread(whole['simulated'])}, {ratio}."]
    return "\n".join(lines) + "\n"


def _line(row: dict) -> str:
    ratio = "—" if row["ratio"] is None else f"{row['ratio']:.2f}"
    return (f"{row['setup']}{' [fitted]' if row['calibration'] else ''}: measured {_spread(row['measured'])}, "
            f"simulated {_spread(row['simulated'])}, ratio {ratio}")


if __name__ == "__main__":
    raise SystemExit(main())

