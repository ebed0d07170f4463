"""SimClock against task.Clock: the same script gives the same calls at the same times."""
from __future__ import annotations

import pytest
from twisted.internet import error, task
from twisted.internet.base import DelayedCall

from twisted_p2p.sim.clock import SimClock


def _script(clock):
    """Schedule, cancel, reset and delay calls (some from inside calls); the record of
    what ran when."""
    ran = []

    def note(label):
        ran.append((clock.seconds(), label))

    for label in "abc":  # same time: the order scheduled
        clock.callLater(1.0, note, label)
    clock.callLater(0.5, note, "early")
    cancelled = clock.callLater(0.75, note, "cancelled")
    cancelled.cancel()
    earlier = clock.callLater(5.0, note, "reset earlier")
    earlier.reset(0.25)
    later = clock.callLater(0.375, note, "reset later")
    later.reset(2.625)
    delayed = clock.callLater(1.5, note, "delayed")
    delayed.delay(1.0)
    undelayed = clock.callLater(4.0, note, "delayed back")
    undelayed.delay(-3.5)

    def nested():
        note("outer")
        clock.callLater(0, note, "inner now")
        clock.callLater(0.25, note, "inner later")

    clock.callLater(2.0, nested)
    loop = task.LoopingCall(note, "loop")
    loop.clock = clock
    loop.start(0.75, now=True)
    clock.callLater(3.1, loop.stop)
    return ran


def test_the_same_script_runs_alike_on_task_clock_and_on_sim_clock():
    reference, simulated = task.Clock(), SimClock()
    expected, got = _script(reference), _script(simulated)
    # task.Clock makes a call at the end of the step it falls in: steps that end on the
    # calls' times (binary fractions, so that both clocks' sums are exact).
    steps = [0.125] * 32
    reference.pump(steps)
    simulated.pump(steps)
    assert [label for _, label in got] == [label for _, label in expected]
    assert [t for t, _ in got] == [t for t, _ in expected]
    assert "cancelled" not in [label for _, label in got]
    assert [label for _, label in got][:3] == ["loop", "reset earlier", "early"]


def test_calls_are_delayed_calls_that_refuse_a_second_cancel_or_a_late_reset():
    clock = SimClock()
    call = clock.callLater(1, lambda: None)
    assert isinstance(call, DelayedCall) and call.active()
    call.cancel()
    with pytest.raises(error.AlreadyCancelled):
        call.cancel()
    done = clock.callLater(1, lambda: None)
    clock.advance(1)
    assert not done.active()
    with pytest.raises(error.AlreadyCalled):
        done.reset(1)
    assert clock.getDelayedCalls() == []


def test_get_delayed_calls_lists_the_pending_ones_once_in_order():
    clock = SimClock(start=100.0)
    first = clock.callLater(3, lambda: None)
    second = clock.callLater(2, lambda: None)
    gone = clock.callLater(1, lambda: None)
    gone.cancel()
    first.reset(1)  # two heap entries now: listed once
    assert clock.getDelayedCalls() == [first, second]
    assert first.getTime() == 101.0


def test_run_jumps_from_call_to_call_and_stops_when_asked_or_at_the_limit():
    clock = SimClock()
    ran = []
    for when in (10.0, 1000.0, 5000.0):
        clock.callLater(when, lambda when=when: ran.append(clock.seconds()))
    assert clock.run(until=lambda: len(ran) == 2, limit=10_000)
    assert ran == [10.0, 1000.0] and clock.seconds() == 1000.0
    assert not clock.run(until=lambda: False, limit=100)
    assert clock.seconds() == 1100.0 and len(ran) == 2
    assert clock.calls_run == 2


def test_many_cancelled_calls_are_dropped_from_the_heap():
    clock = SimClock()
    calls = [clock.callLater(i, lambda: None) for i in range(5000)]
    for call in calls[:4000]:
        call.cancel()
    assert len(clock._heap) < 5000
    assert len(clock.getDelayedCalls()) == 1000
    clock.advance(10_000)
    assert clock.calls_run == 1000


def test_a_call_that_raises_is_counted_and_the_run_goes_on():
    clock = SimClock()
    ran = []
    clock.callLater(1, lambda: 1 / 0)
    clock.callLater(2, ran.append, "after")
    clock.advance(3)
    assert ran == ["after"] and clock.failures == 1


def test_scheduled_events_take_their_turn_with_calls_and_are_not_delayed_calls():
    clock = SimClock()
    ran = []
    clock.callLater(1, ran.append, "call")
    clock.schedule(1, ran.append, "event")
    clock.schedule(0.5, ran.append, "first")
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(1)
    assert ran == ["first", "call", "event"] and clock.calls_run == 3
