"""An upload cap for the whole peer: a token bucket shared by every neighbour's
upload producer, driven by the injected clock."""
from __future__ import annotations

from collections import deque
from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime


class TokenBucket:
    """At most ``rate`` bytes a second on average, in bursts of at most ``burst``.

    A sender may go into debt by one piece (so any piece can be sent), and then waits
    until the debt is paid; waiting senders are woken in turn, which shares the rate
    fairly among neighbours.
    """

    def __init__(self, rate: float, burst: int, clock: IReactorTime) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock.seconds()
        self._waiting: deque[Callable[[], None]] = deque()
        self._timer: IDelayedCall | None = None

    def _refill(self) -> None:
        now = self._clock.seconds()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def ready(self) -> bool:
        """May a piece be sent now?"""
        self._refill()
        return self._tokens > 0

    def spend(self, size: int) -> None:
        self._tokens -= size

    def wait(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` once the bucket is ready again."""
        if wake not in self._waiting:
            self._waiting.append(wake)
        self._schedule()

    def _schedule(self) -> None:
        if self._timer is None and self._waiting:
            self._refill()
            delay = max(0.0, -self._tokens / self.rate) + 1e-4
            self._timer = self._clock.callLater(delay, self._wake)

    def _wake(self) -> None:
        self._timer = None
        while self._waiting and self.ready():
            self._waiting.popleft()()
        self._schedule()

    def stop(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._waiting.clear()
