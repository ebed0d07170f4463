"""``python -m twisted_p2p.sim``: simulate a swarm of N peers and print what it cost.

A made-up full mesh (one seed, N - 1 leechers, the course's k=3, p=1, m=2) or a config
directory's swarm; ``--profile`` prints where the simulation spends its time.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
from pathlib import Path

from twisted_p2p.config import Common, PeerInfo, SwarmConfig, load
from twisted_p2p.settings import PeerSettings
from twisted_p2p.sim.net import LinkModel
from twisted_p2p.sim.swarm import simulate


def made_up_config(peers: int, pieces: int, piece_size: int) -> SwarmConfig:
    """One seed and ``peers - 1`` leechers of a file of ``pieces`` pieces."""
    common = Common(3, 1, 2, "TheFile.dat", pieces * piece_size, piece_size)
    return SwarmConfig(common, tuple(PeerInfo(1001 + n, "localhost", 6008 + n, n == 0) for n in range(peers)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m twisted_p2p.sim", description=__doc__)
    parser.add_argument("--config-dir", type=Path, help="simulate this swarm instead of a made-up one")
    parser.add_argument("--peers", type=int, default=6)
    parser.add_argument("--pieces", type=int, default=1000)
    parser.add_argument("--piece-size", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--upload", type=float, default=None, help="every host's upload, bytes/s [unlimited]")
    parser.add_argument("--download", type=float, default=None, help="every host's download, bytes/s [unlimited]")
    parser.add_argument("--delay", type=float, default=0.001, help="one-way delay, seconds [%(default)s]")
    parser.add_argument("--pipeline", type=int, default=0, help="PeerSettings.pipeline [%(default)s]")
    parser.add_argument("--limit", type=float, default=3600.0, help="simulated seconds at most [%(default)s]")
    parser.add_argument("--work-dir", type=Path, help="keep the files here [a temporary directory]")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print cProfile's top N functions")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = load(args.config_dir) if args.config_dir else made_up_config(args.peers, args.pieces, args.piece_size)
    link = LinkModel(upload=args.upload, download=args.download, delay=args.delay)
    settings = PeerSettings(pipeline=args.pipeline)
    with tempfile.TemporaryDirectory(prefix="sim-") as scratch:
        work_dir = args.work_dir or Path(scratch)
        profile = cProfile.Profile() if args.profile else None
        if profile is not None:
            profile.enable()
        result = simulate(config, work_dir, seed=args.seed, link=link, settings=settings, limit=args.limit)
        if profile is not None:
            profile.disable()
            pstats.Stats(profile, stream=sys.stdout).sort_stats("tottime").print_stats(args.profile)
    print(result.summary())
    return 0 if not result.unfinished and result.files_identical else 1


if __name__ == "__main__":
    sys.exit(main())
