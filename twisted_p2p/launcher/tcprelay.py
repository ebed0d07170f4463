"""The core of a TCP relay: an accepted connection joined to one dialled for it.

Two relays are built on it: the conformance kit's recording relay (it holds, paces and
records every byte) and the benchmarks' delaying relay (it adds latency on loopback).
What they share lives here: each accepted connection dials its target, and each
direction is a :class:`Line` -- a first-in first-out path from the end that said the
bytes to the other end, with the end of the stream travelling behind the last of them.
When one end goes, the line towards it is cancelled (nobody is left to read it) and the
line from it is ended (the other end is closed once what came before has gone out).
What each relay does with the bytes (delay them, or hold, pace and record them) is its
own :class:`Line`; how it dials and what it does when the target refuses is configured
by :class:`Dialling`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, cast

from twisted.internet import protocol
from twisted.internet.interfaces import IAddress, IConnector
from twisted.internet.protocol import ClientFactory, Factory, connectionDone
from twisted.python.failure import Failure

LOOPBACK = "127.0.0.1"


class TCPEnd(Protocol):
    """What is used of a TCP connection's transport beyond ITransport (which is all that
    ``Protocol.transport`` promises): a TCP connection also aborts, turns Nagle off, and
    pauses and resumes reading."""

    def write(self, data: bytes) -> None: ...

    def loseConnection(self) -> None: ...

    def abortConnection(self) -> None: ...

    def setTcpNoDelay(self, enabled: bool) -> None: ...

    def pauseProducing(self) -> None: ...

    def resumeProducing(self) -> None: ...


def tcp(end: protocol.Protocol) -> TCPEnd:
    """``end``'s transport, connected over TCP."""
    assert end.transport is not None, "not connected"
    return cast(TCPEnd, end.transport)


class Line:
    """One direction of a relayed connection: reads from ``source``, writes to ``sink``.

    ``sink`` is None until the receiving end is connected and again once it is gone; a
    line that must close its sink before it has one closes it as soon as it comes.
    """

    def __init__(self) -> None:
        self.source: Any = None  # the transport it reads from
        self.sink: Any = None  # the transport it writes to
        self._close_on_attach = False

    def attach(self, sink: Any) -> None:
        """The receiving end is connected: what waited for it may go."""
        self.sink = sink
        if self._close_on_attach:
            sink.loseConnection()
        else:
            self.flow()

    def detach(self) -> None:
        """The receiving end is gone: drop what was on its way to it."""
        self.sink = None
        self.cancel()

    def write(self, data: bytes) -> None:
        if self.sink is not None:
            self.sink.write(data)

    def close_sink(self) -> None:
        """End the receiving end's stream, once what was written to it has gone out."""
        if self.sink is not None:
            self.sink.loseConnection()
        else:
            self._close_on_attach = True

    def push(self, data: bytes) -> None:
        """Bytes read from the source."""
        raise NotImplementedError

    def end(self) -> None:
        """The source's stream ended: pass that on after the bytes before it."""
        raise NotImplementedError

    def cancel(self) -> None:
        """Nobody will read what is queued any more."""

    def flow(self) -> None:
        """The sink has come: send on what may go."""


@dataclass(frozen=True)
class Dialling:
    """How a relay reaches its targets.

    ``read_first``: read what the caller says while its target is dialled (else the
    accepted connection reads nothing until its target answered). ``patience``: how long
    to dial again every ``retry`` seconds a target that refuses (a peer still starting);
    0: once. ``no_delay``: turn Nagle off on the relay's sockets.
    """

    read_first: bool = False
    patience: float = 0.0
    retry: float = 0.01
    timeout: float = 30.0
    no_delay: bool = False


class Socket(protocol.Protocol):
    """One TCP end of a relayed connection."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.gone = False

    def connectionMade(self) -> None:
        if self.link.relay.dialling.no_delay:
            tcp(self).setTcpNoDelay(True)
        self.link.connected(self)

    def dataReceived(self, data: bytes) -> None:
        self.link.received(self, data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.gone = True
        self.link.lost(self)


class Link:
    """An accepted connection and the one dialled for it: ``up`` carries what the caller
    says to the target, ``down`` what the target answers."""

    def __init__(self, relay: Relay, target_port: int, up: Line, down: Line) -> None:
        self.relay = relay
        self.target_port = target_port
        self.up, self.down = up, down
        self.accepted = Socket(self)
        self.dialled: Socket | None = None

    def line_from(self, end: Socket) -> Line:
        return self.up if end is self.accepted else self.down

    def line_to(self, end: Socket) -> Line:
        return self.down if end is self.accepted else self.up

    def connected(self, end: Socket) -> None:
        self.line_from(end).source = end.transport
        self.line_to(end).attach(end.transport)
        if end is self.accepted:
            if not self.relay.dialling.read_first:
                tcp(end).pauseProducing()
            self.relay.dial(self)
        elif not self.relay.dialling.read_first and not self.accepted.gone:
            tcp(self.accepted).resumeProducing()

    def received(self, end: Socket, data: bytes) -> None:
        self.line_from(end).push(data)

    def lost(self, end: Socket) -> None:
        self.line_to(end).detach()
        self.line_from(end).end()

    def refused(self) -> None:
        """The target did not take the connection (for as long as the relay dialled)."""
        if not self.accepted.gone:
            tcp(self.accepted).loseConnection()

    def abort(self) -> None:
        for end in (self.accepted, self.dialled):
            if end is not None and end.transport is not None:
                tcp(end).abortConnection()


class _Listen(Factory):
    def __init__(self, relay: Relay, route: Any) -> None:
        self.relay = relay
        self.route = route

    def buildProtocol(self, addr: IAddress | None) -> Socket:
        return self.relay.new_link(self.route).accepted


class _Dial(ClientFactory):
    """Dials the target of one link, again every ``retry`` seconds while it refuses and
    patience lasts: a peer still starting is then reached as soon as it listens, as a SYN
    would be, instead of its caller being accepted and hung up on."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.clock = link.relay.clock
        self.deadline = self.clock.seconds() + link.relay.dialling.patience

    def buildProtocol(self, addr: IAddress | None) -> Socket:
        self.link.dialled = Socket(self.link)
        return self.link.dialled

    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        if not self.link.accepted.gone and self.clock.seconds() < self.deadline:
            self.clock.callLater(self.link.relay.dialling.retry, connector.connect)
        else:
            self.link.refused()


class Relay:
    """Listening ports on 127.0.0.1, each relayed to a target port there.

    A relay says how it reads and writes with :meth:`new_link` (its lines, and its own
    :class:`Link` if it keeps more), and how it dials with ``dialling``.
    """

    def __init__(self, reactor: Any, dialling: Dialling) -> None:
        self.reactor = reactor
        self.clock = reactor
        self.dialling = dialling

    def listen_on(self, port: int, route: Any) -> Any:
        """Relay ``port`` (0: any free one) as ``route`` says; the listening port."""
        return self.reactor.listenTCP(port, _Listen(self, route), interface=LOOPBACK)

    def new_link(self, route: Any) -> Link:
        raise NotImplementedError

    def dial(self, link: Link) -> None:
        self.reactor.connectTCP(LOOPBACK, link.target_port, _Dial(link), timeout=self.dialling.timeout)
