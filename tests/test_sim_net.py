"""The simulated network with exact numbers, and the reactor facade under Twisted's endpoints."""
from __future__ import annotations

import pytest
from twisted.internet import error
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.threads import deferToThreadPool
from zope.interface import implementer

from twisted_p2p.sim.clock import SimClock
from twisted_p2p.sim.net import LinkModel, Network, serve
from twisted_p2p.sim.reactor import HostReactor

KIB = 1024


class Recorder(Protocol):
    """Notes when each chunk arrived, and how the connection ended."""

    def __init__(self, clock):
        self.clock = clock
        self.chunks = []
        self.lost = None

    def dataReceived(self, data):
        self.chunks.append((self.clock.seconds(), len(data)))

    def connectionLost(self, reason):
        self.lost = (self.clock.seconds(), reason.type)

    def received(self):
        return sum(size for _, size in self.chunks)

    def last_at(self):
        return self.chunks[-1][0]


def _network(**model):
    clock = SimClock()
    return clock, Network(clock, LinkModel(**model))


def _listen(network, address, port=7000):
    """A listener on ``address`` whose accepted protocols are kept, in order."""
    reactor = HostReactor(network, address)
    accepted = []

    def build(addr):
        accepted.append(Recorder(network.clock))
        return accepted[-1]

    factory = Factory.forProtocol(Protocol)
    factory.buildProtocol = build
    TCP4ServerEndpoint(reactor, port).listen(factory)
    return reactor, accepted


def _dial(network, source, destination, port=7000):
    """A connected client protocol from ``source`` to ``destination``."""
    reactor = HostReactor(network, source)
    connected = []
    endpoint = TCP4ClientEndpoint(reactor, destination, port)
    endpoint.connect(Factory.forProtocol(lambda: Recorder(network.clock))).addCallback(connected.append)
    network.clock.run(until=lambda: bool(connected), limit=10)
    return connected[0]


def test_serve_is_first_come_first_served_at_the_rate_plus_the_cost():
    assert serve(free_at=0.0, arrival=2.0, size=1000, rate=500) == 4.0
    assert serve(free_at=5.0, arrival=2.0, size=1000, rate=500) == 7.0
    assert serve(free_at=0.0, arrival=2.0, size=1000, rate=None, cost=0.25) == 2.25


def test_one_megabyte_at_one_megabyte_a_second_and_10_ms_arrives_after_1_010_s():
    clock, network = _network(upload=1_000_000, delay=0.010)
    _, accepted = _listen(network, "10.0.0.1")
    client = _dial(network, "10.0.0.2", "10.0.0.1")
    assert clock.seconds() == pytest.approx(0.020)  # the SYN and its answer
    start = clock.seconds()
    client.transport.write(b"x" * 1_000_000)
    clock.run(until=lambda: accepted[0].received() == 1_000_000, limit=10)
    assert accepted[0].last_at() - start == pytest.approx(1.010, abs=1e-9)
    assert len(accepted[0].chunks) == -(-1_000_000 // (16 * KIB))  # sent in segments
    assert network.host("10.0.0.2").bytes_sent == network.host("10.0.0.1").bytes_received == 1_000_000


def test_two_connections_share_the_uplink_segment_by_segment():
    clock, network = _network(upload=16 * KIB)
    _, to_b = _listen(network, "10.0.0.2")
    _, to_c = _listen(network, "10.0.0.3")
    first, second = _dial(network, "10.0.0.1", "10.0.0.2"), _dial(network, "10.0.0.1", "10.0.0.3")
    start = clock.seconds()
    first.transport.write(b"b" * 32 * KIB)
    second.transport.write(b"c" * 32 * KIB)
    clock.run(until=lambda: to_b[0].received() + to_c[0].received() == 64 * KIB, limit=10)
    assert [(t - start, size) for t, size in to_b[0].chunks] == [(1.0, 16 * KIB), (3.0, 16 * KIB)]
    assert [(t - start, size) for t, size in to_c[0].chunks] == [(2.0, 16 * KIB), (4.0, 16 * KIB)]


def test_the_downlink_is_shared_first_come_first_served():
    clock, network = _network(download=16 * KIB, delay=0.5)
    _, accepted = _listen(network, "10.0.0.1")
    senders = [_dial(network, address, "10.0.0.1") for address in ("10.0.0.2", "10.0.0.3")]
    start = clock.seconds()
    for sender in senders:
        sender.transport.write(b"z" * 16 * KIB)
    clock.run(until=lambda: sum(p.received() for p in accepted) == 32 * KIB, limit=10)
    # The handshake-free Recorder sends nothing back: only these two use the downlink.
    assert [p.chunks[0][0] - start for p in accepted] == [1.5, 2.5]


@implementer(IPushProducer)
class Producer:
    def __init__(self, clock):
        self.clock, self.calls = clock, []

    def pauseProducing(self):
        self.calls.append(("pause", self.clock.seconds()))

    def resumeProducing(self):
        self.calls.append(("resume", self.clock.seconds()))

    def stopProducing(self):
        self.calls.append(("stop", self.clock.seconds()))


def test_back_pressure_pauses_past_the_send_buffer_and_resumes_at_half():
    clock, network = _network(upload=16 * KIB, send_buffer=256 * KIB)
    _listen(network, "10.0.0.1")
    client = _dial(network, "10.0.0.2", "10.0.0.1")
    producer = Producer(clock)
    client.transport.registerProducer(producer, True)
    start = clock.seconds()
    client.transport.write(b"p" * 256 * KIB)
    assert producer.calls == []  # not more than the buffer
    client.transport.write(b"p" * 44 * KIB)
    assert producer.calls == [("pause", start)]
    clock.run(until=lambda: len(producer.calls) == 2, limit=100)
    # 300 KiB unsent: at or below 128 KiB once 11 segments of 16 KiB have left.
    assert producer.calls[1] == ("resume", pytest.approx(start + 11.0))


def test_lose_connection_delivers_first_and_closes_both_ends():
    clock, network = _network(upload=1000, delay=0.25)
    _, accepted = _listen(network, "10.0.0.1")
    client = _dial(network, "10.0.0.2", "10.0.0.1")
    start = clock.seconds()
    client.transport.write(b"q" * 500)
    client.transport.loseConnection()
    clock.run(until=lambda: accepted[0].lost is not None, limit=10)
    assert accepted[0].received() == 500
    assert client.lost == (start + 0.5, error.ConnectionDone)  # once the bytes have left
    assert accepted[0].lost == (start + 0.75, error.ConnectionDone)  # the FIN after them


def test_abort_drops_what_is_unsent_and_resets_the_other_end():
    clock, network = _network(upload=1000, delay=0.25)
    _, accepted = _listen(network, "10.0.0.1")
    client = _dial(network, "10.0.0.2", "10.0.0.1")
    start = clock.seconds()
    client.transport.write(b"r" * 500)
    client.transport.abortConnection()
    clock.run(until=lambda: accepted[0].lost is not None, limit=10)
    assert client.lost == (start, error.ConnectionAborted)
    assert accepted[0].lost == (start + 0.25, error.ConnectionLost)
    assert accepted[0].received() == 0
    clock.advance(5)
    assert accepted[0].received() == 0


def test_a_dial_with_nothing_listening_is_refused_after_a_round_trip():
    clock, network = _network(delay=0.1)
    HostReactor(network, "10.0.0.1")
    failures = []
    endpoint = TCP4ClientEndpoint(HostReactor(network, "10.0.0.2"), "10.0.0.1", 7000)
    endpoint.connect(Factory.forProtocol(Protocol)).addErrback(failures.append)
    clock.run(until=lambda: bool(failures), limit=10)
    assert failures[0].check(error.ConnectionRefusedError) and clock.seconds() == pytest.approx(0.2)


def test_addresses_ports_and_a_thread_pool_that_runs_at_once():
    clock, network = _network()
    server_reactor, accepted = _listen(network, "10.0.0.1", port=6008)
    client = _dial(network, "10.0.0.2", "10.0.0.1", port=6008)
    assert client.transport.getPeer() == accepted[0].transport.getHost()
    assert (client.transport.getPeer().host, client.transport.getPeer().port) == ("10.0.0.1", 6008)
    assert accepted[0].transport.getPeer() == client.transport.getHost()
    assert client.transport.getHost().host == "10.0.0.2"
    with pytest.raises(error.CannotListenError):
        server_reactor.listenTCP(6008, Factory.forProtocol(Protocol))
    results = []
    deferToThreadPool(server_reactor, server_reactor.getThreadPool(), lambda: 42).addCallback(results.append)
    clock.advance(0)
    assert results == [42]


def test_the_tally_counts_messages_however_the_stream_is_split():
    from collections import Counter

    from twisted_p2p import wire
    from twisted_p2p.bitfield import PieceSet
    from twisted_p2p.sim.tally import FrameTally

    haves = b"".join(wire.encode_have(i) for i in range(40))
    stream = (wire.encode_handshake(5) + wire.encode_bitfield(PieceSet(10)) + haves + wire.INTERESTED
              + wire.encode_piece_header(1, 100) + b"\x04" * 100 + haves + wire.encode_request(2) + haves)
    for step in (1, 3, 7, 9, 64, len(stream)):
        counts = Counter()
        tally = FrameTally(counts)
        for start in range(0, len(stream), step):
            tally.feed(stream[start:start + step])
        assert counts == Counter(handshake=1, bitfield=1, have=120, interested=1, piece=1, request=1), step
