"""How many requests to keep outstanding to a neighbour on a pipelined connection.

With our pipelining extension (see :mod:`wire`) a neighbour may owe us several pieces
at once. Too few, and the link idles for a round trip after each batch; too many, and
pieces wait in a slow neighbour's queue that a faster one could have sent. The depth
that fills the link is what the neighbour delivers in a round trip (the
bandwidth-delay product), so the window keeps what it delivers in ``HEADROOM`` round
trips, measured on the connection itself:

* the round trip is the shortest time any request took to be answered (the first one
  of a batch waits for nothing else, so its time is the round trip plus serving);
* the delivery rate is counted over spans of at least a round trip while the neighbour
  owed more (so idle spells do not count, and pieces that arrive in bursts -- several
  in one read -- average out), the newest span weighing half. A span in which we had
  nothing more to ask of it (it held nothing else we lacked) says what it had, not what
  it can deliver: it may raise the estimate, never lower it.

It starts at ``START`` and is set again after each span. While the window is what
limits the neighbour, pieces come one round trip apart per window, so each round trip
the window grows by ``HEADROOM``; it settles where the neighbour's upload (its share of
it) is the limit. It never goes below ``floor`` --
on loopback the round trip is mostly the two reactors' turns, and batching many
requests per turn is what pays (measured: docs/extensions.rst, "How many", and
docs/history.rst, "Pipelining extension") -- nor above ``ceiling``,
the ``--pipeline`` the peer was given.

Tests: tests/test_pipeline_window.py.
"""
from __future__ import annotations

import math

#: Round trips' worth of deliveries kept outstanding: one fills the link, the rest
#: absorbs jitter and lets the window grow while the link is not yet full.
HEADROOM = 1.5
#: Weight of the newest span's rate in the running estimate.
SMOOTHING = 0.5
#: The least depth of a pipelined connection, the best measured on loopback.
FLOOR = 16
#: Where a pipelined connection starts: measured through a relay with a 50 ms round trip
#: on two busy cores, a fixed 64 beat starting low and growing (docs/history.rst, "Latency").
START = 64
#: The most ``--pipeline`` may allow: 16 MiB in flight to one neighbour at 16 KiB pieces.
MAX_DEPTH = 1024


class PipelineWindow:
    """The depth of one pipelined neighbour, learned from its answers."""

    __slots__ = ("floor", "ceiling", "depth", "highest", "round_trip", "rate", "_pieces", "_busy", "short")

    def __init__(self, ceiling: int, floor: int = FLOOR, start: int = START) -> None:
        self.ceiling = ceiling
        self.floor = min(floor, ceiling)
        self.depth = max(self.floor, min(start, ceiling))
        self.highest = self.depth  # the deepest it went, for the closing report
        self.round_trip: float | None = None  # shortest request-to-answer seen, seconds
        self.rate: float | None = None  # pieces per second it delivers while busy
        self._pieces = 0  # answers in the current span,
        self._busy = 0.0  # and the busy seconds they took
        self.short = False  # in this span it was, for a while, asked for less than its depth

    def short_of_pieces(self) -> None:
        """We had nothing more to ask of it though its window had room."""
        self.short = True

    def answered(self, waited: float, gap: float | None) -> int:
        """A request was answered after ``waited`` seconds; ``gap``: seconds since the
        previous answer if the neighbour owed more all along, else None. Returns the
        depth, which changes once per span of a round trip."""
        if self.round_trip is None or waited < self.round_trip:
            self.round_trip = waited
        if gap is None:
            return self.depth
        self._pieces += 1
        self._busy += gap
        if self._busy <= 0 or self._busy < self.round_trip:
            return self.depth
        measured = self._pieces / self._busy
        if self.rate is None or not self.short or measured > self.rate:
            self.rate = measured if self.rate is None else (1 - SMOOTHING) * self.rate + SMOOTHING * measured
        self._pieces, self._busy, self.short = 0, 0.0, False
        wanted = math.ceil(HEADROOM * self.round_trip * self.rate)
        self.depth = max(self.floor, min(self.ceiling, wanted))
        self.highest = max(self.highest, self.depth)
        return self.depth

    def describe(self) -> str:
        """One line for the log: where the window stands and why."""
        trip = "unknown" if self.round_trip is None else f"{self.round_trip * 1000:.1f} ms"
        pace = "unknown" if self.rate is None else f"{self.rate:.0f} pieces/s"
        return (f"depth {self.depth} (highest {self.highest}, limits {self.floor}-{self.ceiling}); "
                f"shortest round trip {trip}, delivering {pace}")
