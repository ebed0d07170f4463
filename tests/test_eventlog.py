"""EventLog writes exactly the SPEC §5 sentences, stamped to the millisecond, in order.

The have line and the stamp take shortcuts (a cached opening per neighbour, a stamp
formatted once per millisecond); these tests hold them to the templates.
"""
from __future__ import annotations

import io

from twisted.internet.task import Clock

from twisted_p2p.eventlog import SENTENCES, EventLog, format_time, parse_line

START = 1_700_000_000.0


def lines_of(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_have_lines_are_the_template_sentence():
    clock = Clock()
    clock.advance(START)
    stream = io.StringIO()
    log = EventLog(1003, stream, clock)
    for other, index in ((1001, 0), (1002, 7), (1001, 1279), (1002, 0)):
        log.have(other, index)
    expected = [f"{format_time(START)}: {SENTENCES['have'].format(me=1003, other=other, index=index)}"
                for other, index in ((1001, 0), (1002, 7), (1001, 1279), (1002, 0))]
    assert lines_of(stream) == expected
    assert [(e.kind, e.me, e.other, e.index) for e in map(parse_line, lines_of(stream))] == [
        ("have", 1003, 1001, 0), ("have", 1003, 1002, 7), ("have", 1003, 1001, 1279), ("have", 1003, 1002, 0)]


def test_the_stamp_follows_the_clock_to_the_millisecond():
    clock = Clock()
    clock.advance(START)
    stream = io.StringIO()
    log = EventLog(1001, stream, clock)
    stamps = []
    for step in (0.0, 0.0004, 0.0007, 0.0011, 0.998, 1.5, 3600.0):
        clock.advance(step)
        log.have(1002, 1)
        log.interested(1002)
        stamps.append(format_time(clock.seconds()))
    written = [line.split(": ", 1)[0] for line in lines_of(stream)]
    assert written == [stamp for stamp in stamps for _ in range(2)]


def test_every_kind_keeps_its_order_and_all_lines_are_flushed():
    clock = Clock()
    clock.advance(START)
    stream = io.StringIO()
    echo = io.StringIO()
    log = EventLog(1001, stream, clock, echo=echo)
    log.connection_made(1002)
    log.have(1002, 3)
    log.unchoked_by(1002)
    log.downloaded(3, 1002, 1)
    log.have(1003, 4)
    log.preferred([1003, 1002])
    log.complete()
    kinds = [e.kind for e in map(parse_line, lines_of(stream))]
    assert kinds == ["connect_to", "have", "unchoked", "downloaded", "have", "preferred", "complete"]
    # the echo (a launcher following the peer) gets all but the received haves
    assert echo.getvalue().splitlines() == [line for line in lines_of(stream) if parse_line(line).kind != "have"]
    assert clock.getDelayedCalls()  # one flush at the end of this turn
    clock.advance(0)
    assert not clock.getDelayedCalls()
