"""The two factories of a peer; both hand every connection to its one owner (a PeerService).

Tests: tests/test_auth.py and tests/test_swarm.py.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.interfaces import IAddress, IProtocol
from twisted.internet.protocol import ClientFactory, Factory, ServerFactory
from twisted.logger import Logger

from twisted_p2p.owner import ConnectionOwner
from twisted_p2p.protocol import PeerProtocol

if TYPE_CHECKING:
    from twisted_p2p.auth import AllowedHosts


class PeerServerFactory(ServerFactory):
    """Accepts connections from the peers listed after us in PeerInfo.cfg."""

    def __init__(self, service: ConnectionOwner) -> None:
        self.service = service

    def buildProtocol(self, addr: IAddress | None) -> PeerProtocol:
        protocol = PeerProtocol(self.service)
        protocol.factory = self
        return protocol


class PeerClientFactory(ClientFactory):
    """Dials one peer listed before us; the handshake must come back with its ID."""

    noisy = False  # its dialler retries until the peer is up: no log lines per attempt

    def __init__(self, service: ConnectionOwner, peer_id: int) -> None:
        self.service = service
        self.peer_id = peer_id

    def buildProtocol(self, addr: IAddress | None) -> PeerProtocol:
        protocol = PeerProtocol(self.service, expected_peer_id=self.peer_id)
        protocol.factory = self
        return protocol


class AllowedHostsOnly(ServerFactory):
    """Refuses, before a byte is read, connections from addresses that are not the
    push's hosts; wraps the outermost factory (TLS's, if any)."""

    log = Logger()

    def __init__(self, wrapped: Factory, allowed: AllowedHosts) -> None:
        self.wrapped = wrapped
        self.allowed = allowed

    def doStart(self) -> None:
        self.wrapped.doStart()

    def doStop(self) -> None:
        self.wrapped.doStop()

    # Twisted's stubs say a Factory builds its own Protocol subclass; IProtocolFactory,
    # which is what wrapping honours, promises only an IProtocol.
    def buildProtocol(self, addr: IAddress | None) -> IProtocol | None:  # type: ignore[override]
        host = getattr(addr, "host", "?")
        if not self.allowed.allows(host):
            self.log.warn("refused a connection from {host}: not one of this push's hosts ({hosts})",
                          host=host, hosts=self.allowed.describe())
            return None
        return self.wrapped.buildProtocol(addr)
