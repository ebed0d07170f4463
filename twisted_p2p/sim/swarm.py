"""simulate(): a whole swarm of real peers in one process, on one simulated clock.

Each peer of PeerInfo.cfg is a real :class:`~twisted_p2p.node.PeerNode` on its own
simulated host (10.x.y.z, the config's port), writing its real files and event log in
the work dir, as ``p2p-swarm run`` lays them out. The clock starts at a fixed epoch and
every peer's random seed is derived from the run's seed, so one seed gives one run,
byte for byte. A peer stops once its ``done`` fires, as its process would; the run
ends when every peer has stopped, or at the limit (the unfinished are stopped then).
"""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import random
import resource
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from twisted.python.failure import Failure

from twisted_p2p import config as config_files
from twisted_p2p.config import SwarmConfig
from twisted_p2p.launcher.plan import prepare_work_dir
from twisted_p2p.layout import data_path
from twisted_p2p.node import PeerNode
from twisted_p2p.settings import PeerSettings
from twisted_p2p.sim.clock import SimClock
from twisted_p2p.sim.cpu import CpuModel, Process
from twisted_p2p.sim.net import LinkModel, Network
from twisted_p2p.sim.reactor import HostReactor
from twisted_p2p.sim.result import PeerResult, SimResult, collect
from twisted_p2p.storage import file_sha256

#: When every simulated run starts (2026-01-01 00:00:00 UTC): the logs' stamps are the
#: same from one run to the next.
EPOCH = 1_767_225_600.0
#: Simulated seconds the peers may take to close and save once told to stop.
STOP_LIMIT = 120.0


def host_address(position: int) -> str:
    """The simulated address of the peer at ``position`` in PeerInfo.cfg: 10.0.0.1 on."""
    number = position + 1
    return f"10.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}"


def simulated_config(config: SwarmConfig) -> SwarmConfig:
    """``config`` with every peer on its own simulated host; the ports are kept."""
    peers = tuple(dataclasses.replace(peer, host=host_address(position)) for position, peer in enumerate(config.peers))
    return dataclasses.replace(config, peers=peers)


def peer_seed(seed: int, peer_id: int) -> int:
    """A peer's random seed, from the run's (a string seed is hashed the same way in
    every process)."""
    return random.Random(f"{seed}:{peer_id}").getrandbits(63)


def raise_fd_limit() -> None:
    """Each peer holds its data file, event log and journal open: allow as many files
    as the hard limit does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


class _Run:
    """The nodes of one simulation and what happened to them."""

    def __init__(self, clock: SimClock, nodes: list[PeerNode]) -> None:
        self.clock = clock
        self.start = clock.seconds()
        self.nodes = nodes
        self.complete_at: dict[int, float] = {}
        self.done_at: dict[int, float] = {}
        self.failed: dict[int, str] = {}
        self.stopped: set[int] = set()
        self.closed: set[int] = set()
        for node in nodes:
            self._watch(node)

    def _watch(self, node: PeerNode) -> None:
        peer_id = node.info.peer_id
        log_complete = node.events.complete

        def complete() -> None:  # the moment the peer holds the file, as its log says
            self.complete_at[peer_id] = self.clock.seconds() - self.start
            log_complete()

        node.events.complete = complete  # type: ignore[method-assign]

        def done(result: object) -> None:
            self.done_at[peer_id] = self.clock.seconds() - self.start
            if isinstance(result, Failure):
                self.failed[peer_id] = result.getErrorMessage()
            self.stop(node)  # as its process would

        node.peer.done.addBoth(done)

    def stop(self, node: PeerNode) -> None:
        peer_id = node.info.peer_id
        if peer_id in self.stopped:
            return  # (a node never started is stopped all the same: that closes its files)
        self.stopped.add(peer_id)
        closed: Any = node.stopService()
        closed.addBoth(lambda _: self.closed.add(peer_id))

    def all_closed(self) -> bool:
        return len(self.closed) == len(self.nodes)


def simulate(
    config: SwarmConfig,
    work_dir: Path,
    *,
    seed: int,
    link: LinkModel | None = None,
    settings: PeerSettings = PeerSettings(),
    settings_for: Callable[[int], PeerSettings] | None = None,
    rates_for: Callable[[int], tuple[float | None, float | None]] | None = None,
    limit: float = 3600.0,
    stagger: float = 0.0,
    epoch: float = EPOCH,
) -> SimResult:
    """Run the swarm of ``config`` in ``work_dir`` until every peer is done, or for
    ``limit`` simulated seconds; the peers start ``stagger`` seconds apart.

    ``link``: the network (default: unlimited rates, no delay). ``settings_for(peer_id)``,
    if given, is a peer's settings (else ``settings``); its random seed is replaced by
    one derived from ``seed``. ``rates_for(peer_id)``, if given, is a peer's host's
    (upload, download) in bytes/s, None for the link model's.
    """
    raise_fd_limit()
    wall, cpu = time.perf_counter(), time.process_time()
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    config = simulated_config(config)
    config_files.write(work_dir, config)  # the audit finds the config beside the logs
    prepare_work_dir(config, work_dir, demo_file=True)
    clock = SimClock(start=epoch)
    network = Network(clock, link or LinkModel())
    nodes = []
    for peer in config.peers:
        upload, download = rates_for(peer.peer_id) if rates_for is not None else (None, None)
        reactor = HostReactor(network, peer.host, upload, download)
        chosen = settings_for(peer.peer_id) if settings_for is not None else settings
        chosen = dataclasses.replace(chosen, random_seed=peer_seed(seed, peer.peer_id))
        nodes.append(PeerNode(config, peer.peer_id, work_dir, reactor, chosen, boot_id="simulated"))
    run = _Run(clock, nodes)
    starts = [clock.callLater(position * stagger, _starter(network, node)) for position, node in enumerate(nodes)]
    with _no_cycle_collector():
        clock.run(until=run.all_closed, limit=limit)
        for start in starts:  # at the limit: the unfinished stop, and those still to start never do
            if start.active():
                start.cancel()
        for node in nodes:
            run.stop(node)
        clock.run(until=run.all_closed, limit=STOP_LIMIT)
    return collect(config, network, run, seed=seed, wall=time.perf_counter() - wall,
                   cpu=time.process_time() - cpu, digests=_digests(config, work_dir))


@contextlib.contextmanager
def _no_cycle_collector() -> Iterator[None]:
    """Python's cycle collector off for the run, one collection after it. A big swarm
    holds millions of long-lived objects (every connection's protocol, transport and
    bitfields), which each full collection walks again, while a run leaves almost no
    cycles behind (about 1,600 objects in a 200-peer run of 4 million events): off, the
    run takes a sixth less CPU at 200 peers."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        gc.collect()


def _starter(network: Network, node: PeerNode) -> Callable[[], object]:
    """What starts ``node``: at once, or, with a CPU model that says a start costs CPU,
    once its process has had that much of the machine's cores."""
    cpu, machine = network.model.cpu, network.machine
    if cpu is None or machine is None or not cpu.start:
        return node.startService
    starting = Process(lambda work: cpu.start, lambda work: node.startService())
    return lambda: machine.give(starting, None)


def _digests(config: SwarmConfig, work_dir: Path) -> dict[int, str | None]:
    """Each peer's file's SHA-256, None where it has no file."""
    found: dict[int, str | None] = {}
    for peer in config.peers:
        path = data_path(work_dir, peer.peer_id, config.common.file_name)
        found[peer.peer_id] = file_sha256(path) if path.is_file() else None
    return found


__all__ = ["EPOCH", "CpuModel", "LinkModel", "PeerResult", "SimResult", "simulate"]
