"""Pieces and a RequestBook without a file, for tests of what we ask whom."""
from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from twisted.internet.interfaces import IReactorTime

from twisted_p2p.bitfield import PieceSet
from twisted_p2p.pieces import Pieces
from twisted_p2p.requests import RequestBook, RequestTimeouts
from twisted_p2p.settings import PeerSettings

DEFAULT_TIMEOUTS = PeerSettings().request_timeouts()  # frozen, so one shared default is safe


class MemoryStore:
    """A PieceStore's bookkeeping alone: a written piece counts as held, its bytes are dropped."""

    def __init__(self, total: int, missing: Iterable[int]) -> None:
        lacked = set(missing)
        self.held = PieceSet(total, (index for index in range(total) if index not in lacked))

    def write(self, index: int, data: bytes) -> None:
        self.held.add(index)


def request_book(
    total: int,
    missing: Iterable[int],
    clock: IReactorTime,
    rng: random.Random,
    on_abandoned: Callable[[int], None] = lambda peer: None,
    timeouts: RequestTimeouts = DEFAULT_TIMEOUTS,
) -> RequestBook:
    """A RequestBook over Pieces of ``total`` where we lack ``missing`` (a peer's
    default timeouts unless told)."""
    return RequestBook(Pieces(MemoryStore(total, missing)), clock, rng, on_abandoned, timeouts)
