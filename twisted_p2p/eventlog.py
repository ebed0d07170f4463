"""The event log of SPEC §5: exactly its sentences, one per line, nothing else.

The templates below are the one place the sentences are spelled; the writer and the
parser (used by the launcher and the auditor) are both made from them.
"""
from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime

SENTENCES = {
    "connect_to": "Peer {me} makes a connection to Peer {other}.",
    "connect_from": "Peer {me} is connected from Peer {other}.",
    "preferred": "Peer {me} has the preferred neighbors {others}.",
    "optimistic": "Peer {me} has the optimistically unchoked neighbor {other}.",
    "unchoked": "Peer {me} is unchoked by {other}.",
    "choked": "Peer {me} is choked by {other}.",
    "have": "Peer {me} received the 'have' message from {other} for the piece {index}.",
    "interested": "Peer {me} received the 'interested' message from {other}.",
    "not_interested": "Peer {me} received the 'not interested' message from {other}.",
    "downloaded": ("Peer {me} has downloaded the piece {index} from {other}. "
                   "Now the number of pieces it has is {count}."),
    "complete": "Peer {me} has downloaded the complete file.",
}

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class TextSink(Protocol):
    """Where the event log writes: a text file, or standard output (an :class:`~twisted_p2p.outlet.Outlet`)."""

    def write(self, text: str, /) -> object: ...

    def flush(self) -> None: ...
_FIELD_PATTERNS = {
    "me": r"(?P<me>\d+)",
    "other": r"(?P<other>\d+)",
    "others": r"(?P<others>\d+(?:,\d+)*)",
    "index": r"(?P<index>\d+)",
    "count": r"(?P<count>\d+)",
}
# The parser's patterns are compiled on its first use, not at import: a peer imports
# this module only to write its log, and compiling the twelve patterns was more than a
# millisecond of every peer's start-up.
_LINE: re.Pattern[str] | None = None
_PATTERNS: dict[str, re.Pattern[str]] = {}


def _sentence_pattern(template: str) -> re.Pattern[str]:
    pattern = re.escape(template)
    for field, regex in _FIELD_PATTERNS.items():
        pattern = pattern.replace(re.escape("{" + field + "}"), regex)
    return re.compile(pattern)


def _compile_patterns() -> re.Pattern[str]:
    """Compile the line pattern and one pattern per sentence; the line pattern. The
    sentence patterns are in place before ``_LINE`` is set, so a thread that finds
    ``_LINE`` set finds them too."""
    global _LINE
    _PATTERNS.update((kind, _sentence_pattern(template)) for kind, template in SENTENCES.items())
    _LINE = re.compile(r"(?P<time>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}): (?P<sentence>.*)")
    return _LINE


@dataclass(frozen=True)
class Event:
    """One parsed log line."""

    time: float
    kind: str
    me: int
    other: int | None = None
    others: tuple[int, ...] = ()
    index: int | None = None
    count: int | None = None


def _opening(template: str) -> str:
    """The words after 'Peer {me} ' up to the next placeholder: they tell the sentences apart."""
    return template.split("{me} ", 1)[1].split("{", 1)[0]


# Checked in this order, longest first, so that a line is tried against one pattern only.
_OPENINGS = sorted(((_opening(template), kind) for kind, template in SENTENCES.items()),
                   key=lambda pair: -len(pair[0]))


@functools.lru_cache(maxsize=4096)
def _second(text: str) -> float | None:
    """'YYYY-MM-DD HH:MM:SS' as local epoch seconds; a log has few distinct seconds, and
    strptime is most of the cost of reading a line."""
    try:
        return time.mktime(time.strptime(text, TIME_FORMAT))
    except (ValueError, OverflowError):
        return None


def parse_time(text: str) -> float | None:
    """``YYYY-MM-DD HH:MM:SS.mmm`` (local time, as :func:`format_time` writes it) as
    epoch seconds; None if it is not one."""
    second = _second(text[:19])
    if second is None or len(text) != 23 or text[19] != "." or not text[20:].isdigit():
        return None
    return second + int(text[20:]) / 1000


def parse_line(line: str) -> Event | None:
    """The event on ``line``, or None if it is not exactly a SPEC §5 sentence."""
    match = (_LINE or _compile_patterns()).fullmatch(line.rstrip("\r\n"))
    if not match:
        return None
    stamp = parse_time(match["time"])
    if stamp is None:
        return None
    sentence = match["sentence"]
    words = sentence.split(" ", 2)
    if len(words) < 3:
        return None
    kind = next((kind for opening, kind in _OPENINGS if words[2].startswith(opening)), None)
    if kind is None:
        return None
    found = _PATTERNS[kind].fullmatch(sentence)
    if not found:
        return None
    fields = found.groupdict()
    return Event(
        time=stamp,
        kind=kind,
        me=int(fields["me"]),
        other=int(fields["other"]) if fields.get("other") else None,
        others=tuple(int(p) for p in fields["others"].split(",")) if fields.get("others") else (),
        index=int(fields["index"]) if fields.get("index") else None,
        count=int(fields["count"]) if fields.get("count") else None,
    )


def format_time(seconds: float) -> str:
    """Local time with milliseconds, SPEC §5's ``YYYY-MM-DD HH:MM:SS.mmm``."""
    whole, millis = divmod(int(seconds * 1000), 1000)
    return f"{_format_second(whole)}.{millis:03d}"


@functools.lru_cache(maxsize=4)
def _format_second(whole: int) -> str:
    return time.strftime(TIME_FORMAT, time.localtime(whole))


def _split_at_index(sentence: str) -> tuple[str, str]:
    """A sentence with its other fields filled, split around its ``{index}``."""
    opening, _, ending = sentence.partition("{index}")
    return opening, ending


class EventLog:
    """Writes one peer's SPEC §5 sentences, stamped with the injected clock's time.

    Lines are flushed once per turn of the reactor rather than one by one (a busy peer
    writes thousands a second), so a watcher sees them at once and a crash can lose
    only the lines of the turn it interrupted. ``echo``, if given, gets every line
    but the received haves too (the launcher reads it from a remote peer), or with
    ``echoed`` only the lines of those kinds (``--echo-summary``: the completion).
    """

    def __init__(self, me: int, stream: TextSink, clock: IReactorTime, echo: TextSink | None = None,
                 echoed: frozenset[str] | None = None) -> None:
        self.me = me
        self._streams: list[TextSink] = [stream] if echo is None else [stream, echo]
        self._echoed = echoed
        self._file_only = self._streams[:1]
        self._clock = clock
        self._flush_call: IDelayedCall | None = None
        self._millis = -1  # the millisecond whose stamp is in _stamp
        self._stamp = ""
        #: "Peer me received the 'have' message from other for the piece " per neighbour:
        #: a swarm of n peers writes n - 1 have lines per piece, the one line that grows.
        self._have_openings: dict[int, str] = {}
        self._have_ending = ""

    def _time(self) -> str:
        """The stamp of now; formatted once per millisecond, not once per line."""
        now = self._clock.seconds()
        millis = int(now * 1000)
        if millis != self._millis:
            self._millis = millis
            self._stamp = format_time(now)
        return self._stamp

    def _emit(self, line: str, streams: list[TextSink]) -> None:
        for stream in streams:
            stream.write(line)
        if self._flush_call is None:
            self._flush_call = self._clock.callLater(0, self.flush)

    def _write(self, kind: str, **fields: object) -> None:
        streams = self._streams if self._echoed is None or kind in self._echoed else self._file_only
        self._emit(f"{self._time()}: {SENTENCES[kind].format(me=self.me, **fields)}\n", streams)

    def flush(self) -> None:
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        for stream in self._streams:
            stream.flush()

    def connection_made(self, other: int) -> None:
        self._write("connect_to", other=other)

    def connected_from(self, other: int) -> None:
        self._write("connect_from", other=other)

    def preferred(self, others: Iterable[int]) -> None:
        self._write("preferred", others=",".join(str(peer) for peer in sorted(others)))

    def optimistic(self, other: int) -> None:
        self._write("optimistic", other=other)

    def unchoked_by(self, other: int) -> None:
        self._write("unchoked", other=other)

    def choked_by(self, other: int) -> None:
        self._write("choked", other=other)

    def have(self, other: int, index: int) -> None:
        opening = self._have_openings.get(other)
        if opening is None:
            sentence = SENTENCES["have"].format(me=self.me, other=other, index="{index}")
            opening, self._have_ending = _split_at_index(sentence)
            self._have_openings[other] = opening
        # To the file only: n - 1 of every n lines a peer writes, that a launcher following
        # it over ssh would skip (eight hosts: most of what ssh carried and encrypted).
        self._streams[0].write(f"{self._time()}: {opening}{index}{self._have_ending}\n")
        if self._flush_call is None:
            self._flush_call = self._clock.callLater(0, self.flush)

    def interested(self, other: int) -> None:
        self._write("interested", other=other)

    def not_interested(self, other: int) -> None:
        self._write("not_interested", other=other)

    def downloaded(self, index: int, other: int, count: int) -> None:
        self._write("downloaded", index=index, other=other, count=count)

    def complete(self) -> None:
        self._write("complete")
