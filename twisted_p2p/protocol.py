"""PeerProtocol: one TCP connection to a neighbour.

It frames the 32-byte handshake and then the length-prefixed messages, decodes them
with :mod:`twisted_p2p.wire`, and hands each to the peer service. It owns no swarm
state. Its upload side is a push producer, so a neighbour that stops reading makes us
stop reading pieces from disk rather than buffer the file in memory.
"""
from __future__ import annotations

import struct
from collections import deque
from typing import TYPE_CHECKING, Optional

from twisted.internet.interfaces import IDelayedCall, IPushProducer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_p2p import wire

if TYPE_CHECKING:
    from twisted_p2p.service import Neighbour, PeerService

_LENGTH = struct.Struct(">I")


@implementer(IPushProducer)
class PeerProtocol(Protocol):
    log = Logger()

    def __init__(self, service: PeerService, expected_peer_id: Optional[int] = None) -> None:
        self.service = service
        #: Set on connections we dialled: the handshake must carry this ID (SPEC §3).
        self.expected_peer_id = expected_peer_id
        self.peer_id: Optional[int] = None
        #: The service's record of this neighbour, once the handshake is accepted.
        self.neighbour: Optional[Neighbour] = None
        self._buffer = bytearray()
        self._handshaken = False
        self._closing = False
        self._handshake_timer: Optional[IDelayedCall] = None
        self._abort_timer: Optional[IDelayedCall] = None
        self._uploads: deque[int] = deque()
        self._queued: set[int] = set()
        self._paused = False

    @property
    def outgoing(self) -> bool:
        return self.expected_peer_id is not None

    def describe(self) -> str:
        """Who is at the other end, for diagnostics."""
        if self.peer_id is not None:
            return f"peer {self.peer_id}"
        peer = self.transport.getPeer() if self.transport else None
        return f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}"

    # -- connection ----------------------------------------------------------

    def connectionMade(self) -> None:
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)  # requests are tiny; Nagle would hold them back
        if getattr(self.transport, "bufferSize", 0):
            # Read a whole piece in one go where the transport reads in chunks (64 KiB).
            self.transport.bufferSize = max(self.transport.bufferSize, self.service.decoder.max_length + 4)
        self.transport.registerProducer(self, True)
        self.service.connection_made(self)
        # SPEC §2: send our handshake at once, never wait for theirs.
        self.transport.write(wire.encode_handshake(self.service.peer_id))
        self._handshake_timer = self.service.clock.callLater(
            self.service.handshake_timeout, self._handshake_timed_out
        )

    def _handshake_timed_out(self) -> None:
        self._handshake_timer = None
        self.log.warn(
            "{who} sent no handshake within {seconds} s; closing",
            who=self.describe(),
            seconds=self.service.handshake_timeout,
        )
        self._closing = True
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        unfinished = None if self._closing else self._unfinished_input()
        if unfinished is not None:
            self.log.warn(
                "{who} closed the connection in the middle of a message: sent {unfinished}",
                who=self.describe(),
                unfinished=unfinished,
            )
        if self._handshake_timer is not None and self._handshake_timer.active():
            self._handshake_timer.cancel()
        self._handshake_timer = None
        if self._abort_timer is not None and self._abort_timer.active():
            self._abort_timer.cancel()
        self._closing = True
        self.cancel_uploads()
        self.service.connection_lost(self)

    def drop(self, why: str) -> None:
        """Close this connection because of what the neighbour did, and say why."""
        if self._closing:
            return
        self.log.warn("{who} {why}; closing the connection", who=self.describe(), why=why)
        self._closing = True
        self.cancel_uploads()
        self.transport.loseConnection()

    def close(self, timeout: float) -> None:
        """Close quietly once what we wrote is sent; abort if that takes ``timeout`` s
        (a neighbour that stopped reading must not hold up our shutdown)."""
        self._closing = True
        self.cancel_uploads()
        self.transport.loseConnection()
        self._abort_timer = self.service.clock.callLater(timeout, self.transport.abortConnection)

    # -- receiving -----------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        buffer = self._buffer
        buffer += data
        try:
            if not self._handshaken:
                if len(buffer) < wire.HANDSHAKE_LENGTH:
                    wire.check_handshake_start(buffer)
                    return
                peer_id = wire.decode_handshake(bytes(buffer[: wire.HANDSHAKE_LENGTH]))
                del buffer[: wire.HANDSHAKE_LENGTH]
                self._handshaken = True
                if self._handshake_timer is not None:
                    self._handshake_timer.cancel()
                    self._handshake_timer = None
                self.peer_id = peer_id
                self.service.handshake_received(self, peer_id)
            self._read_messages()
        except wire.ProtocolViolation as violation:
            self.drop(f"sent {violation}")

    def _read_messages(self) -> None:
        """Decode every whole message in the buffer; keep the partial tail."""
        buffer = self._buffer
        decoder = self.service.decoder
        available = len(buffer)
        position = 0
        view = memoryview(buffer)
        try:
            while available - position >= 4 and not self._closing:
                (length,) = _LENGTH.unpack_from(buffer, position)
                decoder.check_length(length)  # before buffering a hostile length's worth
                end = position + 4 + length
                if end > available:
                    break
                message = decoder.decode(view[position + 4 : end])
                position = end
                self.service.message_received(self, message)
        except BaseException:
            # The traceback may still hold slices of the buffer, so it cannot be
            # trimmed; the connection is being dropped, so just let go of it.
            self._buffer = bytearray()
            raise
        view.release()
        del buffer[:position]

    def _unfinished_input(self) -> Optional[str]:
        """What the neighbour left half-sent when it closed, if anything."""
        held = len(self._buffer)
        if not self._handshaken:
            return f"{held} of the {wire.HANDSHAKE_LENGTH} handshake bytes" if held else None
        if held == 0:
            return None
        if held < 4:
            return f"{held} of the 4 bytes of a message length"
        (length,) = _LENGTH.unpack_from(self._buffer)
        return f"{held - 4} of the {length} bytes of a message"

    # -- sending -------------------------------------------------------------

    def send(self, data: bytes) -> None:
        if not self._closing:
            self.transport.write(data)

    def queue_upload(self, index: int) -> None:
        """Send piece ``index`` when the transport has room (one copy queued at most)."""
        if self._closing or index in self._queued:
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
        while self._uploads and not self._paused and not self._closing:
            if limiter is not None and not limiter.ready():
                limiter.wait(self._send_uploads)
                return
            index = self._uploads.popleft()
            self._queued.discard(index)
            data = self.service.read_piece(index)
            if limiter is not None:
                limiter.spend(len(data))
            self.transport.writeSequence([wire.encode_piece_header(index, len(data)), data])

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
