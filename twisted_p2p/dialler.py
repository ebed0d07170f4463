"""Dialler: keeps one connection up to a peer listed before us (SPEC §3 Choice: retry
with backoff until it succeeds or we shut down).

Two kinds of failure, two backoffs. A TCP connect that fails means the peer is not up
yet: try again soon (``connect_delays``, a peer's ``PeerSettings.retry_delays``: every
25-50 ms for about a second, then growing 1.5 times up to 2 s). A connection that the peer closes
before the handshake or within ``settle`` seconds after it means the peer is up but
will not have us (it may think we are still connected): try again after 1 s, doubling
up to 60 s, so a peer that keeps refusing costs a few log lines a minute. A connection
that lived longer was a real one: when it goes, dial again at once.

A peer that had the whole file and went away (SPEC §3, Choice) is not dialled again once
we hold the file too: the owner says so through ``should_dial``, and hears of every
failed connect through ``unreachable``.

Twisted's ``ClientService`` counts every TCP connect as a success, which is why this
small service exists.
"""
from __future__ import annotations

import random
from collections.abc import Callable
from typing import cast

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_p2p.protocol import PeerProtocol


def backoff(attempt: int, initial: float, maximum: float, rng: random.Random, growth: float = 2.0) -> float:
    """The delay before retry ``attempt`` (1, 2, ...): growing ``growth`` times from
    ``initial`` up to ``maximum``, with up to ``initial`` of jitter so that peers do not
    retry in step."""
    return min(maximum, initial * growth ** (attempt - 1)) + rng.random() * initial


CONNECT_GROWTH = 1.5
#: Failed connects retried at the initial delay before the delay grows: a swarm's peers
#: start together and are typically all listening within a second, and a refused
#: connect to a peer not up yet costs about 0.1 ms.
CONNECT_STEADY_ATTEMPTS = 30


class Dialler(Service):
    log = Logger()

    def __init__(
        self,
        peer_id: int,
        endpoint: IStreamClientEndpoint,
        factory: Factory,
        clock: IReactorTime,
        rng: random.Random,
        connect_delays: tuple[float, float],
        refused_delays: tuple[float, float] = (1.0, 60.0),
        settle: float = 10.0,
        should_dial: Callable[[int], bool] = lambda peer_id: True,
        unreachable: Callable[[int], None] = lambda peer_id: None,
    ) -> None:
        self.peer_id = peer_id
        self.endpoint = endpoint
        self.factory = factory
        self.clock = clock
        self.rng = rng
        self.connect_delays = connect_delays
        self.refused_delays = refused_delays
        self.settle = settle
        self.should_dial = should_dial
        self.unreachable = unreachable
        self.failed_connects = 0
        self.refusals = 0
        self.protocol: PeerProtocol | None = None
        self._attempt: Deferred[PeerProtocol] | None = None
        self._retry: IDelayedCall | None = None

    def startService(self) -> None:
        super().startService()
        self._dial()

    def stopService(self) -> None:
        """Stop dialling; the open connection, if any, is the peer service's to close."""
        super().stopService()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self._attempt is not None:
            self._attempt.cancel()

    def _dial(self) -> None:
        self._retry = None
        if not self.should_dial(self.peer_id):
            self.log.info("peer {peer} had the file and went away, and so have we: not dialling it again",
                          peer=self.peer_id)
            return
        # IStreamClientEndpoint cannot say so: the factory builds PeerProtocols.
        attempt = self._attempt = cast("Deferred[PeerProtocol]", self.endpoint.connect(self.factory))
        attempt.addCallbacks(self._connected, self._connect_failed)

    def _connected(self, protocol: PeerProtocol) -> None:
        self._attempt = None
        self.failed_connects = 0
        self.protocol = protocol
        protocol.lost.addCallback(lambda _: self._lost(protocol))

    def _connect_failed(self, failure: Failure) -> None:
        self._attempt = None
        if failure.check(CancelledError) or not self.running:
            return
        self.unreachable(self.peer_id)
        self.failed_connects += 1
        # Steady at first, then 1.5x, not 2x: a peer still starting is typically up
        # within a second, and a growing wait left its neighbours connecting up to
        # 0.3 s after it listened (0.4 s when doubling).
        attempt = max(1, self.failed_connects - CONNECT_STEADY_ATTEMPTS)
        self._again(backoff(attempt, *self.connect_delays, self.rng, growth=CONNECT_GROWTH))

    def _lost(self, protocol: PeerProtocol) -> None:
        self.protocol = None
        if not self.running:
            return
        began = protocol.handshaken_at
        if began is not None and self.clock.seconds() - began >= self.settle:
            self.refusals = 0
            self._again(0)
            return
        self.refusals += 1
        delay = backoff(self.refusals, *self.refused_delays, self.rng)
        when = "before the handshake" if began is None else f"{self.clock.seconds() - began:.1f} s after the handshake"
        self.log.info(
            "the connection to peer {peer} closed {when} ({count} in a row under {settle:.0f} s); "
            "dialling again in {delay:.1f} s",
            peer=self.peer_id, when=when, count=self.refusals, settle=self.settle, delay=delay,
        )
        self._again(delay)

    def _again(self, delay: float) -> None:
        self._retry = self.clock.callLater(delay, self._dial)
