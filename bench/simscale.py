"""``python -m bench.simscale``: swarms past one machine, simulated (:mod:`twisted_p2p.sim`).

Two questions, each answered with our real peer code on simulated hosts:

- **The course's swarm at 100 and 1,000 peers** (one seed, the course's k=3, p=1, m=2,
  one request at a time), every host's upload capped, in the full mesh and with a
  bounded neighbour set: time to complete against the textbook bound, and what each
  peer carries (connections, ``have`` messages).
- **Push at 100 and 1,000 hosts**: push's peers (push's Common.cfg, every neighbour
  preferred and p=m=1; pipelining, slots refilled, the seed's pieces split) with a
  bounded neighbour set of ``--degree`` (as ``p2p-swarm push --neighbours``), against the
  full mesh where that is affordable.

Files are 1,000 pieces of 1 KiB; every host uploads at ``--rate`` bytes/s (4 ms a piece
at the default, above the 1 ms one-way delay), so times scale as the file over the rate.
``--pieces`` cuts the same file into fewer, larger pieces: the course's full mesh at 1,000
peers, whose (N - 1) x pieces ``have`` messages a peer cannot be simulated at 1,000 pieces
in hours, can be at 20; ``--cases`` and ``--add`` run some rows and keep the others.
The bound is max(F/u, N*F/((N+1)*u)) (Kurose & Ross) for N leechers and one seed, all at
u. The simulation's own wall-clock, CPU and memory are reported too; nothing is asserted.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from bench.common import HERE, log
from twisted_p2p.config import Common, PeerInfo, SwarmConfig
from twisted_p2p.graph import neighbour_sets
from twisted_p2p.launcher.pushmesh import pipeline_for
from twisted_p2p.settings import PeerSettings
from twisted_p2p.sim.swarm import LinkModel, SimResult, simulate

PIECES = 1000
PIECE = 1024
FILE_SIZE = PIECES * PIECE
FIRST_ID = 1001
#: The rows a run can make: the protocol, and the full mesh or bounded sets.
CASES = ("course-mesh", "course-bounded", "push-mesh", "push-bounded")


def push_settings(degree: int) -> PeerSettings:
    """What ``p2p-swarm push`` starts its peers with (``pushrun.push_peer_options``) for
    this degree (0: the full mesh): pipelining at push's depth, slots refilled, the seed's
    pieces split."""
    return PeerSettings(pipeline=pipeline_for(degree), refill_slots=True, split_seed=True)


def config(peers: int, push: bool, pieces: int = PIECES) -> SwarmConfig:
    """The course's k=3, p=1, m=2; or push's Common.cfg: every neighbour preferred, p=m=1.
    The file is always :data:`FILE_SIZE` bytes, in ``pieces`` pieces."""
    piece = -(-FILE_SIZE // pieces)
    common = (Common(max(1, peers - 1), 1, 1, "TheFile.dat", FILE_SIZE, piece) if push
              else Common(3, 1, 2, "TheFile.dat", FILE_SIZE, piece))
    return SwarmConfig(common, tuple(PeerInfo(FIRST_ID + n, "localhost", 6008 + n, n == 0) for n in range(peers)))


def bound(peers: int, rate: float) -> float:
    size, leechers = FILE_SIZE, peers - 1
    return max(size / rate, leechers * size / (peers * rate))


def bounded(peers: int, degree: int, seed: int, base: PeerSettings) -> dict[int, PeerSettings]:
    """Each peer's settings: ``base`` with its neighbour set (0: the full mesh), and
    with ``base.split_seed`` the seed's neighbours splitting its pieces, as push does."""
    ids = [FIRST_ID + n for n in range(peers)]
    if degree <= 0 or peers <= degree + 1:
        return {peer: base for peer in ids}
    sets = neighbour_sets(ids, degree, random.Random(seed))
    chosen = {peer: replace(base, neighbours=sets[peer]) for peer in ids}
    if base.split_seed:
        for peer in sets[FIRST_ID]:
            chosen[peer] = replace(chosen[peer], split_among=sets[FIRST_ID])
    return chosen


def one(name: str, peers: int, rate: float, delay: float, settings: dict[int, PeerSettings] | None,
        seed: int, limit: float, pieces: int = PIECES) -> dict:
    """One simulated swarm, its figures as a row."""
    work = Path(tempfile.mkdtemp(prefix="simscale-"))
    if pieces != PIECES:
        name = f"{name}, {pieces:,} pieces"
    log(f"{name}: {peers} peers")
    try:
        result = simulate(config(peers, push=name.startswith("push"), pieces=pieces), work, seed=seed,
                          link=LinkModel(upload=rate, download=rate, delay=delay),
                          settings_for=(settings.__getitem__ if settings is not None else None), limit=limit)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    row = figures(name, peers, rate, result) | {"pieces": pieces}
    log(f"  {json.dumps(row)}")
    return row


def figures(name: str, peers: int, rate: float, result: SimResult) -> dict:
    leechers = [peer for peer in result.peers.values() if not peer.has_file]
    haves = [peer.messages_received.get("have", 0) for peer in leechers]
    connections = [peer.connections for peer in result.peers.values()]
    best = bound(peers, rate)
    return {
        "case": name, "peers": peers, "complete_s": result.completion, "bound_s": best,
        "ratio_to_bound": result.completion / best if result.completion else None,
        "unfinished": len(result.unfinished), "files_identical": result.files_identical,
        "haves_per_peer": sum(haves) / len(haves) if haves else 0, "connections_per_peer_max": max(connections),
        "connections_per_peer_mean": sum(connections) / len(connections),
        "messages": dict(result.messages()), "wall_s": result.wall_seconds, "cpu_s": result.cpu_seconds,
        "peak_rss_mib": result.peak_rss_mib,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.simscale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="20,100,1000", help="peers per swarm, separated by commas [%(default)s]")
    parser.add_argument("--degree", type=int, default=8, help="push's neighbours per peer [%(default)s]")
    parser.add_argument("--rate", type=float, default=256 * 1024, help="every host's upload and download, "
                        "bytes/s [%(default)s]")
    parser.add_argument("--delay-ms", type=float, default=1.0, help="one-way delay [%(default)s]")
    parser.add_argument("--full-mesh-up-to", type=int, default=100, help="simulate the full mesh only up to "
                        "this many peers: its have messages grow as N^2 [%(default)s]")
    parser.add_argument("--push-full-mesh-up-to", type=int, default=20, help="push's full mesh only up to this "
                        "many hosts: every host uploads to all the others at once [%(default)s]")
    parser.add_argument("--pieces", type=int, default=PIECES, help="cut the file into this many pieces "
                        "[%(default)s]")
    parser.add_argument("--cases", default=",".join(CASES), help=f"which of {', '.join(CASES)} to run, "
                        "separated by commas [all]")
    parser.add_argument("--add", action="store_true", help="keep the rows already in --out, "
                        "replacing those run again")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=os.path.join(HERE, "simscale.json"))
    options = parser.parse_args(argv)
    chosen = set(options.cases.split(","))
    if chosen - set(CASES):
        parser.error(f"--cases: no such case {', '.join(sorted(chosen - set(CASES)))} (choose among "
                     f"{', '.join(CASES)})")
    delay, rows = options.delay_ms / 1000, []
    for peers in (int(each) for each in options.sizes.split(",")):
        limit = 50 * bound(peers, options.rate)
        cases = [("course", lambda degree: PeerSettings(), options.full_mesh_up_to),
                 ("push", push_settings, options.push_full_mesh_up_to)]
        for name, settings, full_mesh_up_to in cases:
            if peers <= full_mesh_up_to and f"{name}-mesh" in chosen:
                rows.append(one(f"{name}, full mesh", peers, options.rate, delay,
                                bounded(peers, 0, options.seed, settings(0)), options.seed, limit, options.pieces))
            if f"{name}-bounded" in chosen:
                rows.append(one(f"{name}, {options.degree} neighbours", peers, options.rate, delay,
                                bounded(peers, options.degree, options.seed, settings(options.degree)),
                                options.seed, limit, options.pieces))
    if options.add and os.path.exists(options.out):
        with open(options.out) as handle:
            kept = json.load(handle)
        rows = merged(kept["rows"], rows)
    with open(options.out, "w") as out:
        json.dump({"options": vars(options), "rows": rows}, out, indent=2)
    with open(os.path.splitext(options.out)[0] + ".rst", "w") as out:
        out.write(rst(options, rows))
    for row in rows:
        print(line(row))
    return 0


def merged(old: list[dict], new: list[dict]) -> list[dict]:
    """``old``'s rows with ``new``'s in place of those of the same case and size, and the
    rest of ``new`` after them."""
    fresh = {(row["case"], row["peers"]): row for row in new}
    rows = [fresh.pop((row["case"], row["peers"]), row) for row in old]
    return rows + list(fresh.values())


def rst(options: argparse.Namespace, rows: list[dict]) -> str:
    """The table for the docs."""
    def largest(case: str) -> int:
        return max((row["peers"] for row in rows if row["case"] == case), default=0)

    lines = [f"Simulated {datetime.date.today().isoformat()} (``python -m bench.simscale``): a file of "
             f"{PIECES:,} pieces of {PIECE // 1024} KiB (a row that names its pieces cuts the same file into that "
             f"many), every host's upload and download at {options.rate / 1024:.0f} KiB/s, "
             f"{options.delay_ms:g} ms each way, seed {options.seed}. *course*: the course's protocol (k=3, p=1, "
             "m=2, one request at a time); *push*: push's peers (its Common.cfg: every neighbour "
             "preferred, p=m=1; pipelining at push's depth, slots refilled, the seed's pieces split among its "
             f"neighbours). The course's full mesh of {PIECES:,} pieces only up to {largest('course, full mesh')} "
             "peers (its ``have`` messages grow as N² x pieces), push's only up to "
             f"{largest('push, full mesh')} hosts (each uploads to all the others at once).", "",
             ".. list-table::", "   :header-rows: 1", "",
             "   * - swarm", "     - peers", "     - complete", "     - bound", "     - / bound",
             "     - haves per peer", "     - connections per peer", "     - simulation: wall, CPU, memory"]
    for row in rows:
        done = "—" if row["complete_s"] is None else f"{row['complete_s']:.2f} s"
        ratio = "—" if row["ratio_to_bound"] is None else f"{row['ratio_to_bound']:.2f}"
        lines += [f"   * - {row['case']}", f"     - {row['peers']:,}", f"     - {done}",
                  f"     - {row['bound_s']:.2f} s", f"     - {ratio}", f"     - {row['haves_per_peer']:,.0f}",
                  f"     - {row['connections_per_peer_mean']:.1f} (at most {row['connections_per_peer_max']})",
                  f"     - {row['wall_s']:.0f} s, {row['cpu_s']:.0f} s, {row['peak_rss_mib']:.0f} MiB"]
    return "\n".join(lines) + "\n"


def line(row: dict) -> str:
    done = "—" if row["complete_s"] is None else f"{row['complete_s']:.2f} s ({row['ratio_to_bound']:.2f}x bound)"
    return (f"{row['case']}, {row['peers']} peers: complete {done}, bound {row['bound_s']:.2f} s; "
            f"{row['haves_per_peer']:,.0f} haves and up to {row['connections_per_peer_max']} connections per peer; "
            f"simulated in {row['wall_s']:.0f} s ({row['cpu_s']:.0f} s CPU, {row['peak_rss_mib']:.0f} MiB)")


if __name__ == "__main__":
    raise SystemExit(main())
