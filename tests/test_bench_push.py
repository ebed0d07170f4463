"""The push case's phases (bench/push.py) read from push's own output as push renders it
(twisted_p2p.launcher.progress), for a few hosts (a line each) and for many (cells)."""
from __future__ import annotations

from bench.push import phases_from
from twisted_p2p.launcher.progress import COMPACT_OVER, PeerProgress, render_hosts


def _output(hosts: int) -> list[tuple[float, str]]:
    """Push's output, stamped in seconds since its launch, its progress block drawn at 9.0
    with every host done (the last 4.2 s after the first peer started, at 2.0)."""
    peers = [PeerProgress(1002 + n, f"lab{n}", 100, False, 0.0) for n in range(hosts)]
    for n, peer in enumerate(peers):
        peer.held, peer.completed_at = 100, 3.0 + 1.2 * n / max(1, hosts - 1)
    lines = ["asking 3 hosts over ssh", "pushing f.bin", "started peer 1001 here"]
    stamps = [0.5, 1.0, 2.0]
    block = render_hosts(peers, 9.0, 65536)
    lines += block + ["checked over ssh: no peer left", "host  result"]
    stamps += [9.0] * len(block) + [9.5, 10.0]
    return list(zip(stamps, lines, strict=True))


def test_the_peers_phase_is_read_from_host_lines_and_from_compact_cells() -> None:
    for hosts in (3, COMPACT_OVER + 5):
        phases = phases_from(_output(hosts), end=10.5)
        assert phases["peers_until_last_complete"] == 4.2, hosts
        assert (phases["start_of_launcher"], phases["survey"], phases["prepare"]) == (0.5, 0.5, 1.0)
        assert (phases["deliver"], phases["after_table"]) == (0.5, 0.5)
