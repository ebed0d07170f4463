"""PeerService: the state of one peer and the behaviour of SPEC §3.

Both factories share this one service. It keeps what each neighbour has, who chokes
whom, which requests are in flight and how fast each neighbour sends; it asks
:mod:`twisted_p2p.policy` for every decision and tells the protocols what to send.
Time comes from an injected clock and chance from an injected Random.
"""
from __future__ import annotations

import random
from typing import Callable, Optional, Sequence

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from twisted_p2p import manifest, policy, wire
from twisted_p2p.bitfield import PieceSet
from twisted_p2p.config import SwarmConfig
from twisted_p2p.eventlog import EventLog
from twisted_p2p.protocol import PeerProtocol
from twisted_p2p.ratelimit import TokenBucket
from twisted_p2p.storage import PieceStore, digest_report


class PeerFailed(Exception):
    """The peer cannot go on (its disk failed); the process should exit non-zero."""


class Neighbour:
    """What we know about one connected neighbour."""

    __slots__ = (
        "peer_id", "protocol", "pieces", "wanted", "spoken", "we_are_interested",
        "interested_in_us", "chokes_us", "outstanding", "asked", "received_bytes", "lying",
    )

    def __init__(self, peer_id: int, protocol: PeerProtocol, num_pieces: int) -> None:
        self.peer_id = peer_id
        self.protocol = protocol
        self.pieces = PieceSet(num_pieces)  # nothing until a bitfield or a have says so
        self.wanted = 0  # pieces it has that we lack
        self.spoken = False  # has it sent any message yet (a bitfield must come first)
        self.we_are_interested: Optional[bool] = None  # None: we have told it nothing yet
        self.interested_in_us = False
        self.chokes_us = True
        self.outstanding: Optional[int] = None  # our one request to it (SPEC §3)
        #: How many requests for each piece we sent it and it has not answered. We may
        #: ask again after a choke, and it may answer both (SPEC §3 Choice): a count.
        self.asked: dict[int, int] = {}
        self.received_bytes = 0  # piece bytes from it in this unchoking interval
        self.lying = False  # it sent a piece that failed the manifest: ask it for nothing


class PeerService(Service):
    log = Logger()

    def __init__(
        self,
        config: SwarmConfig,
        peer_id: int,
        store: PieceStore,
        events: EventLog,
        clock: IReactorTime,
        rng: random.Random,
        handshake_timeout: float = 30.0,
        close_timeout: float = 5.0,
        upload_rate: float = 0,
        save_interval: float = 0.5,
        piece_hashes: Optional[Sequence[bytes]] = None,
        run_in_thread: Optional[Callable[..., Deferred[None]]] = None,
        report_digest: bool = False,
    ) -> None:
        self.config = config
        self.common = config.common
        self.peer_id = peer_id
        self.store = store
        self.events = events
        self.clock = clock
        self.rng = rng
        self.handshake_timeout = handshake_timeout
        self.close_timeout = close_timeout
        #: Every open connection, handshaken or not; the Deferred fires when it is lost.
        self._connections: dict[PeerProtocol, Optional[Deferred[None]]] = {}
        self.decoder = wire.Decoder(self.common)
        #: SHA-256 per piece from the optional manifest; None: pieces are not checked.
        self.piece_hashes = piece_hashes
        #: Caps our total upload when ``upload_rate`` (bytes/s) is set; None: no cap.
        self.upload_limiter = TokenBucket(upload_rate, self.common.piece_size, clock) if upload_rate else None
        self.neighbours: dict[int, Neighbour] = {}
        self.missing = policy.MissingPieces(store.held.missing())
        self.in_flight: set[int] = set()
        self.unchoked: set[int] = set()
        self.preferred: frozenset[int] = frozenset()
        self.optimistic: Optional[int] = None
        self._optimistic_changed = float("-inf")  # an early pick waits m s after a change
        self.complete_peers: set[int] = set()
        #: Fires when every peer of PeerInfo.cfg holds the file; errbacks with PeerFailed.
        self.done: Deferred[None] = Deferred()
        self._finished = False
        self._unchoke_loop = LoopingCall(self._guarded(self.unchoke_round))
        self._unchoke_loop.clock = clock
        self._optimistic_loop = LoopingCall(self._guarded(self.optimistic_round))
        self._optimistic_loop.clock = clock
        self.save_interval = save_interval
        self._save_loop = LoopingCall(self._guarded(self._save_in_background))
        self._save_loop.clock = clock
        #: Runs a blocking call and returns a Deferred: a thread pool in a real peer;
        #: by default (tests) the call is made at once.
        self.run_in_thread = run_in_thread or (lambda function, *args: maybeDeferred(function, *args))
        self._saving: Optional[Deferred[None]] = None
        #: Log the file's SHA-256 when done, for a launcher that cannot read the file.
        self.report_digest = report_digest

    def _guarded(self, tick: Callable[[], None]) -> Callable[[], None]:
        """A LoopingCall stops for good on an exception: log it and keep ticking."""

        def guarded() -> None:
            try:
                tick()
            except Exception:
                self.log.failure("error in {tick}", tick=tick.__name__)

        return guarded

    # -- lifecycle -------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._unchoke_loop.start(self.common.unchoking_interval, now=False)
        self._optimistic_loop.start(self.common.optimistic_unchoking_interval, now=False)
        self._save_loop.start(self.save_interval, now=False)
        self.clock.callLater(0, self._check_finished)  # a swarm of seeds is done at once

    def stopService(self) -> Deferred[object]:
        """Stop the timers and close every connection; fires when all are closed."""
        super().stopService()
        for loop in (self._unchoke_loop, self._optimistic_loop, self._save_loop):
            if loop.running:
                loop.stop()
        if self.upload_limiter is not None:
            self.upload_limiter.stop()
        saving = self._saving
        self.save_state()
        closing = [saving] if saving is not None else []
        for protocol in list(self._connections):
            lost: Deferred[None] = Deferred()
            self._connections[protocol] = lost
            closing.append(lost)
            protocol.close(self.close_timeout)
        return DeferredList(closing) if closing else succeed(None)

    def save_state(self) -> None:
        """Save which pieces are on disk now (at the end, on stop), or right after a
        save under way: two must never write the state file at once."""
        if self._saving is not None:
            self._saving.addCallback(lambda _: self.save_state())
            return
        try:
            self.store.save_state()
        except OSError as exc:
            self.fail(f"cannot save the resume state {self.store.state_path}: {exc.strerror or exc}")

    def _save_in_background(self) -> None:
        """Every ``save_interval`` s: the disk syncs run off the reactor's thread."""
        if self._saving is not None:
            return  # the last one is still syncing
        state = self.store.snapshot_state()
        if state is None:
            return
        self._saving = self.run_in_thread(self.store.commit_state, state)
        self._saving.addErrback(
            lambda failure: self.fail(f"cannot save the resume state {self.store.state_path}: "
                                      f"{failure.getErrorMessage()}")
        )
        self._saving.addBoth(self._saved)

    def _saved(self, _: object) -> None:
        self._saving = None

    def _finish(self) -> None:
        self._finished = True
        self.store.flush()
        self.log.info("every peer has the file; peer {me} is done", me=self.peer_id)
        if self.report_digest:
            self.log.info("{report}", report=digest_report(self.peer_id, self.store.sha256()))
        self.done.callback(None)

    def fail(self, why: str) -> None:
        """Stop for good with an error: the process exits non-zero."""
        if self._finished:
            return
        self._finished = True
        self.log.critical("peer {me} cannot go on: {why}", me=self.peer_id, why=why)
        self.done.errback(PeerFailed(why))

    def _check_finished(self) -> None:
        if not self._finished and policy.swarm_complete(
            self.store.held, self.complete_peers, self.config.peer_ids, self.peer_id
        ):
            self._finish()

    # -- connections -------------------------------------------------------------

    def handshake_received(self, protocol: PeerProtocol, peer_id: int) -> None:
        """Accept a neighbour, or raise ProtocolViolation (SPEC §3, handshake check)."""
        if peer_id == self.peer_id:
            raise wire.ProtocolViolation(f"a handshake with our own ID {peer_id}")
        if peer_id not in self.config.peer_ids:
            raise wire.ProtocolViolation(f"a handshake with ID {peer_id}, which is not in PeerInfo.cfg")
        if protocol.expected_peer_id is not None and peer_id != protocol.expected_peer_id:
            raise wire.ProtocolViolation(
                f"a handshake with ID {peer_id} on the connection we dialled to {protocol.expected_peer_id}"
            )
        if peer_id in self.neighbours:
            raise wire.ProtocolViolation(f"a handshake with ID {peer_id}, which is already connected")
        neighbour = Neighbour(peer_id, protocol, self.common.num_pieces)
        self.neighbours[peer_id] = neighbour
        protocol.neighbour = neighbour
        if protocol.outgoing:
            self.events.connection_made(peer_id)
        else:
            self.events.connected_from(peer_id)
        protocol.send(wire.encode_bitfield(self.store.held))  # always, even all zeros

    def connection_made(self, protocol: PeerProtocol) -> None:
        self._connections[protocol] = None

    def connection_lost(self, protocol: PeerProtocol) -> None:
        on_lost = self._connections.pop(protocol, None)
        neighbour = protocol.neighbour
        if neighbour is not None and self.neighbours.get(neighbour.peer_id) is neighbour:
            del self.neighbours[neighbour.peer_id]
            self._forget(neighbour)
        if on_lost is not None:
            on_lost.callback(None)

    def _forget(self, neighbour: Neighbour) -> None:
        """A neighbour is gone: its request goes back to the pool, its slot is free."""
        self._return_outstanding(neighbour)
        self.unchoked.discard(neighbour.peer_id)
        if neighbour.peer_id in self.preferred:
            self.preferred = self.preferred - {neighbour.peer_id}
        if self.optimistic == neighbour.peer_id:
            self.optimistic = None
        if self.running and not self._finished:
            self._fill_free_slots()
            self._request_from_all()

    # -- messages ----------------------------------------------------------------

    def message_received(self, protocol: PeerProtocol, message: wire.Message) -> None:
        neighbour = protocol.neighbour
        assert neighbour is not None
        first = not neighbour.spoken
        neighbour.spoken = True
        match message:
            case wire.Piece(index, data):
                self._on_piece(neighbour, index, data)
            case wire.Have(index):
                self._on_have(neighbour, index)
            case wire.Request(index):
                self._on_request(neighbour, index)
            case wire.Bitfield(pieces):
                if not first:
                    raise wire.ProtocolViolation("a bitfield after other messages; it may only come first")
                self._on_bitfield(neighbour, pieces)
            case wire.Choke():
                self.events.choked_by(neighbour.peer_id)
                neighbour.chokes_us = True
                self._return_outstanding(neighbour)
                self._request_from_all()
            case wire.Unchoke():
                self.events.unchoked_by(neighbour.peer_id)
                neighbour.chokes_us = False
                self._request_from(neighbour)
            case wire.Interested():
                self.events.interested(neighbour.peer_id)
                neighbour.interested_in_us = True
                self._fill_free_slots()
            case wire.NotInterested():
                self.events.not_interested(neighbour.peer_id)
                neighbour.interested_in_us = False

    def _on_bitfield(self, neighbour: Neighbour, pieces: PieceSet) -> None:
        neighbour.pieces = pieces
        neighbour.wanted = policy.wanted_count(self.store.held, pieces)
        self._update_interest(neighbour)
        if pieces.complete:
            self._learn_complete(neighbour.peer_id)
        else:
            self.complete_peers.discard(neighbour.peer_id)  # it restarted with less
        self._request_from(neighbour)

    def _on_have(self, neighbour: Neighbour, index: int) -> None:
        self.events.have(neighbour.peer_id, index)
        if not neighbour.pieces.add(index):
            return
        if index not in self.store.held:
            neighbour.wanted += 1
            self._update_interest(neighbour)
            self._request_from(neighbour)
        if neighbour.pieces.complete:
            self._learn_complete(neighbour.peer_id)

    def _on_request(self, neighbour: Neighbour, index: int) -> None:
        if neighbour.peer_id not in self.unchoked:
            self.log.debug("ignoring a request from choked peer {peer}", peer=neighbour.peer_id)
            return
        if index not in self.store.held:
            self.log.warn(
                "peer {peer} requested piece {index}, which we do not have; ignored",
                peer=neighbour.peer_id,
                index=index,
            )
            return
        neighbour.protocol.queue_upload(index)

    def _on_piece(self, neighbour: Neighbour, index: int, data: bytes) -> None:
        unanswered = neighbour.asked.pop(index, 0)
        if not unanswered:
            raise wire.ProtocolViolation(f"piece {index}, which we never requested from it")
        if unanswered > 1:
            neighbour.asked[index] = unanswered - 1
        neighbour.received_bytes += len(data)
        if neighbour.outstanding == index:
            neighbour.outstanding = None
            self.in_flight.discard(index)
        if index in self.store.held:
            pass  # answered twice, or fetched elsewhere meanwhile: dropped quietly
        elif not manifest.piece_is_intact(self.piece_hashes, index, data):
            self._caught_lying(neighbour, index)
            return
        else:
            self._store_piece(neighbour, index, data)
        if not self._finished:
            self._request_from(neighbour)

    def _caught_lying(self, neighbour: Neighbour, index: int) -> None:
        """A piece failed the manifest: drop it, fetch it elsewhere, ask the liar nothing more."""
        self.log.warn(
            "peer {peer} sent piece {index} whose SHA-256 does not match the manifest; "
            "dropped it, and will request nothing more from peer {peer}",
            peer=neighbour.peer_id,
            index=index,
        )
        neighbour.lying = True
        self._update_interest(neighbour)
        self._request_from_all()

    def _store_piece(self, source: Neighbour, index: int, data: bytes) -> None:
        try:
            self.store.write(index, data)
        except OSError as exc:
            self.fail(f"cannot write piece {index} to {self.store.path}: {exc.strerror or exc}")
            return
        self.missing.discard(index)
        held = self.store.held
        self.events.downloaded(index, source.peer_id, held.count)
        have = wire.encode_have(index)
        for neighbour in self.neighbours.values():
            neighbour.protocol.send(have)
            if index in neighbour.pieces:
                neighbour.wanted -= 1
                self._update_interest(neighbour)
        if held.complete:
            self.events.complete()
            self.save_state()
            self._check_finished()

    def read_piece(self, index: int) -> bytes:
        return self.store.read(index)

    # -- interest and requests -------------------------------------------------------

    def _update_interest(self, neighbour: Neighbour) -> None:
        """Tell the neighbour when our interest changes, and only then (SPEC §3)."""
        interested = not neighbour.lying and policy.is_interested(neighbour.wanted)
        if interested != neighbour.we_are_interested:
            neighbour.we_are_interested = interested
            neighbour.protocol.send(wire.INTERESTED if interested else wire.NOT_INTERESTED)

    def _request_from(self, neighbour: Neighbour) -> None:
        if neighbour.chokes_us or neighbour.outstanding is not None or not neighbour.we_are_interested:
            return
        index = policy.choose_piece(self.rng, self.missing, neighbour.pieces, self.in_flight)
        if index is None:
            return
        self.in_flight.add(index)
        neighbour.outstanding = index
        neighbour.asked[index] = neighbour.asked.get(index, 0) + 1
        neighbour.protocol.send(wire.encode_request(index))

    def _request_from_all(self) -> None:
        for neighbour in list(self.neighbours.values()):
            self._request_from(neighbour)

    def _return_outstanding(self, neighbour: Neighbour) -> None:
        """Choked or gone with a request open: the piece goes back into the pool."""
        if neighbour.outstanding is not None:
            self.in_flight.discard(neighbour.outstanding)
            neighbour.outstanding = None

    def _learn_complete(self, peer_id: int) -> None:
        self.complete_peers.add(peer_id)
        self._check_finished()

    # -- choking ---------------------------------------------------------------------

    def _interested_in_us(self) -> set[int]:
        return {peer for peer, neighbour in self.neighbours.items() if neighbour.interested_in_us}

    def unchoke_round(self) -> None:
        """Every p seconds: choose the k preferred neighbours afresh (SPEC §3)."""
        rates = {peer: neighbour.received_bytes for peer, neighbour in self.neighbours.items()}
        for neighbour in self.neighbours.values():
            neighbour.received_bytes = 0
        preferred = policy.choose_preferred(
            self.rng, self._interested_in_us(), rates, self.common.preferred_neighbors, self.store.held.complete
        )
        self._apply(preferred, self.optimistic)

    def optimistic_round(self) -> None:
        """Every m seconds: one choked, interested neighbour at random (SPEC §3)."""
        candidate = policy.choose_optimistic(self.rng, self._interested_in_us(), self.unchoked)
        if candidate is not None:
            self._apply(self.preferred, candidate)

    def _fill_free_slots(self) -> None:
        """Unchoke at once when a slot is free, rather than at the next interval."""
        interested = self._interested_in_us()
        preferred = policy.fill_free_slots(self.rng, self.preferred, interested, self.common.preferred_neighbors)
        optimistic = self.optimistic
        interval = self.common.optimistic_unchoking_interval
        if optimistic is None and self.clock.seconds() - self._optimistic_changed >= interval:
            optimistic = policy.choose_optimistic(self.rng, interested, self.unchoked | preferred)
            if optimistic is not None and self._optimistic_loop.running:
                self._optimistic_loop.reset()  # the next change is a full m seconds away
        self._apply(preferred, optimistic)

    def _apply(self, preferred: frozenset[int], optimistic: Optional[int]) -> None:
        if preferred != self.preferred:
            self.preferred = preferred
            if preferred:
                self.events.preferred(preferred)
        if optimistic != self.optimistic:
            self.optimistic = optimistic
            if optimistic is not None:
                self._optimistic_changed = self.clock.seconds()
                self.events.optimistic(optimistic)
        unchoke, choke = policy.unchoke_changes(self.unchoked, preferred, optimistic)
        for peer in sorted(unchoke):
            self.unchoked.add(peer)
            self.neighbours[peer].protocol.send(wire.UNCHOKE)
        for peer in sorted(choke):
            self.unchoked.discard(peer)
            protocol = self.neighbours[peer].protocol
            protocol.cancel_uploads()
            protocol.send(wire.CHOKE)
