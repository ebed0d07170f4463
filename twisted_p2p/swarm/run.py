"""``p2p-swarm run``: start every peer of PeerInfo.cfg, watch it, check it, report.

Planning is :mod:`twisted_p2p.swarm.plan`'s, the processes are
:mod:`twisted_p2p.swarm.supervise`'s; this module is the command line, and only
:func:`main` touches the global reactor and the signals.
"""
from __future__ import annotations

import argparse
import itertools
import signal
import sys
from pathlib import Path
from typing import Optional, TextIO

from twisted.python.failure import Failure

from twisted_p2p.config import ConfigError, SwarmConfig, load
from twisted_p2p.storage import data_path
from twisted_p2p.swarm.display import Display
from twisted_p2p.swarm.plan import DEFAULT_REMOTE_SHELL, plan, prepare_work_dir
from twisted_p2p.swarm.progress import PeerProgress
from twisted_p2p.swarm.report import (
    PeerResult,
    build_report,
    sha256_file,
    summary_table,
    write_plot,
    write_report,
)
from twisted_p2p.swarm.supervise import Swarm

EXIT_CODES = {"finished": 0, "failed": 1, "timeout": 124, "interrupted": 130, "terminated": 143}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="p2p-swarm run",
        description="Start every peer of PeerInfo.cfg in order, show their progress, "
        "stop when all have exited, check every file against the seed's SHA-256 and "
        "write swarm-report.json (and swarm-report.png with the 'plot' extra) in the work dir. "
        "Event logs and leechers' files from an earlier run in the work dir are replaced.",
    )
    parser.add_argument("config_dir", nargs="?", default="conf", help="directory with Common.cfg and PeerInfo.cfg")
    parser.add_argument("--work-dir", default="swarm-work", help="where peer_ID/ and the logs go [%(default)s]")
    parser.add_argument("--demo-file", action="store_true", help="create each seed's missing file (pseudo-random)")
    parser.add_argument("--stagger", type=float, default=0.2, help="seconds between peer starts [%(default)s]")
    parser.add_argument("--timeout", type=float, default=None, help="stop everything after this many seconds")
    parser.add_argument(
        "--remote-shell",
        default=DEFAULT_REMOTE_SHELL,
        metavar="TEMPLATE",
        help="command for a peer on another host; placeholders {host} {id} {dir} {config_dir} {twistd}; "
        "the peer must print its events (--echo-events) [%(default)s]",
    )
    parser.add_argument("--remote-dir", default=None, help="{dir} of the template [the work dir's absolute path]")
    args = parser.parse_args(argv)
    if args.stagger < 0:
        parser.error("--stagger must not be negative")
    if args.timeout is not None and args.timeout <= 0:
        parser.error("--timeout must be positive")
    return args


def check_files(config: SwarmConfig, work_dir: Path, local_ids: set[int], statuses: dict[int, Optional[int]],
                progress: dict[int, PeerProgress]) -> tuple[list[PeerResult], Optional[str]]:
    """Each peer's result, its file compared with the first seed file readable here.

    A remote peer's file is checked when it is in the work dir too (a shared
    filesystem), else by the SHA-256 it printed when it finished; with neither, its
    check is None ("not here"), not a failure.
    """
    seeds = [data_path(work_dir, peer.peer_id, config.common) for peer in config.peers if peer.has_file]
    reported = [progress[peer.peer_id].reported_sha256 for peer in config.peers if peer.has_file]
    expected = next((d for d in itertools.chain(map(sha256_file, seeds), reported) if d is not None), None)
    results = []
    for peer in config.peers:
        digest = sha256_file(data_path(work_dir, peer.peer_id, config.common))
        if digest is None and peer.peer_id not in local_ids:
            digest = progress[peer.peer_id].reported_sha256
        if digest is None:
            ok = False if peer.peer_id in local_ids else None
        else:
            ok = digest == expected
        results.append(PeerResult(progress[peer.peer_id], statuses.get(peer.peer_id), ok))
    return results, expected


def main(argv: list[str], stdout: TextIO = sys.stdout) -> int:
    args = parse_args(argv)
    config_dir = Path(args.config_dir).resolve()
    work_dir = Path(args.work_dir).resolve()
    try:
        config = load(config_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        launches = plan(config, config_dir, work_dir, args.remote_shell, args.remote_dir or str(work_dir))
        for message in prepare_work_dir(config, work_dir, args.demo_file):
            print(message, file=stdout)
    except (ConfigError, OSError) as exc:
        print(f"p2p-swarm run: {exc}", file=sys.stderr)
        return 2
    missing = [launch.peer for launch in launches if launch.tail and launch.peer.has_file
               and not data_path(work_dir, launch.peer.peer_id, config.common).is_file()]
    if missing:
        path = data_path(work_dir, missing[0].peer_id, config.common)
        print(f"p2p-swarm run: seed {missing[0].peer_id} has no file {path} (add --demo-file to create one)",
              file=sys.stderr)
        return 2

    from twisted.internet import reactor

    start = reactor.seconds()
    progress = {
        peer.peer_id: PeerProgress(peer.peer_id, peer.host, config.common.num_pieces, peer.has_file, start)
        for peer in config.peers
    }
    display = Display(stdout, config.common.piece_size, tty=stdout.isatty())
    swarm = Swarm(reactor, launches, progress, display)
    outcome: list[str] = []

    def finished(result: object) -> None:
        if isinstance(result, Failure):
            display.say(f"p2p-swarm run: internal error: {result.getTraceback()}")
            outcome.append("failed")
        else:
            outcome.append(str(result))
        reactor.stop()

    def handle_signals() -> None:
        def handler(signum: int, frame: object) -> None:
            reactor.callFromThread(swarm.interrupt, signum)

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    reactor.callWhenRunning(handle_signals)
    reactor.callWhenRunning(lambda: swarm.run(args.stagger, args.timeout).addBoth(finished))
    reactor.run()
    duration = reactor.seconds() - start

    statuses = {process.launch.peer.peer_id: process.status for process in swarm.processes}
    local_ids = {launch.peer.peer_id for launch in launches if launch.tail}
    results, expected = check_files(config, work_dir, local_ids, statuses, progress)
    result_outcome = outcome[0] if outcome else "failed"
    if result_outcome == "finished" and not all(result.ok for result in results):
        result_outcome = "failed"
    code = EXIT_CODES[result_outcome]
    print("", file=stdout)
    for line in summary_table(results):
        print(line, file=stdout)
    file_info = {"name": config.common.file_name, "size": config.common.file_size,
                 "pieces": config.common.num_pieces, "sha256": expected}
    report = build_report(results, result_outcome, code, duration, file_info)
    print(f"report: {write_report(report, work_dir)}", file=stdout)
    plot = write_plot(report, work_dir)
    if plot is None:
        print("plot skipped: matplotlib is not installed (pip install .[plot])", file=stdout)
    else:
        print(f"plot: {plot}", file=stdout)
    verdict = "every peer has the seed's file" if code == 0 else f"not verified ({result_outcome})"
    print(f"swarm {result_outcome} in {duration:.1f} s: {verdict}; exit {code}", file=stdout)
    return code
