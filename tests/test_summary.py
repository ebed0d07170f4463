"""``--echo-summary``: the progress line, its parse, and what a peer echoes with it."""
from __future__ import annotations

import io

import pytest
from support import peer_settings, swarm_config
from test_protocol import Peer
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock

from twisted_p2p.eventlog import EventLog, format_time, parse_line
from twisted_p2p.launcher.progress import PeerProgress, host_line
from twisted_p2p.layout import event_log_path
from twisted_p2p.node import PeerNode
from twisted_p2p.storage import digest_report
from twisted_p2p.summary import Summary, SummaryEcho, format_summary, parse_summary

START = 1_700_000_000.25


def test_a_summary_line_reads_back_as_written():
    summary = Summary(time=START, me=1007, held=1500, total=2000, connected=3, neighbours=4, complete=2)
    line = format_summary(summary)
    assert line == (f"{format_time(START)}: peer 1007 holds 1500 of 2000 pieces; 3 of 4 neighbours connected, "
                    "2 complete")
    assert parse_summary(line + "\n") == summary
    assert parse_line(line) is None  # not a SPEC §5 sentence: the event parsers pass it by


@pytest.mark.parametrize("line", [
    "",
    "2026-12-04 05:00:00.123: Peer 1001 has downloaded the complete file.",
    "2026-12-04 05:00:00.123: peer 1007 holds 1500 of 2000 pieces; 3 of 4 neighbours connected",
    "2026-13-04 05:00:00.123: peer 1007 holds 1 of 2 pieces; 3 of 4 neighbours connected, 2 complete",
    "peer 1007 holds 1 of 2 pieces; 3 of 4 neighbours connected, 2 complete",
])
def test_other_lines_are_not_summaries(line):
    assert parse_summary(line) is None


def test_the_echo_writes_a_line_at_start_every_interval_and_at_stop(tmp_path):
    peer = Peer(tmp_path, 1003, neighbours=frozenset({1001, 1004, 1005}))
    sink = io.StringIO()
    echo = SummaryEcho(peer.service, sink, 2.0, peer.clock)
    echo.startService()
    peer.neighbour(1001, pieces=range(11), dialled=True)
    peer.neighbour(1004, pieces=range(3))
    peer.clock.advance(1.9)
    assert len(sink.getvalue().splitlines()) == 1
    peer.clock.advance(0.1)
    echo.stopService()
    first, second, last = map(parse_summary, sink.getvalue().splitlines())
    assert (first.time, first.me, first.held, first.total, first.connected, first.complete) == (
        1_700_000_000, 1003, 0, 11, 0, 0)
    assert second == Summary(time=1_700_000_002, me=1003, held=0, total=11, connected=2, neighbours=3, complete=1)
    assert last == second
    peer.clock.advance(10)
    assert len(sink.getvalue().splitlines()) == 3  # stopped: no more


def test_with_echoed_kinds_the_echo_gets_only_those_and_the_file_every_line():
    clock = Clock()
    clock.advance(START)
    stream, echo = io.StringIO(), io.StringIO()
    log = EventLog(1002, stream, clock, echo=echo, echoed=frozenset({"complete"}))
    log.connection_made(1001)
    log.downloaded(0, 1001, 1)
    log.complete()
    assert [parse_line(line).kind for line in stream.getvalue().splitlines()] == ["connect_to", "downloaded",
                                                                                 "complete"]
    assert [parse_line(line).kind for line in echo.getvalue().splitlines()] == ["complete"]


def test_a_node_in_summary_mode_echoes_summaries_not_events(tmp_path):
    config = swarm_config([1001, 1002], [1001], 1000, 100, ports=[7101, 7102])
    reactor = MemoryReactorClock()
    echo = io.StringIO()
    node = PeerNode(config, 1002, tmp_path, reactor, peer_settings(echo_summary=5.0), echo=echo)
    node.startService()
    reactor.advance(5)
    node.stopService()
    lines = echo.getvalue().splitlines()
    assert len(lines) == 3 and all(parse_summary(line) is not None for line in lines)
    assert event_log_path(tmp_path, 1002).exists()  # the event log is still written


def test_progress_follows_summaries_their_rate_and_completion():
    progress = PeerProgress(1002, "lab2", 2000, False, START)

    def said(seconds: float, held: int, connected: int = 3, complete: int = 0) -> str:
        return format_summary(Summary(START + seconds, 1002, held, 2000, connected, 4, complete))

    assert progress.feed_line(said(1.0, 0, connected=0)) is None
    progress.feed_line(said(3.0, 400))
    progress.feed_line(format_summary(Summary(START + 3.5, 1003, 1999, 2000, 4, 4, 4)))  # another peer's line
    assert (progress.held, progress.completed_at) == (400, None)
    assert progress.rate(99.0) == pytest.approx(200.0)  # 400 pieces in 2 s
    line = host_line(progress, 3.0, 65536, 4)
    assert "400/2000" in line and line.endswith("neighbours 3/4 up, 0 done")
    progress.feed_line(said(4.0, 2000, complete=2))
    assert progress.completed_at == pytest.approx(4.0, abs=0.002) and progress.held == 2000
    assert [held for _, held in progress.timeline] == [0, 400, 2000]


def test_progress_in_summary_mode_still_takes_the_completion_sentence_and_the_digest():
    progress = PeerProgress(1002, "lab2", 2000, False, START)
    progress.feed_line(f"{format_time(START + 2)}: Peer 1002 has downloaded the complete file.")
    progress.feed_line(f"2026-12-04 05:00:00+0000 [-] {digest_report(1002, 'ab' * 32)}")
    assert progress.completed_at == pytest.approx(2.0, abs=0.002) and progress.reported_sha256 == "ab" * 32
