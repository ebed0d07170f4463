"""What a simulated swarm did: per peer and for the whole swarm, in simulated seconds,
with the simulation's own cost (wall-clock, CPU, memory)."""
from __future__ import annotations

import resource
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from twisted_p2p.config import SwarmConfig
from twisted_p2p.sim.net import Network

if TYPE_CHECKING:
    from twisted_p2p.sim.swarm import _Run


@dataclass
class PeerResult:
    """One peer: its times are simulated seconds from the start."""

    peer_id: int
    address: str
    has_file: bool
    #: When it held the whole file (its log's completion line); a seed: 0; None: never.
    complete_at: float | None
    #: When its ``done`` fired (every peer had the file, as far as it knew); None: never.
    done_at: float | None
    failed: str | None
    sha256: str | None
    bytes_sent: int = 0
    bytes_received: int = 0
    connections: int = 0
    #: Messages by type, as the other ends received them (what an abort dropped is not counted).
    messages_sent: Counter[str] = field(default_factory=Counter)
    messages_received: Counter[str] = field(default_factory=Counter)
    #: Seconds of CPU its process's turns took, with a CPU model (0 without one).
    cpu_seconds: float = 0.0


@dataclass
class SimResult:
    seed: int
    peers: dict[int, PeerResult]
    #: Simulated seconds until the last leecher held the file; None if one never did.
    completion: float | None
    #: Peers whose ``done`` never fired (stopped at the limit) or that failed.
    unfinished: list[int]
    #: Every file is the seed's, byte for byte.
    files_identical: bool
    sim_seconds: float
    events: int
    call_failures: int
    wall_seconds: float
    cpu_seconds: float
    peak_rss_mib: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.wall_seconds if self.wall_seconds else 0.0

    def messages(self) -> Counter[str]:
        """Every message the swarm sent, by type."""
        total: Counter[str] = Counter()
        for peer in self.peers.values():
            total.update(peer.messages_sent)
        return total

    def summary(self) -> str:
        """A few lines for a person."""
        done = "every peer done" if not self.unfinished else f"unfinished: {self.unfinished}"
        completion = "never" if self.completion is None else f"{self.completion:.3f} s"
        return (f"{len(self.peers)} peers, seed {self.seed}: {done}; swarm complete at {completion} "
                f"(simulated), files identical: {self.files_identical}\n"
                f"{self.events:,} events in {self.wall_seconds:.2f} s wall, {self.cpu_seconds:.2f} s CPU "
                f"({self.events_per_second:,.0f} events/s), the process's peak RSS {self.peak_rss_mib:.0f} MiB\n"
                f"messages: {dict(sorted(self.messages().items()))}")


def _rounded(seconds: float | None) -> float | None:
    """To the microsecond: the clock counts from an epoch, whose sums carry ~0.2 us of noise."""
    return None if seconds is None else round(seconds, 6)


def collect(config: SwarmConfig, network: Network, run: _Run, *, seed: int, wall: float, cpu: float,
            digests: dict[int, str | None]) -> SimResult:
    """The figures of a finished run."""
    peers: dict[int, PeerResult] = {}
    for peer in config.peers:
        host = network.host(peer.host)
        peers[peer.peer_id] = PeerResult(
            peer.peer_id, peer.host, peer.has_file,
            0.0 if peer.has_file else _rounded(run.complete_at.get(peer.peer_id)),
            _rounded(run.done_at.get(peer.peer_id)), run.failed.get(peer.peer_id), digests[peer.peer_id],
            host.bytes_sent, host.bytes_received, host.connections,
            cpu_seconds=host.process.cpu if host.process is not None else 0.0)
    by_address = {peer.address: peer for peer in peers.values()}
    for end in network.ends:
        received = end.incoming
        by_address[end.host.address].messages_received.update(received)
        by_address[end.peer.host].messages_sent.update(received)
    seed_digests = {digests[peer.peer_id] for peer in config.peers if peer.has_file}
    leechers = [p.complete_at for p in peers.values() if not p.has_file]
    times = [each for each in leechers if each is not None]
    return SimResult(
        seed=seed, peers=peers,
        completion=max(times, default=0.0) if len(times) == len(leechers) else None,
        unfinished=[p.peer_id for p in peers.values() if p.done_at is None or p.failed is not None],
        files_identical=len(seed_digests) == 1 and None not in seed_digests
        and all(p.sha256 in seed_digests for p in peers.values()),
        sim_seconds=network.clock.seconds() - run.start, events=network.clock.calls_run,
        call_failures=network.clock.failures, wall_seconds=wall, cpu_seconds=cpu,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
