"""SimClock: task.Clock's semantics on a heap, and a run loop that jumps from one due
call to the next.

task.Clock sorts its whole list on every callLater, which a swarm with thousands of
pending calls cannot afford. Here a call is pushed on a heap as (time, sequence,
call); the sequence number keeps calls due at the same time in the order they were
scheduled. Cancelled calls and calls moved earlier leave their old entry behind,
skipped when it comes up (lazy deletion); a call moved later is pushed again when
its old entry comes up.
"""
from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Sequence

from twisted.internet.base import DelayedCall
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer


class _SimCall(DelayedCall):
    """A DelayedCall that knows which heap entry is its current one."""

    entry = -1


class _Event:
    """A call of the simulator's own (a segment's next stage): never cancelled nor
    moved, so none of a DelayedCall's bookkeeping (half the cost of a callLater)."""

    __slots__ = ("entry", "time", "func", "args", "called")
    cancelled = 0
    kw: dict[str, object] = {}  # never written

    def __init__(self, time: float, func: Callable[..., object], args: tuple[object, ...]) -> None:
        self.time, self.func, self.args, self.called = time, func, args, 0
        self.entry = -1

    def getTime(self) -> float:
        return self.time


@implementer(IReactorTime)
class SimClock:
    """An IReactorTime whose time moves only when :meth:`run` or :meth:`advance` say so.

    A call that raises is logged and counted in ``failures``, as a reactor would log it,
    and the run goes on.
    """

    log = Logger()

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self._heap: list[tuple[float, int, _SimCall | _Event]] = []
        self._sequence = itertools.count()
        self._stale = 0  # heap entries that no longer stand for a pending call
        #: Calls made so far (the simulator's events).
        self.calls_run = 0
        self.failures = 0

    def seconds(self) -> float:
        return self.now

    def callLater(self, delay: float, callable: Callable[..., object], *args: object, **kw: object) -> DelayedCall:
        call = _SimCall(self.now + delay, callable, args, kw, self._cancelled, self._moved_earlier, self.seconds)
        self._push(call, call.time)
        return call

    def schedule(self, delay: float, func: Callable[..., object], *args: object) -> None:
        """Call ``func(*args)`` in ``delay`` seconds, for good: the network's cheap callLater."""
        event = _Event(self.now + delay, func, args)
        event.entry = entry = next(self._sequence)
        heapq.heappush(self._heap, (event.time, entry, event))

    def getDelayedCalls(self) -> Sequence[DelayedCall]:
        """The pending calls, in the order they will run (not the network's own)."""
        pending = [call for _, entry, call in self._heap
                   if isinstance(call, _SimCall) and call.entry == entry and call.active()]
        pending.sort(key=lambda call: (call.getTime(), call.entry))
        return pending

    def _push(self, call: _SimCall | _Event, when: float) -> None:
        call.entry = entry = next(self._sequence)
        heapq.heappush(self._heap, (when, entry, call))

    def _cancelled(self, call: DelayedCall) -> None:
        """DelayedCall's canceller: its entry is stale from now on."""
        assert isinstance(call, _SimCall)
        call.entry = -1
        self._stale += 1
        if self._stale > 1024 and self._stale * 2 > len(self._heap):
            self._compact()

    def _moved_earlier(self, call: DelayedCall) -> None:
        """DelayedCall's resetter: the call's old entry is now stale."""
        self._stale += 1
        assert isinstance(call, _SimCall)
        self._push(call, call.getTime())

    def _compact(self) -> None:
        """Drop the stale entries: a call whose current entry is another (or none)."""
        self._heap = [item for item in self._heap if item[2].entry == item[1]]
        heapq.heapify(self._heap)
        self._stale = 0

    def _next(self, deadline: float) -> _SimCall | _Event | None:
        """Pop the next pending call due by ``deadline``, or None (the clock stays)."""
        heap = self._heap
        while heap:
            when, entry, call = heap[0]
            if when > deadline:
                return None
            heapq.heappop(heap)
            if call.entry != entry or call.cancelled or call.called:
                self._stale = max(0, self._stale - 1)
                continue
            due = call.getTime()
            if due > when:  # reset or delayed to later: its turn comes then
                assert isinstance(call, _SimCall)
                call.activate_delay()
                self._push(call, due)
                continue
            return call
        return None

    def _call(self, call: _SimCall | _Event) -> None:
        if call.time > self.now:
            self.now = call.time
        call.called = 1
        self.calls_run += 1
        try:
            call.func(*call.args, **call.kw)
        except Exception:
            self.failures += 1
            self.log.failure("a simulated call raised")

    def run(self, until: Callable[[], bool], limit: float) -> bool:
        """Make the due calls in order, jumping to each, until ``until()`` is true
        (True) or nothing is due within ``limit`` seconds of now (False; the clock
        then stands at the limit)."""
        deadline = self.now + limit
        while not until():
            call = self._next(deadline)
            if call is None:
                self.now = max(self.now, deadline)
                return until()
            self._call(call)
        return True

    def advance(self, amount: float) -> None:
        """task.Clock's advance: move time on and make every call due by then. Unlike
        task.Clock, each call sees the time it was due, as on a reactor (so a LoopingCall
        advanced past several intervals runs once per interval)."""
        deadline = self.now + amount
        while (call := self._next(deadline)) is not None:
            self._call(call)
        self.now = max(self.now, deadline)

    def pump(self, timings: Iterable[float]) -> None:
        for amount in timings:
            self.advance(amount)
