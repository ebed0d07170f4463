"""SimTransport: one end of a simulated TCP connection, as a protocol sees it.

It offers what :class:`~twisted_p2p.protocol.Link` asks of a transport, with TCP's
behaviour where the peer can tell: bytes arrive in order; back-pressure pauses the
registered push producer when more than the send buffer is written but has not left
the uplink, and resumes it when that falls to half; ``loseConnection`` sends what was
written, then closes (this end at once, the other when the FIN arrives);
``abortConnection`` drops what was not sent and resets the other end.
"""
from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IProtocol, IPushProducer, ITransport
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_p2p.sim.tally import FrameTally

if TYPE_CHECKING:
    from twisted_p2p.sim.net import Flight, Host, Network


@implementer(ITransport)
class SimTransport:
    """One end; :attr:`other` is the end it sends to (None until connected)."""

    def __init__(self, network: Network, host: Host, address: IPv4Address, peer: IPv4Address) -> None:
        self.network = network
        self.host = host
        self.address = address
        self.peer = peer
        self.other: SimTransport | None = None
        self.protocol: IProtocol | None = None
        #: Told when this end is lost (a client connector reports it to its factory).
        self.on_lost: Callable[[Failure], None] | None = None
        self.bufferSize = 65536  # a FileDescriptor's, which a protocol may raise
        self.no_delay = False
        self.queue: deque[bytes] = deque()
        self.queued = 0  # bytes in ``queue``
        self.unsent = 0  # bytes written that have not left the uplink
        self.waiting = False  # in its host's turn order for the uplink
        self.last_flight: Flight | None = None
        self.producer: IPushProducer | None = None
        self.producer_paused = False
        self.closing = False  # loseConnection was called
        self.aborted = False  # nothing more is sent
        self.lost = False  # connectionLost was called
        #: The messages this end received, by type.
        self.incoming: Counter[str] = Counter()
        self._tally = FrameTally(self.incoming)

    def attach(self, protocol: IProtocol) -> None:
        """Connected: the protocol learns of it now."""
        self.protocol = protocol
        self.host.connections += 1
        self.network.ends.append(self)
        protocol.makeConnection(self)

    # -- ITransport ----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.aborted or self.lost or not data:
            return
        self.queue.append(bytes(data))
        self.queued += len(data)
        self.unsent += len(data)
        self.network.queued(self)
        producer = self.producer
        if producer is not None and not self.producer_paused and self.unsent > self.network.model.send_buffer:
            self.producer_paused = True
            producer.pauseProducing()

    def writeSequence(self, data: Iterable[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        if self.closing or self.aborted or self.lost:
            return
        self.closing = True
        if not self.unsent:
            self.flushed()

    def abortConnection(self) -> None:
        if self.aborted or self.lost:
            return
        self._drop_unsent()
        self.network.send_close(self, reset=True)
        self.network.clock.callLater(0, self.connection_lost, ConnectionAborted())

    def getPeer(self) -> IPv4Address:
        return self.peer

    def getHost(self) -> IPv4Address:
        return self.address

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.no_delay = bool(enabled)

    def getTcpNoDelay(self) -> bool:
        return self.no_delay

    @property
    def disconnecting(self) -> bool:
        return self.closing

    @property
    def connected(self) -> bool:
        return self.protocol is not None and not self.lost

    # -- producers -----------------------------------------------------------------

    def registerProducer(self, producer: IPushProducer, streaming: bool) -> None:
        if self.producer is not None:
            raise RuntimeError(f"cannot register producer {producer}: {self.producer} is registered")
        if self.lost:
            producer.stopProducing()
            return
        self.producer = producer
        self.producer_paused = False

    def unregisterProducer(self) -> None:
        self.producer = None

    # -- the network's side --------------------------------------------------------

    def take(self, most: int) -> bytes:
        """Up to ``most`` queued bytes, in order, for the uplink."""
        queue = self.queue
        if self.queued <= most:
            data = queue[0] if len(queue) == 1 else b"".join(queue)
            queue.clear()
        else:
            parts, size = [], 0
            while size < most:
                chunk = queue.popleft()
                if size + len(chunk) > most:
                    queue.appendleft(chunk[most - size:])
                    chunk = chunk[:most - size]
                parts.append(chunk)
                size += len(chunk)
            data = b"".join(parts)
        self.queued -= len(data)
        return data

    def departed(self, size: int) -> None:
        """``size`` bytes left the uplink: resume the producer once half the buffer is free."""
        if self.aborted:
            return  # the rest was dropped
        self.unsent -= size
        if self.producer_paused and self.unsent <= self.network.model.send_buffer // 2:
            self.producer_paused = False
            if self.producer is not None:
                self.producer.resumeProducing()

    def flushed(self) -> None:
        """Closing, and every byte has left: send the FIN, and this end is closed."""
        self.aborted = True
        self.network.send_close(self, reset=False)
        self.network.clock.callLater(0, self.connection_lost, ConnectionDone())

    def received(self, data: bytes) -> None:
        if self.lost or self.protocol is None:
            return
        self._tally.feed(data)
        self.protocol.dataReceived(data)

    def closed_by_other(self, reset: bool) -> None:
        """The other end's FIN (a clean close) or RST arrived."""
        if self.lost:
            return
        self._drop_unsent()
        self.connection_lost(ConnectionLost("connection reset by the other end") if reset else ConnectionDone())

    def _drop_unsent(self) -> None:
        self.aborted = True
        self.queue.clear()
        self.queued = 0
        self.unsent = 0

    def connection_lost(self, reason: Exception) -> None:
        """The end is gone: its producer stops, then its protocol hears why."""
        if self.lost:
            return
        self.lost = True
        self._drop_unsent()
        producer, self.producer = self.producer, None
        if producer is not None:
            producer.stopProducing()
        failure = Failure(reason)
        if self.protocol is not None:
            self.protocol.connectionLost(failure)
        if self.on_lost is not None:
            self.on_lost(failure)
