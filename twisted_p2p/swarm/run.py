"""``p2p-swarm run``: start every peer of PeerInfo.cfg, watch it, check it, report.

Planning is :mod:`twisted_p2p.swarm.plan`'s, the processes are
:mod:`twisted_p2p.swarm.supervise`'s; this module is the command line, and only
:func:`main` touches the global reactor and the signals.
"""
from __future__ import annotations

import argparse
import itertools
import shlex
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Callable, Optional, TextIO

from twisted.python.failure import Failure

from twisted_p2p.config import ConfigError, SwarmConfig, load
from twisted_p2p.layout import event_log_path
from twisted_p2p.pipeline import MAX_DEPTH
from twisted_p2p.storage import data_path
from twisted_p2p.swarm.audit import audit
from twisted_p2p.swarm.display import Display
from twisted_p2p.swarm.htmlreport import write_html_report
from twisted_p2p.swarm.pace import demo_pace
from twisted_p2p.swarm.plan import Launch, plan, prepare_work_dir, twistd_command
from twisted_p2p.swarm.remote import Host, Hosts, RemoteError, Ssh, prepare_script
from twisted_p2p.swarm.progress import PeerProgress
from twisted_p2p.swarm.report import (
    PeerResult,
    build_report,
    sha256_file,
    summary_table,
    write_plot,
    write_report,
)
from twisted_p2p.swarm.supervise import PeerProcesses
from twisted_p2p.swarm.web.server import Dashboard, parse_address
from twisted_p2p.swarm.web.feed import Feed

#: The most requests in flight per neighbour with our pipelining extension (``push``'s
#: default; ``run`` speaks the course's protocol unless asked); each peer keeps what the
#: round trip needs below that (:mod:`twisted_p2p.pipeline`).
DEFAULT_PIPELINE = 256
CHECKING = "checking"  # the dashboard's outcome while the files are checked
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
    parser.add_argument("--demo-file", action="store_true",
                        help="create each seed's missing file (pseudo-random), and pace the swarm so that every "
                        "log shows several p and m rounds (see --pace)")
    parser.add_argument("--pace", choices=("auto", "off"), default="auto",
                        help="with --demo-file and no --upload-rate: cap every peer's upload so that the transfer "
                        "takes about a minute, long enough to show every rubric item; it prints what it chose and "
                        "why ('off': as fast as it goes) [%(default)s]")
    parser.add_argument("--stagger", type=float, default=0.2, help="seconds between peer starts [%(default)s]")
    parser.add_argument("--timeout", type=float, default=None, help="stop everything after this many seconds")
    extensions = parser.add_argument_group(
        "our extensions",
        "By default every peer speaks the course's protocol exactly: one request outstanding per neighbour, "
        "preferred neighbours chosen every p seconds and the optimistic one every m seconds, at those rounds "
        "only. These make a swarm of our own peers faster, and are what 'p2p-swarm push' uses.")
    extensions.add_argument("--pipeline", type=int, default=0, metavar="N",
                            help="most requests outstanding per neighbour with our pipelining extension (each "
                            "peer keeps what the round trip needs, at least 16; try "
                            f"{DEFAULT_PIPELINE}), announced only when every peer is started here "
                            "[0: one request at a time, as the course says]")
    extensions.add_argument("--refill-slots", action="store_true",
                            help="give a preferred or optimistic slot freed between rounds to a waiting "
                            "neighbour at once, rather than at the next round")
    parser.add_argument("--upload-rate", type=int, default=0, metavar="BYTES_PER_S",
                        help="cap each peer's upload (twistd p2ppeer --upload-rate), to watch a swarm at a pace a "
                        "person can follow [no cap]")
    parser.add_argument("--web", metavar="[HOST:]PORT", default=None,
                        help="serve a live dashboard of the swarm at http://HOST:PORT/ (HOST defaults to "
                        "127.0.0.1, this machine only; 0.0.0.0 for every interface; PORT 0 picks a free one); "
                        "it stays up after the run until Ctrl-C")
    parser.add_argument("--web-linger", type=float, default=None, metavar="S",
                        help="with --web: keep the dashboard S seconds after the run, then exit [until Ctrl-C]")
    remote = parser.add_argument_group(
        "peers on other hosts",
        "A peer whose host in PeerInfo.cfg is not this machine runs over ssh (key login, no password): one "
        "connection per host, on which the launcher clears the earlier run's files, puts the config and, where "
        "the host lacks it, the seed's file, starts the peers, and at the end checks that none is left running.")
    remote.add_argument("--remote-dir", default=None, metavar="DIR",
                        help="the work dir on the other hosts; {host} is replaced by the host's name "
                        "[the work dir's absolute path, as on machines that share a home directory]")
    remote.add_argument("--remote-twistd", default=None, metavar="PATH",
                        help="twistd on the other hosts [the same absolute path as here]")
    remote.add_argument("--ssh-config", default=None, metavar="FILE", help="ssh's configuration file (ssh -F)")
    remote.add_argument("--connect-timeout", type=float, default=10.0, metavar="S",
                        help="seconds ssh may take to connect to a host [%(default)s]")
    remote.add_argument("--dry-run", action="store_true", help="print what would run on each host, and run nothing")
    remote.add_argument(
        "--remote-shell", default=None, metavar="TEMPLATE",
        help="instead: your own command for a peer on another host, with {host} {id} {dir} {config_dir} "
        "{twistd}; the peer must print its events (--echo-events); nothing is prepared or checked there",
    )
    args = parser.parse_args(argv)
    if args.stagger < 0:
        parser.error("--stagger must not be negative")
    if args.timeout is not None and args.timeout <= 0:
        parser.error("--timeout must be positive")
    if args.connect_timeout <= 0:
        parser.error("--connect-timeout must be positive")
    if not 0 <= args.pipeline <= MAX_DEPTH:
        parser.error(f"--pipeline must be 0 (the plain protocol) up to {MAX_DEPTH}")
    if args.remote_shell:
        args.pipeline = 0  # its peers may be anyone's
    if args.upload_rate < 0:
        parser.error("--upload-rate must be 0 (no cap) or a positive number of bytes per second")
    if args.web is not None:
        try:
            args.web = parse_address(args.web)
        except ValueError as exc:
            parser.error(f"--web {exc}")
    if args.web_linger is not None and (args.web is None or args.web_linger < 0):
        parser.error("--web-linger needs --web and a number of seconds, 0 or more")
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


def peer_options(args: argparse.Namespace, all_ours: bool) -> list[str]:
    """The options every peer we start gets: the upload cap, refilling free slots if asked,
    and our pipelining extension only when every peer of the swarm is one we start (a
    plain peer may drop a handshake whose reserved bytes are not zero)."""
    options = ["--upload-rate", str(args.upload_rate)] if args.upload_rate else []
    if args.refill_slots:
        options.append("--refill-slots")
    if args.pipeline > 1 and all_ours:
        options += ["--pipeline", str(args.pipeline)]
    return options


def dry_run(launches: list[Launch], hosts: list[Host], config: SwarmConfig, twistd: list[str],
            stdout: TextIO) -> None:
    """What would run, host by host, without running anything."""
    for launch in launches:
        if launch.tail:
            print(f"here: peer {launch.peer.peer_id}: {shlex.join(launch.argv)}", file=stdout)
    for host in hosts:
        print(f"{host.name}: one ssh connection; in {host.directory}: clear the earlier run's files, "
              f"put Common.cfg and PeerInfo.cfg (and each seed's file if missing there):", file=stdout)
        for line in prepare_script(config, host, twistd).splitlines():
            print(f"    {line}", file=stdout)
    for launch in launches:
        if not launch.tail:
            print(f"{launch.peer.host}: peer {launch.peer.peer_id}: {shlex.join(launch.argv)}", file=stdout)


def main(argv: list[str], stdout: TextIO = sys.stdout) -> int:
    args = parse_args(argv)
    config_dir = Path(args.config_dir).resolve()
    work_dir = Path(args.work_dir).resolve()
    control_dir = Path(tempfile.mkdtemp(prefix="p2p-swarm-ssh-"))
    try:
        return _main(args, config_dir, work_dir, control_dir, stdout)
    finally:
        shutil.rmtree(control_dir, ignore_errors=True)


def _main(args: argparse.Namespace, config_dir: Path, work_dir: Path, control_dir: Path, stdout: TextIO,
          finish: Optional[Callable[[Hosts], list[str]]] = None) -> int:
    """Plan, prepare, run and check; ``finish`` (for push) runs over the hosts'
    connections after a run that succeeded, and its messages are printed."""
    ssh = Ssh(control_dir, args.ssh_config, args.connect_timeout)
    remote_twistd = [args.remote_twistd] if args.remote_twistd else twistd_command()
    try:
        config = load(config_dir)
        if args.demo_file and args.pace == "auto" and not args.upload_rate:
            pace = demo_pace(config.common, len(config.peers), sum(peer.has_file for peer in config.peers))
            args.upload_rate = pace.rate
            print(pace.why, file=stdout)
        launches, hosts = plan(config, config_dir, work_dir, ssh, args.remote_dir or str(work_dir),
                               remote_twistd, args.remote_shell)
        ours = [launch for launch in launches if launch.tail or launch.over_ssh]  # --remote-shell: the user's own
        for launch in ours:
            launch.argv += peer_options(args, all_ours=len(ours) == len(launches))
        if args.dry_run:
            dry_run(launches, hosts, config, remote_twistd, stdout)
            return 0
        work_dir.mkdir(parents=True, exist_ok=True)
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
    remote = Hosts(ssh, hosts)
    try:
        if hosts:
            print(f"preparing {len(hosts)} host{'s' if len(hosts) != 1 else ''} over ssh ...", file=stdout)
            for message in remote.prepare(config, remote_twistd, config_dir, lambda n: local_seed(config, work_dir, n)):
                print(message, file=stdout)
        code = _run(args, config, work_dir, launches, remote, stdout)
        if code == 0 and finish is not None:
            for message in finish(remote):
                print(message, file=stdout)
    except RemoteError as exc:
        print(f"p2p-swarm run: {exc}", file=sys.stderr)
        return 2
    finally:
        remote.close()
    return code


def local_seed(config: SwarmConfig, work_dir: Path, peer_id: int) -> Optional[Path]:
    """The file to send to a remote seed that lacks it: its own here, else any seed's."""
    paths = [data_path(work_dir, peer_id, config.common)]
    paths += [data_path(work_dir, peer.peer_id, config.common) for peer in config.peers if peer.has_file]
    return next((path for path in paths if path.is_file() and path.stat().st_size == config.common.file_size), None)


def _run(args: argparse.Namespace, config: SwarmConfig, work_dir: Path, launches: list[Launch], remote: Hosts,
         stdout: TextIO) -> int:
    from twisted.internet import reactor
    from twisted.internet.error import CannotListenError

    start = reactor.seconds()
    progress = {
        peer.peer_id: PeerProgress(peer.peer_id, peer.host, config.common.num_pieces, peer.has_file, start)
        for peer in config.peers
    }
    display = Display(stdout, config.common.piece_size, tty=stdout.isatty())
    swarm = PeerProcesses(reactor, launches, progress, display)
    dashboard: Optional[Dashboard] = None
    if args.web is not None:
        try:
            dashboard = Dashboard(reactor, Feed(config, progress, lambda: reactor.seconds() - start), *args.web)
        except CannotListenError as exc:
            print(f"p2p-swarm run: --web: cannot listen on {args.web[0]}:{args.web[1]}: {exc.socketError}",
                  file=sys.stderr)
            return 2
        print(f"dashboard: {dashboard.url}", file=stdout)
    outcome: list[str] = []
    codes: list[int] = []
    lingering: list[bool] = []

    def finished(result: object) -> None:
        if isinstance(result, Failure):
            display.say(f"p2p-swarm run: internal error: {result.getTraceback()}")
            outcome.append("failed")
        else:
            outcome.append(str(result))
        if dashboard is None:
            reactor.stop()
            return
        # The page hears that the files are being checked (the check holds the reactor
        # for a while), then the summary is printed, then the page stays up.
        dashboard.finish(CHECKING)
        reactor.callLater(0.2, linger, reactor.seconds() - start)

    def linger(duration: float) -> None:
        assert dashboard is not None
        codes.append(conclude(config, work_dir, swarm, progress, remote, outcome[0], duration, display, stdout))
        dashboard.finish(outcome[0])
        if outcome[0] in ("interrupted", "terminated"):  # one Ctrl-C ends it all, the dashboard too
            reactor.stop()
            return
        lingering.append(True)
        until = "Ctrl-C" if args.web_linger is None else f"{args.web_linger:g} s have passed (or Ctrl-C)"
        print(f"the dashboard stays at {dashboard.url} until {until}", file=stdout, flush=True)
        if args.web_linger is not None:
            reactor.callLater(args.web_linger, reactor.stop)

    def handle_signals() -> None:
        def handler(signum: int, frame: object) -> None:
            if lingering:
                reactor.callFromThread(reactor.stop)
            else:
                reactor.callFromThread(swarm.interrupt, signum)

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    reactor.callWhenRunning(handle_signals)
    reactor.callWhenRunning(lambda: swarm.run(args.stagger, args.timeout).addBoth(finished))
    reactor.run()
    if dashboard is not None:
        dashboard.stop()
    if codes:
        return codes[0]
    return conclude(config, work_dir, swarm, progress, remote, outcome[0] if outcome else "failed",
                    reactor.seconds() - start, display, stdout)


AUDIT_LIMIT = 20_000_000  # bytes of logs the end of a run audits for the report (about 1.5 s)


def auditable(work_dir: Path, config: SwarmConfig) -> bool:
    """Whether the report includes the audit: every log is here (those of other hosts
    fetched), and they are small enough to read at once (32 peers on 20 MB write 100 MB
    of logs: 13 s of reading)."""
    total = 0
    for peer_id in config.peer_ids:
        try:
            total += event_log_path(work_dir, peer_id).stat().st_size
        except OSError:
            return False
    return total <= AUDIT_LIMIT


def conclude(config: SwarmConfig, work_dir: Path, swarm: PeerProcesses, progress: dict[int, PeerProgress], remote: Hosts,
             result_outcome: str, duration: float, display: Display, stdout: TextIO) -> int:
    """After the run: no peer left on other hosts, every file checked, the summary and the
    reports written; the exit status."""
    if remote.hosts:
        left = remote.make_sure_stopped()
        if left:
            for host, peer_ids in left.items():
                display.say(f"still running on {host}: peer {', '.join(map(str, peer_ids))}; stop it by hand")
            result_outcome = "failed"
        else:
            count = sum(len(host.peers) for host in remote.hosts.values())
            display.say(f"checked over ssh: none of the {count} peers started on "
                        f"{len(remote.hosts)} other host{'s' if len(remote.hosts) != 1 else ''} is running")
            fetched = remote.fetch_logs(work_dir)
            if fetched:
                display.say(f"fetched the event logs of peer{'s' if len(fetched) != 1 else ''} "
                            f"{', '.join(map(str, fetched))} from their hosts into {work_dir}, for the audit "
                            "and its rubric")
    statuses = {process.launch.peer.peer_id: process.status for process in swarm.processes}
    local_ids = {launch.peer.peer_id for launch in swarm.launches if launch.tail}
    results, expected = check_files(config, work_dir, local_ids, statuses, progress)
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
    checked = audit(work_dir, config) if auditable(work_dir, config) else None
    print(f"html report: {write_html_report(work_dir, report, progress, config, checked)}", file=stdout)
    plot = write_plot(report, work_dir)
    if plot is None:
        print("png plot skipped: matplotlib is not installed (pip install .[plot]); the html report has the plot",
              file=stdout)
    else:
        print(f"plot: {plot}", file=stdout)
    verdict = "every peer has the seed's file" if code == 0 else f"not verified ({result_outcome})"
    print(f"swarm {result_outcome} in {duration:.1f} s: {verdict}; exit {code}", file=stdout)
    return code
