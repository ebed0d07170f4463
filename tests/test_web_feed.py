"""The dashboard's data and its event stream, in memory: a snapshot, then deltas that carry
only what changed and can be applied over a later snapshot; the SSE resource on
twisted.web's DummyRequest."""
from __future__ import annotations

import json

import pytest
from support import swarm_config
from twisted.web.test.requesthelper import DummyRequest

from twisted_p2p.eventlog import SENTENCES, format_time
from twisted_p2p.launcher.progress import PeerProgress
from twisted_p2p.launcher.runpage import PALETTE
from twisted_p2p.launcher.web.feed import Feed
from twisted_p2p.launcher.web.server import EventStream, parse_address, sse

START = 1_700_000_000.0
CONFIG = swarm_config([1001, 1002, 1003], seeds=[1001], file_size=5 * 1000, piece_size=1000)  # 5 pieces


def line(seconds: float, kind: str, **fields: object) -> str:
    return f"{format_time(START + seconds)}: {SENTENCES[kind].format(**fields)}"


@pytest.fixture
def swarm():
    progress = {peer.peer_id: PeerProgress(peer.peer_id, peer.host, 5, peer.has_file, START) for peer in CONFIG.peers}
    clock = {"now": 1.0}
    return progress, Feed(CONFIG, progress, lambda: clock["now"]), clock


def events(data: bytes) -> list[tuple[str, dict]]:
    found = []
    for block in data.decode().split("\n\n"):
        fields = dict(part.split(": ", 1) for part in block.splitlines() if ": " in part)
        if "event" in fields:
            found.append((fields["event"], json.loads(fields["data"])))
    return found


def test_a_snapshot_has_every_peer_its_piece_map_and_the_file(swarm):
    progress, feed, _ = swarm
    progress[1002].feed_line(line(0.5, "downloaded", me=1002, index=3, other=1001, count=1))
    progress[1002].feed_line(line(0.6, "downloaded", me=1002, index=0, other=1003, count=2))
    snapshot = feed.snapshot()
    assert [peer["id"] for peer in snapshot["peers"]] == [1001, 1002, 1003]
    assert [peer["slot"] for peer in snapshot["peers"]] == ["A", "B", "C"]
    assert [peer["colour"] for peer in snapshot["peers"]] == list(PALETTE[:3])  # as in swarm-report.html
    assert snapshot["file"] == {"name": "TheFile.dat", "size": 5000, "pieces": 5, "piece_size": 1000,
                                "k": 2, "p": 5, "m": 15}
    assert snapshot["state"]["1001"]["map"] == "*****"  # a seed's own
    assert snapshot["state"]["1002"]["map"] == "C..A."  # piece 0 from 1003, piece 3 from 1001
    assert snapshot["state"]["1002"]["held"] == 2
    assert snapshot["state"]["1003"]["map"] == "....."
    assert snapshot["finished"] is None


def test_deltas_carry_only_what_changed_and_nothing_when_nothing_did(swarm):
    progress, feed, clock = swarm
    first = feed.delta()
    assert first is not None and set(first["state"]) == {"1001", "1002", "1003"}  # everything is new once
    assert feed.delta() is None
    progress[1003].feed_line(line(0.7, "unchoked", me=1003, other=1001))
    progress[1003].feed_line(line(0.8, "downloaded", me=1003, index=4, other=1001, count=1))
    clock["now"] = 1.1
    delta = feed.delta()
    assert list(delta["state"]) == ["1003"]
    change = delta["state"]["1003"]
    assert change["pieces"] == [4, "A"] and change["held"] == 1 and change["unchoked_by"] == [1001]
    assert change["timeline"][-1] == [0.8, 1]
    assert [entry[2] for entry in delta["lines"]] == [1003, 1003]
    assert [entry[0] for entry in delta["lines"]] == [1, 2]  # numbered, so a page skips what it has


def test_choices_from_the_peers_own_log_reach_the_page(swarm):
    progress, feed, _ = swarm
    feed.delta()
    progress[1001].feed_line(line(1.0, "preferred", me=1001, others="1002,1003"))
    progress[1001].feed_line(line(1.0, "optimistic", me=1001, other=1003))
    change = feed.delta()["state"]["1001"]
    assert change["preferred"] == [1002, 1003] and change["optimistic"] == 1003


def test_lines_are_kept_in_time_order_and_a_late_snapshot_has_them(swarm):
    progress, feed, _ = swarm
    progress[1002].feed_line(line(0.9, "connect_to", me=1002, other=1001))
    progress[1003].feed_line(line(0.2, "connect_to", me=1003, other=1001))
    delta = feed.delta()
    assert [entry[3].endswith("Peer 1001.") for entry in delta["lines"]] == [True, True]
    assert [entry[2] for entry in delta["lines"]] == [1003, 1002]
    assert [entry[0] for entry in feed.snapshot()["lines"]] == [1, 2]


def test_the_outcome_is_in_the_next_delta_and_in_every_snapshot(swarm):
    _, feed, _ = swarm
    feed.delta()
    feed.finished = "finished"
    delta = feed.delta()
    assert delta is not None and delta["finished"] == "finished" and delta["state"] == {}
    assert feed.delta() is None  # said once
    assert feed.snapshot()["finished"] == "finished"


def test_the_event_stream_sends_a_snapshot_then_deltas_until_the_page_goes(swarm):
    progress, feed, _ = swarm
    stream = EventStream(feed)
    request = DummyRequest([b""])
    stream.render_GET(request)
    assert request.responseHeaders.getRawHeaders(b"content-type") == [b"text/event-stream; charset=utf-8"]
    sent = events(b"".join(request.written))
    assert [kind for kind, _ in sent] == ["snapshot"]
    assert sent[0][1]["state"]["1002"]["map"] == "....."
    request.written.clear()
    progress[1002].feed_line(line(0.5, "downloaded", me=1002, index=1, other=1001, count=1))
    stream.push()
    sent = events(b"".join(request.written))
    assert [kind for kind, _ in sent] == ["delta"]
    assert sent[0][1]["state"]["1002"]["pieces"] == [1, "A"]
    request.written.clear()
    stream.push()  # nothing changed: nothing sent
    assert request.written == []
    request.processingFailed(Exception("page closed"))  # the browser went away
    assert stream.listeners == []
    stream.push()


def test_an_event_is_one_data_line():
    assert sse("delta", {"a": "x\ny"}) == b'event: delta\ndata: {"a":"x\\ny"}\n\n'


@pytest.mark.parametrize("text, expected", [
    ("8080", ("127.0.0.1", 8080)), ("0", ("127.0.0.1", 0)), (":9000", ("127.0.0.1", 9000)),
    ("0.0.0.0:8080", ("0.0.0.0", 8080)), ("[::1]:8080", ("::1", 8080)),
])
def test_addresses(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["", "web", "host:", "1:70000", "-1"])
def test_bad_addresses(text):
    with pytest.raises(ValueError, match="expected \\[HOST:\\]PORT"):
        parse_address(text)


def test_a_big_swarm_is_thinned_for_the_page(swarm):
    progress, feed, _ = swarm
    peer = progress[1002]
    peer.timeline += [(i / 1000, 1) for i in range(1, 1000)]
    for other in (1001, 1002, 1003):  # each keeps its last 50 lines: 150 new ones
        for i in range(60):
            progress[other].feed_line(line(0.001 * i, "choked", me=other, other=1001 + (other == 1001)))
    timeline = feed.snapshot()["state"]["1002"]["timeline"]
    assert len(timeline) == 200 and timeline[-1] == [1.0, 1] and timeline[0] == [0.0, 0]
    delta = feed.delta()
    assert delta["state"]["1002"]["timeline"] == [[1.0, 1]]  # the newest point only
    assert len(delta["lines"]) == 100 and delta["lines"][-1][0] == 100  # the newest lines only
