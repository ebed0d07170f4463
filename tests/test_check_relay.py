"""The kit's recording relay on 127.0.0.1: its handshake hold, its recording, and the end
of a stream passed on after the bytes before it (the relay core it shares with the bench).

Only the order of events is checked, never how long they took; waits are bounded.
"""
from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import pytest_twisted
from support import free_ports
from twisted.internet import protocol, reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from twisted_p2p.config import Common
from twisted_p2p.launcher.check.relay import Relay
from twisted_p2p.wire import HANDSHAKE_LENGTH

WAIT_S = 10.0
DIALLER, ACCEPTOR = 1002, 1001
COMMON = Common(1, 1, 1, "TheFile.dat", 1000, 100)


class End(protocol.Protocol):
    """One end of a relayed connection: keeps what it got and whether its stream ended."""

    def __init__(self) -> None:
        self.got = b""
        self.closed = False

    def dataReceived(self, data: bytes) -> None:
        self.got += data

    def connectionLost(self, reason: Any = protocol.connectionDone) -> None:
        self.closed = True


def until(condition: Callable[[], bool]) -> Generator[Deferred[None], None, None]:
    """Yields short waits until ``condition`` holds; fails after WAIT_S."""
    waited = 0.0
    while not condition():
        assert waited < WAIT_S, "the relay did not get there in time"
        yield deferLater(reactor, 0.01, lambda: None)
        waited += 0.01


@pytest_twisted.inlineCallbacks
def test_a_side_hears_the_other_only_once_it_has_said_its_handshake_and_the_bytes_are_recorded():
    public, real = free_ports(2)
    accepted: list[End] = []
    server = reactor.listenTCP(real, protocol.Factory.forProtocol(lambda: accepted.append(End()) or accepted[-1]),
                               interface="127.0.0.1")
    relay = Relay(reactor, COMMON, identify=lambda head: DIALLER, hold=WAIT_S * 2)
    relay.listen(ACCEPTOR, public, real)
    try:
        dialler = yield protocol.ClientCreator(reactor, End).connectTCP("127.0.0.1", public)
        yield from until(lambda: bool(accepted))
        acceptor = accepted[0]
        acceptor.transport.write(b"A" * HANDSHAKE_LENGTH)  # the acceptor speaks first
        yield deferLater(reactor, 0.2, lambda: None)
        assert dialler.got == b""  # held: the dialler has not said its handshake yet
        dialler.transport.write(b"D" * HANDSHAKE_LENGTH + b"more")
        yield from until(lambda: len(dialler.got) == HANDSHAKE_LENGTH and len(acceptor.got) == HANDSHAKE_LENGTH + 4)
        assert dialler.got == b"A" * HANDSHAKE_LENGTH
        assert acceptor.got == b"D" * HANDSHAKE_LENGTH + b"more"
        [recording] = relay.recordings
        assert (recording.dialler, recording.acceptor) == (DIALLER, ACCEPTOR)  # learnt from its handshake
        assert recording.down.released_by == "handshake" and recording.up.released_by == "handshake"
        assert b"".join(chunk.data for chunk in recording.up.chunks) == b"D" * HANDSHAKE_LENGTH + b"more"
        assert b"".join(chunk.data for chunk in recording.down.chunks) == b"A" * HANDSHAKE_LENGTH
        assert all(chunk.received <= chunk.delivered for chunk in recording.down.chunks)
        assert recording.down.chunks[0].delivered >= recording.up.chunks[0].received  # held until then
    finally:
        relay.stop()
        server.stopListening()


@pytest_twisted.inlineCallbacks
def test_a_side_that_closes_has_its_last_bytes_handed_on_before_the_other_is_closed():
    public, real = free_ports(2)
    accepted: list[End] = []
    server = reactor.listenTCP(real, protocol.Factory.forProtocol(lambda: accepted.append(End()) or accepted[-1]),
                               interface="127.0.0.1")
    relay = Relay(reactor, COMMON, identify=lambda head: None, hold=WAIT_S * 2)
    relay.listen(ACCEPTOR, public, real)
    try:
        dialler = yield protocol.ClientCreator(reactor, End).connectTCP("127.0.0.1", public)
        yield from until(lambda: bool(accepted))
        dialler.transport.write(b"last words")  # no handshake: held until the dialler goes
        dialler.transport.loseConnection()
        yield from until(lambda: accepted[0].closed)
        assert accepted[0].got == b"last words"
        [recording] = relay.recordings
        assert recording.closed is not None
        assert recording.up.released_by == "closed"
    finally:
        relay.stop()
        server.stopListening()


@pytest_twisted.inlineCallbacks
def test_a_target_that_refuses_is_recorded_and_its_caller_cut():
    public, real = free_ports(2)  # nothing listens on ``real``
    relay = Relay(reactor, COMMON, identify=lambda head: None)
    relay.listen(ACCEPTOR, public, real)
    try:
        dialler = yield protocol.ClientCreator(reactor, End).connectTCP("127.0.0.1", public)
        yield from until(lambda: dialler.closed)
        [recording] = relay.recordings
        assert recording.refused
    finally:
        relay.stop()
