"""PeerProtocol: one TCP connection to a neighbour, as a small state machine.

    awaiting handshake [-> authenticating] -> open -> closing -> closed

The handshake must come within the handshake timeout (with a secret, the neighbour's
proof too: :mod:`twisted_p2p.auth`; nothing is sent before it passes); every message
after it goes to its owner (:class:`~twisted_p2p.owner.ConnectionOwner`), which judges it
(SPEC §3); a connection we drop is forgotten by the owner at once and aborted if it has
not closed after a short grace, since ``loseConnection`` waits for a neighbour that may
never read. Bytes are framed by :class:`twisted_p2p.wire.Framer`.
TCP keepalive with short intervals notices a neighbour whose host vanished. The upload
side is a push producer, so a neighbour that stops reading makes us stop reading pieces
from disk rather than buffer the file in memory. Haves that follow one another closely
go out together (see ``HAVE_INTERVAL``), always before whatever is sent after them.
It owns no swarm state.
"""
from __future__ import annotations

import enum
import socket
import typing
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, cast

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress, IDelayedCall, IPushProducer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_p2p import auth, wire
from twisted_p2p.owner import ConnectionOwner

#: TCP keepalive: first probe after 3 s of silence, then every 2 s; with unanswered
#: probes or unacknowledged data for 12 s the kernel gives up. A neighbour whose host
#: vanished is so forgotten within about 13 s.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT, USER_TIMEOUT_MS = 3, 2, 4, 12_000


def keep_alive(transport: Any) -> None:
    """Turn on TCP keepalive with short intervals where the transport allows it."""
    set_keep_alive = getattr(transport, "setTcpKeepAlive", None)
    if set_keep_alive is None:
        return
    set_keep_alive(True)
    get_handle = getattr(transport, "getHandle", None)
    handle = get_handle() if get_handle is not None else None
    if handle is None or not hasattr(handle, "setsockopt"):
        return
    for name, value in (("TCP_KEEPIDLE", KEEPALIVE_IDLE), ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
                        ("TCP_KEEPCNT", KEEPALIVE_COUNT), ("TCP_USER_TIMEOUT", USER_TIMEOUT_MS)):
        option = getattr(socket, name, None)
        if option is not None:
            try:
                handle.setsockopt(socket.IPPROTO_TCP, option, value)
            except OSError:
                pass  # not on this platform: the system's defaults apply


#: Haves to one neighbour are written at most once per this many seconds: the first at
#: once, those that follow within the interval together at its end. At 32 peers a peer
#: sends 31 haves per piece, and each write is a send here and a read there.
HAVE_INTERVAL = 0.05


class Link(typing.Protocol):
    """What a PeerProtocol uses of its transport (a TCP connection's, or TLS's over one):
    more than ITransport declares, as a connection also takes a producer and can abort."""

    def write(self, data: bytes) -> None: ...

    def writeSequence(self, data: Iterable[bytes]) -> None: ...

    def loseConnection(self) -> None: ...

    def abortConnection(self) -> None: ...

    def registerProducer(self, producer: IPushProducer, streaming: bool) -> None: ...

    def getPeer(self) -> IAddress: ...


class State(enum.Enum):
    HANDSHAKE = "awaiting handshake"
    AUTHENTICATING = "authenticating"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


@implementer(IPushProducer)
class PeerProtocol(Protocol, TimeoutMixin):
    log = Logger()

    def __init__(self, service: ConnectionOwner, expected_peer_id: int | None = None) -> None:
        #: The peer this connection reports to; what it uses of it is declared in
        #: :class:`~twisted_p2p.owner.ConnectionOwner`.
        self.service = service
        #: Set on connections we dialled: the handshake must carry this ID (SPEC §3).
        self.expected_peer_id = expected_peer_id
        self.peer_id: int | None = None
        #: The owner's record of this neighbour, once the handshake is accepted; only held here.
        self.neighbour: Any = None
        self.state = State.HANDSHAKE
        self.framer = wire.Framer(service.decoder)
        #: With a secret, this connection's authentication; None: the plain protocol.
        self.auth = None if service.secret is None else auth.Authentication(
            service.secret, service.peer_id, expected_peer_id is not None, service.new_nonce())
        self.framer.expect_proof = self.auth is not None
        self._handshake: wire.Handshake | None = None
        self.handshaken_at: float | None = None
        self.last_received = service.clock.seconds()
        #: Fires when the connection is gone, whatever the reason.
        self.lost: Deferred[None] = Deferred()
        self._abort_timer: IDelayedCall | None = None
        self._uploads: deque[int] = deque()
        self._queued: set[int] = set()
        self._paused = False
        self._held_haves: list[bytes] = []
        self._haves_call: IDelayedCall | None = None
        self._haves_sent_at = float("-inf")

    @property
    def _link(self) -> Link:
        """The transport, from ``makeConnection`` on."""
        assert self.transport is not None, "not connected"
        return cast(Link, self.transport)

    def callLater(self, period: float, func: Callable[[], object]) -> IDelayedCall:
        """TimeoutMixin's clock: the owner's."""
        return self.service.clock.callLater(period, func)

    @property
    def outgoing(self) -> bool:
        return self.expected_peer_id is not None

    @property
    def closing(self) -> bool:
        return self.state in (State.CLOSING, State.CLOSED)

    def describe(self) -> str:
        """Who is at the other end, for diagnostics."""
        if self.peer_id is not None:
            return f"peer {self.peer_id}"
        peer = self.transport.getPeer() if self.transport else None
        return f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}"

    def quiet_for(self) -> float:
        """Seconds since the neighbour last sent us a byte."""
        return self.service.clock.seconds() - self.last_received

    # -- connection ----------------------------------------------------------

    def connectionMade(self) -> None:
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)  # requests are tiny; Nagle would hold them back
        keep_alive(self.transport)
        transport: Any = self.transport  # bufferSize: a FileDescriptor's, in no interface
        if getattr(transport, "bufferSize", 0):
            # Read a whole piece in one go where the transport reads in chunks (64 KiB).
            transport.bufferSize = max(transport.bufferSize, self.service.decoder.max_length + 4)
        self._link.registerProducer(self, True)
        self.service.connection_made(self)
        # SPEC §2: send our handshake at once, never wait for theirs.
        self._link.write(wire.encode_handshake(self.service.peer_id, self.service.pipeline > 1,
                                                   self.auth.nonce if self.auth is not None else None))
        self.setTimeout(self.service.handshake_timeout)

    def timeoutConnection(self) -> None:
        """TimeoutMixin: no handshake in time."""
        self.log.warn(
            "{who} sent no {what} within {seconds} s; closing",
            who=self.describe(), what="handshake" if self.state is State.HANDSHAKE else "authentication proof",
            seconds=self.service.handshake_timeout,
        )
        self._close(grace=0)

    def connectionLost(self, reason: Failure | None = None) -> None:
        unfinished = None if self.closing else self.framer.unfinished()
        if unfinished is not None:
            self.log.warn(
                "{who} closed the connection in the middle of a message: sent {unfinished}",
                who=self.describe(),
                unfinished=unfinished,
            )
        elif self.state is State.OPEN:
            self.log.info("lost the connection to {who}: {why}", who=self.describe(),
                          why=reason.getErrorMessage() if reason is not None else "closed")
        self.setTimeout(None)
        if self._abort_timer is not None and self._abort_timer.active():
            self._abort_timer.cancel()
        # The neighbour closed it, cleanly (not we, not a reset): it may have finished.
        closed_by_them = not self.closing and reason is not None and reason.check(ConnectionDone) is not None
        self.state = State.CLOSED
        self.cancel_uploads()
        self._held_haves.clear()
        if self._haves_call is not None and self._haves_call.active():
            self._haves_call.cancel()
        self.service.connection_lost(self, closed_by_them)
        self.lost.callback(None)

    def drop(self, why: str) -> None:
        """Close this connection because of what the neighbour did, and say why."""
        if self.closing:
            return
        self.log.warn("{who} {why}; closing the connection", who=self.describe(), why=why)
        self._close(self.service.drop_grace)

    def close(self, timeout: float) -> None:
        """Close quietly once what we wrote is sent; abort if that takes ``timeout`` s
        (a neighbour that stopped reading must not hold up our shutdown)."""
        if not self.closing:
            self._close(timeout)

    def _close(self, grace: float) -> None:
        """The neighbour is forgotten now; the socket goes when what we wrote is sent,
        or after ``grace`` seconds whatever happens."""
        self.send_held_haves()  # a finished peer's last have must reach the neighbour
        self.state = State.CLOSING
        self.setTimeout(None)
        self.cancel_uploads()
        self.service.connection_closing(self)
        link = self._link
        link.loseConnection()
        if grace <= 0:
            link.abortConnection()
        else:
            self._abort_timer = self.service.clock.callLater(grace, link.abortConnection)

    # -- receiving -----------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self.closing:
            return
        self.last_received = self.service.clock.seconds()
        framer = self.framer
        framer.feed(data)
        frames, violation = framer.take()
        # Once open, every frame goes straight to the service: a busy chunk holds
        # dozens of haves.
        message_received, OPEN = self.service.message_received, State.OPEN
        # The framer gives a Handshake first, then a Proof where one is due, then
        # messages, exactly as the state expects: the ignores below say so to mypy
        # without an isinstance per have.
        try:
            for frame in frames:
                if self.state is OPEN:
                    message_received(self, frame)  # type: ignore[arg-type]
                elif self.state is State.HANDSHAKE:
                    self._handshake_received(frame)  # type: ignore[arg-type]
                elif self.state is State.AUTHENTICATING:
                    self._proof_received(frame)  # type: ignore[arg-type]
                else:
                    return
        except wire.ProtocolViolation as rejected:
            self.drop(f"sent {rejected}")
            return
        if violation is not None and not self.closing:
            self.drop(f"sent {violation}")

    def _handshake_received(self, handshake: wire.Handshake) -> None:
        self.peer_id = handshake.peer_id
        if self.auth is not None:
            # Its ID is checked first, then our proof goes out; the neighbour is taken
            # in (and sent our bitfield) only once its own proof has passed.
            self.service.check_handshake(self, handshake.peer_id)
            self._link.write(self.auth.handshake(handshake.peer_id, handshake.nonce))
            self._handshake = handshake
            self.state = State.AUTHENTICATING
            return
        self._accept(handshake)

    def _proof_received(self, proof: wire.Proof) -> None:
        assert self.auth is not None and self._handshake is not None
        self.auth.check(proof.mac)
        self._accept(self._handshake)

    def _accept(self, handshake: wire.Handshake) -> None:
        self.setTimeout(None)
        self.service.handshake_received(self, handshake.peer_id, handshake.pipelining)
        self.handshaken_at = self.service.clock.seconds()
        self.state = State.OPEN

    # -- sending -------------------------------------------------------------

    def send(self, data: bytes) -> None:
        if not self.closing:
            if self._held_haves:
                self.send_held_haves()  # what was held goes first: the order is kept
            self._link.write(data)

    def send_have(self, have: bytes) -> None:
        """Send a have at once, or, if one went out less than HAVE_INTERVAL s ago, with
        the others of that interval: in a large swarm a peer sends a have to every
        neighbour per piece, and each write is a segment the neighbour must read."""
        if self.closing:
            return
        if self._held_haves:
            self._held_haves.append(have)
            return
        clock = self.service.clock
        wait = self._haves_sent_at + HAVE_INTERVAL - clock.seconds()
        if wait <= 0:
            self._haves_sent_at = clock.seconds()
            self.send(have)
        else:
            self._held_haves.append(have)
            self._haves_call = clock.callLater(wait, self.send_held_haves)

    def send_held_haves(self) -> None:
        """Write the held haves now: their interval ended, or something follows them."""
        if self._haves_call is not None:
            if self._haves_call.active():
                self._haves_call.cancel()
            self._haves_call = None
        held, self._held_haves = self._held_haves, []
        if held and not self.closing:
            self._haves_sent_at = self.service.clock.seconds()
            self._link.writeSequence(held)  # one call, not one write per have

    def queue_upload(self, index: int) -> None:
        """Send piece ``index`` when the transport has room (one copy queued at most)."""
        if self.closing or index in self._queued:
            return
        self._queued.add(index)
        self._uploads.append(index)
        self._send_uploads()

    def cancel_uploads(self) -> None:
        """We choked this neighbour: queued requests are no longer answered (SPEC §3)."""
        self._uploads.clear()
        self._queued.clear()

    def _send_uploads(self) -> None:
        limiter = self.service.upload_limiter
        while self._uploads and not self._paused and not self.closing:
            if limiter is not None and not limiter.ready():
                limiter.wait(self._send_uploads)
                return
            if self._held_haves:
                self.send_held_haves()
            index = self._uploads.popleft()
            self._queued.discard(index)
            data = self.service.read_piece(index)
            if limiter is not None:
                limiter.spend(len(data))
            self._link.writeSequence([wire.encode_piece_header(index, len(data)), data])

    # IPushProducer: the transport calls these as its write buffer fills and drains.
    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._send_uploads()

    def stopProducing(self) -> None:
        # The connection is going: stop uploading (connectionLost follows and says why).
        self._paused = True
        self.cancel_uploads()
