"""The recording relay: every connection that touches a peer under test passes through it.

Each peer of a check swarm has a public port (the one the peers under test find in
their PeerInfo.cfg, and ours for a peer under test) where the relay listens and from
which it dials the peer's real port. It keeps every byte with the time it arrived and
the time it was handed on, so that the checks can read the conversation after the run
exactly as each side saw it. Three things it does on purpose:

* it holds each side's bytes until the other side's handshake has arrived (or
  ``hold`` seconds have passed), which shows a peer that waits to read before it
  writes its own handshake -- a real bug, since two such peers wait for ever;
* it can pace what a peer sends or is sent (bytes/s per connection), so that a swarm
  lasts long enough to see choking rounds and interest change;
* it records at most ``cap`` bytes a direction and cuts a connection that floods.

Joining the two connections of a link is the relay core's (:mod:`twisted_p2p.launcher.tcprelay`,
shared with the bench's delaying relay); each direction here is a :class:`_Pipe`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.interfaces import IListeningPort

from twisted_p2p.config import Common
from twisted_p2p.launcher import tcprelay
from twisted_p2p.launcher.tcprelay import Dialling, Line, Socket, tcp
from twisted_p2p.wire import HANDSHAKE_LENGTH, Decoder, Framer, Piece, ProtocolViolation

from .frames import Chunk

TICK = 0.05  # seconds between paced deliveries
HIGH_WATER = 1 << 20  # bytes waiting in a direction before its sender is paused
LOW_WATER = 1 << 18
# It reads what the dialler says at once (recorded with the time it came), and a target
# that does not take the connection is refused at once: a peer under test must listen
# before the next one starts.
DIALLING = Dialling(read_first=True, patience=0.0, timeout=5)


@dataclass
class Direction:
    """One direction of one connection, as recorded."""

    sender: int | None
    receiver: int | None
    chunks: list[Chunk] = field(default_factory=list)
    released: float | None = None  # when the hold ended
    released_by: str = ""  # 'handshake' (the receiver's came first) or 'timeout'
    recorded: int = 0
    flooded: bool = False


@dataclass
class Recording:
    """One relayed connection: who dialled whom, when, and both directions."""

    dialler: int | None
    acceptor: int
    opened: float
    up: Direction  # dialler -> acceptor
    down: Direction  # acceptor -> dialler
    closed: float | None = None
    refused: bool = False  # the acceptor's real port did not take the connection

    def direction_from(self, peer_id: int) -> Direction:
        return self.up if self.up.sender == peer_id else self.down


class _Pipe(Line):
    """Moves one direction's bytes on, holding, pacing and recording them."""

    def __init__(self, link: _Link, direction: Direction, rate: float | None) -> None:
        super().__init__()
        self.link = link
        self.direction = direction
        self.rate = rate
        self.pending: list[tuple[float, bytes]] = []
        self.pending_bytes = 0
        self.paused = False
        self.scheduled: Any = None
        self.framer = Framer(Decoder(link.relay.common))
        self.framer_broken = False
        self.head = b""  # the sender's first bytes: its handshake

    @property
    def held(self) -> bool:
        return self.direction.released is None

    def push(self, data: bytes) -> None:
        now = self.link.relay.clock.seconds()
        direction = self.direction
        if direction.recorded + len(data) > self.link.relay.cap:
            direction.flooded = True
            self.link.abort()
            return
        direction.recorded += len(data)
        if len(self.head) < HANDSHAKE_LENGTH:
            self.head += data[: HANDSHAKE_LENGTH - len(self.head)]
        self.pending.append((now, data))
        self.pending_bytes += len(data)
        if self.pending_bytes > HIGH_WATER and self.source is not None and not self.paused:
            self.paused = True
            self.source.pauseProducing()
        self.pump()

    def release(self, why: str) -> None:
        if self.held:
            self.direction.released = self.link.relay.clock.seconds()
            self.direction.released_by = why
            self.pump()

    def flow(self) -> None:
        self.pump()

    def pump(self) -> None:
        if self.held or self.sink is None or self.scheduled is not None:
            return
        budget = float("inf") if self.rate is None else self.rate * TICK
        now = self.link.relay.clock.seconds()
        while self.pending and budget > 0:
            received, data = self.pending[0]
            if len(data) > budget:
                part, rest = data[: int(budget) or 1], data[int(budget) or 1:]
                self.pending[0] = (received, rest)
                data = part
            else:
                self.pending.pop(0)
            budget -= len(data)
            self.pending_bytes -= len(data)
            self.direction.chunks.append(Chunk(received, now, data))
            self.write(data)
            self._watch(data)
        if self.paused and self.pending_bytes < LOW_WATER:
            self.paused = False
            self.source.resumeProducing()
        if self.pending and self.rate is not None:
            self.scheduled = self.link.relay.clock.callLater(TICK, self._tick)

    def _tick(self) -> None:
        self.scheduled = None
        self.pump()

    def _watch(self, data: bytes) -> None:
        """Count the whole pieces handed to the receiver: the swarm's progress, live."""
        if self.framer_broken or self.direction.receiver is None:
            return
        self.framer.feed(data)
        try:
            while (frame := self.framer.next()) is not None:
                if isinstance(frame, Piece):
                    self.link.relay.delivered(self.direction.receiver, frame.index)
        except ProtocolViolation:
            self.framer_broken = True

    def cancel(self) -> None:
        """The connection is over: no more holding or pacing (what the receiver was not
        handed stays unrecorded)."""
        if self.scheduled is not None and self.scheduled.active():
            self.scheduled.cancel()
        self.scheduled = None
        self.rate = None
        self.release("closed")

    def end(self) -> None:
        """The sender has gone: hand on at once what the hold or the pacing still holds,
        then close the receiver."""
        self.cancel()
        self.pump()
        self.close_sink()


class _Link(tcprelay.Link):
    """Both halves of one relayed connection, and their recording."""

    relay: Relay
    up: _Pipe
    down: _Pipe

    def __init__(self, relay: Relay, acceptor: int, real_port: int, dialler: int | None) -> None:
        self.relay = relay
        now = relay.clock.seconds()
        self.recording = Recording(dialler, acceptor, now, Direction(dialler, acceptor), Direction(acceptor, dialler))
        super().__init__(relay, real_port, _Pipe(self, self.recording.up, relay.rate(dialler, acceptor)),
                         _Pipe(self, self.recording.down, relay.rate(acceptor, dialler)))
        self.hold = relay.clock.callLater(relay.hold, self._hold_over)
        self.ended = False

    def _hold_over(self) -> None:
        self.up.release("timeout")
        self.down.release("timeout")

    def learn_dialler(self, peer_id: int | None) -> None:
        if self.recording.dialler is None and peer_id is not None:
            self.recording.dialler = peer_id
            self.recording.up.sender = self.recording.down.receiver = peer_id
            self.up.rate = self.relay.rate(peer_id, self.recording.acceptor)
            self.down.rate = self.relay.rate(self.recording.acceptor, peer_id)

    def received(self, end: Socket, data: bytes) -> None:
        """After new bytes from one side: once its handshake is whole, release the other."""
        super().received(end, data)
        pipe, other = (self.up, self.down) if end is self.accepted else (self.down, self.up)
        if len(pipe.head) == HANDSHAKE_LENGTH:
            if pipe is self.up:
                self.learn_dialler(self.relay.identify(pipe.head))
            other.release("handshake")
        if not self.up.held and not self.down.held and self.hold.active():
            self.hold.cancel()

    def lost(self, end: Socket) -> None:
        """One side has gone: hand on what it said, then close the other."""
        if not self.ended:
            self.ended = True
            self.recording.closed = self.relay.clock.seconds()
            if self.hold.active():
                self.hold.cancel()
        super().lost(end)

    def refused(self) -> None:
        self.recording.refused = True
        tcp(self.accepted).abortConnection()


class Relay(tcprelay.Relay):
    """Public ports for the peers of one check swarm, and everything said through them."""

    def __init__(self, reactor: Any, common: Common, identify: Callable[[bytes], int | None],
                 hold: float = 1.0, cap: int = 16 << 20, rates_from: dict[int, float] | None = None,
                 rates_to: dict[int, float] | None = None) -> None:
        super().__init__(reactor, DIALLING)
        self.common = common
        self.identify = identify
        self.hold = hold
        self.cap = cap
        self.rates_from = rates_from or {}
        self.rates_to = rates_to or {}
        self.recordings: list[Recording] = []
        self.pieces: dict[int, set[int]] = {}
        self.last_piece = 0.0  # when a piece was last handed to anyone
        self.completed: dict[int, float] = {}  # when each peer had been handed every piece
        self.ports: list[IListeningPort] = []

    def listen(self, peer_id: int, public_port: int, real_port: int, dialler: int | None = None) -> None:
        """Relay ``public_port`` to ``real_port``; ``dialler`` when only one peer can dial it."""
        self.ports.append(self.listen_on(public_port, (peer_id, real_port, dialler)))

    def new_link(self, route: Any) -> _Link:
        acceptor, real_port, dialler = route
        link = _Link(self, acceptor, real_port, dialler)
        self.recordings.append(link.recording)
        return link

    def rate(self, sender: int | None, receiver: int | None) -> float | None:
        """The pace of what ``sender`` says to ``receiver`` (None: as fast as it goes)."""
        return self.rates_from.get(sender) or self.rates_to.get(receiver)  # type: ignore[arg-type]

    def delivered(self, receiver: int, index: int) -> None:
        pieces = self.pieces.setdefault(receiver, set())
        pieces.add(index)
        self.last_piece = self.clock.seconds()
        if len(pieces) == self.common.num_pieces:
            self.completed.setdefault(receiver, self.last_piece)

    def stop(self) -> None:
        for port in self.ports:
            port.stopListening()
        self.ports.clear()
