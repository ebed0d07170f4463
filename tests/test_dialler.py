"""The Dialler under a task.Clock: quick retries while the peer is not up, a real backoff
when it accepts and then drops us, an immediate redial after a connection that lived."""
from __future__ import annotations

import random

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock

from twisted_p2p.dialler import Dialler, backoff
from twisted_p2p.settings import PeerSettings


class FakeConnection:
    """What the dialler sees of a PeerProtocol: when it handshook, and when it is lost."""

    def __init__(self) -> None:
        self.handshaken_at: float | None = None
        self.lost: Deferred[None] = Deferred()


class Endpoint:
    """Answers each connect with the next outcome: "refused" or "accept"."""

    def __init__(self, outcomes) -> None:
        self.outcomes = iter(outcomes)
        self.attempts: list[float] = []
        self.connections: list[FakeConnection] = []
        self.clock: Clock | None = None

    def connect(self, factory):
        self.attempts.append(self.clock.seconds())
        if next(self.outcomes, "refused") == "refused":
            return fail(ConnectionRefusedError())
        self.connections.append(FakeConnection())
        return succeed(self.connections[-1])


def dialler(outcomes, **options):
    clock = Clock()
    endpoint = Endpoint(outcomes)
    endpoint.clock = clock
    options.setdefault("connect_delays", PeerSettings().retry_delays)
    service = Dialler(1001, endpoint, factory=None, clock=clock, rng=random.Random(1), **options)
    service.startService()
    return service, endpoint, clock


def test_backoff_doubles_up_to_its_maximum_with_bounded_jitter():
    rng = random.Random(0)
    delays = [backoff(attempt, 1.0, 60.0, rng) for attempt in range(1, 10)]
    floors = [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert all(floor <= delay < floor + 1.0 for floor, delay in zip(floors, delays)), delays


def test_a_peer_that_is_not_up_yet_is_retried_soon():
    service, endpoint, clock = dialler(["refused"] * 6 + ["accept"])
    clock.pump([0.01] * 600)  # 6 s
    gaps = [b - a for a, b in zip(endpoint.attempts, endpoint.attempts[1:])]
    assert len(endpoint.attempts) == 7 and service.protocol is endpoint.connections[0]
    assert gaps[0] < 0.06 and max(gaps) < 2.1  # from 25 ms, never more than 2 s


def test_a_peer_that_comes_up_is_reached_soon_after():
    """Attempts never grow more than 1.5 times: a peer listening after 0.45 s is reached
    within a third of that again (doubling would wait up to 0.8 s)."""
    service, endpoint, clock = dialler(["refused"] * 50 + ["accept"])
    clock.pump([0.005] * 200)  # 1 s
    gaps = [b - a for a, b in zip(endpoint.attempts, endpoint.attempts[1:])]
    started = endpoint.attempts[0]
    after = next(t for t in endpoint.attempts if t - started > 0.45)
    assert after - started < 0.45 * 1.5 + 0.03
    assert all(b <= a * 1.5 + 0.03 for a, b in zip(gaps, gaps[1:])), gaps


def test_a_peer_still_starting_is_dialled_every_25_to_50_ms_for_about_a_second_then_less_often():
    """Peers started together listen within a second of each other: in that second a
    peer is reached at most 50 ms after it listens; one that stays down is then tried
    less and less often, up to every 2 s."""
    service, endpoint, clock = dialler(["refused"] * 1000)
    clock.pump([0.005] * 2000)  # 10 s
    gaps = [b - a for a, b in zip(endpoint.attempts, endpoint.attempts[1:])]
    steady = [gap for start, gap in zip(endpoint.attempts, gaps) if start < 1.0]
    assert len(steady) >= 20 and all(0.025 <= gap <= 0.055 for gap in steady), steady
    assert max(gaps) > 1.0 and max(gaps) < 2.1
    assert len(endpoint.attempts) < 80  # not 400 attempts in 10 s


def test_a_peer_that_drops_us_right_after_the_handshake_is_retried_with_a_growing_delay():
    service, endpoint, clock = dialler(["accept"] * 100)
    for _ in range(8):
        connection = endpoint.connections[-1]
        connection.handshaken_at = clock.seconds()
        clock.advance(0.05)
        connection.lost.callback(None)  # "already connected", or a peer that just hangs up
        count = len(endpoint.connections)
        while len(endpoint.connections) == count:
            clock.advance(0.1)
    gaps = [b - a for a, b in zip(endpoint.attempts, endpoint.attempts[1:])]
    assert all(later > earlier for earlier, later in zip(gaps, gaps[1:5])), gaps  # growing
    assert 60 <= gaps[-1] <= 61.2  # up to a minute
    assert service.refusals == 8
    # Over ten minutes that is a handful of connections, not thousands.
    clock.pump([1] * 600)
    assert len(endpoint.attempts) < 20


def test_a_peer_that_closes_before_the_handshake_counts_as_refusing_too():
    service, endpoint, clock = dialler(["accept"] * 10)
    endpoint.connections[-1].lost.callback(None)
    clock.advance(0.5)
    assert len(endpoint.attempts) == 1  # not at the connect backoff's 25 ms
    clock.advance(1.5)
    assert len(endpoint.attempts) == 2


def test_a_connection_that_lived_is_redialled_at_once_and_the_count_starts_over():
    service, endpoint, clock = dialler(["accept"] * 10)
    for _ in range(3):  # three refusals first
        connection = endpoint.connections[-1]
        connection.handshaken_at = clock.seconds()
        connection.lost.callback(None)
        count = len(endpoint.connections)
        while len(endpoint.connections) == count:
            clock.advance(0.1)
    connection = endpoint.connections[-1]
    connection.handshaken_at = clock.seconds()
    clock.advance(service.settle)
    connection.lost.callback(None)  # a real connection that went
    clock.advance(0)
    assert len(endpoint.connections) == 5 and service.refusals == 0


def test_stopping_stops_dialling():
    service, endpoint, clock = dialler(["refused"] * 100)
    clock.advance(0.1)
    service.stopService()
    attempts = len(endpoint.attempts)
    clock.pump([1] * 100)
    assert len(endpoint.attempts) == attempts


def test_a_peer_that_had_the_file_and_went_away_is_not_dialled_again():
    """The owner says whom to dial no more (a complete neighbour that closed, once we are
    complete too); a closed connection is then not followed by another dial."""
    wanted = {1001: True}
    service, endpoint, clock = dialler(["accept", "accept"], should_dial=lambda peer: wanted[peer])
    connection = endpoint.connections[0]
    clock.advance(11)
    wanted[1001] = False
    connection.lost.callback(None)
    clock.pump([1] * 120)
    assert len(endpoint.attempts) == 1 and service.protocol is None


def test_every_failed_connect_is_reported_to_the_owner():
    reported = []
    service, endpoint, clock = dialler(["refused"] * 3 + ["accept"], unreachable=reported.append)
    clock.pump([0.01] * 100)
    assert reported == [1001] * 3 and len(endpoint.attempts) == 4
