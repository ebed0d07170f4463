"""``p2p-swarm hashes``: write the piece-hash manifest from a seed's file."""
from __future__ import annotations

import argparse
import sys

from twisted_p2p.config import ConfigError, load
from twisted_p2p.layout import data_path
from twisted_p2p.manifest import write_manifest_from


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="p2p-swarm hashes",
        description="Write CONFIG_DIR/FileName.hashes, the SHA-256 of every piece, from the first "
        "seed's file in WORK_DIR/peer_ID/. With it in the config directory, every peer checks each "
        "piece it receives and stops asking a neighbour that sent a bad one.",
    )
    parser.add_argument("config_dir", nargs="?", default="conf", help="where Common.cfg and PeerInfo.cfg are [conf]")
    parser.add_argument("--work-dir", default="swarm-work", help="where the seeds' peer_ID/ folders are [swarm-work]")
    args = parser.parse_args(argv)
    try:
        config = load(args.config_dir)
        seeds = [peer for peer in config.peers if peer.has_file]
        sources = [data_path(args.work_dir, peer.peer_id, config.common.file_name) for peer in seeds]
        source = next((path for path in sources if path.exists()), None)
        if source is None:
            print(f"p2p-swarm hashes: no seed's file found ({', '.join(map(str, sources))})", file=sys.stderr)
            return 1
        target = write_manifest_from(source, args.config_dir, config.common)
    except ConfigError as exc:
        print(f"p2p-swarm hashes: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {target}: {config.common.num_pieces} piece hashes of {source}")
    return 0
