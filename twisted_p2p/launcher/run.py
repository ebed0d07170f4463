"""``p2p-swarm run``: the command line that starts every peer of PeerInfo.cfg, watches
it, checks it and reports.

It parses its arguments into :class:`~twisted_p2p.launcher.options.RunOptions` and hands
them to :func:`twisted_p2p.launcher.launch.run_swarm`, which does the rest.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from twisted_p2p.launcher.launch import run_swarm
from twisted_p2p.launcher.options import DEFAULT_PIPELINE, RunOptions
from twisted_p2p.launcher.web.server import parse_address
from twisted_p2p.pipeline import MAX_DEPTH


def build_parser() -> argparse.ArgumentParser:
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
    add_extensions(parser)
    parser.add_argument("--upload-rate", type=int, default=0, metavar="BYTES_PER_S",
                        help="cap each peer's upload (twistd p2ppeer --upload-rate), to watch a swarm at a pace a "
                        "person can follow [no cap]")
    parser.add_argument("--web", metavar="[HOST:]PORT", default=None,
                        help="serve a live dashboard of the swarm at http://HOST:PORT/ (HOST defaults to "
                        "127.0.0.1, this machine only; 0.0.0.0 for every interface; PORT 0 picks a free one); "
                        "it stays up after the run until Ctrl-C")
    parser.add_argument("--web-linger", type=float, default=None, metavar="S",
                        help="with --web: keep the dashboard S seconds after the run, then exit [until Ctrl-C]")
    add_remote(parser)
    return parser


def add_extensions(parser: argparse.ArgumentParser) -> None:
    """Our extensions, off by default: the course's protocol unless asked."""
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


def add_remote(parser: argparse.ArgumentParser) -> None:
    """How peers on other hosts are reached and started."""
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


def parse_args(argv: list[str]) -> RunOptions:
    """The command line as :class:`RunOptions`; a wrong one exits with usage (status 2)."""
    parser = build_parser()
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
    return RunOptions(**{**vars(args), "config_dir": Path(args.config_dir), "work_dir": Path(args.work_dir)})


def main(argv: list[str], stdout: TextIO = sys.stdout) -> int:
    return run_swarm(parse_args(argv), stdout)
