"""Neighbour: everything we know of one connected neighbour, and the one place it changes.

Which pieces it has, and how many of them we lack; whether we told it we are
interested, and whether it chokes us; whether it is interested in us, whether we unchoke
it and what it sent us this choking interval; our requests to it
(:class:`~twisted_p2p.requests.Requests`). The choker reads these to decide; the service
changes them as messages come.
"""
from __future__ import annotations

from twisted_p2p import policy, wire
from twisted_p2p.bitfield import PieceSet
from twisted_p2p.owner import Connection
from twisted_p2p.requests import Requests


class Neighbour:
    __slots__ = ("peer_id", "protocol", "pieces", "requests", "we_are_interested", "chokes_us", "lying", "spoke",
                 "late_bitfield_noted", "interested", "unchoked", "received", "_wanted")

    def __init__(self, peer_id: int, protocol: Connection, num_pieces: int, requests: Requests) -> None:
        self.peer_id = peer_id
        self.protocol = protocol
        self.pieces = PieceSet(num_pieces)  # nothing until a bitfield or a have says so
        self.requests = requests
        self.we_are_interested: bool | None = None  # None: we have told it nothing yet
        self.chokes_us = True
        self.lying = False  # it sent a piece that failed the manifest: ask it for nothing
        self.spoke = False  # it has sent a message since its handshake
        self.late_bitfield_noted = False  # a bitfield after other messages is noted once
        self.interested = False  # it told us it is interested in our pieces
        self.unchoked = False  # we unchoke it
        self.received = 0  # piece bytes it sent us in this choking interval
        #: How many of its pieces we lack: counted as its pieces and ours change (here
        #: only), so that a have or a piece costs O(1), not a pass over every piece.
        self._wanted = 0

    @property
    def wanted(self) -> int:
        """How many pieces it has that we lack."""
        return self._wanted

    # -- its pieces and ours -------------------------------------------------------------

    def add_pieces(self, pieces: PieceSet, ours: PieceSet) -> None:
        """A bitfield: its pieces are added to what it has (none is ever taken away)."""
        self.pieces.update(pieces)
        self._wanted = policy.wanted_count(ours, self.pieces)

    def add_piece(self, index: int, ours: PieceSet) -> bool:
        """A have: True if the piece is new from it."""
        if not self.pieces.add(index):
            return False
        if index not in ours:
            self._wanted += 1
        return True

    def we_got(self, index: int) -> None:
        """We hold ``index`` now: one less piece of its we lack."""
        if index in self.pieces:
            self._wanted -= 1
            self.update_interest()

    def update_interest(self) -> None:
        """Tell it when our interest changes, and only then (SPEC §3)."""
        interested = not self.lying and policy.is_interested(self._wanted)
        if interested != self.we_are_interested:
            self.we_are_interested = interested
            self.protocol.send(wire.INTERESTED if interested else wire.NOT_INTERESTED)

    # -- choking -------------------------------------------------------------------------

    def unchoke(self) -> None:
        self.unchoked = True
        self.protocol.send(wire.UNCHOKE)

    def choke(self) -> None:
        """Choke it: its queued requests are no longer answered (SPEC §3)."""
        self.unchoked = False
        self.protocol.cancel_uploads()
        self.protocol.send(wire.CHOKE)

    def take_received(self) -> int:
        """The piece bytes it sent us since the last call: a choking interval's worth."""
        received, self.received = self.received, 0
        return received
