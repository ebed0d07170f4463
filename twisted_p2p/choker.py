"""Who we unchoke (SPEC §3, choking and optimistic unchoke).

Every p seconds the k preferred neighbours are chosen afresh and every m seconds one
optimistic neighbour, at those rounds only, as the course describes: a slot freed
between rounds stays free until the next. Our extension ``refill`` (opt-in) gives a
free slot at once to a neighbour that becomes interested instead. The decisions are
:mod:`twisted_p2p.policy`'s, made from what each :class:`~twisted_p2p.neighbour.Neighbour`
says of itself (its interest, whether we unchoke it, what it sent us); this class keeps
only its own choice (the preferred and the optimistic neighbours), runs the two
LoopingCalls on the injected clock, tells the neighbours it chokes and unchokes, and
writes the preferred and optimistic lines of the event log when the choice changes.

Tests: tests/test_protocol.py (the choker of a PeerService) and tests/test_policy.py (its choices).
"""
from __future__ import annotations

import random
from collections.abc import Callable, Mapping

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from twisted_p2p import policy
from twisted_p2p.eventlog import EventLog
from twisted_p2p.neighbour import Neighbour


class Choker:
    log = Logger()

    def __init__(
        self,
        k: int,
        p: float,
        m: float,
        clock: IReactorTime,
        rng: random.Random,
        events: EventLog,
        neighbours: Mapping[int, Neighbour],
        have_file: Callable[[], bool],
        refill: bool = False,
    ) -> None:
        self.k, self.p, self.m = k, p, m
        #: Fill a free slot between rounds (our extension), not only at the rounds.
        self.refill = refill
        self._clock = clock
        self._rng = rng
        self._events = events
        self._neighbours = neighbours
        self._have_file = have_file
        self.preferred: frozenset[int] = frozenset()
        self.optimistic: int | None = None
        self._optimistic_changed = float("-inf")  # an early pick waits m s after a change
        self._preferred_loop = self._loop(self.preferred_round)
        self._optimistic_loop = self._loop(self.optimistic_round)

    def _loop(self, tick: Callable[[], None]) -> LoopingCall:
        """A LoopingCall stops for good on an exception: log it and keep ticking."""

        def guarded() -> None:
            try:
                tick()
            except Exception:
                self.log.failure("error in {tick}", tick=tick.__name__)

        loop = LoopingCall(guarded)
        loop.clock = self._clock
        return loop

    def start(self) -> None:
        self._preferred_loop.start(self.p, now=False)
        self._optimistic_loop.start(self.m, now=False)

    def stop(self) -> None:
        for loop in (self._preferred_loop, self._optimistic_loop):
            if loop.running:
                loop.stop()

    # -- what neighbours say of themselves ----------------------------------------------

    @property
    def interested(self) -> frozenset[int]:
        """The neighbours interested in our pieces."""
        return frozenset(peer for peer, neighbour in self._neighbours.items() if neighbour.interested)

    @property
    def unchoked(self) -> frozenset[int]:
        """The neighbours we unchoke."""
        return frozenset(peer for peer, neighbour in self._neighbours.items() if neighbour.unchoked)

    def remove(self, peer: int) -> None:
        """A neighbour is gone: its slot is free at once."""
        if peer in self.preferred:
            self.preferred = self.preferred - {peer}
        if self.optimistic == peer:
            self.optimistic = None

    # -- rounds ------------------------------------------------------------------------

    def preferred_round(self) -> None:
        """Every p seconds: choose the k preferred neighbours afresh (SPEC §3)."""
        rates = {peer: neighbour.take_received() for peer, neighbour in self._neighbours.items()}
        preferred = policy.choose_preferred(self._rng, self.interested, rates, self.k, self._have_file())
        self._apply(preferred, self.optimistic)

    def optimistic_round(self) -> None:
        """Every m seconds: one choked, interested neighbour at random (SPEC §3)."""
        candidate = policy.choose_optimistic(self._rng, self.interested, self.unchoked)
        if candidate is not None:
            self._apply(self.preferred, candidate)

    def fill_free_slots(self) -> None:
        """With ``refill``, unchoke at once when a slot is free, rather than at the next
        round; without it (the course's protocol), do nothing."""
        if not self.refill:
            return
        preferred = policy.fill_free_slots(self._rng, self.preferred, self.interested, self.k)
        optimistic = self.optimistic
        if optimistic is None and self._clock.seconds() - self._optimistic_changed >= self.m:
            optimistic = policy.choose_optimistic(self._rng, self.interested, self.unchoked | preferred)
            if optimistic is not None and self._optimistic_loop.running:
                self._optimistic_loop.reset()  # the next change is a full m seconds away
        self._apply(preferred, optimistic)

    def _apply(self, preferred: frozenset[int], optimistic: int | None) -> None:
        if preferred != self.preferred:
            self.preferred = preferred
            if preferred:
                self._events.preferred(preferred)
        if optimistic != self.optimistic:
            self.optimistic = optimistic
            if optimistic is not None:
                self._optimistic_changed = self._clock.seconds()
                self._events.optimistic(optimistic)
        unchoke, choke = policy.unchoke_changes(self.unchoked, preferred, optimistic)
        for peer in sorted(unchoke):
            self._neighbours[peer].unchoke()
        for peer in sorted(choke):
            self._neighbours[peer].choke()
