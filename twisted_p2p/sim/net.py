"""The simulated network: hosts with an uplink and a downlink, a one-way delay, and
optionally the CPU of the machine they all run on (:mod:`twisted_p2p.sim.cpu`).

A segment written by host A to host B goes through, in order:

1. A's uplink, shared by all of A's connections at A's upload rate: the connections
   with bytes queued take turns, one segment (up to ``segment`` bytes) each, so that
   connections sharing the uplink interleave; within a connection the order is kept;
2. the one-way delay from A to B;
3. B's downlink, shared by all of B's connections: first come, first served, at B's
   download rate;
4. with a CPU model, B's process: the bytes wait for its next turn;

and then reaches the receiving protocol's ``dataReceived``. With a CPU model, what a
process writes leaves for its uplink when the turn that wrote it is over, and a relay
process, if modelled, forwards each segment before its delay. A rate of None or 0 is
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
from twisted_p2p.sim.cpu import CpuModel, Machine, Process

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
    #: The machine every host runs on, when its CPU is a limit (None: it is not).
    cpu: CpuModel | None = None
    #: The delay from one address to another, when not the same for every pair.
    delays: Callable[[str, str], float] | None = None


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
        #: With a CPU model: the host's process, the connections written to in its
        #: current turn, and those written to outside a turn (for its next one).
        self.process: Process | None = None
        self.in_turn = False
        self.held: dict[SimTransport, None] = {}
        self.pending: dict[SimTransport, None] = {}

    def ephemeral_port(self) -> int:
        self.next_port += 1
        return self.next_port


class Network:
    """Every host and the segments between them, on one clock."""

    def __init__(self, clock: SimClock, model: LinkModel = LinkModel()) -> None:
        self.clock = clock
        self.model = model
        self.hosts: dict[str, Host] = {}
        self.machine = Machine(clock, model.cpu) if model.cpu is not None else None
        self.relay = (Process(self._relay_turn, self._relay_over)
                      if model.cpu is not None and model.cpu.relay else None)
        self.segments = 0  # flights delivered
        self.ends: list[SimTransport] = []  # every connection end made, in order

    def add_host(self, address: str, upload: float | None = None, download: float | None = None) -> Host:
        """A host; rates not given are the model's."""
        host = Host(self, address, self.model.upload if upload is None else upload,
                    self.model.download if download is None else download)
        self.hosts[address] = host
        if self.machine is not None:
            host.process = Process(lambda work: self._turn(host, work), lambda work: self._turn_over(host))
        return host

    def host(self, address: str) -> Host:
        return self.hosts[address]

    def delay(self, source: str, destination: str) -> float:
        delays = self.model.delays
        return delays(source, destination) if delays is not None else self.model.delay

    # -- the uplink ------------------------------------------------------------

    def queued(self, end: SimTransport) -> None:
        """``end`` has bytes queued: give it its turn on its host's uplink (with a CPU
        model, once its process's turn is over)."""
        host = end.host
        if host.process is not None:
            if host.in_turn:
                host.held[end] = None
            elif end not in host.pending:
                host.pending[end] = None
                assert self.machine is not None
                self.machine.give(host.process, None)
            return
        self._uplink(end)

    def _uplink(self, end: SimTransport) -> None:
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
        if self.relay is not None and not flight.reset:
            assert self.machine is not None
            self.machine.give(self.relay, (end, flight))
        else:
            self._travel(end, flight)

    def _travel(self, end: SimTransport, flight: Flight) -> None:
        receiver = end.other
        if receiver is None:
            return
        wait = self.delay(end.host.address, receiver.host.address)
        if flight.reset or (receiver.host.download is None and receiver.host.process is None):
            self.clock.schedule(wait, self._deliver, receiver, flight)
        else:
            self.clock.schedule(wait, self._arrive, receiver, flight)

    # -- the downlink and the process -----------------------------------------------

    def _arrive(self, receiver: SimTransport, flight: Flight) -> None:
        """The flight reaches the receiver's downlink, then its process."""
        flight.sent = True
        now = self.clock.seconds()
        host = receiver.host
        done = now
        if host.download is not None:
            done = host.down_free_at = serve(host.down_free_at, now, flight.size, host.download)
        then = self._deliver if host.process is None else self._to_process
        if done > now:
            self.clock.schedule(done - now, then, receiver, flight)
        else:
            then(receiver, flight)

    def _to_process(self, receiver: SimTransport, flight: Flight) -> None:
        process, machine = receiver.host.process, self.machine
        assert process is not None and machine is not None
        machine.give(process, (receiver, flight))

    def _turn(self, host: Host, work: list) -> float:
        """A turn of ``host``'s process: what reached it is delivered, and the turn costs
        what it read and what it (and writes since its last turn) will send."""
        model = self.model.cpu
        assert model is not None
        host.in_turn = True
        host.held, host.pending = host.pending, {}
        read_from: set[SimTransport] = set()
        messages = haves = read_bytes = 0
        try:
            for item in work:
                if item is None:
                    continue  # a write outside a turn: it is in ``held``
                receiver, flight = item
                read_from.add(receiver)
                read_bytes += flight.size
                incoming = receiver.incoming
                before, haves_before = sum(incoming.values()), incoming["have"]
                self._deliver(receiver, flight)
                messages += sum(incoming.values()) - before
                haves += incoming["have"] - haves_before
        finally:
            host.in_turn = False
        writes = [end.queued for end in host.held if end.queued]
        if not read_from and not writes:
            return 0.0  # its writes went out with an earlier turn
        return model.turn_cost(len(read_from), messages, read_bytes, len(writes), sum(writes), haves)

    def _turn_over(self, host: Host) -> None:
        """The turn's writes leave for the uplink."""
        held, host.held = host.held, {}
        for end in held:
            if end.queued:
                self._uplink(end)

    def _relay_turn(self, work: list) -> float:
        """The relay reads what came in on each connection (one read each) and sends it
        once its delay is over (one write each); it frames no messages."""
        model = self.model.cpu
        assert model is not None
        size = 0
        for _, flight in work:
            flight.sent = True  # nothing more joins it
            size += flight.size
        chunks = len({end for end, _ in work})
        return model.turn_cost(chunks, 0, size, chunks, size)

    def _relay_over(self, work: list) -> None:
        for end, flight in work:
            self._travel(end, flight)

    def _deliver(self, receiver: SimTransport, flight: Flight) -> None:
        flight.sent = True
        self.segments += 1
        if flight.close:
            receiver.closed_by_other(flight.reset)
            return
        data = flight.chunks[0] if len(flight.chunks) == 1 else b"".join(flight.chunks)
        receiver.host.bytes_received += len(data)
        receiver.received(data)
