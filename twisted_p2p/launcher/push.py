"""``p2p-swarm push FILE HOST [HOST ...]``: send one file to a set of hosts as a swarm.

No config to write by hand: this machine is the seed, at the address the hosts reach it
by (the source address of the route to them), each host runs one leecher over ssh, the
piece size suits the file, and every copy is checked by SHA-256 before it is moved to
the destination directory on its host. A host that already holds the file is left out;
one that fails is dropped and the others carry on (:mod:`twisted_p2p.launcher.pushrun`).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from twisted_p2p.config import Common, PeerInfo, SwarmConfig
from twisted_p2p.launcher.pushinput import HostSpec, endpoints, parse_host, parse_rate, read_hosts
from twisted_p2p.launcher.pushmesh import (
    DEFAULT_DEGREE,
    FULL_MESH_UP_TO,
    degree_for,
    echo_for,
    neighbour_options,
    parse_degree,
)
from twisted_p2p.launcher.pushresult import FAILED, HostOutcome, as_json, check_script, exit_status, table
from twisted_p2p.launcher.remote import Host, Hosts, Ssh, remote_dir_for

SEED_ID = 1001
#: The push's work dir on each host, beside the destination; ``{host}``: hosts may share a filesystem.
WORK_DIR = ".p2p-push-{host}"
MIN_PIECE, MAX_PIECE = 16 << 10, 4 << 20
#: Pieces a file of its size is cut into, about: enough for the hosts to trade among
#: themselves, few enough that per-piece work and have messages stay small.
PIECES_WANTED = 2000
#: Fewest pieces per host, so that a big piece size still leaves them something to trade.
PIECES_PER_HOST = 16
#: What one neighbour should be able to send over the path with one piece per round
#: trip (the plain protocol's pace): a gigabit link's worth, in bytes per second.
PATH_RATE = 125_000_000
#: How many TCP connections to a host's ssh port time its round trip (the fastest counts).
PROBES = 3


@dataclass(frozen=True)
class PieceChoice:
    size: int
    why: str


def piece_size_for(file_size: int, round_trip: float | None = None, hosts: int = 1) -> PieceChoice:
    """A power of two from 16 KiB to 4 MiB: about 2,000 pieces, and, when the round
    trip to the farthest host is known, big enough that one piece per round trip moves
    ``PATH_RATE`` -- but never so big that the hosts get fewer than 16 pieces each.
    ``round_trip`` is None when it could not be timed, and ``why`` says so."""
    size = MIN_PIECE
    while size < MAX_PIECE and file_size / size > PIECES_WANTED:
        size *= 2
    why = f"about {PIECES_WANTED:,} pieces" if size > MIN_PIECE else "the course's smallest"
    if round_trip is None:
        why += "; the round trip to the hosts could not be timed"
    else:
        fewest = max(1, file_size // (PIECES_PER_HOST * max(1, hosts)))
        path = size
        while path < MAX_PIECE and path < PATH_RATE * round_trip and path * 2 <= fewest:
            path *= 2
        if path > size:
            size = path
            why = (f"a {round_trip * 1000:.1f} ms round trip: one piece per round trip moves "
                   f"{size / round_trip / 1e6:.0f} MB/s per neighbour")
        else:
            why += f"; the {round_trip * 1000:.1f} ms round trip needs nothing bigger"
    return PieceChoice(size, why)


def ssh_endpoint(host: str, ssh_config: str | None) -> tuple[str, int]:
    """The address and port ssh would connect to for ``host`` (``ssh -G``; no connection)."""
    try:
        target = parse_host(host).ssh_args()
    except ValueError:
        target = [host]
    argv = ["ssh", "-G"] + (["-F", ssh_config] if ssh_config else []) + target
    shown = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True).stdout
    settings = dict(line.split(" ", 1) for line in shown.splitlines() if " " in line)
    return settings.get("hostname", host), int(settings.get("port", "22"))


def round_trip_to(host: str, ssh_config: str | None, timeout: float = 2.0) -> float | None:
    """Seconds for a TCP handshake with ``host``'s ssh server, the fastest of a few
    (a handshake is one round trip and sends no data); None if it cannot be timed."""
    try:
        address, port = ssh_endpoint(host, ssh_config)
        times = []
        for _ in range(PROBES):
            began = time.perf_counter()
            with socket.create_connection((address, port), timeout=timeout):
                times.append(time.perf_counter() - began)
        return min(times)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def farthest_round_trip(hosts: list[str], ssh_config: str | None) -> float | None:
    """The longest round trip to any of ``hosts``, timed in parallel; None if none could be."""
    with ThreadPoolExecutor(max_workers=min(16, len(hosts))) as pool:
        times = [t for t in pool.map(lambda host: round_trip_to(host, ssh_config), hosts) if t is not None]
    return max(times) if times else None


def route_source(host: str, port: int = 9) -> str:
    """The address this machine uses to reach ``host`` (no packet is sent)."""
    address = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)[0][4][0]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((address, port))
        return probe.getsockname()[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def swarm_for(file: Path, hosts: list[str], seed_address: str, seed_port: int, rng: random.Random,
              piece_size: int) -> SwarmConfig:
    size = file.stat().st_size
    common = Common(max(1, len(hosts)), 1, 1, file.name, size, piece_size)
    peers = [PeerInfo(SEED_ID, seed_address, seed_port, True)]
    peers += [PeerInfo(SEED_ID + 1 + i, host, rng.randrange(20000, 60000), False) for i, host in enumerate(hosts)]
    return SwarmConfig(common, tuple(peers))


def first_route(hosts: list[str]) -> tuple[str | None, str]:
    """The address this machine reaches the first routable host by, or None and why
    not: one unknown host must not stop the push to the others."""
    why = ""
    for host in hosts:
        try:
            return route_source(host), ""
        except OSError as exc:
            why = why or f"cannot find a route to {host}: {exc.strerror or exc}"
    return None, why


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="p2p-swarm push",
        description="Send FILE to every HOST (over ssh, key login) as a swarm with this machine as the seed; "
        "each copy is checked by SHA-256, then left in the destination directory on its host.",
    )
    parser.add_argument("file", help="the file to send")
    parser.add_argument("hosts", nargs="*", metavar="HOST",
                        help="hosts to send it to: [user@]host[:port], or a name of your ssh config")
    parser.add_argument("-f", "--hosts-file", action="append", default=[], metavar="FILE",
                        help="more hosts, one per line (# comments); - reads standard input")
    parser.add_argument("--upload-rate", default=None, metavar="RATE",
                        help="cap every peer's upload, this machine's too: bytes per second (25000000, 25M) "
                        "or bits (200Mbit) [no cap]")
    parser.add_argument("--dest", default=None, metavar="DIR",
                        help="directory for the file on every host; {host} is replaced by the host's name "
                        "[the file's directory's absolute path]")
    parser.add_argument("--seed-address", default=None, metavar="ADDR",
                        help="the address the hosts reach this machine by [the source of the route to the first host]")
    parser.add_argument("--piece-size", type=int, default=None, metavar="BYTES",
                        help="[a power of two from 16 KiB to 4 MiB: about 2,000 pieces, larger where the round "
                        "trip to the farthest host (timed by TCP handshakes with its ssh port) would otherwise "
                        "slow one piece per round trip below 125 MB/s, at least 16 pieces per host]")
    parser.add_argument("--neighbours", default="auto", metavar="D",
                        help="our extension: each peer connects with D others of a random connected graph (the "
                        "seed too), not with every other peer, and leaves once those have the file; 'all' keeps "
                        f"the course's full mesh [auto: the full mesh up to {FULL_MESH_UP_TO} hosts, whose every "
                        f"host is then one hop from the seed; above, {DEFAULT_DEGREE}, so that each peer's "
                        "connections and have messages stay the same however many hosts]")
    parser.add_argument("--remote-twistd", default=None, metavar="PATH",
                        help="twistd on the hosts [the same path as here]")
    parser.add_argument("--ssh-config", default=None, metavar="FILE", help="ssh's configuration file (ssh -F)")
    parser.add_argument("--connect-timeout", type=float, default=10.0, metavar="S", help="[%(default)s]")
    parser.add_argument("--timeout", type=float, default=None, metavar="S", help="give up after this many seconds")
    parser.add_argument("--dry-run", action="store_true", help="print what would run on each host, and run nothing")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="also write the per-host result to FILE, for scripts (see the README)")
    parser.add_argument("--report", default=None, metavar="DIR",
                        help="also keep the swarm's report in DIR (swarm-report.json and .html, as run writes "
                        "them); none by default, as it costs time at the end")
    parser.add_argument("--tls", action="store_true",
                        help="encrypt the peers' connections (TLS with a certificate made for this push; needs "
                        "the tls extra, pyOpenSSL). Without it the swarm is still closed: its peers prove to "
                        "each other that they hold this push's secret, and check every piece")
    args = parser.parse_args(argv)
    if args.piece_size is not None and args.piece_size <= 0:
        parser.error("--piece-size must be positive")
    try:
        args.upload_rate = parse_rate(args.upload_rate) if args.upload_rate is not None else None
        args.degree = parse_degree(args.neighbours)
        args.specs = host_specs(args.hosts, args.hosts_file)
    except ValueError as exc:
        parser.error(str(exc))
    if not args.specs:
        parser.error("no hosts: give HOST arguments or -f FILE")
    return args


def host_specs(hosts: list[str], files: list[str]) -> list[HostSpec]:
    """The hosts of the command line, then of each file (``-`` is standard input),
    each once; ValueError says which one is wrong, or which file cannot be read."""
    names = list(hosts)
    for name in files:
        if name == "-":
            names += read_hosts(sys.stdin, "standard input")
            continue
        try:
            with open(name, encoding="utf-8") as stream:
                names += read_hosts(stream, name)
        except OSError as exc:
            raise ValueError(f"-f {name}: {exc.strerror or exc}") from None
    return [parse_host(name) for name in dict.fromkeys(names)]


def main(argv: list[str], stdout: TextIO = sys.stdout) -> int:
    args = parse_args(argv)
    file = Path(args.file).resolve()
    if not file.is_file():
        print(f"p2p-swarm push: {args.file}: no such file", file=sys.stderr)
        return 2
    hosts = [spec.name for spec in args.specs]
    dest = args.dest or str(file.parent)
    reached = endpoints(args.specs, args.ssh_config)  # where ssh goes, its config applied
    addresses = {name: point.address for name, point in reached.items()}
    destinations = {spec.name: spec.ssh_args() for spec in args.specs if spec.ssh_args() != [spec.name]}
    seed_address, why = (args.seed_address, "") if args.seed_address else first_route([addresses[h] for h in hosts])
    if seed_address is None:
        print(f"p2p-swarm push: {why}", file=sys.stderr)
        return 2
    if args.dry_run:
        return dry_run(args, file, hosts, dest, seed_address, stdout, destinations, addresses)
    if args.tls:
        from twisted_p2p.launcher.closed import check_tls
        from twisted_p2p.tls import TLSError

        try:
            check_tls()
        except TLSError as exc:
            print(f"p2p-swarm push: --tls: {exc}", file=sys.stderr)
            return 2
    from twisted_p2p.launcher.pushrun import Push

    def configure(needed: list[str], resumable: int | None = None) -> tuple[SwarmConfig, str]:
        if args.piece_size is not None:
            choice = PieceChoice(args.piece_size, "--piece-size")
        elif resumable is not None:  # the same pieces, or the unfinished copies are worth nothing
            choice = PieceChoice(resumable, "the same as the unfinished push's, whose pieces are there")
        else:
            choice = piece_size_for(file.stat().st_size, farthest_round_trip(needed, args.ssh_config), len(needed))
        assert seed_address is not None
        return swarm_for(file, needed, seed_address, free_port(), random.Random(), choice.size), choice.why

    began = time.monotonic()
    control = Path(tempfile.mkdtemp(prefix="p2p-swarm-ssh-"))
    work = os.path.join(dest, WORK_DIR)
    remote = Hosts(Ssh(control, args.ssh_config, args.connect_timeout, destinations=destinations),
                   [Host(host, remote_dir_for(work, host)) for host in hosts])
    job = Push(file, hosts, dest, work, configure, args.remote_twistd, args.timeout, stdout, tls=args.tls,
               addresses=addresses, peer_options=peer_options(args.upload_rate),
               report_dir=Path(args.report).resolve() if args.report else None, degree=args.degree)
    try:
        outcomes, code = job.run(remote)
    except KeyboardInterrupt:
        print("p2p-swarm push: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"p2p-swarm push: {exc.strerror or exc}", file=sys.stderr)
        return 2
    finally:
        remote.close()
        shutil.rmtree(control, ignore_errors=True)
    return conclude(outcomes, code, file, job.sha256, time.monotonic() - began, args.json, stdout)


def conclude(outcomes: list[HostOutcome], code: int | None, file: Path, sha256: str | None, seconds: float,
             json_path: str | None, stdout: TextIO) -> int:
    """The per-host table, ``--json``, and the exit status: 0 only when every host has
    the file, 1 otherwise (130/143 after Ctrl-C/SIGTERM, as given in ``code``)."""
    code = exit_status(outcomes) if code is None else code
    print("", file=stdout)
    for line in table(outcomes):
        print(line, file=stdout)
    if all(outcome.state != FAILED for outcome in outcomes) and not any(o.state == "delivered" for o in outcomes):
        print("nothing to send: every host holds the file already", file=stdout)
    print(f"push ended in {seconds:.1f} s; exit {code}", file=stdout)
    if json_path is not None:
        try:
            Path(json_path).write_text(json.dumps(as_json(outcomes, file.name, file.stat().st_size, sha256,
                                                          seconds, code), indent=2) + "\n")
        except OSError as exc:
            print(f"p2p-swarm push: --json: cannot write {json_path}: {exc.strerror or exc}", file=sys.stderr)
            return code or 1
    return code


def peer_options(upload_rate: int | None) -> list[str]:
    """What every peer of this push is started with besides push_peer_options and the closed swarm's."""
    return ["--upload-rate", str(upload_rate)] if upload_rate else []


def dry_run(args: argparse.Namespace, file: Path, hosts: list[str], dest: str, seed_address: str,
            stdout: TextIO, destinations: dict[str, list[str]], addresses: dict[str, str]) -> int:
    """What would run on each host, with nothing contacted."""
    from twisted_p2p.launcher.launch import print_plan
    from twisted_p2p.launcher.plan import plan, twistd_command
    from twisted_p2p.launcher.pushrun import push_peer_options

    piece_size = args.piece_size or piece_size_for(file.stat().st_size, None, len(hosts)).size
    degree = degree_for(args.degree, len(hosts))
    config = swarm_for(file, hosts, seed_address, free_port(), random.Random(), piece_size)
    work = os.path.join(dest, WORK_DIR)
    twistd = [args.remote_twistd] if args.remote_twistd else twistd_command()
    staging = Path(tempfile.mkdtemp(prefix="p2p-push-"))
    try:
        launches, planned = plan(config, staging, staging, Ssh(staging, args.ssh_config, args.connect_timeout,
                                                               destinations=destinations), work, twistd,
                                 echo=echo_for(degree))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for host_plan in planned:
        host_plan.resume_from = 0  # push's: an unfinished copy there is kept only if it matches (not known here)
    sets = neighbour_options([peer.peer_id for peer in config.peers], degree, random.Random(), seed=SEED_ID)
    for launch in launches:  # (and the closed swarm's, made for the push)
        launch.argv += push_peer_options(degree) + peer_options(args.upload_rate) + sets[launch.peer.peer_id]
    for host in hosts:
        if addresses.get(host, host) != host:
            print(f"{host}: ssh reaches it at {addresses[host]}, the address its peer is listed by", file=stdout)
        there = os.path.join(remote_dir_for(dest, host), file.name)
        print(f"{host}: first, does it hold {file.name} already? {check_script(there, config.common.file_size)}",
              file=stdout)
    print_plan(launches, planned, config, twistd, stdout)
    return 0
