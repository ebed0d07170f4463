"""The simulated network: hosts with an uplink and a downlink, a one-way delay, and an
optional shared machine.

A segment written by host A to host B goes through, in order:

1. A's uplink, shared by all of A's connections at A's upload rate: the connections
   with bytes queued take turns, one segment (up to ``segment`` bytes) each, so that
   connections sharing the uplink interleave; within a connection the order is kept;
2. the one-way delay from A to B;
3. B's downlink, shared by all of B's connections: first come, first served, at B's
   download rate;
4. the shared machine, if any: first come, first served at its rate, plus a fixed cost
   per segment (many peers on one CPU-bound machine over loopback);

and then reaches the receiving protocol's ``dataReceived``. A rate of None or 0 is
unlimited: that stage takes no time, and with an unlimited uplink a write is not cut
into segments (writes of one instant to one connection travel together).

The timing is :func:`serve`, a pure function; the classes only keep its state and
schedule the calls on the :class:`~twisted_p2p.sim.clock.SimClock`.
"""
from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted_p2p.sim.clock import SimClock

if TYPE_CHECKING:
    from twisted_p2p.sim.transport import SimTransport


def serve(free_at: float, arrival: float, size: int, rate: float | None, cost: float = 0.0) -> float:
    """When a first-come-first-served server at ``rate`` bytes/s (None or 0: no time
    per byte) that is free from ``free_at`` is done with a job of ``size`` bytes that
    comes at ``arrival`` and costs ``cost`` seconds more."""
    start = free_at if free_at > arrival else arrival
    return start + cost + (size / rate if rate else 0.0)


@dataclass(frozen=True)
class LinkModel:
    """The network's parameters; every host gets ``upload`` and ``download`` unless
    given its own (bytes/s, None or 0: unlimited)."""

    upload: float | None = None
    download: float | None = None
    delay: float = 0.0  # one way, seconds
    segment: int = 16384  # the most an uplink sends of one connection before the next's turn
    send_buffer: int = 256 * 1024  # unsent bytes past which a connection pauses its producer
    machine_rate: float | None = None  # the shared machine's bytes/s (None: no machine stage)
    machine_cost: float = 0.0  # the shared machine's seconds per segment
    #: The delay from one address to another, when not the same for every pair.
    delays: Callable[[str, str], float] | None = None

    @property
    def has_machine(self) -> bool:
        return bool(self.machine_rate) or self.machine_cost > 0


class Flight:
    """Bytes on their way to one connection end, and when they left the uplink; an
    empty flight with ``close`` set is a FIN (or, with ``reset``, an RST)."""

    __slots__ = ("chunks", "size", "departed", "close", "reset", "sent")

    def __init__(self, departed: float, close: bool = False, reset: bool = False) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.departed = departed
        self.close = close
        self.reset = reset
        self.sent = False  # handed on from the uplink stage: no more bytes may join


class Host:
    """One simulated host: its address, its links' rates and their queues."""

    def __init__(self, network: Network, address: str, upload: float | None, download: float | None) -> None:
        self.network = network
        self.address = address
        self.upload = upload or None
        self.download = download or None
        self.down_free_at = 0.0
        #: Connections with bytes queued for the uplink, in turn order.
        self.ready: deque[SimTransport] = deque()
        self.uplink_busy = False
        self.listeners: dict[int, Any] = {}  # port: a listening port
        self.next_port = 50000
        self.bytes_sent = 0
        self.bytes_received = 0
        self.connections = 0
        self.messages_sent: Counter[str] = Counter()
        self.messages_received: Counter[str] = Counter()

    def ephemeral_port(self) -> int:
        self.next_port += 1
        return self.next_port


class Network:
    """Every host and the segments between them, on one clock."""

    def __init__(self, clock: SimClock, model: LinkModel = LinkModel()) -> None:
        self.clock = clock
        self.model = model
        self.hosts: dict[str, Host] = {}
        self.machine_free_at = 0.0
        self.segments = 0  # flights delivered
        self.ends: list[SimTransport] = []  # every connection end made, in order

    def add_host(self, address: str, upload: float | None = None, download: float | None = None) -> Host:
        """A host; rates not given are the model's."""
        host = Host(self, address, self.model.upload if upload is None else upload,
                    self.model.download if download is None else download)
        self.hosts[address] = host
        return host

    def host(self, address: str) -> Host:
        return self.hosts[address]

    def delay(self, source: str, destination: str) -> float:
        delays = self.model.delays
        return delays(source, destination) if delays is not None else self.model.delay

    # -- the uplink ------------------------------------------------------------

    def queued(self, end: SimTransport) -> None:
        """``end`` has bytes queued: give it its turn on its host's uplink."""
        host = end.host
        if host.upload is None:
            self._depart(end, end.take(end.queued))
            return
        if not end.waiting:
            end.waiting = True
            host.ready.append(end)
        if not host.uplink_busy:
            self._next_segment(host)

    def _next_segment(self, host: Host) -> None:
        """Send the next connection's segment; the uplink is busy until it has left."""
        ready = host.ready
        while ready:
            end = ready.popleft()
            end.waiting = False
            if not end.queued:
                continue  # aborted since it queued
            data = end.take(self.model.segment)
            host.uplink_busy = True
            assert host.upload is not None
            self.clock.schedule(len(data) / host.upload, self._left_uplink, host, end, data)
            return
        host.uplink_busy = False

    def _left_uplink(self, host: Host, end: SimTransport, data: bytes) -> None:
        """A segment has left: its connection, if it has more, waits behind the others."""
        if end.queued and not end.waiting:
            end.waiting = True
            host.ready.append(end)
        self._depart(end, data)
        self._next_segment(host)

    def _depart(self, end: SimTransport, data: bytes) -> None:
        """``data`` has left the sender's uplink now; it flies to the other end."""
        end.host.bytes_sent += len(data)
        end.departed(len(data))
        if end.aborted or end.other is None:
            return
        now = self.clock.seconds()
        last = end.last_flight
        if (last is not None and not last.sent and last.departed == now and not last.close
                and last.size + len(data) <= self.model.segment):
            last.chunks.append(data)  # the same instant, the same flight
            last.size += len(data)
        else:
            flight = end.last_flight = Flight(now)
            flight.chunks.append(data)
            flight.size = len(data)
            self._fly(end, flight)
        if end.closing and not end.unsent:
            end.flushed()

    def send_close(self, end: SimTransport, reset: bool) -> None:
        """A FIN (after every byte sent) or an RST (at once) from ``end``."""
        if end.other is None:
            return
        flight = end.last_flight = Flight(self.clock.seconds(), close=True, reset=reset)
        self._fly(end, flight)

    def _fly(self, end: SimTransport, flight: Flight) -> None:
        receiver = end.other
        assert receiver is not None
        wait = self.delay(end.host.address, receiver.host.address)
        if flight.reset or (receiver.host.download is None and not self.model.has_machine):
            self.clock.schedule(wait, self._deliver, receiver, flight)
        else:
            self.clock.schedule(wait, self._arrive, receiver, flight)

    # -- the downlink and the machine -----------------------------------------------

    def _arrive(self, receiver: SimTransport, flight: Flight) -> None:
        """The flight reaches the receiver's downlink, then the machine."""
        flight.sent = True
        now = self.clock.seconds()
        host = receiver.host
        done = now
        if host.download is not None:
            done = host.down_free_at = serve(host.down_free_at, now, flight.size, host.download)
        model = self.model
        if model.has_machine:
            done = self.machine_free_at = serve(self.machine_free_at, done, flight.size, model.machine_rate,
                                                model.machine_cost)
        if done > now:
            self.clock.schedule(done - now, self._deliver, receiver, flight)
        else:
            self._deliver(receiver, flight)

    def _deliver(self, receiver: SimTransport, flight: Flight) -> None:
        flight.sent = True
        self.segments += 1
        if flight.close:
            receiver.closed_by_other(flight.reset)
            return
        data = flight.chunks[0] if len(flight.chunks) == 1 else b"".join(flight.chunks)
        receiver.host.bytes_received += len(data)
        receiver.received(data)
