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
import sys
import tempfile
from pathlib import Path
from typing import Optional, TextIO

from twisted_p2p.config import Common, PeerInfo, SwarmConfig
from twisted_p2p.config import write as write_config
from twisted_p2p.swarm.remote import Hosts, remote_dir_for

SEED_ID = 1001
MIN_PIECE, MAX_PIECE = 16 << 10, 1 << 20


def piece_size_for(file_size: int) -> int:
    """A power of two that makes about 2,000 pieces, from 16 KiB to 1 MiB: small files
    keep the course's piece size, big ones pay fewer round trips per byte."""
    size = MIN_PIECE
    while size < MAX_PIECE and file_size / size > 2000:
        size *= 2
    return size


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
              piece_size: Optional[int] = None) -> SwarmConfig:
    size = file.stat().st_size
    common = Common(max(1, len(hosts)), 1, 1, file.name, size, piece_size or piece_size_for(size))
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
                        help="[a power of two giving about 2,000 pieces, 16 KiB to 1 MiB]")
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
    config = swarm_for(file, args.hosts, seed_address, free_port(), random.Random(), args.piece_size)
    print(f"pushing {file.name} ({config.common.file_size} bytes, {config.common.num_pieces} pieces of "
          f"{config.common.piece_size}) from {seed_address} to {len(args.hosts)} hosts, into {dest}", file=stdout)
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
            remote_dir=work, remote_shell=None, dry_run=args.dry_run, demo_file=False, stagger=0.0,
            timeout=args.timeout, upload_rate=0, web=None, web_linger=None,
            pipeline=run.DEFAULT_PIPELINE)  # every peer of a push is ours

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
