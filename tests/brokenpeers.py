"""Deliberately broken peers, for testing the conformance kit (``p2p-swarm check``).

Run it in a course-layout scratch directory (Common.cfg, PeerInfo.cfg, peer_ID/) as::

    python tests/brokenpeers.py BUG ID

Each BUG but the last three is our own peer (the ``p2ppeer`` twistd plugin, run in this
process as ``twistd -n --pidfile= p2ppeer --id ID``) with exactly one bug monkeypatched
in before the reactor runs, so that the kit must blame that bug and nothing else:

``ascii-zeros``           the ten reserved handshake bytes are ASCII '0', not zero bytes
``text-id``               the handshake's peer ID is decimal text (b"1002"), not an integer
``little-endian``         the length prefix of every message it sends is little-endian
``length-excludes-type``  the length prefix it sends does not count the type byte
``lsb-bitfield``          its bitfield is LSB-first (piece 0 is the low bit of byte 0)
``short-bitfield``        its bitfield is one byte shorter than ceil(n/8)
``read-first``            it sends its handshake only after receiving the other side's
``request-while-choked``  after a bitfield or have it requests a piece even while choked
``several-requests``      it keeps up to 4 requests outstanding to one neighbour
``no-have``               it never sends 'have'
``repeat-interest``       it sends 'interested' again after every have that keeps it so
``no-optimistic``         it never unchokes anybody optimistically
``log-no-date``           its event-log time stamps have no date (``12:00:01.234: ...``)
``log-other-sentences``   its event log also says "Peer A sent the 'request' message ..."
``never-exits``           it does not exit when everyone is done (only when killed)
``accept-unsolicited``    a piece it never requested is written to its file, not refused

and three that are no peer at all, for the kit's robustness:

``hang``      prints a line, then sleeps for ever; ignores SIGTERM (only SIGKILL stops it)
``crash``     a Python traceback on standard error, exit status 1, at once
``garbage``   listens on its port and dials the peers before it, floods every connection
              with random bytes (``random.Random(ID)``), and writes random printable
              lines into log_peer_ID.log

Peers that deviate from our choices only as far as the course text allows (as real
student peers do) are in ``deviantpeers.py``, run the same way.
"""
from __future__ import annotations

import os
import random
import signal
import string
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The repository root, so that twisted_p2p and its twistd plugin are found even when
# this runs under a Python where the project is not installed (Twisted must be).
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.append(_ROOT)

USAGE = "usage: brokenpeers.py BUG ID (BUG one of: {names}; run it in the peer's scratch directory)"

#: How many requests ``several-requests`` keeps outstanding to one neighbour.
PIPELINE = 4


# -- wire bugs -------------------------------------------------------------------------


def _ascii_zeros() -> None:
    """The reserved bytes as the text '0000000000', as people who read "zero bits" as
    characters write them."""
    from twisted_p2p import wire

    def encode_handshake(peer_id: int, pipelining: bool = False, nonce: bytes | None = None) -> bytes:
        return wire.HANDSHAKE_HEADER + b"0" * 10 + peer_id.to_bytes(4, "big")

    wire.encode_handshake = encode_handshake


def _text_id() -> None:
    """The peer ID as four ASCII digits (zero-padded on the left, the last four digits of
    a longer ID), as people who write the ID with a string formatter do."""
    from twisted_p2p import wire

    def encode_handshake(peer_id: int, pipelining: bool = False, nonce: bytes | None = None) -> bytes:
        return wire.HANDSHAKE_HEADER + bytes(10) + str(peer_id).rjust(4, "0")[-4:].encode("ascii")

    wire.encode_handshake = encode_handshake


def _reframe(length_bytes: Callable[[int], bytes]) -> None:
    """Rewrite the 4-byte length prefix of every message we send (messages go out one per
    ``PeerProtocol.send``; pieces go out as ``encode_piece_header`` + data). What we
    receive is still read as the SPEC says."""
    from twisted_p2p import wire
    from twisted_p2p.protocol import PeerProtocol

    original_send = PeerProtocol.send
    original_header = wire.encode_piece_header

    def reframe(message: bytes) -> bytes:
        if len(message) < 4:
            return message
        return length_bytes(int.from_bytes(message[:4], "big")) + message[4:]

    def send(self: PeerProtocol, data: bytes) -> None:
        original_send(self, reframe(data))

    def encode_piece_header(index: int, length: int) -> bytes:
        return reframe(original_header(index, length))

    PeerProtocol.send = send  # type: ignore[method-assign]
    wire.encode_piece_header = encode_piece_header


def _little_endian() -> None:
    """Lengths in the host's (x86) byte order, as with a plain C ``write(&len, 4)``."""
    _reframe(lambda length: length.to_bytes(4, "little"))


def _length_excludes_type() -> None:
    """The length of the payload only, as people who count "the message" after the type do."""
    _reframe(lambda length: (length - 1).to_bytes(4, "big"))


def _patch_bitfield(transform: Callable[[bytes], bytes]) -> None:
    """Change the payload of the bitfield we send; bitfields we receive are read right."""
    from twisted_p2p import wire
    from twisted_p2p.bitfield import PieceSet

    def encode_bitfield(pieces: PieceSet) -> bytes:
        payload = transform(pieces.to_bitfield())
        return (len(payload) + 1).to_bytes(4, "big") + bytes([wire.MessageType.BITFIELD]) + payload

    wire.encode_bitfield = encode_bitfield


_REVERSED_BITS = bytes(int(f"{byte:08b}"[::-1], 2) for byte in range(256))


def _lsb_bitfield() -> None:
    """Piece i at bit i % 8 counted from the low end, as with ``bits[i // 8] |= 1 << (i % 8)``."""
    _patch_bitfield(lambda payload: payload.translate(_REVERSED_BITS))


def _short_bitfield() -> None:
    """n // 8 bytes instead of ceil(n / 8): the last, partial byte is lost."""
    _patch_bitfield(lambda payload: payload[:-1])


def hold_handshake(accepted_only: bool) -> None:
    """Hold our handshake back -- on every connection, or only on those we accepted --
    until the other side's 32 bytes have been read, then send it before anything else
    (as a peer that does a blocking ``read(32)`` before its ``write``)."""
    from twisted_p2p import wire
    from twisted_p2p.protocol import PeerProtocol

    original_made = PeerProtocol.connectionMade
    original_data = PeerProtocol.dataReceived

    def connectionMade(self: PeerProtocol) -> None:
        if accepted_only and self.outgoing:
            original_made(self)
            return
        held: list[bytes] = []
        self.transport.write = held.append  # what connectionMade writes: the handshake
        try:
            original_made(self)
        finally:
            del self.transport.write
        self._held_handshake = b"".join(held)  # type: ignore[attr-defined]
        self._bytes_read = 0  # type: ignore[attr-defined]

    def dataReceived(self: PeerProtocol, data: bytes) -> None:
        held = getattr(self, "_held_handshake", None)
        if held is not None:
            self._bytes_read += len(data)  # type: ignore[attr-defined]
            if self._bytes_read >= wire.HANDSHAKE_LENGTH:  # type: ignore[attr-defined]
                self._held_handshake = None  # type: ignore[attr-defined]
                self.transport.write(held)
        original_data(self, data)

    PeerProtocol.connectionMade = connectionMade  # type: ignore[method-assign]
    PeerProtocol.dataReceived = dataReceived  # type: ignore[method-assign]


def _read_first() -> None:
    """Hold our handshake back until the other side's has arrived, also on connections we
    dialled (two such peers wait for each other for ever, which is why the SPEC forbids
    it for a dialler)."""
    hold_handshake(accepted_only=False)


# -- behaviour bugs --------------------------------------------------------------------


def _request_while_choked() -> None:
    """A bitfield or have that shows a piece we need makes us request it from that
    neighbour at once, choked or not; the rest (one request at a time, unchoke, choke,
    abandoned requests) is unchanged."""
    from twisted_p2p import wire
    from twisted_p2p.neighbour import Neighbour
    from twisted_p2p.service import PeerService

    original_request = PeerService._request_from

    def eager(handler: Callable[..., None]) -> Callable[..., None]:
        def handle(self: PeerService, *args: Any) -> None:
            self._eager = True  # type: ignore[attr-defined]
            try:
                handler(self, *args)
            finally:
                self._eager = False  # type: ignore[attr-defined]

        return handle

    def _request_from(self: PeerService, neighbour: Neighbour) -> None:
        if not (getattr(self, "_eager", False) and neighbour.chokes_us):
            original_request(self, neighbour)
        elif neighbour.we_are_interested:
            index = neighbour.requests.next_request(neighbour.pieces)
            if index is not None:
                neighbour.protocol.send(wire.encode_request(index))

    PeerService._on_bitfield = eager(PeerService._on_bitfield)  # type: ignore[method-assign]
    PeerService._on_have = eager(PeerService._on_have)  # type: ignore[method-assign]
    PeerService._request_from = _request_from  # type: ignore[method-assign]


def _several_requests() -> None:
    """Up to PIPELINE requests outstanding to every neighbour, with a plain handshake:
    our own pipelining, used without negotiating it (as BitTorrent-minded authors do)."""
    from twisted_p2p.requests import RequestBook, Requests

    original_open = RequestBook.open

    def open(self: RequestBook, peer: int, depth: int = 1) -> Requests:
        return original_open(self, peer, PIPELINE)

    RequestBook.open = open  # type: ignore[method-assign]


def _no_have() -> None:
    """No have after a piece: the 'have' we would send is empty, so nothing goes out (the
    bitfield is unchanged, so neighbours learn what we had at the start only)."""
    from twisted_p2p import wire

    wire.encode_have = lambda index: b""


def _repeat_interest() -> None:
    """'interested' after every have received while interested and still interested,
    not only when interest changes."""
    from twisted_p2p import wire
    from twisted_p2p.neighbour import Neighbour
    from twisted_p2p.service import PeerService

    original_have = PeerService._on_have

    def _on_have(self: PeerService, neighbour: Neighbour, index: int) -> None:
        was_interested = neighbour.we_are_interested
        original_have(self, neighbour, index)
        if was_interested and neighbour.we_are_interested:
            neighbour.protocol.send(wire.INTERESTED)

    PeerService._on_have = _on_have  # type: ignore[method-assign]


def _no_optimistic() -> None:
    """Nobody is ever eligible for the optimistic slot (both the m-second round and the
    early pick ask ``choose_optimistic``); the preferred choice is untouched."""
    from twisted_p2p import policy

    policy.choose_optimistic = lambda rng, interested, unchoked: None


def _log_no_date() -> None:
    """``HH:MM:SS.mmm`` without the date."""
    from twisted_p2p import eventlog

    original_format = eventlog.format_time
    eventlog.format_time = lambda seconds: original_format(seconds)[len("YYYY-MM-DD "):]


def _log_other_sentences() -> None:
    """An extra, non-SPEC line for every request we send, written like the real ones."""
    from twisted_p2p import eventlog
    from twisted_p2p.neighbour import Neighbour
    from twisted_p2p.service import PeerService

    eventlog.SENTENCES["request_sent"] = "Peer {me} sent the 'request' message to {other} for the piece {index}."
    original_request = PeerService._request_from

    def oldest(neighbour: Neighbour) -> int | None:
        asked = neighbour.requests.outstanding
        return asked[0] if asked else None

    def _request_from(self: PeerService, neighbour: Neighbour) -> None:
        before = oldest(neighbour)
        original_request(self, neighbour)
        after = oldest(neighbour)
        if after is not None and after != before:
            self.events._write("request_sent", other=neighbour.peer_id, index=after)

    PeerService._request_from = _request_from  # type: ignore[method-assign]


def _never_exits() -> None:
    """When everyone is done the peer says so in its diagnostics as usual, but the
    Deferred it fires is a fresh one nobody waits on, so the reactor never stops."""
    from twisted.internet.defer import Deferred

    from twisted_p2p.service import PeerService

    original_finish = PeerService._finish

    def _finish(self: PeerService) -> None:
        self.done = Deferred()
        original_finish(self)

    PeerService._finish = _finish  # type: ignore[method-assign]


def _accept_unsolicited() -> None:
    """A piece never requested is stored like a new one when we lack it, and written over
    our copy when we have it (a seed's file too), instead of closing the connection."""
    from twisted_p2p import manifest, wire
    from twisted_p2p.neighbour import Neighbour
    from twisted_p2p.service import PeerService

    original_piece = PeerService._on_piece

    def _on_piece(self: PeerService, neighbour: Neighbour, index: int, data: bytes) -> None:
        try:
            original_piece(self, neighbour, index, data)
            return
        except wire.ProtocolViolation:  # raised there for an unrequested piece only
            pass
        neighbour.received += len(data)
        if index in self.store.held:
            descriptor = os.open(self.store.path, os.O_WRONLY)  # a seed's store is read-only
            try:
                os.pwrite(descriptor, data, self.common.piece_offset(index))
            finally:
                os.close(descriptor)
        elif not manifest.piece_is_intact(self.piece_hashes, index, data):
            self._caught_lying(neighbour, index)  # as for a requested piece
            return
        else:
            self._store_piece(neighbour, index, data)
        if not self._finished:
            self._request_from(neighbour)

    PeerService._on_piece = _on_piece  # type: ignore[method-assign]


#: Each peer bug: the patch that makes our peer have it.
PATCHES: dict[str, Callable[[], None]] = {
    "ascii-zeros": _ascii_zeros,
    "text-id": _text_id,
    "little-endian": _little_endian,
    "length-excludes-type": _length_excludes_type,
    "lsb-bitfield": _lsb_bitfield,
    "short-bitfield": _short_bitfield,
    "read-first": _read_first,
    "request-while-choked": _request_while_choked,
    "several-requests": _several_requests,
    "no-have": _no_have,
    "repeat-interest": _repeat_interest,
    "no-optimistic": _no_optimistic,
    "log-no-date": _log_no_date,
    "log-other-sentences": _log_other_sentences,
    "never-exits": _never_exits,
    "accept-unsolicited": _accept_unsolicited,
}


def run_patched(patch: Callable[[], None], peer_id: int, *options: str) -> None:
    """Our peer, as ``twistd -n --pidfile= p2ppeer --id ID [options]`` in the working
    directory, with ``patch`` applied first (``deviantpeers.py`` runs its peers so too)."""
    from twisted.scripts.twistd import run

    patch()
    sys.argv = ["twistd", "-n", "--pidfile=", "p2ppeer", "--id", str(peer_id), *options]
    run()


def run_peer(bug: str, peer_id: int) -> None:
    """Our peer with one bug in it."""
    run_patched(PATCHES[bug], peer_id)


# -- not peers at all ------------------------------------------------------------------


def hang(peer_id: int) -> None:
    """Seem to start, then do nothing at all, deaf to the polite signals."""
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, signal.SIG_IGN)
    print(f"brokenpeers: peer {peer_id} starting (it will hang)", flush=True)
    while True:
        time.sleep(3600)


def crash(peer_id: int) -> None:
    """Die at once the way an unhandled Python error does: a traceback and status 1."""
    raise RuntimeError(f"peer {peer_id}: deliberate crash (brokenpeers.py crash)")


def garbage(peer_id: int) -> None:
    """Listen and dial like a peer, then send nothing but random bytes as fast as each
    connection takes them, and fill the event log with random lines; stops on SIGTERM."""
    from twisted.internet import reactor, task
    from twisted.internet.interfaces import IPushProducer
    from twisted.internet.protocol import Factory, Protocol, ReconnectingClientFactory
    from twisted.python.failure import Failure
    from zope.interface import implementer

    from twisted_p2p.config import ConfigError, load

    try:
        config = load("conf" if Path("conf").is_dir() else ".")
    except ConfigError as exc:
        raise SystemExit(f"brokenpeers garbage {peer_id}: {exc}") from None
    if peer_id not in config.peer_ids:
        raise SystemExit(f"brokenpeers garbage {peer_id}: peer {peer_id} is not listed in PeerInfo.cfg")
    me = config.peer(peer_id)

    @implementer(IPushProducer)
    class Flood(Protocol):
        """Writes 64 KiB of random bytes at a time until the transport says stop."""

        def __init__(self) -> None:
            self.rng = random.Random(peer_id)  # every connection gets the same stream
            self.paused = True

        def connectionMade(self) -> None:
            self.transport.registerProducer(self, True)
            self.resumeProducing()

        def resumeProducing(self) -> None:
            self.paused = False
            while not self.paused and self.transport.connected and not self.transport.disconnecting:
                self.transport.write(self.rng.randbytes(65536))

        def pauseProducing(self) -> None:
            self.paused = True

        def stopProducing(self) -> None:
            self.paused = True

        def dataReceived(self, data: bytes) -> None:
            pass  # whatever they say, we are not listening

        def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
            self.paused = True

    class Dial(ReconnectingClientFactory):
        protocol = Flood
        initialDelay, maxDelay, noisy = 0.1, 2.0, False

    reactor.listenTCP(me.port, Factory.forProtocol(Flood))
    for earlier in config.peers_before(peer_id):
        reactor.connectTCP(earlier.host, earlier.port, Dial())
    log = open(f"log_peer_{peer_id}.log", "a", encoding="utf-8")
    scribble = random.Random(peer_id)
    printable = string.ascii_letters + string.digits + string.punctuation + " "

    def write_garbage() -> None:
        log.write("".join(scribble.choices(printable, k=scribble.randrange(1, 120))) + "\n")
        log.flush()

    task.LoopingCall(write_garbage).start(0.05)
    print(f"brokenpeers: peer {peer_id} flooding on port {me.port}", flush=True)
    reactor.run()
    log.close()


NOT_PEERS: dict[str, Callable[[int], None]] = {"hang": hang, "crash": crash, "garbage": garbage}


def main(argv: list[str]) -> int:
    names = ", ".join([*PATCHES, *NOT_PEERS])
    if any(arg in ("-h", "--help") for arg in argv):
        print(USAGE.format(names=names))
        return 0
    if len(argv) != 2:
        print(USAGE.format(names=names), file=sys.stderr)
        return 2
    bug, text_id = argv
    if bug not in PATCHES and bug not in NOT_PEERS:
        print(f"brokenpeers.py: unknown bug {bug!r}; one of: {names}", file=sys.stderr)
        return 2
    try:
        peer_id = int(text_id)
    except ValueError:
        print(f"brokenpeers.py: ID must be a peer ID (a whole number), not {text_id!r}", file=sys.stderr)
        return 2
    if bug in NOT_PEERS:
        NOT_PEERS[bug](peer_id)
    else:
        run_peer(bug, peer_id)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
