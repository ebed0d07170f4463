"""The pipeline window: a RequestBook asking a simulated neighbour (a link with a round
trip and an upload rate) under a task.Clock, and the window's arithmetic alone."""
from __future__ import annotations

import math
import random

import pytest
from piecebook import request_book
from twisted.internet.task import Clock

from twisted_p2p import pipeline
from twisted_p2p.bitfield import PieceSet
from twisted_p2p.pipeline import PipelineWindow
from twisted_p2p.requests import Answer

PIECES = 4000
PEER = 7


class Link:
    """A neighbour behind a link: a request reaches it half a round trip after it is
    sent, it uploads one piece per ``1 / rate`` seconds in the order asked, and each
    piece reaches us half a round trip after it is sent. We ask again at each answer,
    as the service does."""

    def __init__(self, round_trip: float, rate: float, ceiling: int, burst: float = 0.0) -> None:
        self.clock = Clock()
        self.book = request_book(PIECES, range(PIECES), self.clock, random.Random(3))
        self.requests = {PEER: self.book.open(PEER, ceiling)}
        self.round_trip = round_trip
        self.rate = rate
        self.burst = burst  # answers land only at multiples of this many seconds
        self.free_at = 0.0  # when its upload is next idle
        self.delivered: list[float] = []
        self.most_outstanding = 0

    def ask(self) -> None:
        everything = PieceSet.full(PIECES)
        while (index := self.requests[PEER].next_request(everything)) is not None:
            arrives = self.clock.seconds() + self.round_trip / 2
            self.free_at = max(self.free_at, arrives) + 1 / self.rate
            lands = self.free_at + self.round_trip / 2
            if self.burst:  # held and released together, as a relay or a busy reactor does
                lands = math.ceil(lands / self.burst) * self.burst
            self.clock.callLater(lands - self.clock.seconds(), self.answer, index)
        self.most_outstanding = max(self.most_outstanding, len(self.requests[PEER].outstanding))

    def answer(self, index: int) -> None:
        assert self.requests[PEER].received(index) is Answer.NEW
        self.book.pieces.write(index, b"")
        self.delivered.append(self.clock.seconds())
        self.ask()

    def run(self, seconds: float) -> None:
        """Step the clock from one answer to the next, exactly, for ``seconds``."""
        end = self.clock.seconds() + seconds
        self.ask()
        while (calls := self.clock.getDelayedCalls()):
            due = min(call.getTime() for call in calls)
            if due > end:
                break
            self.clock.advance(due - self.clock.seconds())

    def rate_between(self, start: float, end: float) -> float:
        return sum(start <= t < end for t in self.delivered) / (end - start)


def test_over_a_long_round_trip_the_window_grows_until_the_link_is_full():
    link = Link(round_trip=0.050, rate=2000, ceiling=1024)  # 100 pieces in flight fill it
    link.run(2.0)
    depth = link.requests[PEER].depth
    assert 100 < depth <= 1.5 * 100 * 1.2  # about HEADROOM round trips' worth
    assert link.rate_between(1.0, 2.0) == pytest.approx(2000, rel=0.02)  # the link is full
    window = link.requests[PEER].window
    assert window.round_trip == pytest.approx(0.050 + 1 / 2000)


def test_answers_that_land_in_bursts_count_at_their_average_rate():
    link = Link(round_trip=0.050, rate=2000, ceiling=1024, burst=0.010)  # about 20 at a time
    link.run(2.0)
    window = link.requests[PEER].window
    assert window.rate == pytest.approx(2000, rel=0.1)
    assert window.round_trip < 0.050 + 0.010 + 0.001  # at most one burst late
    assert 100 < link.requests[PEER].depth <= 1.5 * 0.061 * 2000 * 1.1  # not the ceiling
    assert link.rate_between(1.0, 2.0) == pytest.approx(2000, rel=0.02)


def test_a_fixed_depth_of_the_floor_would_leave_that_link_mostly_idle():
    link = Link(round_trip=0.050, rate=2000, ceiling=pipeline.FLOOR)  # no room to grow
    link.run(2.0)
    assert link.requests[PEER].depth == pipeline.FLOOR
    assert link.rate_between(1.0, 2.0) == pytest.approx(pipeline.FLOOR / 0.050, rel=0.05)


def test_on_a_short_round_trip_the_window_stays_at_the_floor():
    link = Link(round_trip=0.0002, rate=20000, ceiling=1024)  # 4 pieces per round trip
    link.run(0.5)
    assert link.requests[PEER].depth == pipeline.FLOOR  # down from where it started
    assert link.most_outstanding == pipeline.START


def test_the_window_never_passes_its_ceiling():
    link = Link(round_trip=0.050, rate=2000, ceiling=40)
    link.run(1.0)
    assert link.requests[PEER].depth == 40 and link.most_outstanding == 40


def test_when_the_neighbour_slows_down_the_window_shrinks_with_it():
    link = Link(round_trip=0.050, rate=2000, ceiling=1024)
    link.run(1.0)
    fast = link.requests[PEER].depth
    link.rate = 200  # its upload is now shared, or throttled
    link.run(4.0)
    slow = link.requests[PEER].depth
    assert slow < fast / 4
    assert slow <= max(pipeline.FLOOR, 1.5 * 0.050 * 200 * 1.5)


def test_the_round_trip_is_the_shortest_answer_and_only_busy_gaps_count():
    window = PipelineWindow(ceiling=500, floor=4, start=4)
    assert window.answered(waited=0.120, gap=None) == 4  # no rate yet: where it started
    assert window.round_trip == 0.120 and window.rate is None
    assert window.answered(waited=0.080, gap=0.010) == 4  # 10 ms of a round trip's span so far
    assert window.round_trip == 0.080
    for _ in range(7):
        window.answered(waited=0.100, gap=0.010)
    assert window.rate == pytest.approx(100)  # eight answers in the 80 ms span
    assert window.depth == 12  # 1.5 x 0.080 s x 100 pieces/s
    window.answered(waited=0.300, gap=None)  # asked after an idle spell: the idle is not a gap
    assert window.rate == pytest.approx(100) and window.round_trip == 0.080
    for _ in range(3):
        window.answered(waited=0.100, gap=0.0)  # read in the same turn: no time has passed
    assert window.depth == 12
    assert "depth 12" in window.describe() and "80.0 ms" in window.describe()


def test_a_span_short_of_pieces_to_ask_never_lowers_the_rate():
    window = PipelineWindow(ceiling=500, floor=4, start=4)
    for _ in range(8):
        window.answered(waited=0.080, gap=0.010)
    assert window.rate == pytest.approx(100) and window.depth == 12
    window.short_of_pieces()  # it held little we lacked: answers come slowly
    for _ in range(2):
        window.answered(waited=0.080, gap=0.040)
    assert window.rate == pytest.approx(100) and window.depth == 12
    for _ in range(2):  # the same pace with its window full is a real slowdown
        window.answered(waited=0.080, gap=0.040)
    assert window.rate == pytest.approx(62.5) and window.depth == 8
    window.short_of_pieces()
    for _ in range(16):  # short, but faster than thought: that counts
        window.answered(waited=0.080, gap=0.005)
    assert window.rate > 62.5


def test_the_book_tells_the_window_when_a_neighbour_has_nothing_more_to_give():
    link = Link(round_trip=0.050, rate=2000, ceiling=1024)
    link.run(1.0)
    fast = link.requests[PEER].window.rate
    link.requests[PEER].choked()  # nothing outstanding now: room in its window
    scarce = PieceSet(PIECES, range(3))  # it holds three pieces, all of them held already
    for index in range(3):
        link.book.pieces.write(index, b"")
    assert not link.requests[PEER].window.short
    assert link.requests[PEER].next_request(scarce) is None
    assert link.requests[PEER].window.short  # the span is marked: its slow answers will not count
    assert fast == pytest.approx(2000, rel=0.05)


def test_a_ceiling_below_the_floor_is_a_fixed_depth():
    window = PipelineWindow(ceiling=3)
    assert window.depth == 3 and window.floor == 3 and PipelineWindow(ceiling=40).depth == 40
    assert window.answered(waited=1.0, gap=0.001) == 3
