"""Run a swarm of real ``twistd p2ppeer`` processes on 127.0.0.1 and time it.

Each peer is a child process; its CPU seconds and peak RSS come from os.wait4. Times
come from the peers' own event logs (SPEC §5, millisecond stamps). Start-up runs from
spawning the first peer to the moment every pair of peers is connected (the first
connection line, at either end, of the last pair to connect); the transfer phase runs
from then to the last "has downloaded the complete file".

With ``delay_ms`` set, every peer is reached through a delaying relay (bench/netrelay.py,
in its own process): each peer has its own config directory, whose PeerInfo.cfg gives the
peer's own real port and, for every other peer, that peer's relay port.
"""
from __future__ import annotations

import contextlib
import filecmp
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field

from bench.netrelay import RelayProcess
from bench.procs import LOOPBACK, Child, Exited, free_ports, reap, spawn, twistd_path
from twisted_p2p.eventlog import parse_line
from twisted_p2p.layout import COMMON_CFG, PEER_INFO_CFG, data_path, event_log_path

FILE_NAME = "TheFile.dat"
FIRST_ID = 1001
#: Extra environment for every peer unless a spec says otherwise (``--peer-env``).
PEER_ENV: dict = {}
#: The line a peer logs when it drops a neighbour whose requests it pipelined: the depth of
#: requests in flight it had come to, and the highest it reached. Peers that log no such
#: line leave the figure None.
DEPTH_LINE = re.compile(r"pipeline to peer (?P<other>\d+): depth (?P<depth>\d+)(?: \(highest (?P<highest>\d+))?")


@dataclass
class SwarmSpec:
    file_path: str  # the seed's file, hard-linked (or copied) into its peer directory
    piece_size: int
    leechers: int
    preferred: int = 5
    unchoking_interval: int = 1
    optimistic_interval: int = 1
    upload_rate: int | None = None  # --upload-rate for every peer
    seed_upload_rate: int | None = None  # overrides upload_rate for the seed
    # --pipeline for every peer, with --refill-slots: our extensions, as push uses them;
    # 0: the course's protocol exactly (one request at a time, choices at the rounds only)
    pipeline: int = 0
    timeout: float = 120.0
    verify: bool = True
    env: dict | None = None  # extra environment for every peer (experiments)
    delay_ms: float | None = None  # reach every peer through a relay that delays each way this much


def write_peer_infos(work: str, ids: list[int], ports: list[int], relay_ports: list[int]) -> dict[int, str]:
    """A config directory per peer (``config_ID``, Common.cfg copied from ``work``), whose
    PeerInfo.cfg lists the peer's own real port and every other peer's relay port; the
    directories by peer. The first peer is the seed, as in the shared PeerInfo.cfg."""
    dirs = {}
    for peer in ids:
        directory = os.path.join(work, f"config_{peer}")
        os.mkdir(directory)
        shutil.copyfile(os.path.join(work, COMMON_CFG), os.path.join(directory, COMMON_CFG))
        with open(os.path.join(directory, PEER_INFO_CFG), "w") as cfg:
            for index, (other, port, relayed) in enumerate(zip(ids, ports, relay_ports)):
                cfg.write(f"{other} {LOOPBACK} {port if other == peer else relayed} {1 if index == 0 else 0}\n")
        dirs[peer] = directory
    return dirs


def logged_depths(path: str) -> list[tuple[int, int, int | None]]:
    """(neighbour, depth, highest) for each DEPTH_LINE in one peer's twistd output."""
    try:
        with open(path, errors="replace") as out:
            found = [DEPTH_LINE.search(line) for line in out]
    except OSError:
        return []
    return [(int(m["other"]), int(m["depth"]), int(m["highest"]) if m["highest"] else None) for m in found if m]


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


def _write_configs(work: str, spec: SwarmSpec, ids: list[int], ports: list[int], size: int) -> None:
    """The swarm's Common.cfg and PeerInfo.cfg in ``work``; the first peer is the seed."""
    with open(os.path.join(work, COMMON_CFG), "w") as cfg:
        cfg.write(
            f"NumberOfPreferredNeighbors {spec.preferred}\n"
            f"UnchokingInterval {spec.unchoking_interval}\n"
            f"OptimisticUnchokingInterval {spec.optimistic_interval}\n"
            f"FileName {FILE_NAME}\nFileSize {size}\nPieceSize {spec.piece_size}\n"
        )
    with open(os.path.join(work, PEER_INFO_CFG), "w") as cfg:
        for index, (peer, port) in enumerate(zip(ids, ports)):
            cfg.write(f"{peer} {LOOPBACK} {port} {1 if index == 0 else 0}\n")


def _peer_argv(spec: SwarmSpec, twistd: str, peer: int, seed: bool, config_dir: str, work: str) -> list[str]:
    argv = [twistd, "-n", "--pidfile=", "p2ppeer", "--id", str(peer),
            "--config-dir", config_dir, "--work-dir", work, "--interface", LOOPBACK]
    rate = spec.seed_upload_rate if seed and spec.seed_upload_rate is not None else spec.upload_rate
    if rate:
        argv += ["--upload-rate", str(rate)]
    if spec.pipeline:
        argv += ["--pipeline", str(spec.pipeline), "--refill-slots"]
    return argv


@dataclass
class Timeline:
    """What the leechers' event logs say, in their own time stamps (the seed left out)."""

    complete: dict[int, float] = field(default_factory=dict)  # by leecher
    first_contact: dict[int, float] = field(default_factory=dict)  # by leecher
    pair_connected: dict[frozenset, float] = field(default_factory=dict)  # first connection line of each pair
    downloaded: list[float] = field(default_factory=list)  # every piece, every leecher

    @classmethod
    def read(cls, work: str, ids: list[int]) -> Timeline:
        timeline = cls()
        for peer in ids:
            for event in events(str(event_log_path(work, peer))):
                if event.kind == "complete":
                    timeline.complete[peer] = event.time
                elif event.kind == "downloaded":
                    timeline.downloaded.append(event.time)
                elif event.kind in ("connect_to", "connect_from"):
                    timeline.first_contact.setdefault(peer, event.time)
                    pair = frozenset((peer, event.other))
                    timeline.pair_connected[pair] = min(event.time, timeline.pair_connected.get(pair, event.time))
        timeline.complete.pop(ids[0], None)
        timeline.first_contact.pop(ids[0], None)
        return timeline

    def all_connected(self, count: int) -> float | None:
        """When the last of the ``count`` peers' pairs connected (None: not every pair did)."""
        pairs = self.pair_connected
        return max(pairs.values()) if len(pairs) == count * (count - 1) // 2 else None


def _failure(spec: SwarmSpec, work: str, exited: list[Exited], complete: dict[int, float]) -> str:
    """Why a run is not ok, with the last lines of the first peer that exited badly."""
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
    return failure


def _start_swarm(spec: SwarmSpec, work: str, stack: contextlib.ExitStack) -> tuple[list[int], list[Child], float,
                                                                                  RelayProcess | None]:
    """Configs, the seed's file, the relay if any, and every peer spawned: the peers'
    IDs, their children, when the first was spawned, and the relay."""
    ids = [FIRST_ID + i for i in range(spec.leechers + 1)]
    ports = free_ports(len(ids))
    _write_configs(work, spec, ids, ports, os.path.getsize(spec.file_path))
    config_dirs = {peer: work for peer in ids}
    relay: RelayProcess | None = None
    if spec.delay_ms is not None:
        relay = stack.enter_context(RelayProcess(ports, spec.delay_ms))
        config_dirs = write_peer_infos(work, ids, ports, relay.ports)
    seed_file = data_path(work, ids[0], FILE_NAME)
    os.mkdir(seed_file.parent)
    _place(spec.file_path, str(seed_file))
    twistd = twistd_path()
    extra = spec.env if spec.env is not None else PEER_ENV
    env = dict(os.environ, **extra) if extra else None
    children = []
    start = time.time()
    for index, peer in enumerate(ids):
        argv = _peer_argv(spec, twistd, peer, index == 0, config_dirs[peer], work)
        children.append(spawn(str(peer), argv, work, os.path.join(work, f"twistd_{peer}.out"), env))
    return ids, children, start, relay


def run(spec: SwarmSpec, keep_dir: bool = False) -> dict:
    """One run of the swarm; figures in a dict (see the keys of :func:`_figures`)."""
    work = tempfile.mkdtemp(prefix="p2pbench-")
    stack = contextlib.ExitStack()  # the relay, if any: stopped by its pid whatever happens
    try:
        ids, children, start, relay = _start_swarm(spec, work, stack)
        exited = reap(children, start + spec.timeout)
        relayed = relay.stop() if relay is not None else None
        timeline = Timeline.read(work, ids)
        ok = all(e.status == 0 for e in exited) and len(timeline.complete) == spec.leechers
        if spec.verify and ok:
            ok = all(filecmp.cmp(spec.file_path, data_path(work, peer, FILE_NAME), shallow=False)
                     for peer in ids[1:])
        failure = None if ok else _failure(spec, work, exited, timeline.complete)
        depths = [found for peer in ids for found in logged_depths(os.path.join(work, f"twistd_{peer}.out"))]
        return {"ok": ok, "failure": failure, **_figures(timeline, exited, start, len(ids), depths),
                "delay_ms": spec.delay_ms,
                "relayed": relayed,  # the relay's connections and bytes forwarded, when there was one
                "work_dir": work if keep_dir else None}
    finally:
        stack.close()
        if not keep_dir:
            shutil.rmtree(work, ignore_errors=True)


def _figures(timeline: Timeline, exited: list[Exited], start: float, count: int,
             depths: list[tuple[int, int, int | None]]) -> dict:
    """The run's times (from ``start``, the first spawn), CPU, memory and pipeline depths."""
    complete, all_connected = timeline.complete, timeline.all_connected(count)
    last_complete = max(complete.values()) if complete else None
    downloaded = timeline.downloaded
    return {
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
            str(peer): complete[peer] - timeline.first_contact[peer]
            for peer in complete if peer in timeline.first_contact
        },
        "cpu_s_total": sum(e.cpu_s for e in exited),
        "cpu_s": {e.name: round(e.cpu_s, 3) for e in exited},
        "peak_rss_mib": {e.name: round(e.maxrss_mib, 1) for e in exited},
        "peak_rss_mib_max": max(e.maxrss_mib for e in exited),
        # requests in flight per neighbour, as the peers logged them (None: not logged)
        "pipeline_depths": [depth for _, depth, _ in depths] or None,
        "pipeline_highest": max((high for _, _, high in depths if high is not None), default=None),
    }
