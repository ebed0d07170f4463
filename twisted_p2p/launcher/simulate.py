"""``p2p-swarm simulate CONFIG_DIR``: the swarm of a config, simulated in seconds.

Every peer of PeerInfo.cfg runs our real peer code (:mod:`twisted_p2p.sim`) on its own
simulated host, all on one simulated clock, over a link model given as options. The
event logs, ``swarm-report.json`` and ``swarm-report.html`` are written as ``run``
writes them, so ``p2p-swarm audit`` reads them, and the simulated completion time is
printed beside the textbook bound where the rates give one: a teacher can see what k,
p and m do to a 50-peer swarm without 50 machines.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from twisted_p2p.config import ConfigError, SwarmConfig, load
from twisted_p2p.launcher.progress import PeerProgress
from twisted_p2p.launcher.runend import write_reports
from twisted_p2p.launcher.runreport import PeerResult, build_report, summary_table
from twisted_p2p.layout import event_log_path
from twisted_p2p.settings import PeerSettings
from twisted_p2p.sim.cpu import fitted
from twisted_p2p.sim.swarm import EPOCH, LinkModel, SimResult, simulate

#: Peers beyond which the summary table is left out (the report has every peer).
TABLE_LIMIT = 60


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="p2p-swarm simulate",
        description="Simulate the swarm of CONFIG_DIR: every peer of PeerInfo.cfg runs the real peer code on its "
        "own simulated host, on one simulated clock, over the link model given below; a seed gives one run, "
        "the same every time. Writes the peers' event logs (which 'p2p-swarm audit' reads), their files, "
        "swarm-report.json and swarm-report.html in the work dir, and prints the simulated time to complete. "
        "Times are simulated seconds. By default every peer has a machine of its own and its processing "
        "costs nothing; with --cores the peers share one machine, as 'p2p-swarm run' puts them on this one.",
    )
    parser.add_argument("config_dir", nargs="?", default="conf", help="directory with Common.cfg and PeerInfo.cfg")
    parser.add_argument("--work-dir", default="sim-work", help="where peer_ID/, the logs and the reports go "
                        "(an earlier run's are replaced) [%(default)s]")
    parser.add_argument("--seed", type=int, default=1, help="the run's seed: every peer's random choices come "
                        "from it [%(default)s]")
    parser.add_argument("--upload-rate", type=int, default=0, metavar="BYTES_PER_S",
                        help="cap each peer's upload, as 'run --upload-rate' does (the peer's own cap) [no cap]")
    parser.add_argument("--download-rate", type=int, default=0, metavar="BYTES_PER_S",
                        help="each host's download link, shared by all its connections [unlimited]")
    parser.add_argument("--link-rate", type=int, default=0, metavar="BYTES_PER_S",
                        help="each host's upload link, shared by all its connections (a slower link than "
                        "--upload-rate's cap, say) [unlimited]")
    parser.add_argument("--delay-ms", type=float, default=1.0, metavar="MS",
                        help="one-way delay between any two hosts, in milliseconds [%(default)s]")
    parser.add_argument("--stagger", type=float, default=0.2,
                        help="simulated seconds between peer starts, as run's [%(default)s]")
    parser.add_argument("--cores", type=int, default=0, metavar="N",
                        help="put every peer on one machine of N cores, each a process whose work costs CPU "
                        "(fitted on a two-core machine: 25 us a message, 0.75 ns a byte...), as 'run' puts "
                        "them on this one [0: a machine each, and no CPU cost]")
    parser.add_argument("--limit", type=float, default=3600.0, metavar="S",
                        help="stop after this many simulated seconds [%(default)s]")
    extensions = parser.add_argument_group("our extensions", "Off by default: the course's protocol, as in run.")
    extensions.add_argument("--pipeline", type=int, default=0, metavar="N",
                            help="most requests outstanding per neighbour [0: one at a time]")
    extensions.add_argument("--refill-slots", action="store_true",
                            help="give a slot freed between rounds to a waiting neighbour at once")
    return parser


def textbook_bound(config: SwarmConfig, upload: float) -> float:
    """The least time to give every leecher the file when every peer uploads at most
    ``upload`` bytes/s (Kurose & Ross): max(F/u_seeds, N*F/(u_seeds + N*u))."""
    size = config.common.file_size
    seeds = sum(peer.has_file for peer in config.peers)
    leechers = len(config.peers) - seeds
    if not leechers:
        return 0.0
    return max(size / (seeds * upload), leechers * size / ((seeds + leechers) * upload))


def progress_from_logs(config: SwarmConfig, work_dir: Path, start: float) -> dict[int, PeerProgress]:
    """Each peer's progress as its event log tells it (the same reading as run's)."""
    progress = {}
    for peer in config.peers:
        state = PeerProgress(peer.peer_id, peer.host, config.common.num_pieces, peer.has_file, start)
        try:
            with open(event_log_path(work_dir, peer.peer_id), encoding="utf-8", errors="replace") as log:
                for line in log:
                    state.feed_line(line)
        except OSError:
            pass
        progress[peer.peer_id] = state
    return progress


def main(argv: list[str], stdout: TextIO = sys.stdout) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("upload_rate", "download_rate", "link_rate"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be 0 (no limit) or a positive number of bytes per second")
    if args.delay_ms < 0 or args.stagger < 0 or args.limit <= 0:
        parser.error("--delay-ms and --stagger must not be negative, --limit must be positive")
    if args.pipeline < 0 or args.cores < 0:
        parser.error("--pipeline must be 0 (the plain protocol) or more, --cores 0 (a machine each) or more")
    try:
        config = load(Path(args.config_dir))
    except ConfigError as exc:
        print(f"p2p-swarm simulate: {exc}", file=sys.stderr)
        return 2
    return simulate_swarm(config, Path(args.work_dir), args, stdout)


def simulate_swarm(config: SwarmConfig, work_dir: Path, args: argparse.Namespace, stdout: TextIO) -> int:
    link = LinkModel(upload=args.link_rate or None, download=args.download_rate or None, delay=args.delay_ms / 1000,
                     cpu=fitted(args.cores) if args.cores else None)
    settings = PeerSettings(upload_rate=args.upload_rate, pipeline=args.pipeline, refill_slots=args.refill_slots)
    where = f", on one machine of {args.cores} core{'s' if args.cores != 1 else ''}" if args.cores else ""
    print(f"simulating {len(config.peers)} peers, {config.common.num_pieces} pieces, seed {args.seed}{where}...",
          file=stdout, flush=True)
    try:
        result = simulate(config, work_dir, seed=args.seed, link=link, settings=settings, limit=args.limit,
                          stagger=args.stagger, epoch=EPOCH)
    except OSError as exc:
        print(f"p2p-swarm simulate: cannot use {work_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    progress = progress_from_logs(config, work_dir, EPOCH)
    # a peer stopped at the limit shows as run shows one stopped at its --timeout: signal 15
    results = [PeerResult(progress[peer.peer_id], 0 if peer.peer_id not in result.unfinished else -15,
                          result.peers[peer.peer_id].sha256 == _seed_digest(result)) for peer in config.peers]
    outcome = "finished" if not result.unfinished and result.files_identical else "timeout"
    if len(config.peers) <= TABLE_LIMIT:
        print("", file=stdout)
        for line in summary_table(results):
            print(line, file=stdout)
    file_info = {"name": config.common.file_name, "size": config.common.file_size,
                 "pieces": config.common.num_pieces, "sha256": _seed_digest(result)}
    report = build_report(results, outcome, 0 if outcome == "finished" else 1, result.sim_seconds, file_info)
    report["simulated"] = {"seed": args.seed, "messages": dict(result.messages()), "events": result.events}
    write_reports(config, work_dir, report, progress, stdout)
    print(_verdict(config, result, args), file=stdout)
    return 0 if outcome == "finished" else 1


def _seed_digest(result: SimResult) -> str | None:
    return next((peer.sha256 for peer in result.peers.values() if peer.has_file), None)


def _verdict(config: SwarmConfig, result: SimResult, args: argparse.Namespace) -> str:
    """The last line: the simulated time, the bound where the rates give one, the cost."""
    if result.completion is None:
        return (f"not every peer completed within {args.limit:g} simulated seconds "
                f"(unfinished: {', '.join(map(str, result.unfinished))}); exit 1")
    line = f"swarm complete after {result.completion:.2f} simulated seconds"
    caps = [rate for rate in (args.upload_rate, args.link_rate) if rate]
    if caps:
        bound = textbook_bound(config, min(caps))
        line += (f"; the textbook bound at {min(caps):,} bytes/s per peer is {bound:.2f} s "
                 f"({result.completion / bound:.2f}x)")
    return line + f"; simulated in {result.wall_seconds:.1f} s ({result.cpu_seconds:.1f} s of CPU); exit 0"
