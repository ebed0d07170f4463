"""How a peer dials the peers listed before it: an address directly, a name through
HostnameEndpoint."""
from __future__ import annotations

from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from twisted_p2p.node import client_endpoint


def test_an_address_is_dialled_directly_with_the_connect_timeout():
    reactor = MemoryReactorClock()
    assert isinstance(client_endpoint(reactor, "127.0.0.1", 6008, 5.0), TCP4ClientEndpoint)
    assert isinstance(client_endpoint(reactor, "::1", 6008, 5.0), TCP6ClientEndpoint)
    client_endpoint(reactor, "127.0.0.1", 6008, 5.0).connect(Factory.forProtocol(Protocol))
    host, port, _, timeout, _ = reactor.tcpClients[0]
    assert (host, port, timeout) == ("127.0.0.1", 6008, 5.0)


def test_a_host_name_is_resolved_by_a_hostname_endpoint():
    assert isinstance(client_endpoint(MemoryReactorClock(), "lin114-00.example.edu", 6008, 5.0), HostnameEndpoint)


def test_a_refused_connection_to_an_address_is_reported_without_waiting():
    """The dialler retries as soon as it hears of the refusal: the failure must come
    when the connect fails, not on a later tick of the clock."""
    reactor = MemoryReactorClock()
    attempt = client_endpoint(reactor, "127.0.0.1", 6008, 5.0).connect(Factory.forProtocol(Protocol))
    failures: list[Failure] = []
    attempt.addErrback(failures.append)
    _, _, factory, _, _ = reactor.tcpClients[0]
    factory.clientConnectionFailed(reactor.connectors[0], Failure(ConnectionRefusedError()))
    assert reactor.seconds() == 0 and len(failures) == 1 and failures[0].check(ConnectionRefusedError)
