"""``p2p-swarm push FILE HOST [HOST ...]``: send one file to a set of hosts as a swarm.

No config to write by hand: this machine is the seed, at the address the hosts reach it
by (the source address of the route to them), each host runs one leecher over ssh, the
piece size suits the file, and every copy is checked by SHA-256 before it is moved to
the destination directory on its host. The run itself is ``p2p-swarm run``'s.
"""
from __future__ import annotations

import argparse
import os
import random
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, TextIO

from twisted_p2p.config import Common, PeerInfo, SwarmConfig
from twisted_p2p.config import write as write_config
from twisted_p2p.swarm.remote import Hosts, remote_dir_for

SEED_ID = 1001
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


def piece_size_for(file_size: int, round_trip: Optional[float] = None, hosts: int = 1) -> PieceChoice:
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


def ssh_endpoint(host: str, ssh_config: Optional[str]) -> tuple[str, int]:
    """The address and port ssh would connect to for ``host`` (``ssh -G``; no connection)."""
    argv = ["ssh", "-G"] + (["-F", ssh_config] if ssh_config else []) + [host]
    shown = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True).stdout
    settings = dict(line.split(" ", 1) for line in shown.splitlines() if " " in line)
    return settings.get("hostname", host), int(settings.get("port", "22"))


def round_trip_to(host: str, ssh_config: Optional[str], timeout: float = 2.0) -> Optional[float]:
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


def farthest_round_trip(hosts: list[str], ssh_config: Optional[str]) -> Optional[float]:
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


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="p2p-swarm push",
        description="Send FILE to every HOST (over ssh, key login) as a swarm with this machine as the seed; "
        "each copy is checked by SHA-256, then left in the destination directory on its host.",
    )
    parser.add_argument("file", help="the file to send")
    parser.add_argument("hosts", nargs="+", metavar="HOST", help="hosts to send it to (ssh names or addresses)")
    parser.add_argument("--dest", default=None, metavar="DIR",
                        help="directory for the file on every host; {host} is replaced by the host's name "
                        "[the file's directory's absolute path]")
    parser.add_argument("--seed-address", default=None, metavar="ADDR",
                        help="the address the hosts reach this machine by [the source of the route to the first host]")
    parser.add_argument("--piece-size", type=int, default=None, metavar="BYTES",
                        help="[a power of two from 16 KiB to 4 MiB: about 2,000 pieces, larger where the round "
                        "trip to the farthest host (timed by TCP handshakes with its ssh port) would otherwise "
                        "slow one piece per round trip below 125 MB/s, at least 16 pieces per host]")
    parser.add_argument("--remote-twistd", default=None, metavar="PATH", help="twistd on the hosts [the same path as here]")
    parser.add_argument("--ssh-config", default=None, metavar="FILE", help="ssh's configuration file (ssh -F)")
    parser.add_argument("--connect-timeout", type=float, default=10.0, metavar="S", help="[%(default)s]")
    parser.add_argument("--timeout", type=float, default=None, metavar="S", help="give up after this many seconds")
    parser.add_argument("--dry-run", action="store_true", help="print what would run on each host, and run nothing")
    args = parser.parse_args(argv)
    if args.piece_size is not None and args.piece_size <= 0:
        parser.error("--piece-size must be positive")
    return args


def main(argv: list[str], stdout: TextIO = sys.stdout) -> int:
    from twisted_p2p.swarm import run

    args = parse_args(argv)
    file = Path(args.file).resolve()
    if not file.is_file():
        print(f"p2p-swarm push: {args.file}: no such file", file=sys.stderr)
        return 2
    dest = args.dest or str(file.parent)
    try:
        seed_address = args.seed_address or route_source(args.hosts[0])
    except OSError as exc:
        print(f"p2p-swarm push: cannot find a route to {args.hosts[0]}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if args.piece_size is not None:
        choice = PieceChoice(args.piece_size, "--piece-size")
    else:
        round_trip = farthest_round_trip(args.hosts, args.ssh_config)
        choice = piece_size_for(file.stat().st_size, round_trip, len(args.hosts))
    config = swarm_for(file, args.hosts, seed_address, free_port(), random.Random(), choice.size)
    print(f"pushing {file.name} ({config.common.file_size} bytes, {config.common.num_pieces} pieces of "
          f"{config.common.piece_size}) from {seed_address} to {len(args.hosts)} hosts, into {dest}", file=stdout)
    print(f"piece size {config.common.piece_size}: {choice.why}", file=stdout)
    staging = Path(tempfile.mkdtemp(prefix="p2p-push-"))
    try:
        write_config(staging, config)
        seed_dir = staging / f"peer_{SEED_ID}"
        seed_dir.mkdir()
        try:
            os.link(file, seed_dir / file.name)
        except OSError:
            shutil.copyfile(file, seed_dir / file.name)
        work = os.path.join(dest, ".p2p-push-{host}")  # {host}: hosts may share a filesystem
        options = argparse.Namespace(
            ssh_config=args.ssh_config, connect_timeout=args.connect_timeout, remote_twistd=args.remote_twistd,
            remote_dir=work, remote_shell=None, dry_run=args.dry_run, demo_file=False, pace="off", stagger=0.0,
            timeout=args.timeout, upload_rate=0, web=None, web_linger=None,
            pipeline=run.DEFAULT_PIPELINE, refill_slots=True)  # every peer of a push is ours: our extensions

        def deliver(hosts: Hosts) -> list[str]:
            messages = []
            for peer in config.peers[1:]:
                there = remote_dir_for(work, peer.host)
                target = os.path.join(remote_dir_for(dest, peer.host), file.name)
                source = f"{there}/peer_{peer.peer_id}/{file.name}"
                hosts.execute(peer.host, f"mv -f {shlex.quote(source)} {shlex.quote(target)} && "
                                         f"rm -rf {shlex.quote(there)}")
                messages.append(f"{peer.host}: {target} (SHA-256 checked)")
            return messages

        control = Path(tempfile.mkdtemp(prefix="p2p-swarm-ssh-"))
        try:
            return run._main(options, staging, staging, control, stdout, finish=deliver)
        finally:
            shutil.rmtree(control, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
