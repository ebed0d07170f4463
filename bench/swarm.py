"""Run a swarm of real ``twistd p2ppeer`` processes on 127.0.0.1 and time it.

Each peer is a child process; its CPU seconds and peak RSS come from os.wait4. Times
come from the peers' own event logs (SPEC §5, millisecond stamps). Start-up runs from
spawning the first peer to the moment every pair of peers is connected (the first
connection line, at either end, of the last pair to connect); the transfer phase runs
from then to the last "has downloaded the complete file".
"""
from __future__ import annotations

import filecmp
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Optional

from twisted_p2p.eventlog import parse_line

from bench.procs import LOOPBACK, free_ports, reap, spawn, twistd_path

FILE_NAME = "TheFile.dat"
FIRST_ID = 1001
#: Extra environment for every peer unless a spec says otherwise (``--peer-env``).
PEER_ENV: dict = {}


@dataclass
class SwarmSpec:
    file_path: str  # the seed's file, hard-linked (or copied) into its peer directory
    piece_size: int
    leechers: int
    preferred: int = 5
    unchoking_interval: int = 1
    optimistic_interval: int = 1
    upload_rate: Optional[int] = None  # --upload-rate for every peer
    seed_upload_rate: Optional[int] = None  # overrides upload_rate for the seed
    pipeline: int = 0  # --pipeline for every peer (our extension); 0: the plain protocol
    timeout: float = 120.0
    verify: bool = True
    env: Optional[dict] = None  # extra environment for every peer (experiments)


def _place(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def events(path: str) -> list:
    try:
        with open(path, encoding="utf-8") as log:
            return [event for event in map(parse_line, log) if event is not None]
    except OSError:
        return []


def run(spec: SwarmSpec, keep_dir: bool = False) -> dict:
    """One run of the swarm; figures in a dict (see the keys at the end)."""
    size = os.path.getsize(spec.file_path)
    work = tempfile.mkdtemp(prefix="p2pbench-")
    try:
        count = spec.leechers + 1
        ids = [FIRST_ID + i for i in range(count)]
        ports = free_ports(count)
        with open(os.path.join(work, "Common.cfg"), "w") as cfg:
            cfg.write(
                f"NumberOfPreferredNeighbors {spec.preferred}\n"
                f"UnchokingInterval {spec.unchoking_interval}\n"
                f"OptimisticUnchokingInterval {spec.optimistic_interval}\n"
                f"FileName {FILE_NAME}\nFileSize {size}\nPieceSize {spec.piece_size}\n"
            )
        with open(os.path.join(work, "PeerInfo.cfg"), "w") as cfg:
            for index, (peer, port) in enumerate(zip(ids, ports)):
                cfg.write(f"{peer} {LOOPBACK} {port} {1 if index == 0 else 0}\n")
        os.mkdir(os.path.join(work, f"peer_{ids[0]}"))
        _place(spec.file_path, os.path.join(work, f"peer_{ids[0]}", FILE_NAME))
        twistd = twistd_path()
        extra = spec.env if spec.env is not None else PEER_ENV
        env = dict(os.environ, **extra) if extra else None
        children = []
        start = time.time()
        for index, peer in enumerate(ids):
            argv = [twistd, "-n", "--pidfile=", "p2ppeer", "--id", str(peer),
                    "--config-dir", work, "--work-dir", work, "--interface", LOOPBACK]
            rate = spec.seed_upload_rate if index == 0 and spec.seed_upload_rate is not None else spec.upload_rate
            if rate:
                argv += ["--upload-rate", str(rate)]
            if spec.pipeline:
                argv += ["--pipeline", str(spec.pipeline)]
            children.append(spawn(str(peer), argv, work, os.path.join(work, f"twistd_{peer}.out"), env))
        exited = reap(children, start + spec.timeout)
        complete: dict[int, float] = {}
        first_contact: dict[int, float] = {}
        pair_connected: dict[frozenset, float] = {}  # first connection line of each pair
        downloaded: list[float] = []
        for peer in ids:
            for event in events(os.path.join(work, f"log_peer_{peer}.log")):
                if event.kind == "complete":
                    complete[peer] = event.time
                elif event.kind == "downloaded":
                    downloaded.append(event.time)
                elif event.kind in ("connect_to", "connect_from"):
                    first_contact.setdefault(peer, event.time)
                    pair = frozenset((peer, event.other))
                    pair_connected[pair] = min(event.time, pair_connected.get(pair, event.time))
        complete.pop(ids[0], None)
        first_contact.pop(ids[0], None)
        all_connected = max(pair_connected.values()) if len(pair_connected) == count * (count - 1) // 2 else None
        ok = all(e.status == 0 for e in exited) and len(complete) == spec.leechers
        verified = None
        if spec.verify and ok:
            verified = all(
                filecmp.cmp(spec.file_path, os.path.join(work, f"peer_{peer}", FILE_NAME), shallow=False)
                for peer in ids[1:]
            )
            ok = verified
        failure = None
        if not ok:
            bad = [e.name for e in exited if e.status != 0]
            failure = (
                f"exit status not 0 for {bad}" if bad else
                f"{spec.leechers - len(complete)} leecher(s) never logged completion" if len(complete) != spec.leechers else
                "a leecher's file differs from the seed's"
            )
            tail = os.path.join(work, f"twistd_{bad[0]}.out") if bad else None
            if tail and os.path.exists(tail):
                with open(tail, errors="replace") as out:
                    failure += " | " + " / ".join(out.read().splitlines()[-3:])
        last_complete = max(complete.values()) if complete else None
        return {
            "ok": ok,
            "failure": failure,
            "peers": count,
            # spawn of the first peer to the last leecher complete: start-up included
            "time_to_last_complete_s": (last_complete - start) if last_complete else None,
            # spawn of the first peer to every pair connected
            "startup_s": (all_connected - start) if all_connected else None,
            # every pair connected to the last leecher complete: the transfer phase
            "transfer_s": (last_complete - all_connected) if last_complete and all_connected else None,
            # share of the pieces downloaded before every pair was connected (outside transfer_s)
            "share_before_all_connected": (sum(t < all_connected for t in downloaded) / len(downloaded)
                                           if all_connected and downloaded else None),
            "wall_to_all_exited_s": max(e.exited_at for e in exited) - start,
            "leecher_transfer_s": {  # first contact to complete, per leecher
                str(peer): complete[peer] - first_contact[peer] for peer in complete if peer in first_contact
            },
            "cpu_s_total": sum(e.cpu_s for e in exited),
            "cpu_s": {e.name: round(e.cpu_s, 3) for e in exited},
            "peak_rss_mib": {e.name: round(e.maxrss_mib, 1) for e in exited},
            "peak_rss_mib_max": max(e.maxrss_mib for e in exited),
            "work_dir": work if keep_dir else None,
        }
    finally:
        if not keep_dir:
            shutil.rmtree(work, ignore_errors=True)
