"""HostReactor: what a peer uses of a reactor, for one simulated host.

A PeerNode given one as its ``reactor`` listens and dials through Twisted's own TCP4
endpoints, which call :meth:`HostReactor.listenTCP` and :meth:`HostReactor.connectTCP`
here; time is the network's shared :class:`~twisted_p2p.sim.clock.SimClock`, and
"threads" run their work at once (a simulated save takes no time).

A dial takes a round trip: the SYN reaches the listening host after the one-way delay,
which makes the server's end there and then; the client's end is made when the answer
gets back. Nothing listening: the dial is refused after the same round trip.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.base import DelayedCall
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import CannotListenError, ConnectionRefusedError, NotConnectingError, UserError
from twisted.internet.interfaces import IConnector, IListeningPort
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_p2p.sim.net import Host, Network
from twisted_p2p.sim.transport import SimTransport


class ImmediatePool:
    """A thread pool that runs each piece of work at once, in the caller's turn."""

    def callInThreadWithCallback(self, onResult: Callable[[bool, object], object] | None,
                                 func: Callable[..., object], *args: object, **kw: object) -> None:
        try:
            result = func(*args, **kw)
        except BaseException:
            if onResult is not None:
                onResult(False, Failure())
            return
        if onResult is not None:
            onResult(True, result)

    def callInThread(self, func: Callable[..., object], *args: object, **kw: object) -> None:
        self.callInThreadWithCallback(None, func, *args, **kw)


@implementer(IListeningPort)
class SimPort:
    """A listening port on a simulated host."""

    def __init__(self, host: Host, port: int, factory: Factory) -> None:
        self.host = host
        self.port = port
        self.factory = factory

    def startListening(self) -> None:
        if self.port in self.host.listeners:
            raise CannotListenError(self.host.address, self.port, OSError("address already in use"))
        self.host.listeners[self.port] = self
        self.factory.doStart()

    def stopListening(self) -> Deferred[None]:
        if self.host.listeners.get(self.port) is self:
            del self.host.listeners[self.port]
            self.factory.doStop()
        return succeed(None)

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", self.host.address, self.port)


@implementer(IConnector)
class SimConnector:
    """One dial from a simulated host, as connectTCP's connector."""

    def __init__(self, reactor: HostReactor, host: str, port: int, factory: ClientFactory) -> None:
        self.reactor = reactor
        self.host = host
        self.port = port
        self.factory = factory
        self.state = "disconnected"
        self.transport: SimTransport | None = None
        self._pending: DelayedCall | None = None

    def connect(self) -> None:
        network = self.reactor.network
        self.state = "connecting"
        self.factory.doStart()
        self.factory.startedConnecting(self)
        wait = network.delay(self.reactor.host.address, self.host)
        self._pending = network.clock.callLater(wait, self._syn_arrives)

    def stopConnecting(self) -> None:
        if self.state != "connecting":
            raise NotConnectingError()
        self._failed(UserError())

    def disconnect(self) -> None:
        if self.state == "connecting":
            self.stopConnecting()
        elif self.transport is not None:
            self.transport.loseConnection()

    def getDestination(self) -> IPv4Address:
        return IPv4Address("TCP", self.host, self.port)

    def _failed(self, reason: Exception) -> None:
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self.state = "disconnected"
        self.factory.clientConnectionFailed(self, Failure(reason))
        self.factory.doStop()

    def _syn_arrives(self) -> None:
        """At the listening host: accept, or send back a refusal."""
        network, client = self.reactor.network, self.reactor.host
        server = network.hosts.get(self.host)
        listener = server.listeners.get(self.port) if server is not None else None
        back = network.delay(self.host, client.address)
        if server is None or listener is None:
            self._pending = network.clock.callLater(back, self._failed, ConnectionRefusedError())
            return
        client_address = IPv4Address("TCP", client.address, client.ephemeral_port())
        server_address = IPv4Address("TCP", server.address, self.port)
        server_end = SimTransport(network, server, server_address, client_address)
        client_end = SimTransport(network, client, client_address, server_address)
        server_end.other, client_end.other = client_end, server_end
        # The answer is on its way before the server's protocol writes its first bytes.
        self._pending = network.clock.callLater(back, self._established, client_end)
        protocol = listener.factory.buildProtocol(client_address)
        if protocol is None:  # refused by the factory: TCP accepts, then closes
            server_end.attach(Protocol())
            server_end.loseConnection()
        else:
            server_end.attach(protocol)

    def _established(self, end: SimTransport) -> None:
        self._pending = None
        if self.state != "connecting" or end.lost:
            end.abortConnection()
            return
        self.state = "connected"
        self.transport = end
        protocol = self.factory.buildProtocol(end.peer)
        if protocol is None:
            end.abortConnection()
            return
        end.on_lost = self._lost
        end.attach(protocol)

    def _lost(self, reason: Failure) -> None:
        self.state = "disconnected"
        self.transport = None
        self.factory.clientConnectionLost(self, reason)
        self.factory.doStop()


class HostReactor:
    """The reactor of one simulated host: TCP through the network, time from its clock."""

    running = True

    def __init__(self, network: Network, address: str, upload: float | None = None,
                 download: float | None = None) -> None:
        self.network = network
        self.clock = network.clock
        self.host = network.hosts.get(address) or network.add_host(address, upload, download)
        self._pool = ImmediatePool()

    # -- IReactorTime ----------------------------------------------------------------

    def seconds(self) -> float:
        return self.clock.now

    def callLater(self, delay: float, callable: Callable[..., object], *args: object, **kw: object) -> DelayedCall:
        return self.clock.callLater(delay, callable, *args, **kw)

    def getDelayedCalls(self) -> Sequence[DelayedCall]:
        return self.clock.getDelayedCalls()

    # -- IReactorTCP -----------------------------------------------------------------

    def listenTCP(self, port: int, factory: Factory, backlog: int = 50, interface: str = "") -> SimPort:
        if interface not in ("", "0.0.0.0", self.host.address):
            raise CannotListenError(interface, port, OSError("not an address of this host"))
        listening = SimPort(self.host, port or self.host.ephemeral_port(), factory)
        listening.startListening()
        return listening

    def connectTCP(self, host: str, port: int, factory: ClientFactory, timeout: float = 30,
                   bindAddress: Any = None) -> SimConnector:
        connector = SimConnector(self, host, port, factory)
        connector.connect()
        return connector

    # -- threads and start-up ----------------------------------------------------------

    def callFromThread(self, callable: Callable[..., object], *args: object, **kw: object) -> None:
        self.clock.callLater(0, callable, *args, **kw)

    def callInThread(self, callable: Callable[..., object], *args: object, **kw: object) -> None:
        self._pool.callInThread(callable, *args, **kw)

    def getThreadPool(self) -> ImmediatePool:
        return self._pool

    def callWhenRunning(self, callable: Callable[..., object], *args: object, **kw: object) -> None:
        callable(*args, **kw)
