"""What we ask whom (SPEC §3, request and piece, and the Choice on abandoned requests).

One request at most is outstanding to each neighbour -- or up to its *depth* with a
neighbour that announced the pipelining extension as we did (see :mod:`wire`), a depth
that follows what the neighbour delivers per round trip (:mod:`pipeline`). A
neighbour that answers nothing for its timeout is abandoned: what it was asked goes
back to the pool, to be asked of someone else, and the neighbour is *snubbed* (asked
nothing new) until a late piece arrives or it chokes us. The timeout counts from the
request, or from its last answer while it still owes more, so the requests queued
behind the first are not blamed for waiting their turn. Each neighbour's timeout
follows how fast it has answered, within fixed bounds, so a slow but honest neighbour
is not abandoned for ever, and a trickle of bytes does not count: only a whole piece
answers a request.
"""
from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from twisted_p2p.bitfield import PieceSet
from twisted_p2p.pieces import Pieces
from twisted_p2p.pipeline import PipelineWindow


@dataclass(frozen=True)
class RequestTimeouts:
    """How long a neighbour may take to answer a request.

    Before its first answer a neighbour gets ``initial`` seconds; after that,
    ``factor`` times its smoothed response time, never less than ``minimum`` nor more
    than ``maximum``. Each abandoned request doubles its timeout (up to ``maximum``),
    so a neighbour that is merely slow soon gets the time it needs. The peer's come
    from :meth:`PeerSettings.request_timeouts <twisted_p2p.settings.PeerSettings.request_timeouts>`.
    """

    initial: float
    minimum: float
    maximum: float
    factor: float
    smoothing: float  # weight of the newest response time in the average

    def after_answer(self, smoothed: float) -> float:
        return min(self.maximum, max(self.minimum, self.factor * smoothed))

    def after_abandon(self, timeout: float) -> float:
        return min(self.maximum, 2 * timeout)


class Answer(enum.Enum):
    """What a piece that arrived from a neighbour is."""

    NEW = "new"  # asked of it, and we still lack it: keep it
    SURPLUS = "surplus"  # asked of it, but we have it meanwhile: drop it quietly
    UNSOLICITED = "unsolicited"  # never asked of it: a protocol violation


class RequestBook:
    """What our requests to every neighbour share: our :class:`~twisted_p2p.pieces.Pieces`,
    the clock and chance, the timeouts. Each neighbour's own requests are a
    :class:`Requests` it owns (see :meth:`open`).

    ``on_abandoned(peer)`` is called when a request to ``peer`` times out, after its
    piece went back to the pool, so that the caller can ask other neighbours for it.
    """

    def __init__(
        self,
        pieces: Pieces,
        clock: IReactorTime,
        rng: random.Random,
        on_abandoned: Callable[[int], None],
        timeouts: RequestTimeouts,
    ) -> None:
        self.pieces = pieces
        self.timeouts = timeouts
        self.clock = clock
        self.rng = rng
        self.on_abandoned = on_abandoned

    def open(self, peer: int, depth: int = 1) -> Requests:
        """The requests to a new neighbour: one at a time, or up to ``depth`` on a
        pipelined connection (where the depth in use adapts below that: :mod:`pipeline`)."""
        return Requests(self, peer, depth)


class Requests:
    """Our requests to one neighbour: what it owes us, since when, and how long it may take."""

    __slots__ = ("_book", "peer", "window", "outstanding", "timer", "snubbed", "sent", "unanswered", "smoothed",
                 "timeout", "progress")

    def __init__(self, book: RequestBook, peer: int, depth: int) -> None:
        self._book = book
        self.peer = peer
        #: Pipelined (``depth`` above 1): the depth follows what it delivers per round trip.
        self.window = PipelineWindow(depth) if depth > 1 else None
        self.outstanding: list[int] = []  # the requests it is expected to answer, oldest first
        self.timer: IDelayedCall | None = None
        #: It let a request time out: asked nothing new until it answers or chokes us.
        self.snubbed = False
        #: When we last asked it for each piece it has not answered; how many times
        #: (we may ask again after a choke, and it may answer both: SPEC §3 Choice).
        self.sent: dict[int, float] = {}
        self.unanswered: dict[int, int] = {}
        self.smoothed: float | None = None
        #: How long the next request may go unanswered.
        self.timeout = book.timeouts.initial
        self.progress = 0.0  # when it last answered, or was asked while owing nothing

    @property
    def depth(self) -> int:
        """How many requests may be outstanding: 1 on the plain protocol."""
        return 1 if self.window is None else self.window.depth

    def next_request(self, theirs: PieceSet) -> int | None:
        """Choose and record the next piece to ask it for, or None: it owes us as many
        as its depth, it is snubbed, or it has nothing we lack that nobody else is
        asked for."""
        if len(self.outstanding) >= self.depth or self.snubbed:
            return None
        book = self._book
        index = book.pieces.choose(book.rng, theirs)
        if index is None:
            if self.window is not None:
                self.window.short_of_pieces()
            return None
        now = book.clock.seconds()
        book.pieces.in_flight.add(index)
        if not self.outstanding:
            self.progress = now
            self.timer = book.clock.callLater(self.timeout, self._timed_out)
        self.outstanding.append(index)
        self.sent[index] = now
        self.unanswered[index] = self.unanswered.get(index, 0) + 1
        return index

    def received(self, index: int) -> Answer:
        """A piece arrived from it: was it asked of it, and do we still lack it?"""
        count = self.unanswered.pop(index, 0)
        if not count:
            return Answer.UNSOLICITED
        if count > 1:
            self.unanswered[index] = count - 1
        sent = self.sent.pop(index) if count == 1 else self.sent[index]
        book = self._book
        now = book.clock.seconds()
        self._learn_response_time(now - max(sent, self.progress))
        if self.window is not None:
            # It has owed us something ever since ``progress`` exactly when it owes now:
            # its list empties only on an answer (which moves ``progress``) or a release,
            # and the first request to an empty list moves ``progress`` again.
            self.window.answered(now - sent, now - self.progress if self.outstanding else None)
        self.snubbed = False  # it delivers after all: trusted again
        if index in self.outstanding:
            self.outstanding.remove(index)
            book.pieces.in_flight.discard(index)
            self._stop_timer()
            self.progress = now
            if self.outstanding:  # it owes more: its clock starts again from this answer
                self.timer = book.clock.callLater(self.timeout, self._timed_out)
        return Answer.NEW if index in book.pieces.missing else Answer.SURPLUS

    def choked(self) -> None:
        """It choked us: its requests go back to the pool (SPEC §3). It has dropped
        what we asked, so a snub ends here: after its next unchoke it is asked afresh."""
        self._release()
        self.snubbed = False

    def close(self) -> None:
        """The neighbour is gone: its requests go back to the pool."""
        self._release()

    def _learn_response_time(self, seconds: float) -> None:
        timeouts = self._book.timeouts
        if self.smoothed is None:
            self.smoothed = seconds
        else:
            self.smoothed = (1 - timeouts.smoothing) * self.smoothed + timeouts.smoothing * seconds
        self.timeout = timeouts.after_answer(self.smoothed)

    def _timed_out(self) -> None:
        self.timer = None
        self.snubbed = True
        self.timeout = self._book.timeouts.after_abandon(self.timeout)
        self._release()
        self._book.on_abandoned(self.peer)

    def _stop_timer(self) -> None:
        if self.timer is not None:
            if self.timer.active():
                self.timer.cancel()
            self.timer = None

    def _release(self) -> None:
        """Put the outstanding pieces back into the pool; what was asked stays
        recorded, so that a late answer is still recognised as one."""
        self._stop_timer()
        in_flight = self._book.pieces.in_flight
        for index in self.outstanding:
            in_flight.discard(index)
        self.outstanding.clear()
