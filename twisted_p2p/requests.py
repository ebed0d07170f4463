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
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from twisted_p2p import policy
from twisted_p2p.bitfield import PieceSet
from twisted_p2p.pipeline import PipelineWindow


@dataclass(frozen=True)
class RequestTimeouts:
    """How long a neighbour may take to answer a request.

    Before its first answer a neighbour gets ``initial`` seconds; after that,
    ``factor`` times its smoothed response time, never less than ``minimum`` nor more
    than ``maximum``. Each abandoned request doubles its timeout (up to ``maximum``),
    so a neighbour that is merely slow soon gets the time it needs.
    """

    initial: float = 5.0
    minimum: float = 1.0
    maximum: float = 30.0
    factor: float = 4.0
    smoothing: float = 0.25  # weight of the newest response time in the average

    def after_answer(self, smoothed: float) -> float:
        return min(self.maximum, max(self.minimum, self.factor * smoothed))

    def after_abandon(self, timeout: float) -> float:
        return min(self.maximum, 2 * timeout)


class Answer(enum.Enum):
    """What a piece that arrived from a neighbour is."""

    NEW = "new"  # asked of it, and we still lack it: keep it
    SURPLUS = "surplus"  # asked of it, but we have it meanwhile: drop it quietly
    UNSOLICITED = "unsolicited"  # never asked of it: a protocol violation


class _Asking:
    """Our requests to one neighbour."""

    __slots__ = ("window", "outstanding", "timer", "snubbed", "sent", "unanswered", "smoothed", "timeout",
                 "progress")

    def __init__(self, timeout: float, depth: int) -> None:
        #: Pipelined (``depth`` above 1): the depth follows what it delivers per round trip.
        self.window = PipelineWindow(depth) if depth > 1 else None
        self.outstanding: list[int] = []  # the requests it is expected to answer, oldest first
        self.timer: Optional[IDelayedCall] = None
        self.snubbed = False
        #: When we last asked it for each piece it has not answered; how many times
        #: (we may ask again after a choke, and it may answer both: SPEC §3 Choice).
        self.sent: dict[int, float] = {}
        self.unanswered: dict[int, int] = {}
        self.smoothed: Optional[float] = None
        self.timeout = timeout
        self.progress = 0.0  # when it last answered, or was asked while owing nothing

    @property
    def depth(self) -> int:
        """How many requests may be outstanding: 1 on the plain protocol."""
        return 1 if self.window is None else self.window.depth


class RequestBook:
    """The pieces we lack, which of them are in flight, and to whom each request went.

    ``on_abandoned(peer)`` is called when a request to ``peer`` times out, after its
    piece went back to the pool, so that the caller can ask other neighbours for it.
    """

    def __init__(
        self,
        missing: Iterable[int],
        clock: IReactorTime,
        rng: random.Random,
        on_abandoned: Callable[[int], None],
        timeouts: RequestTimeouts = RequestTimeouts(),
    ) -> None:
        self.missing = policy.MissingPieces(missing)
        self.in_flight: set[int] = set()
        self.timeouts = timeouts
        self._clock = clock
        self._rng = rng
        self._on_abandoned = on_abandoned
        self._asking: dict[int, _Asking] = {}
        #: Our share of what a seed sends (see :meth:`set_share`), the part still lacked;
        #: None: a seed is asked like anyone else.
        self._share: Optional[set[int]] = None

    def set_share(self, pieces: Iterable[int]) -> None:
        """Ask a neighbour that holds the whole file only for ``pieces`` until we hold
        them all (then for anything): when every leecher takes a different share from the
        seed and the rest from each other, the seed sends each piece about once, where
        random choices had it send some pieces to several leechers (1.5x the file for
        eight hosts) while its upload was the bottleneck."""
        self._share = {index for index in pieces if index in self.missing}

    # -- neighbours ------------------------------------------------------------------

    def add(self, peer: int, depth: int = 1) -> None:
        """A neighbour to ask: one request at a time, or up to ``depth`` on a pipelined
        connection (where the depth in use adapts below that: :mod:`pipeline`)."""
        self._asking[peer] = _Asking(self.timeouts.initial, depth)

    def remove(self, peer: int) -> None:
        """The neighbour is gone: its request goes back to the pool."""
        asking = self._asking.pop(peer, None)
        if asking is not None:
            self._release(asking)

    def choked(self, peer: int) -> None:
        """It choked us: its requests go back to the pool (SPEC §3). It has dropped
        what we asked, so a snub ends here: after its next unchoke it is asked afresh."""
        asking = self._asking[peer]
        self._release(asking)
        asking.snubbed = False

    # -- asking ----------------------------------------------------------------------

    def outstanding(self, peer: int) -> Optional[int]:
        """The oldest request ``peer`` owes us, if any."""
        asked = self._asking[peer].outstanding
        return asked[0] if asked else None

    def asked(self, peer: int) -> list[int]:
        """Every request ``peer`` owes us, oldest first."""
        return list(self._asking[peer].outstanding)

    def depth(self, peer: int) -> int:
        return self._asking[peer].depth

    def window(self, peer: int) -> Optional[PipelineWindow]:
        """The pipeline window of ``peer``; None on the plain protocol (or once gone)."""
        asking = self._asking.get(peer)
        return asking.window if asking is not None else None

    def snubbed(self, peer: int) -> bool:
        return self._asking[peer].snubbed

    def timeout(self, peer: int) -> float:
        """How long the next request to ``peer`` may go unanswered."""
        return self._asking[peer].timeout

    def next_request(self, peer: int, theirs: PieceSet) -> Optional[int]:
        """Choose and record the next piece to ask ``peer`` for, or None: it owes us as
        many as its depth, it is snubbed, or it has nothing we lack that nobody else is
        asked for."""
        asking = self._asking[peer]
        if len(asking.outstanding) >= asking.depth or asking.snubbed:
            return None
        if self._share and theirs.complete:
            free = [piece for piece in self._share if piece not in self.in_flight]
            index = self._rng.choice(free) if free else None
        else:
            index = policy.choose_piece(self._rng, self.missing, theirs, self.in_flight)
        if index is None:
            if asking.window is not None:
                asking.window.short_of_pieces()
            return None
        now = self._clock.seconds()
        self.in_flight.add(index)
        if not asking.outstanding:
            asking.progress = now
            asking.timer = self._clock.callLater(asking.timeout, self._timed_out, peer, asking)
        asking.outstanding.append(index)
        asking.sent[index] = now
        asking.unanswered[index] = asking.unanswered.get(index, 0) + 1
        return index

    def received(self, peer: int, index: int) -> Answer:
        """A piece arrived from ``peer``: was it asked of it, and do we still lack it?"""
        asking = self._asking[peer]
        count = asking.unanswered.pop(index, 0)
        if not count:
            return Answer.UNSOLICITED
        if count > 1:
            asking.unanswered[index] = count - 1
        sent = asking.sent.pop(index) if count == 1 else asking.sent[index]
        now = self._clock.seconds()
        self._learn_response_time(asking, now - max(sent, asking.progress))
        if asking.window is not None:
            # It has owed us something ever since ``progress`` exactly when it owes now:
            # its list empties only on an answer (which moves ``progress``) or a release,
            # and the first request to an empty list moves ``progress`` again.
            asking.window.answered(now - sent, now - asking.progress if asking.outstanding else None)
        asking.snubbed = False  # it delivers after all: trusted again
        if index in asking.outstanding:
            asking.outstanding.remove(index)
            self.in_flight.discard(index)
            self._stop_timer(asking)
            asking.progress = now
            if asking.outstanding:  # it owes more: its clock starts again from this answer
                asking.timer = self._clock.callLater(asking.timeout, self._timed_out, peer, asking)
        return Answer.NEW if index in self.missing else Answer.SURPLUS

    def held(self, index: int) -> None:
        """We hold ``index`` now: it is asked of nobody again."""
        self.missing.discard(index)
        if self._share:
            self._share.discard(index)

    # -- internals -------------------------------------------------------------------

    def _learn_response_time(self, asking: _Asking, seconds: float) -> None:
        if asking.smoothed is None:
            asking.smoothed = seconds
        else:
            weight = self.timeouts.smoothing
            asking.smoothed = (1 - weight) * asking.smoothed + weight * seconds
        asking.timeout = self.timeouts.after_answer(asking.smoothed)

    def _timed_out(self, peer: int, asking: _Asking) -> None:
        asking.timer = None
        asking.snubbed = True
        asking.timeout = self.timeouts.after_abandon(asking.timeout)
        self._release(asking)
        self._on_abandoned(peer)

    def _stop_timer(self, asking: _Asking) -> None:
        if asking.timer is not None:
            if asking.timer.active():
                asking.timer.cancel()
            asking.timer = None

    def _release(self, asking: _Asking) -> None:
        """Put the outstanding pieces back into the pool; what was asked stays
        recorded, so that a late answer is still recognised as one."""
        self._stop_timer(asking)
        for index in asking.outstanding:
            self.in_flight.discard(index)
        asking.outstanding.clear()
