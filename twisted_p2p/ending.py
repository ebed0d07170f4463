"""Ending: when a peer may leave (SPEC §3), and what it learns on the way.

The course's rule: we hold the file and know every other peer does; with our bounded
neighbour set (``--neighbours``), every peer of that set (:func:`policy.neighbourhood`
says why nobody is stranded). Our Choice: we also tell every such peer that we hold it
before we leave (a peer that left first would leave a neighbour waiting for ever), but
wait at most ``TOLD_GRACE`` for those we cannot reach, and not at all for a neighbour
that had the file and went away. The facts (who is complete, whom we told, who
departed) live here; :class:`~twisted_p2p.service.PeerService` learns them from messages
and connections and finishes when :meth:`Ending._check_finished` says so.

Tests: tests/test_protocol.py (when a peer leaves, and whom it waits to tell) and
tests/test_bounded.py (the same with a bounded neighbour set).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.application.service import Service
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from twisted_p2p import policy
from twisted_p2p.config import SwarmConfig
from twisted_p2p.pieces import Pieces
from twisted_p2p.resume import Restored, Resume

#: Seconds a peer that is otherwise done (it holds the file and knows every peer does)
#: still waits to tell neighbours it could not reach that it holds the file (SPEC §3,
#: Choice: bounded): a neighbour that lost the connection may dial again meanwhile.
TOLD_GRACE = 5.0


class Ending(Service):
    """Mixed into PeerService: the attributes declared below are the service's; the
    facts of the end are set by :meth:`_start_ending`."""

    log: Logger
    peer_id: int
    config: SwarmConfig
    clock: IReactorTime
    pieces: Pieces
    neighbours: Mapping[int, Any]
    #: The peers we connect with and wait for (:func:`policy.neighbourhood`).
    circle: frozenset[int]
    resume: Resume | None

    def _start_ending(self, restored: Restored | None) -> None:
        """The facts of the end, from what we know from before a restart, if anything
        (see :mod:`twisted_p2p.resume`)."""
        #: The peers known to hold the whole file.
        self.complete_peers: set[int] = set(restored.complete_peers) if restored else set()
        #: The peers we told that we hold the whole file (a complete bitfield, or the
        #: have of our last piece): we leave only once every peer has been told.
        self.told_peers: set[int] = set(restored.told_peers) if restored else set()
        #: Neighbours that had the whole file and went away: they closed the connection
        #: themselves, or could not be dialled again. They are not waited for, and not
        #: dialled again once we hold the file too (some implementations take the n-th
        #: connection they accept to be the n-th later peer, and die on another).
        self.departed: set[int] = set()
        self._told_grace: IDelayedCall | None = None
        self._finished = False

    def _finish(self) -> None:
        raise NotImplementedError

    def _check_finished(self) -> None:
        if self._finished or not policy.everyone_has_file(self.pieces.held, self.complete_peers, self.circle):
            return
        if not policy.untold(self.told_peers, self.departed, self.circle):
            self._finish()
        elif self._told_grace is None and self.running:
            self._told_grace = self.clock.callLater(TOLD_GRACE, self._stop_telling)

    def _stop_telling(self) -> None:
        """The course's rule is met; those we could not tell in time are not waited for."""
        self._told_grace = None
        if self._finished:
            return
        untold = policy.untold(self.told_peers, self.departed, self.circle)
        self.log.info(
            "every peer has the file; could not tell {peers} within {grace:.0f} s that we have it too; "
            "leaving anyway", peers=", ".join(map(str, untold)), grace=TOLD_GRACE)
        self._finish()

    def _cancel_told_grace(self) -> None:
        if self._told_grace is not None and self._told_grace.active():
            self._told_grace.cancel()
        self._told_grace = None

    def should_dial(self, peer_id: int) -> bool:
        """Whether a dialler should (still) dial ``peer_id``: not a neighbour that had
        the file and went away, once we hold it too; nothing is left to exchange."""
        return not (peer_id in self.departed and self.pieces.held.complete)

    def unreachable(self, peer_id: int) -> None:
        """Dialling ``peer_id`` failed: if it had the whole file, it is gone for good."""
        if peer_id in self.complete_peers and peer_id not in self.neighbours and peer_id not in self.departed:
            self.departed.add(peer_id)
            self._check_finished()

    def _learn_complete(self, peer_id: int, complete: bool) -> None:
        if complete == (peer_id in self.complete_peers):
            return
        if complete:
            self.complete_peers.add(peer_id)
        else:
            self.complete_peers.discard(peer_id)  # it restarted with less
        if self.resume is not None:
            self.resume.peer_learned(peer_id, complete)
        self._check_finished()

    def _told(self, peer_id: int) -> None:
        """``peer_id`` was sent our complete bitfield or the have of our last piece."""
        if peer_id not in self.told_peers:
            self.told_peers.add(peer_id)
            if self.resume is not None:
                self.resume.peer_told(peer_id)

