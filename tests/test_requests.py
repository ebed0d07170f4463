"""RequestBook under a task.Clock: one request per neighbour, timeouts that follow the
neighbour's response time, snubbing and recovery, late and surplus pieces."""
from __future__ import annotations

import random

import pytest
from piecebook import request_book
from twisted.internet.task import Clock

from twisted_p2p.bitfield import PieceSet
from twisted_p2p.requests import Answer, RequestTimeouts

TOTAL = 20
EVERYTHING = PieceSet.full(TOTAL)
TIMEOUTS = RequestTimeouts(initial=5.0, minimum=1.0, maximum=30.0, factor=4.0, smoothing=0.25)


class Book:
    def __init__(self, missing=range(TOTAL), peers=(1, 2)) -> None:
        self.clock = Clock()
        self.abandoned: list[int] = []
        self.book = request_book(TOTAL, missing, self.clock, random.Random(5), self.abandoned.append, TIMEOUTS)
        self.requests = {peer: self.book.open(peer) for peer in peers}

    def ask(self, peer: int, theirs: PieceSet = EVERYTHING):
        return self.requests[peer].next_request(theirs)


def test_one_outstanding_request_per_neighbour_never_the_same_piece_twice():
    b = Book()
    first = b.ask(1)
    assert first is not None and b.ask(1) is None  # it owes us one
    second = b.ask(2)
    assert second is not None and second != first
    assert b.book.pieces.in_flight == {first, second}


def test_a_request_unanswered_for_the_initial_timeout_is_abandoned_and_its_neighbour_snubbed():
    b = Book()
    index = b.ask(1)
    b.clock.advance(TIMEOUTS.initial - 0.01)
    assert b.abandoned == [] and index in b.book.pieces.in_flight
    b.clock.advance(0.01)
    assert b.abandoned == [1]
    assert index not in b.book.pieces.in_flight and not b.requests[1].outstanding  # back in the pool
    assert b.requests[1].snubbed and b.ask(1) is None  # asked nothing new
    only = PieceSet(TOTAL, [index])
    assert b.ask(2, only) == index  # another neighbour may be asked for it
    assert b.requests[1].timeout == 2 * TIMEOUTS.initial  # and the next timeout is longer


def test_a_trickle_is_no_answer_only_the_whole_piece_is():
    """The clock runs from the request to the piece: nothing in between resets it."""
    b = Book()
    b.ask(1)
    for _ in range(6):
        b.clock.advance(0.9)  # bytes may be arriving meanwhile: the book does not hear of them
    assert b.abandoned == [1]


def test_a_late_piece_is_kept_if_still_lacking_and_trust_comes_back():
    b = Book()
    index = b.ask(1)
    b.clock.advance(TIMEOUTS.initial)
    assert b.requests[1].snubbed
    b.clock.advance(3)
    assert b.requests[1].received(index) is Answer.NEW  # 8 s late, but we still lack it
    assert not b.requests[1].snubbed
    assert b.requests[1].timeout == TIMEOUTS.maximum  # 4 x 8 s is above the ceiling
    assert b.ask(1) is not None  # asked again


def test_a_late_piece_fetched_elsewhere_meanwhile_is_surplus():
    b = Book()
    index = b.ask(1)
    b.clock.advance(TIMEOUTS.initial)
    assert b.ask(2, PieceSet(TOTAL, [index])) == index
    assert b.requests[2].received(index) is Answer.NEW
    b.book.pieces.write(index, b"")
    assert b.requests[1].received(index) is Answer.SURPLUS  # dropped quietly, not a violation
    assert not b.requests[1].snubbed


def test_a_piece_never_asked_of_that_neighbour_is_unsolicited():
    b = Book()
    index = b.ask(1)
    assert b.requests[2].received(index) is Answer.UNSOLICITED
    assert b.requests[1].received((index + 1) % TOTAL) is Answer.UNSOLICITED
    assert b.requests[1].received(index) is Answer.NEW
    assert b.requests[1].received(index) is Answer.UNSOLICITED  # answered once already


def test_the_timeout_follows_the_response_time_within_its_bounds():
    b = Book()
    for _ in range(12):  # a fast neighbour: 10 ms answers
        index = b.ask(1)
        b.clock.advance(0.01)
        assert b.requests[1].received(index) is Answer.NEW
        b.book.pieces.write(index, b"")
    assert b.requests[1].timeout == TIMEOUTS.minimum  # 4 x 10 ms is below the floor
    index = b.ask(1)
    b.clock.advance(TIMEOUTS.minimum)
    assert b.abandoned == [1]  # a fast neighbour that stalls is noticed in a second


def test_a_slow_honest_neighbour_is_not_starved():
    """It answers every request in 12 s: abandoned at first, then given the time it needs."""
    b = Book(peers=(1,))
    delivered = 0
    for _ in range(40):
        index = b.ask(1)
        if index is None:
            continue
        b.clock.advance(12)
        if b.requests[1].received(index) is Answer.NEW:
            b.book.pieces.write(index, b"")
            delivered += 1
    assert delivered == 20  # every piece came from it in the end
    assert b.requests[1].timeout == TIMEOUTS.maximum
    assert len(b.abandoned) <= 2  # only its first requests timed out


def test_a_choke_returns_the_piece_and_ends_the_snub():
    b = Book()
    index = b.ask(1)
    b.requests[1].choked()
    assert index not in b.book.pieces.in_flight and not b.requests[1].outstanding
    b.clock.advance(60)
    assert b.abandoned == []  # its timer went with the request
    assert b.requests[1].received(index) is Answer.NEW  # answered before it acted on its choke
    b.ask(1)
    b.clock.advance(b.requests[1].timeout)
    assert b.requests[1].snubbed
    b.requests[1].choked()  # it dropped what we asked: after its next unchoke it is asked afresh
    assert not b.requests[1].snubbed and b.ask(1) is not None


def test_a_neighbour_that_goes_returns_its_piece_and_its_timer_stops():
    b = Book()
    index = b.ask(1)
    b.requests[1].close()
    assert index not in b.book.pieces.in_flight
    b.clock.advance(60)
    assert b.abandoned == []


@pytest.mark.parametrize("smoothed, expected", [(0.01, 1.0), (2.0, 8.0), (100.0, 30.0)])
def test_timeout_bounds(smoothed, expected):
    assert TIMEOUTS.after_answer(smoothed) == expected
    assert TIMEOUTS.after_abandon(20.0) == 30.0


# -- the pipelining extension: up to a neighbour's depth outstanding ---------------------


def pipelined(depth: int = 4) -> Book:
    b = Book(peers=())
    b.requests[1] = b.book.open(1, depth)
    b.requests[2] = b.book.open(2)  # a plain neighbour
    return b


def fill(b: Book, peer: int) -> list[int]:
    asked = []
    while (index := b.ask(peer)) is not None:
        asked.append(index)
    return asked


def test_a_pipelined_neighbour_is_asked_up_to_its_depth_never_a_piece_twice():
    b = pipelined(4)
    asked = fill(b, 1)
    assert len(asked) == 4 and b.requests[1].outstanding == asked
    plain = fill(b, 2)
    assert len(plain) == 1 and not set(plain) & set(asked)
    assert b.book.pieces.in_flight == set(asked + plain)
    assert b.requests[1].received(asked[0]) is Answer.NEW
    assert len(fill(b, 1)) == 1  # one answered: one more may go out


def test_the_timeout_runs_from_the_last_answer_so_queued_requests_wait_their_turn():
    b = pipelined(4)
    asked = fill(b, 1)
    for index in asked[:3]:  # answered one by one, each just within the timeout of the previous
        b.clock.advance(TIMEOUTS.initial - 0.5)
        assert b.abandoned == []
        b.requests[1].received(index)
    assert b.requests[1].outstanding == [asked[3]]
    b.clock.advance(b.requests[1].timeout + 0.01)  # then it stalls
    assert b.abandoned == [1] and b.requests[1].snubbed
    assert b.requests[1].outstanding == [] and not b.book.pieces.in_flight  # everything back in the pool


def test_a_stalled_pipelined_neighbour_gives_back_every_request_at_once():
    b = pipelined(6)
    asked = fill(b, 1)
    b.clock.advance(TIMEOUTS.initial)
    assert b.abandoned == [1] and not b.book.pieces.in_flight
    assert b.ask(1) is None  # snubbed
    assert b.requests[1].received(asked[2]) is Answer.NEW  # a late answer is still one, and trusted again
    assert not b.requests[1].snubbed and len(fill(b, 1)) == 6


def test_a_choke_or_a_disconnect_returns_every_pipelined_request():
    b = pipelined(5)
    fill(b, 1)
    b.requests[1].choked()
    assert b.requests[1].outstanding == [] and not b.book.pieces.in_flight
    b.clock.advance(60)
    assert b.abandoned == []  # no timer left behind
    again = fill(b, 1)
    assert len(set(again)) == 5 and set(again) <= set(range(TOTAL))
    b.requests[1].close()
    assert not b.book.pieces.in_flight
    b.clock.advance(60)
    assert b.abandoned == []


def test_the_response_time_of_a_pipelined_neighbour_is_its_time_per_piece_not_its_queue():
    b = pipelined(8)
    asked = fill(b, 1)
    for index in asked:  # eight answers, 0.2 s apart, all asked at once
        b.clock.advance(0.2)
        b.requests[1].received(index)
    assert b.requests[1].timeout == pytest.approx(max(TIMEOUTS.minimum, TIMEOUTS.factor * 0.2))
