"""Pieces: which pieces we hold, which we lack, and which are asked of someone.

The one place these facts change: a piece becomes held only through :meth:`Pieces.write`
(the store marks it held once it is on disk), and it is then lacked no more and asked of
nobody again; a piece is in flight from the request that asks for it until its answer,
the neighbour's choke, its timeout or its neighbour's departure gives it back.
"""
from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Protocol

from twisted_p2p import policy
from twisted_p2p.bitfield import PieceSet


class Store(Protocol):
    """What Pieces needs of the file on disk (a :class:`~twisted_p2p.storage.PieceStore`)."""

    held: PieceSet

    def write(self, index: int, data: bytes | memoryview) -> None:
        """Write piece ``index``, then count it in ``held``."""


class Pieces:
    __slots__ = ("_store", "held", "missing", "in_flight", "_share")

    def __init__(self, store: Store) -> None:
        self._store = store
        self.held = store.held
        self.missing = policy.MissingPieces(store.held.missing())
        #: Pieces some neighbour has been asked for and has not answered yet.
        self.in_flight: set[int] = set()
        #: Our share of what a seed sends (see :meth:`set_share`), the part still lacked;
        #: None: a seed is asked like anyone else.
        self._share: set[int] | None = None

    def set_share(self, pieces: Iterable[int]) -> None:
        """Ask a neighbour that holds the whole file only for ``pieces`` until we hold
        them all (then for anything): when every leecher takes a different share from the
        seed and the rest from each other, the seed sends each piece about once, where
        random choices had it send some pieces to several leechers (1.5x the file for
        eight hosts) while its upload was the bottleneck."""
        self._share = {index for index in pieces if index in self.missing}

    def choose(self, rng: random.Random, theirs: PieceSet) -> int | None:
        """A piece to ask a neighbour holding ``theirs`` for: one we lack that nobody is
        asked for (our share first from a seed), or None."""
        if self._share and theirs.complete:
            free = [piece for piece in self._share if piece not in self.in_flight]
            return rng.choice(free) if free else None
        return policy.choose_piece(rng, self.missing, theirs, self.in_flight, self.held)

    def write(self, index: int, data: bytes | memoryview) -> None:
        """Keep piece ``index``: on disk, then held, and asked of nobody again. An
        OSError from the disk leaves everything as it was."""
        self._store.write(index, data)
        self.missing.discard(index)
        if self._share:
            self._share.discard(index)
