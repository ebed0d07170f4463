"""A fake neighbour: it speaks the protocol of SPEC §2 correctly but misbehaves.

It plays one peer of PeerInfo.cfg: it listens on that peer's port, dials the peers
listed before it (redialling a lost connection after ``--redial`` seconds, as a real
peer retries), sends its handshake at once, and after the other side's handshake sends
a bitfield claiming every piece and, on their bitfield or first have, ``not
interested``. Then, by ``--mode``:

``never-answer``
    unchokes every neighbour that says ``interested``, never answers a request, never
    chokes.
``trickle --rate B``
    unchokes the interested; answers each request with the right bytes, but at ``B``
    bytes/s, writing a few bytes every 10 ms (1 byte at a time below 100 B/s), never
    idle while a piece is owed.
``flap --interval S [--rate B]``
    unchokes the interested and answers their requests while they are unchoked (at
    once, or at ``B`` bytes/s like trickle: then pieces straddle the chokes); every
    ``S`` seconds it chokes them all, then unchokes them all, and so on. A piece it
    has begun to send is finished after a choke (SPEC §3 allows that).
``hangup``
    on every connection, accepted or dialled: sends its handshake, and closes as soon
    as the other side's handshake has arrived.
``impostor --target ID2 [--as ID]``
    neither listens nor dials the others: it dials peer ``ID2`` once, handshakes as
    ``ID`` (default: ``--id``), sends a full bitfield if ``--send-bitfield`` is given,
    and then says nothing, holding the connection open.

Modes that answer requests need ``--seed-file``, the complete file, to serve the right
bytes. Counts of what it did go to standard error each second they change, and at the end;
SIGTERM (or SIGINT) stops it. Run it as::

    python tests/fakepeer.py --mode never-answer --id 1002 --config-dir conf

It is importable too: :func:`main` takes the argument list.
"""
from __future__ import annotations

import argparse
import struct
import sys
from collections import Counter, deque
from pathlib import Path

from twisted.application.internet import ClientService
from twisted.internet import reactor, task
from twisted.internet.endpoints import HostnameEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol

from twisted_p2p.config import load

MODES = ("never-answer", "trickle", "flap", "hangup", "impostor")

# -- the wire format, written out here so the fake does not share the peer's codec ----

HEADER = b"P2PFILESHARINGPROJ"
CHOKE, UNCHOKE, INTERESTED, NOT_INTERESTED, HAVE, BITFIELD, REQUEST, PIECE = range(8)


def handshake(peer_id: int) -> bytes:
    return HEADER + bytes(10) + struct.pack(">I", peer_id)


def message(kind: int, payload: bytes = b"") -> bytes:
    return struct.pack(">IB", len(payload) + 1, kind) + payload


def full_bitfield(num_pieces: int) -> bytes:
    """Every piece: the high bit of the first byte is piece 0; spare bits are zero."""
    length = (num_pieces + 7) // 8
    return message(BITFIELD, (((1 << num_pieces) - 1) << (length * 8 - num_pieces)).to_bytes(length, "big"))


# -- the fake peer ---------------------------------------------------------------------


class FakePeer:
    """What all connections share: the options, the file, the counts."""

    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.mode = options.mode
        config = load(options.config_dir)
        self.config = config
        self.common = config.common
        self.claimed_id = options.as_id if options.as_id is not None else options.id
        self.data = Path(options.seed_file).read_bytes() if options.seed_file else None
        if self.data is not None and len(self.data) != self.common.file_size:
            raise SystemExit(f"fakepeer: {options.seed_file} has {len(self.data)} bytes; "
                             f"Common.cfg says FileSize {self.common.file_size}")
        for peer_id in (options.id, options.target):
            if peer_id is not None and peer_id not in config.peer_ids:
                raise SystemExit(f"fakepeer: peer {peer_id} is not listed in PeerInfo.cfg")
        self.diallers: list[ClientService] = []
        self.counts: Counter[str] = Counter()
        self.connections: set[FakeConnection] = set()
        self._reported: dict[str, int] = {}

    def say(self, text: str) -> None:
        print(f"fakepeer {self.options.id} ({self.mode}): {text}", file=sys.stderr, flush=True)

    def report(self, always: bool = False) -> None:
        if always or dict(self.counts) != self._reported:
            self._reported = dict(self.counts)
            self.say(", ".join(f"{name} {count}" for name, count in sorted(self.counts.items())) or "nothing yet")

    def piece_message(self, index: int) -> bytes:
        assert self.data is not None
        start = index * self.common.piece_size
        return message(PIECE, struct.pack(">I", index) + self.data[start:start + self.common.piece_length(index)])

    def flap(self) -> None:
        """Every --interval seconds: choke all the interested, or unchoke them all."""
        for connection in list(self.connections):
            if connection.interested:
                connection.set_choked(not connection.choked)

    def start(self) -> None:
        options = self.options
        if self.mode == "impostor":
            self.dial_once(self.config.peer(options.target))
            return
        me = self.config.peer(options.id)
        factory = Factory.forProtocol(lambda: FakeConnection(self, outgoing=False))
        TCP4ServerEndpoint(reactor, me.port, interface=options.interface).listen(factory).addCallbacks(
            lambda port: self.say(f"listening on port {me.port}"),
            lambda failure: (self.say(f"cannot listen: {failure.getErrorMessage()}"), reactor.stop()),
        )
        for earlier in self.config.peers_before(options.id):
            dialler = ClientService(
                HostnameEndpoint(reactor, earlier.host, earlier.port),
                Factory.forProtocol(lambda: FakeConnection(self, outgoing=True)),
                retryPolicy=lambda attempt: options.redial,
            )
            dialler.startService()
            self.diallers.append(dialler)
        if self.mode == "flap":
            task.LoopingCall(self.flap).start(options.interval, now=False)

    def dial_once(self, target) -> None:
        """Dial ``target`` until one connection is made; then never again."""
        endpoint = HostnameEndpoint(reactor, target.host, target.port)
        dialling = connectProtocol(endpoint, FakeConnection(self, outgoing=True))
        dialling.addCallback(lambda _: self.say(f"connected to peer {target.peer_id} as peer {self.claimed_id}"))
        dialling.addErrback(lambda _: reactor.callLater(self.options.redial, self.dial_once, target))


class FakeConnection(Protocol):
    def __init__(self, fake: FakePeer, outgoing: bool) -> None:
        self.fake = fake
        self.outgoing = outgoing
        self.buffer = bytearray()
        self.peer_id: int | None = None  # from their handshake
        self.choked = True  # do we choke them
        self.interested = False  # are they interested in us
        self.told_interest = False
        # With --rate: the rest of the piece being written, the pieces waiting, the
        # chokes and unchokes waiting for the piece to end, and the loop that writes.
        self.writing = bytearray()
        self.waiting: deque[bytes] = deque()
        self.after_piece: list[bytes] = []
        self.trickling: task.LoopingCall | None = None

    # connection

    def connectionMade(self) -> None:
        self.fake.counts["dialled" if self.outgoing else "accepted"] += 1
        self.fake.connections.add(self)
        self.transport.write(handshake(self.fake.claimed_id))

    def connectionLost(self, reason=None) -> None:
        self.fake.connections.discard(self)
        if self.trickling is not None:
            self.trickling.stop()
            self.trickling = None

    # receiving

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        if self.peer_id is None:
            if len(self.buffer) < 32:
                return
            if self.buffer[:18] != HEADER:
                self.fake.say(f"bad handshake {bytes(self.buffer[:32])!r}; closing")
                self.transport.loseConnection()
                return
            (self.peer_id,) = struct.unpack_from(">I", self.buffer, 28)
            del self.buffer[:32]
            self.handshaken()
        while len(self.buffer) >= 4 and self.transport.connected:
            (length,) = struct.unpack_from(">I", self.buffer)
            if length == 0 or len(self.buffer) < 4 + length:
                break
            body = bytes(self.buffer[4:4 + length])
            del self.buffer[:4 + length]
            self.message_received(body[0], body[1:])

    def handshaken(self) -> None:
        mode = self.fake.mode
        if mode == "hangup":
            self.fake.counts["hung up"] += 1
            self.transport.loseConnection()
        elif mode == "impostor":
            if self.fake.options.send_bitfield:
                self.transport.write(full_bitfield(self.fake.common.num_pieces))
        else:
            self.transport.write(full_bitfield(self.fake.common.num_pieces))

    def message_received(self, kind: int, payload: bytes) -> None:
        mode = self.fake.mode
        if mode in ("hangup", "impostor"):
            return  # silent
        if kind in (BITFIELD, HAVE) and not self.told_interest:
            self.told_interest = True  # we have everything: never interested
            self.send(message(NOT_INTERESTED))
        elif kind == INTERESTED:
            self.interested = True
            if self.choked:
                self.set_choked(False)
        elif kind == NOT_INTERESTED:
            self.interested = False
        elif kind == REQUEST:
            self.fake.counts["requests"] += 1
            (index,) = struct.unpack(">I", payload)
            if self.choked or mode == "never-answer":
                return  # a request from a choked neighbour is ignored (SPEC §3)
            self.answer(index)

    # sending: with --rate, pieces go out at that rate, one after the other; a choke or
    # an unchoke goes at once, or right after the piece being written

    def send(self, data: bytes) -> None:
        if self.writing:
            self.after_piece.append(data)
        else:
            self.transport.write(data)

    def answer(self, index: int) -> None:
        self.fake.counts["pieces answered"] += 1
        rate = self.fake.options.rate
        if not rate:
            self.transport.write(self.fake.piece_message(index))
            return
        self.waiting.append(self.fake.piece_message(index))
        if self.trickling is None:
            self.chunk = max(1, rate // 100)  # a write every 10 ms, or 1 byte at a time below 100 B/s
            self.trickling = task.LoopingCall(self.trickle)
            self.trickling.start(self.chunk / rate)

    def trickle(self) -> None:
        """One tick: the next few bytes of the pieces owed; never idle while one is."""
        budget = self.chunk
        while budget and (self.writing or self.waiting):
            if not self.writing:
                self.writing = bytearray(self.waiting.popleft())
            part = bytes(self.writing[:budget])
            del self.writing[:budget]
            self.transport.write(part)
            budget -= len(part)
            self.fake.counts["piece bytes trickled"] += len(part)
            if not self.writing:
                for data in self.after_piece:
                    self.transport.write(data)
                self.after_piece.clear()
        if not (self.writing or self.waiting):
            self.trickling.stop()
            self.trickling = None

    def set_choked(self, choked: bool) -> None:
        self.choked = choked
        if choked:
            self.waiting.clear()  # answers not begun are dropped, as a real peer does
        self.send(message(CHOKE if choked else UNCHOKE))
        self.fake.counts["chokes sent" if choked else "unchokes sent"] += 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--id", type=int, required=True, help="the peer of PeerInfo.cfg to play")
    parser.add_argument("--config-dir", default=".", help="directory with Common.cfg and PeerInfo.cfg")
    parser.add_argument("--seed-file", help="the complete file, to answer requests with (trickle, flap)")
    parser.add_argument("--interface", default="", help="address to listen on [default: all]")
    parser.add_argument("--redial", type=float, default=1.0, help="seconds before dialling again")
    parser.add_argument("--rate", type=int, default=0, help="trickle, flap: answer at this many bytes per second")
    parser.add_argument("--interval", type=float, default=0.01, help="flap: seconds between choke and unchoke")
    parser.add_argument("--as", dest="as_id", type=int, help="impostor: the ID to claim [default: --id]")
    parser.add_argument("--target", type=int, help="impostor: the peer to dial")
    parser.add_argument("--send-bitfield", action="store_true", help="impostor: send a full bitfield")
    options = parser.parse_args(argv)
    if options.mode in ("trickle", "flap") and not options.seed_file:
        parser.error(f"--mode {options.mode} answers requests: it needs --seed-file")
    if options.mode == "impostor" and options.target is None:
        parser.error("--mode impostor needs --target")
    if options.mode == "trickle" and options.rate <= 0:
        parser.error("--mode trickle needs --rate, a positive number of bytes per second")
    if options.rate < 0 or options.interval <= 0:
        parser.error("--rate must not be negative, and --interval must be positive")
    return options


def main(argv: list[str] | None = None) -> None:
    fake = FakePeer(parse_args(argv))
    fake.say(f"playing peer {fake.claimed_id} of {fake.common.num_pieces} pieces")
    task.LoopingCall(fake.report).start(1, now=False)
    reactor.callWhenRunning(fake.start)
    reactor.run()  # SIGTERM and SIGINT stop it
    fake.report(always=True)


if __name__ == "__main__":
    main()
