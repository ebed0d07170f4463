"""PeerService: the neighbours of one peer, and the wiring of its parts.

Both factories share this one service; each connection reports to it through the
contract of :mod:`twisted_p2p.owner`. It judges each message (SPEC §3) and hands each
fact to its one owner: :class:`~twisted_p2p.pieces.Pieces` (what we hold, lack and have
asked for), a :class:`~twisted_p2p.neighbour.Neighbour` per neighbour (its pieces, its
choke and interest state, our requests to it), the :class:`~twisted_p2p.choker.Choker`
(whom we unchoke), :class:`~twisted_p2p.resume.Resume` (what survives a crash) and the
:class:`~twisted_p2p.eventlog.EventLog`. Time comes from an injected clock and chance
from an injected Random.

Tests: tests/test_protocol.py (in memory) and tests/test_swarm.py (a real swarm in one process).
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from twisted_p2p import auth, manifest, policy, wire
from twisted_p2p.bitfield import PieceSet
from twisted_p2p.choker import Choker
from twisted_p2p.config import SwarmConfig
from twisted_p2p.ending import Ending
from twisted_p2p.eventlog import EventLog
from twisted_p2p.neighbour import Neighbour
from twisted_p2p.owner import Connection
from twisted_p2p.pieces import Pieces
from twisted_p2p.ratelimit import TokenBucket
from twisted_p2p.requests import Answer, RequestBook
from twisted_p2p.resume import Checkpoints, Restored, Resume
from twisted_p2p.settings import PeerSettings
from twisted_p2p.storage import PieceStore, digest_report


class PeerFailed(Exception):
    """The peer cannot go on (its disk failed); the process should exit non-zero."""


class PeerService(Ending, Service):
    log = Logger()

    def __init__(
        self,
        config: SwarmConfig,
        peer_id: int,
        store: PieceStore,
        events: EventLog,
        clock: IReactorTime,
        rng: random.Random,
        settings: PeerSettings = PeerSettings(),
        *,
        piece_hashes: Sequence[bytes] | None = None,
        run_in_thread: Callable[..., Deferred[None]] | None = None,
        resume: Resume | None = None,
        restored: Restored | None = None,
        secret: bytes | None = None,
        new_nonce: Callable[[], bytes] = auth.new_nonce,
    ) -> None:
        self.config = config
        self.common = config.common
        self.peer_id = peer_id
        self.store = store
        self.events = events
        self.clock = clock
        self.rng = rng
        #: The peers we connect with and wait for: every other peer of PeerInfo.cfg, or
        #: our bounded neighbour set (``settings.neighbours``).
        self.circle = policy.neighbourhood(config.peer_ids, peer_id, settings.neighbours)
        self._take_settings(settings)
        #: With a secret (a push's), every neighbour must prove it holds it before it
        #: is taken in (:mod:`twisted_p2p.auth`); None: the plain protocol.
        self.secret = secret
        self.new_nonce = new_nonce
        #: Every open connection, handshaken or not; the Deferred fires when it is lost.
        self._connections: dict[Connection, Deferred[None] | None] = {}
        self.decoder = wire.Decoder(self.common)
        #: SHA-256 per piece from the optional manifest; None: pieces are not checked.
        self.piece_hashes = piece_hashes
        self.neighbours: dict[int, Neighbour] = {}
        self.pieces = Pieces(store)
        self.requests = RequestBook(self.pieces, clock, rng, self._abandoned, settings.request_timeouts())
        self.choker = Choker(
            self.common.preferred_neighbors, self.common.unchoking_interval,
            self.common.optimistic_unchoking_interval, clock, rng, events,
            self.neighbours, have_file=lambda: self.pieces.held.complete, refill=settings.refill_slots,
        )
        self.resume = resume
        self._start_ending(restored)
        #: Fires when every peer of PeerInfo.cfg holds the file; errbacks with PeerFailed.
        self.done: Deferred[None] = Deferred()
        self.checkpoints = None if resume is None else Checkpoints(
            resume, store, self.complete_peers, self.told_peers, clock, self.fail, settings.save_interval,
            run_in_thread)

    def _take_settings(self, settings: PeerSettings) -> None:
        """The settings, and what the connections read of them (:class:`~twisted_p2p.owner.ConnectionOwner`)."""
        self.settings = settings
        self.handshake_timeout = settings.handshake_timeout
        self.close_timeout = settings.close_timeout
        #: A dropped connection is aborted if it has not closed after this many seconds.
        self.drop_grace = settings.drop_grace
        #: A second connection from a connected ID replaces the first when the first has
        #: been silent this long (its host may have crashed and come back).
        self.stale_after = settings.stale_after
        #: With our pipelining extension on (above 1), requests outstanding to a neighbour
        #: that announces it too; every other neighbour gets the plain protocol.
        self.pipeline = settings.pipeline
        #: Caps our total upload when ``settings.upload_rate`` (bytes/s) is set; None: no cap.
        self.upload_limiter = (TokenBucket(settings.upload_rate, self.common.piece_size, self.clock)
                               if settings.upload_rate else None)
        #: Log the file's SHA-256 when done, for a launcher that cannot read the file.
        self.report_digest = settings.echo_events or settings.echo_summary > 0

    # -- lifecycle -------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.choker.start()
        if self.checkpoints is not None:
            self.checkpoints.start()
        self.clock.callLater(0, self._check_finished)  # a swarm of seeds is done at once

    def stopService(self) -> Deferred[list[tuple[bool, None]]]:
        """Stop the timers, close every connection and save the resume state; fires
        when all is closed and saved."""
        super().stopService()
        self.choker.stop()
        self._cancel_told_grace()
        if self.checkpoints is not None:
            self.checkpoints.stop()
        if self.upload_limiter is not None:
            self.upload_limiter.stop()
        closing = [self.save_state()]
        for protocol in list(self._connections):
            lost: Deferred[None] = Deferred()
            self._connections[protocol] = lost
            closing.append(lost)
            protocol.close(self.close_timeout)
        return DeferredList(closing)

    def save_state(self) -> Deferred[None]:
        """Make what is held durable, in the background (a seed has nothing to save)."""
        return self.checkpoints.save() if self.checkpoints is not None else succeed(None)

    # -- the end -------------------------------------------------------------------

    def _finish(self) -> None:
        self._finished = True
        self._cancel_told_grace()
        whom = "every peer" if self.settings.neighbours is None else "every neighbour"
        self.log.info("{whom} has the file; peer {me} is done", whom=whom, me=self.peer_id)
        if self.report_digest:
            self.log.info("{report}", report=digest_report(self.peer_id, self.store.sha256()))
        self.save_state().addBoth(lambda _: self.done.callback(None))

    def fail(self, why: str) -> None:
        """Stop for good with an error: the process exits non-zero."""
        if self._finished:
            return
        self._finished = True
        self.log.critical("peer {me} cannot go on: {why}", me=self.peer_id, why=why)
        self.done.errback(PeerFailed(why))

    # -- connections -------------------------------------------------------------

    def check_handshake(self, protocol: Connection, peer_id: int) -> None:
        """Raise ProtocolViolation if ``peer_id`` may not be this connection's neighbour."""
        if peer_id == self.peer_id:
            raise wire.ProtocolViolation(f"a handshake with our own ID {peer_id}")
        if peer_id not in self.config.peer_ids:
            raise wire.ProtocolViolation(f"a handshake with ID {peer_id}, which is not in PeerInfo.cfg")
        if peer_id not in self.circle:
            raise wire.ProtocolViolation(f"a handshake with ID {peer_id}, which is not one of our neighbours "
                                         f"(--neighbours)")
        if protocol.expected_peer_id is not None and peer_id != protocol.expected_peer_id:
            raise wire.ProtocolViolation(
                f"a handshake with ID {peer_id} on the connection we dialled to {protocol.expected_peer_id}"
            )

    def handshake_received(self, protocol: Connection, peer_id: int, pipelining: bool = False) -> None:
        """Accept a neighbour, or raise ProtocolViolation (SPEC §3, handshake check);
        ``pipelining``: its handshake announced our extension."""
        self.check_handshake(protocol, peer_id)
        existing = self.neighbours.get(peer_id)
        if existing is not None:
            quiet = existing.protocol.quiet_for()
            if quiet < self.stale_after:
                raise wire.ProtocolViolation(f"a handshake with ID {peer_id}, which is already connected")
            existing.protocol.drop(f"has a new connection; this one was silent for {quiet:.0f} s")
        requests = self.requests.open(peer_id, self.pipeline if pipelining and self.pipeline > 1 else 1)
        neighbour = Neighbour(peer_id, protocol, self.common.num_pieces, requests)
        self.neighbours[peer_id] = neighbour
        self.departed.discard(peer_id)
        protocol.neighbour = neighbour
        if protocol.outgoing:
            self.events.connection_made(peer_id)
        else:
            self.events.connected_from(peer_id)
        protocol.send(wire.encode_bitfield(self.pieces.held))  # always, even all zeros
        if self.pieces.held.complete:
            self._told(peer_id)
            self._check_finished()

    def connection_made(self, protocol: Connection) -> None:
        self._connections[protocol] = None

    def connection_closing(self, protocol: Connection) -> None:
        """We are closing it: the neighbour is gone now, not when the socket is."""
        neighbour = protocol.neighbour
        if neighbour is not None and self.neighbours.get(neighbour.peer_id) is neighbour:
            del self.neighbours[neighbour.peer_id]
            self._forget(neighbour)

    def connection_lost(self, protocol: Connection, closed_by_them: bool = False) -> None:
        """The socket is gone; ``closed_by_them``: the neighbour closed it cleanly."""
        on_lost = self._connections.pop(protocol, None)
        neighbour = protocol.neighbour
        if (closed_by_them and neighbour is not None and self.neighbours.get(neighbour.peer_id) is neighbour
                and neighbour.peer_id in self.complete_peers):
            self.log.info("peer {peer} has the file and closed the connection; it is not waited for",
                          peer=neighbour.peer_id)
            self.departed.add(neighbour.peer_id)
        self.connection_closing(protocol)
        if on_lost is not None:
            on_lost.callback(None)

    def _forget(self, neighbour: Neighbour) -> None:
        """A neighbour is gone: its request goes back to the pool, its slot is free."""
        window = neighbour.requests.window
        if window is not None and window.round_trip is not None:  # it was asked for something
            self.log.info("pipeline to peer {peer}: {window}", peer=neighbour.peer_id, window=window.describe())
        neighbour.requests.close()
        self.choker.remove(neighbour.peer_id)
        if self.running and not self._finished:
            self.choker.fill_free_slots()
            self._request_from_all()
            self._check_finished()  # it may have been the last we waited to tell

    # -- messages ----------------------------------------------------------------

    def message_received(self, protocol: Connection, message: wire.Message) -> None:
        neighbour = protocol.neighbour
        assert neighbour is not None
        peer = neighbour.peer_id
        first = not neighbour.spoke
        if first:
            neighbour.spoke = True
            if type(message) is not wire.Bitfield:
                # It skipped its bitfield, as a peer with no pieces may: it has none.
                self._learn_complete(peer, False)
        match message:
            case wire.Have(index):  # first: most of what a large swarm sends
                self._on_have(neighbour, index)
            case wire.Piece(index, data):
                self._on_piece(neighbour, index, data)
            case wire.Request(index):
                self._on_request(neighbour, index)
            case wire.Bitfield(pieces):
                if not first and not neighbour.late_bitfield_noted:
                    neighbour.late_bitfield_noted = True
                    self.log.info("peer {peer} sent a bitfield after other messages (the course sends it only "
                                  "first); taken as an update, now and whenever it sends one again", peer=peer)
                self._on_bitfield(neighbour, pieces)
            case wire.Choke():
                self.events.choked_by(peer)
                neighbour.chokes_us = True
                neighbour.requests.choked()
                self._request_from_all()
            case wire.Unchoke():
                self.events.unchoked_by(peer)
                neighbour.chokes_us = False
                self._request_from(neighbour)
            case wire.Interested():
                self.events.interested(peer)
                neighbour.interested = True
                self.choker.fill_free_slots()
            case wire.NotInterested():
                self.events.not_interested(peer)
                neighbour.interested = False

    def _on_bitfield(self, neighbour: Neighbour, pieces: PieceSet) -> None:
        """The pieces a bitfield shows are added to what the neighbour has: the first
        one, or a later one (SPEC §3, Accept) that never takes a piece away."""
        neighbour.add_pieces(pieces, self.pieces.held)
        neighbour.update_interest()
        self._learn_complete(neighbour.peer_id, neighbour.pieces.complete)
        self._request_from(neighbour)

    def _on_have(self, neighbour: Neighbour, index: int) -> None:
        self.events.have(neighbour.peer_id, index)
        held = self.pieces.held
        if not neighbour.add_piece(index, held):
            return
        if index not in held:
            neighbour.update_interest()
            self._request_from(neighbour)
        if neighbour.pieces.complete:
            self._learn_complete(neighbour.peer_id, True)

    def _on_request(self, neighbour: Neighbour, index: int) -> None:
        if not neighbour.unchoked:
            self.log.debug("ignoring a request from choked peer {peer}", peer=neighbour.peer_id)
            return
        if index not in self.pieces.held:
            self.log.warn(
                "peer {peer} requested piece {index}, which we do not have; ignored",
                peer=neighbour.peer_id,
                index=index,
            )
            return
        neighbour.protocol.queue_upload(index)

    def _on_piece(self, neighbour: Neighbour, index: int, data: bytes | memoryview) -> None:
        answer = neighbour.requests.received(index)
        if answer is Answer.UNSOLICITED:
            raise wire.ProtocolViolation(f"piece {index}, which we never requested from it")
        neighbour.received += len(data)
        if answer is Answer.NEW:
            if not manifest.piece_is_intact(self.piece_hashes, index, data):
                self._caught_lying(neighbour, index)
                return
            self._store_piece(neighbour, index, data)
        # SURPLUS: answered twice, or fetched elsewhere meanwhile: dropped quietly.
        if not self._finished:
            self._request_from(neighbour)

    def _caught_lying(self, neighbour: Neighbour, index: int) -> None:
        """A piece failed the manifest: drop it and the liar; the piece, back in the
        pool, is asked of the others as the liar is forgotten."""
        neighbour.lying = True
        neighbour.protocol.drop(f"sent piece {index} whose SHA-256 does not match the manifest; "
                                f"the piece is dropped and will be fetched from another peer")
        self._request_from_all()

    def _store_piece(self, source: Neighbour, index: int, data: bytes | memoryview) -> None:
        try:
            self.pieces.write(index, data)
            if self.resume is not None:
                self.resume.piece_written(index)
        except OSError as exc:
            self.fail(f"cannot write piece {index} to {self.store.path}: {exc.strerror or exc}")
            return
        held = self.pieces.held
        self.events.downloaded(index, source.peer_id, held.count)
        have = wire.encode_have(index)
        for neighbour in list(self.neighbours.values()):
            neighbour.protocol.send_have(have)
            if held.complete:
                self._told(neighbour.peer_id)
            neighbour.we_got(index)
        if held.complete:
            self.events.complete()
            self.save_state()
            self._check_finished()

    def read_piece(self, index: int) -> bytes:
        return self.store.read(index)

    # -- interest and requests -------------------------------------------------------

    def _request_from(self, neighbour: Neighbour) -> None:
        """Ask it for as many pieces as it may owe us: one, or its pipeline's depth."""
        if neighbour.chokes_us or not neighbour.we_are_interested:
            return
        requests, theirs, send = neighbour.requests, neighbour.pieces, neighbour.protocol.send
        while (index := requests.next_request(theirs)) is not None:
            send(wire.encode_request(index))

    def _request_from_all(self) -> None:
        for neighbour in list(self.neighbours.values()):
            self._request_from(neighbour)

    def _abandoned(self, peer: int) -> None:
        """A request to ``peer`` went unanswered too long: ask the others for it."""
        self.log.info(
            "peer {peer} did not answer a request in time; asking others, and it nothing "
            "new until it answers (next timeout {timeout:.1f} s)",
            peer=peer, timeout=self.neighbours[peer].requests.timeout,
        )
        self._request_from_all()
