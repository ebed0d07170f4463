"""Peers that deviate from our choices the way real student peers do, for testing our peer
and the conformance kit beside them.

Run it in a course-layout scratch directory (Common.cfg, PeerInfo.cfg, peer_ID/) as::

    python tests/deviantpeers.py DEVIATION ID [p2ppeer options, e.g. --interface 127.0.0.1]

Each DEVIATION is our own peer (run as ``brokenpeers.py`` runs it) with exactly one
behaviour monkeypatched in, copied from implementations of the course project in Java,
Python and C (blocking reads, a thread per socket, no retries). All but the last are
allowed by the course text, so our peer must live with them and the kit must not fail
them on a required check; the last is a real defect, kept for contrast:

``resend-bitfield``       once complete, re-sends its whole bitfield to every neighbour every second
``accept-reads-first``    on a connection it accepted, sends its handshake only after reading the dialler's
``log-iso-seconds``       event-log stamps ``2026-12-03 19:45:32``
``log-bracketed``         event-log stamps ``[2026-12-03 19:46:40]``
``log-java-date``         event-log stamps ``Thu Dec 03 19:20:33 UTC 2026`` (java.util.Date.toString)
``log-ctime``             event-log stamps ``Thu Dec  3 19:20:33 2026`` (C's ctime)
``log-iso-t``             event-log stamps ``2026-12-03T19:20:33.123+00:00``
``no-retry``              dials each earlier peer once; a refused connect ends it with status 1
``close-when-complete``   closes a connection once both ends have the file; takes the n-th
                          handshake it accepts to be from the n-th later peer, or exits 1
``skip-empty-bitfield``   sends no bitfield while it has no pieces
``never-not-interested``  never says 'not interested' once it has the whole file (a defect)
"""
from __future__ import annotations

import datetime
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from brokenpeers import hold_handshake, run_patched

USAGE = ("usage: deviantpeers.py DEVIATION ID [p2ppeer options] "
         "(DEVIATION one of: {names}; run it in the peer's scratch directory)")

#: Seconds between the bitfields ``resend-bitfield`` re-sends once complete.
RESEND_EVERY = 1.0


def _resend_bitfield() -> None:
    """Seen in Python and Java peers whose "announcer" thread writes the bitfield to every
    socket each second once the file is complete. The course says a bitfield is "only sent
    as the first message right after handshaking", but a repeat tells nothing false and the
    stream stays well framed: tolerable, a late bitfield is an update."""
    from twisted.internet import task

    from twisted_p2p import wire
    from twisted_p2p.service import PeerService

    original_start = PeerService.startService
    original_stop = PeerService.stopService

    def resend(self: PeerService) -> None:
        if self.store.held.complete:
            bitfield = wire.encode_bitfield(self.store.held)
            for neighbour in list(self.neighbours.values()):
                neighbour.protocol.send(bitfield)

    def startService(self: PeerService) -> None:
        original_start(self)
        loop = task.LoopingCall(resend, self)
        loop.clock = self.clock
        loop.start(RESEND_EVERY, now=False)
        self._resend_loop = loop  # type: ignore[attr-defined]

    def stopService(self: PeerService) -> Any:
        loop = getattr(self, "_resend_loop", None)
        if loop is not None and loop.running:
            loop.stop()
        return original_stop(self)

    PeerService.startService = startService  # type: ignore[method-assign]
    PeerService.stopService = stopService  # type: ignore[method-assign]


def _accept_reads_first() -> None:
    """Seen in Java and Python peers whose accepting thread does ``readFully(32)`` before
    writing its own handshake; as a dialler it writes at once. The course only says each
    side sends the handshake before any other message, and the dialler always writes
    first, so this cannot deadlock: tolerable."""
    hold_handshake(accepted_only=True)


# The course on [Time]: it "contains the date, hour, minute, and second. The format of
# [Time] is up to you." Every stamp below has all four: tolerable.

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _iso_seconds(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def _java_date(seconds: float) -> str:
    """``java.util.Date.toString()``: English names whatever the locale, the zone's abbreviation."""
    moment = time.localtime(seconds)
    return (f"{_DAYS[moment.tm_wday]} {_MONTHS[moment.tm_mon - 1]} {moment.tm_mday:02d} "
            f"{moment.tm_hour:02d}:{moment.tm_min:02d}:{moment.tm_sec:02d} {moment.tm_zone} {moment.tm_year}")


def _iso_t(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="milliseconds")


def _stamp(format_time: Callable[[float], str]) -> Callable[[], None]:
    """A patch that writes every event-log stamp with ``format_time``."""

    def patch() -> None:
        from twisted_p2p import eventlog

        eventlog.format_time = format_time

    return patch


_log_iso_seconds = _stamp(_iso_seconds)
_log_iso_seconds.__doc__ = """``2026-12-03 19:45:32``: Python's ``strftime`` without fractions (Python peers)."""
_log_bracketed = _stamp(lambda seconds: f"[{_iso_seconds(seconds)}]")
_log_bracketed.__doc__ = """``[2026-12-03 19:46:40]``: the same in brackets, the usual reading of "[Time]"."""
_log_java_date = _stamp(_java_date)
_log_java_date.__doc__ = """``Thu Dec 03 19:20:33 UTC 2026``: ``new Date().toString()`` (Java peers)."""
_log_ctime = _stamp(time.ctime)
_log_ctime.__doc__ = """``Thu Dec  3 19:20:33 2026``: C's ``ctime`` without its newline (C peers)."""
_log_iso_t = _stamp(_iso_t)
_log_iso_t.__doc__ = """``2026-12-03T19:20:33.123+00:00``: ``datetime.isoformat`` or ``java.time`` with a zone."""


def _no_retry() -> None:
    """Seen in most student peers: one ``new Socket(host, port)`` (or ``connect()``) per
    earlier peer at start-up; if it is refused the program dies with a message and status
    1, and a connection that ends is not dialled again. Tolerable: the course has peers
    started in PeerInfo.cfg order, so every earlier peer is listening by then."""
    from twisted.internet.defer import CancelledError

    from twisted_p2p.dialler import Dialler

    def _connect_failed(self: Dialler, failure: Any) -> None:
        self._attempt = None
        if failure.check(CancelledError) or not self.running:
            return
        print(f"deviantpeers no-retry: cannot connect to peer {self.peer_id}: {failure.getErrorMessage()}; "
              "exiting", file=sys.stderr, flush=True)
        os._exit(1)

    def _lost(self: Dialler, protocol: Any) -> None:
        self.protocol = None  # one connection per earlier peer, for the whole run

    Dialler._connect_failed = _connect_failed  # type: ignore[method-assign]
    Dialler._lost = _lost  # type: ignore[method-assign]


def _close_when_complete() -> None:
    """Seen in a Python peer with a thread per socket: the thread returns (closing its
    socket) once it knows both ends have the file, and the accepting side handles its
    ``accept()``-ed sockets in PeerInfo.cfg order, so the n-th handshake it accepts must
    be from the n-th later peer; anything else is an error that ends the program with
    status 1. Tolerable: the course's peers connect once each, in order, and a neighbour
    closing after completing is normal; only a peer that dials again upsets it."""
    from twisted_p2p.dialler import Dialler
    from twisted_p2p.neighbour import Neighbour
    from twisted_p2p.service import PeerService

    original_message = PeerService.message_received
    original_store = PeerService._store_piece
    original_handshake = PeerService.handshake_received
    original_lost = Dialler._lost

    def close_if_both_complete(self: PeerService, neighbour: Neighbour) -> None:
        protocol = neighbour.protocol
        if self.store.held.complete and neighbour.pieces.complete and not protocol.closing:
            self.log.info("peer {peer} and we both have the file: closing the connection", peer=neighbour.peer_id)
            protocol._closed_when_complete = True  # type: ignore[attr-defined]
            protocol.close(self.close_timeout)

    def message_received(self: PeerService, protocol: Any, message: Any) -> None:
        original_message(self, protocol, message)
        if protocol.neighbour is not None:
            close_if_both_complete(self, protocol.neighbour)

    def _store_piece(self: PeerService, *args: Any, **kwargs: Any) -> None:
        original_store(self, *args, **kwargs)
        for neighbour in list(self.neighbours.values()):
            close_if_both_complete(self, neighbour)

    def handshake_received(self: PeerService, protocol: Any, peer_id: int, *args: Any, **kwargs: Any) -> None:
        if not protocol.outgoing:
            order = [info.peer_id for info in self.config.peers]
            later = order[order.index(self.peer_id) + 1:]
            accepted = getattr(self, "_handshakes_accepted", 0)
            self._handshakes_accepted = accepted + 1  # type: ignore[attr-defined]
            expected = later[accepted] if accepted < len(later) else None
            if peer_id != expected:
                print(f"deviantpeers close-when-complete: error: accepted connection {accepted + 1} is from peer "
                      f"{peer_id}, expected {'nobody' if expected is None else f'peer {expected}'}; exiting",
                      file=sys.stderr, flush=True)
                os._exit(1)
        original_handshake(self, protocol, peer_id, *args, **kwargs)

    def _lost(self: Dialler, protocol: Any) -> None:
        if getattr(protocol, "_closed_when_complete", False):
            self.protocol = None  # it closed this one itself, done: no dialling again
        else:
            original_lost(self, protocol)

    PeerService.message_received = message_received  # type: ignore[method-assign]
    PeerService._store_piece = _store_piece  # type: ignore[method-assign]
    PeerService.handshake_received = handshake_received  # type: ignore[method-assign]
    Dialler._lost = _lost  # type: ignore[method-assign]


def _skip_empty_bitfield() -> None:
    """Seen in many peers: the bitfield is sent only when there is something in it. The
    course: "Peers which don't have anything yet may skip a 'bitfield' message":
    tolerable."""
    from twisted_p2p import wire

    original_encode = wire.encode_bitfield

    def encode_bitfield(pieces: Any) -> bytes:
        return b"" if pieces.count == 0 else original_encode(pieces)

    wire.encode_bitfield = encode_bitfield


def _never_not_interested() -> None:
    """A real defect, for contrast: after its last piece it tells nobody 'not interested'
    (the interest was only ever re-checked on bitfields and haves). The course: "Whenever
    a peer receives a piece completely, it checks the bitfields of its neighbors and
    decides whether it should send 'not interested' messages to some neighbors."""
    from twisted_p2p import wire
    from twisted_p2p.protocol import PeerProtocol

    original_send = PeerProtocol.send

    def send(self: PeerProtocol, data: bytes) -> None:
        if data == wire.NOT_INTERESTED and self.service.store.held.complete:
            return
        original_send(self, data)

    PeerProtocol.send = send  # type: ignore[method-assign]


#: Deviations the course text allows: our peer must complete beside them, and the kit
#: must fail none of their required checks.
TOLERABLE: dict[str, Callable[[], None]] = {
    "resend-bitfield": _resend_bitfield,
    "accept-reads-first": _accept_reads_first,
    "log-iso-seconds": _log_iso_seconds,
    "log-bracketed": _log_bracketed,
    "log-java-date": _log_java_date,
    "log-ctime": _log_ctime,
    "log-iso-t": _log_iso_t,
    "no-retry": _no_retry,
    "close-when-complete": _close_when_complete,
    "skip-empty-bitfield": _skip_empty_bitfield,
}

#: Deviations the course text forbids: the kit must fail exactly the check named.
DEFECTS: dict[str, Callable[[], None]] = {
    "never-not-interested": _never_not_interested,
}

DEVIATIONS: dict[str, Callable[[], None]] = {**TOLERABLE, **DEFECTS}


def main(argv: list[str]) -> int:
    names = ", ".join(DEVIATIONS)
    if any(arg in ("-h", "--help") for arg in argv):
        print(USAGE.format(names=names))
        return 0
    if len(argv) < 2:
        print(USAGE.format(names=names), file=sys.stderr)
        return 2
    deviation, text_id, *options = argv
    if deviation not in DEVIATIONS:
        print(f"deviantpeers.py: unknown deviation {deviation!r}; one of: {names}", file=sys.stderr)
        return 2
    try:
        peer_id = int(text_id)
    except ValueError:
        print(f"deviantpeers.py: ID must be a peer ID (a whole number), not {text_id!r}", file=sys.stderr)
        return 2
    run_patched(DEVIATIONS[deviation], peer_id, *options)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
