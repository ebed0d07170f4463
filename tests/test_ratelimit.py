"""TokenBucket, the peer's upload cap, under a task.Clock. (A capped seed in a real
swarm: tests/test_resume.py.)"""
from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from twisted_p2p.ratelimit import TokenBucket


def test_a_full_bucket_sends_at_once_and_goes_into_debt_by_one_piece_at_most():
    clock = Clock()
    bucket = TokenBucket(rate=1000, burst=500, clock=clock)
    assert bucket.ready()
    bucket.spend(800)  # a piece larger than what is left: sent, and owed
    assert not bucket.ready()
    clock.advance(0.29)
    assert not bucket.ready()
    clock.advance(0.02)  # 300 bytes of debt paid at 1000 B/s
    assert bucket.ready()


def test_a_waiting_sender_is_woken_once_the_debt_is_paid():
    clock = Clock()
    bucket = TokenBucket(rate=1000, burst=500, clock=clock)
    bucket.spend(700)
    woken: list[float] = []
    bucket.wait(lambda: woken.append(clock.seconds()))
    clock.advance(0.19)
    assert woken == []
    clock.advance(0.02)
    assert len(woken) == 1 and 0.2 <= woken[0] <= 0.21


def test_waiting_senders_are_woken_in_turn_each_once():
    clock = Clock()
    bucket = TokenBucket(rate=1000, burst=100, clock=clock)
    bucket.spend(200)
    order: list[str] = []

    def sender(name: str):
        def wake() -> None:
            order.append(name)
            bucket.spend(100)  # each sends a piece, and the next waits its turn
        return wake

    first, second = sender("first"), sender("second")
    bucket.wait(first)
    bucket.wait(second)
    bucket.wait(first)  # already waiting: not twice
    clock.pump([0.05] * 10)
    assert order == ["first", "second"]


def test_idle_time_fills_the_bucket_only_up_to_its_burst():
    clock = Clock()
    bucket = TokenBucket(rate=1000, burst=500, clock=clock)
    clock.advance(60)
    assert bucket.ready()  # a sender asks before it sends
    bucket.spend(501)
    assert not bucket.ready()


def test_stop_forgets_the_waiting_senders():
    clock = Clock()
    bucket = TokenBucket(rate=1000, burst=100, clock=clock)
    bucket.spend(200)
    woken: list[bool] = []
    bucket.wait(lambda: woken.append(True))
    bucket.stop()
    clock.advance(10)
    assert woken == [] and not clock.getDelayedCalls()


def test_a_rate_must_be_positive():
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=100, clock=Clock())
