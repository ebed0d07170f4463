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


def test_the_transfer_is_read_from_the_report_push_keeps() -> None:
    """From the first piece any leecher downloaded to the last complete, by the peers'
    own stamps, as the launcher reads them into the report."""
    from io import StringIO

    from twisted.internet.task import Clock

    from bench.push import transfer_from
    from twisted_p2p.eventlog import EventLog
    from twisted_p2p.launcher.runreport import PeerResult, build_report

    started = 1_000.0  # the launcher's start, by the hosts' clock
    progress = [PeerProgress(1001, "here", 2, True, started)]
    for peer, times in {1002: (3.0, 4.5), 1003: (2.5, 6.25)}.items():  # its two pieces, after the start
        clock, lines = Clock(), StringIO()
        log = EventLog(peer, lines, clock)
        for count, when in enumerate(times, 1):
            clock.advance(started + when - clock.seconds())
            log.downloaded(count - 1, 1001, count)
        log.complete()
        state = PeerProgress(peer, f"lab{peer}", 2, False, started)
        for line in lines.getvalue().splitlines():
            state.feed_line(line)
        progress.append(state)
    report = build_report([PeerResult(state, 0, True) for state in progress], "finished", 0, 9.0, {})
    assert transfer_from(report) == 6.25 - 2.5
    report["peers"][2]["seconds_to_complete"] = None
    assert transfer_from(report) is None


def test_the_piece_size_push_chose_is_found_from_its_count() -> None:
    from bench.simcheck import push_piece
    from twisted_p2p.launcher.push import MAX_PIECE, MIN_PIECE, piece_size_for

    for size in (50_000_000, 20_000_000, 1 << 30, 123_456_789):
        piece = MIN_PIECE
        while piece <= MAX_PIECE:
            assert push_piece(size, -(-size // piece)) == piece, (size, piece)
            piece *= 2
        assert push_piece(size, None) == piece_size_for(size).size
