"""Misbehaving neighbours, scripted: what a peer under test does with bad input (SPEC §4).

The kit dials the peer under test (a seed) as one neighbour after another, each doing
one wrong thing after a right handshake and bitfield. After each it looks whether the
peer closed that connection, whether its process still runs, whether a well-behaved
new neighbour still gets its handshake, and whether its file is still the seed's file.
"""
from __future__ import annotations

import hashlib
import random
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from twisted.internet import protocol
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.task import deferLater

from twisted_p2p.bitfield import PieceSet
from twisted_p2p.layout import data_path
from twisted_p2p.wire import HANDSHAKE_LENGTH, encode_bitfield, encode_handshake, encode_piece_header

from ..tcprelay import tcp
from .frames import hexdump
from .processes import Child
from .scenarios import FILE_NAME, Layout

WAIT = 3.0  # seconds for a handshake, and for a peer to show what it does


@dataclass(frozen=True)
class Probe:
    """What one misbehaving neighbour did and what the peer under test did then."""

    name: str
    sent: str  # the bad bytes, as hex
    closed_after: float | None  # seconds until it closed that connection
    alive: bool
    responsive: bool | None  # a new neighbour got its handshake (None: not tried)
    file_intact: bool
    status: int | None  # its exit status, if it died


def bad_inputs(layout: Layout) -> list[tuple[str, bytes | None]]:
    """(name, bytes sent after a right handshake and bitfield); None: no handshake at all."""
    common = layout.scenario.common
    garbage = random.Random(4242).randbytes(65536)
    forged = encode_piece_header(0, common.piece_length(0)) + b"\xaa" * common.piece_length(0)
    return [
        ("length 0", b"\x00\x00\x00\x00"),
        ("unknown type", b"\x00\x00\x00\x01\x09"),
        ("4 GiB length", b"\xff\xff\xff\xff\x07" + bytes(65536)),
        ("unsolicited piece", forged),
        ("garbage", garbage),
        ("silence", None),
    ]


class _Neighbour(protocol.Protocol):
    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.received = b""
        self.handshake: Deferred[None] = Deferred()
        self.closed: Deferred[float] = Deferred()
        self.opened = 0.0

    def connectionMade(self) -> None:
        self.opened = self.reactor.seconds()

    def dataReceived(self, data: bytes) -> None:
        self.received += data[: max(0, 1024 - len(self.received))]
        if len(self.received) >= HANDSHAKE_LENGTH and not self.handshake.called:
            self.handshake.callback(None)

    def connectionLost(self, reason: Any = None) -> None:
        self.closed.callback(self.reactor.seconds() - self.opened)


def _within(reactor: Any, deferred: Deferred[Any], seconds: float) -> Deferred[Any]:
    """``deferred``'s result, or None after ``seconds`` (the original is left alone)."""
    result: Deferred[Any] = Deferred()

    def give_up() -> None:
        if not result.called:
            result.callback(None)
    timer = reactor.callLater(seconds, give_up)

    def fired(value: Any) -> Any:
        if not result.called:
            timer.cancel()
            result.callback(value if value is not None else True)
        return value
    deferred.addBoth(fired)
    return result


@inlineCallbacks
def _connect(reactor: Any, port: int) -> Generator[Deferred[Any], Any, _Neighbour | None]:
    try:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=WAIT)
        neighbour = yield connectProtocol(endpoint, _Neighbour(reactor))
    except Exception:  # refused, timed out: reported by the caller as not responsive
        return None
    return neighbour


@inlineCallbacks
def probe(reactor: Any, layout: Layout, target: int, child: Child) -> Generator[Deferred[Any], Any, list[Probe]]:
    """Every bad input in turn against peer ``target``; the results in that order."""
    common = layout.scenario.common
    port = layout.real[target]
    path = data_path(layout.their_dir(target), target, FILE_NAME)
    expected = hashlib.sha256(layout.content).digest()
    ids = iter(peer_id for peer_id in layout.scenario.ids if peer_id != target)
    results: list[Probe] = []
    held: list[_Neighbour] = []
    for name, bad in bad_inputs(layout):
        if not child.running:
            break
        neighbour = yield _connect(reactor, port)
        closed_after: float | None = None
        if neighbour is not None:
            if bad is None:
                held.append(neighbour)  # says nothing, for as long as the probes last
            else:
                neighbour.transport.write(encode_handshake(next(ids)))
                yield _within(reactor, neighbour.handshake, WAIT)
                neighbour.transport.write(encode_bitfield(PieceSet(common.num_pieces)) + bad)
            closed_after = yield _within(reactor, neighbour.closed, WAIT)
            if bad is not None and closed_after is None:
                tcp(neighbour).abortConnection()
        yield deferLater(reactor, 0.2, lambda: None)
        responsive: bool | None = None
        if child.running:
            fresh = yield _connect(reactor, port)
            if fresh is not None:
                fresh.transport.write(encode_handshake(next(ids)))
                responsive = bool((yield _within(reactor, fresh.handshake, WAIT)))
                tcp(fresh).abortConnection()
            else:
                responsive = False
        try:
            intact = hashlib.sha256(path.read_bytes()).digest() == expected
        except OSError:
            intact = False
        results.append(Probe(name, "(connects, sends nothing)" if bad is None else hexdump(bad, 16),
                             closed_after if isinstance(closed_after, float) else None,
                             child.running, responsive, intact, child.status))
    for neighbour in held:
        tcp(neighbour).abortConnection()
    return results
