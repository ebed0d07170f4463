"""``p2p-swarm audit --rubric``: the log lines that show each item a grader scores.

A student demonstrating a peer on video shows the grader, item by item, where the logs
prove it; among thousands of lines, this picks a few representative ones from what the
audit has already read (it opens no file), says what each shows, and says in one line
what the logs cannot show.
"""
from __future__ import annotations

import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from twisted_p2p.config import SwarmConfig
from twisted_p2p.eventlog import SENTENCES, TIME_FORMAT

from .reading import PeerLog, Record, other_peer, own_records
from .result import AuditResult
from .sessions import Session, pieces_held

ITEMS = (
    ("start-up", 35, "reads both config files, connects to every earlier peer, stops only when all peers are done"),
    ("after connection", 30, "handshake, bitfield, interested / not interested, k preferred neighbors every p s, "
     "an optimistically unchoked neighbor every m s"),
    ("file exchange", 30, "request, have, piece (downloads with counts), not interested, the complete file"),
    ("stop", 5, "every peer completes and exits"),
)
SHOWN_PER_PEER = 5  # connection lines printed in full per peer; the rest by line number
WIDTH = 110


def why(text: str, first: str = " " * 7, rest: str = " " * 7) -> list[str]:
    """Explanations wrap under their line; log lines are printed whole, to be found in the file."""
    return textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False)


def not_shown(text: str) -> list[str]:
    return why(f"not shown: {text}", " " * 3)


def note(text: str) -> list[str]:
    return why(f"note: {text}", " " * 3)


def _time(record: Record) -> float:
    return float("inf") if record.time is None else record.time


def _ids(ids: Iterable[object]) -> str:
    return ", ".join(map(str, ids))


def text_of(record: Record) -> str:
    """The line as the log has it: our stamp is exact; another format's is not kept."""
    event = record.event
    sentence = SENTENCES[event.kind].format(me=event.me, other=event.other, index=event.index, count=event.count,
                                            others=",".join(map(str, event.others)))
    if record.time is None or record.resolution > 0.001:
        return f"[time as in the log]: {sentence}"
    whole, millis = divmod(round(record.time * 1000), 1000)
    return f"{time.strftime(TIME_FORMAT, time.localtime(whole))}.{millis:03d}: {sentence}"


@dataclass(frozen=True)
class _View:
    """The swarm as the rubric reads it: the logs with a sentence of their own, and sessions."""

    config: SwarmConfig
    logs: dict[int, PeerLog]
    records: dict[int, list[Record]]
    sessions: dict[int, list[Session]]
    start: float | None  # the earliest readable time in any log

    def since(self, record: Record) -> str:
        if record.time is None or self.start is None:
            return "at an unreadable time"
        return f"at +{record.time - self.start:.3f} s"

    def show(self, record: Record, explanation: str = "") -> list[str]:
        return [f"   {self.logs[record.event.me].file}:{record.line}  {text_of(record)}"] + why(explanation)

    def each(self, kind: str, peer: int | None = None) -> list[Record]:
        """Such lines of one peer, or of every peer (in PeerInfo order)."""
        return [r for me, rs in self.records.items() if peer in (None, me) for r in rs if r.event.kind == kind]

    def first(self, kind: str, keep: Callable[[Record], bool] = lambda r: True) -> Record | None:
        """The earliest such line in the swarm (by time, then PeerInfo order and line)."""
        order = {peer.peer_id: n for n, peer in enumerate(self.config.peers)}
        return min((r for r in self.each(kind) if keep(r)), default=None,
                   key=lambda r: (_time(r), order[r.event.me], r.line))


def absent(log: PeerLog) -> list[str]:
    """One line for a log that shows nothing: missing, unreadable or without a sentence."""
    reason = log.findings[0].rule if not log.present and log.findings else "no line is a sentence of its peer"
    return not_shown(f"{log.file}: {reason}: nothing of peer {log.peer_id} can be shown")


def startup(view: _View) -> list[str]:
    common, peers = view.config.common, view.config.peers
    out = note(f"Common.cfg: k = {common.preferred_neighbors}, p = {common.unchoking_interval} s, "
               f"m = {common.optimistic_unchoking_interval} s, {common.file_name} of {common.file_size} bytes = "
               f"{common.num_pieces} pieces of {common.piece_size}; PeerInfo.cfg: {len(peers)} peers, seed "
               f"{_ids(p.peer_id for p in peers if p.has_file) or 'none'}. The logs show both read: each peer dials "
               "the peers listed before it (below) and the download counts end at the number of pieces (item 3)")
    for peer in peers:
        out += connections(view, peer.peer_id) if peer.peer_id in view.records else absent(view.logs[peer.peer_id])
    return out + waits_for_all(view)


def connections(view: _View, me: int) -> list[str]:
    """A peer's 'makes a connection' lines to every earlier peer, and where the other side logs them."""
    earlier = [p.peer_id for p in view.config.peers_before(me)]
    if not earlier:
        accepted = view.each("connect_from", me)
        if not accepted:
            return not_shown(f"{me} is listed first and no peer connects to it")
        return view.show(accepted[0], f"{me} is listed first: it dials no one; the later peers connect to it (is "
                         f"connected from {_ids(r.event.other for r in accepted)} on lines "
                         f"{_ids(r.line for r in accepted)})")
    dialled = {r.event.other: r for r in reversed(view.each("connect_to", me))}  # the first line with each
    shown = sorted((dialled[other] for other in earlier if other in dialled), key=lambda r: r.line)
    out = [line for record in shown[:SHOWN_PER_PEER] for line in view.show(record)]
    answers = [f"{view.logs[other_peer(r)].file}:{theirs[0].line}" for r in shown
               if (theirs := [a for a in view.each("connect_from", r.event.other) if a.event.other == me])]
    if shown:
        more = shown[SHOWN_PER_PEER:]
        out += why(f"{me} makes a TCP connection to " + ("every peer" if len(shown) == len(earlier) else
                   f"{len(shown)} of the {len(earlier)} peers") + f" listed before it ({_ids(earlier)})"
                   + (f", the rest on lines {_ids(r.line for r in more)}" if more else "")
                   + (f"; the other side logs 'is connected from' on {_ids(answers)}" if answers else ""))
    missing = [other for other in earlier if other not in dialled]
    return out + (not_shown(f"{view.logs[me].file} has no 'Peer {me} makes a connection to Peer N.' for N = "
                            f"{_ids(missing)}") if missing else [])


def waits_for_all(view: _View) -> list[str]:
    """Stops only when all are done: every log goes on to the swarm's last completion."""
    last = max((r for r in view.each("complete") if r.time is not None), default=None, key=_time)
    if last is None:
        return not_shown("no completion line with a readable time in any log, so the logs cannot show "
                         "the peers staying until every peer is done")
    ends = {me: records[-1] for me, records in view.records.items() if me != last.event.me}
    early = {me: r for me, r in ends.items() if r.time is not None and r.time < _time(last) - r.resolution}
    later = [f"{me} {view.since(r)}" for me, r in ends.items() if me not in early]
    out = view.show(last, f"the last completion in the swarm ({view.since(last)})" + (
        f"; the other logs go on to it or later (their last lines: {_ids(later)}), so they stopped only when "
        "every peer was done" if later else ""))
    for me, record in early.items():
        out += not_shown(f"{view.logs[me].file} ends {_time(last) - _time(record):.3f} s before it (line "
                         f"{record.line}): the log does not show peer {me} waiting for every peer")
    return out


#: How far from a whole number of rounds a choice may be logged: scheduling, and the
#: time the round itself takes (tens of ms on a loaded two-core machine).
ROUND_SLACK = 0.1
#: Lines that answer a choice in the neighbours' logs ('is unchoked by') come this soon.
ANSWER_WITHIN = 0.5
ROUNDS_SHOWN = 3  # consecutive choices printed one by one


def _gap(seconds: float, interval: int, name: str) -> str:
    rounds = round(seconds / interval)
    if rounds >= 1 and abs(seconds - rounds * interval) <= ROUND_SLACK + 0.001:
        return f"{name} = {interval} s" if rounds == 1 else \
            f"{rounds} rounds of {name} = {interval} s (no change at the round{'s' if rounds > 2 else ''} between)"
    return f"not a whole number of {name} = {interval} s rounds: a choice made between rounds"


def answers(view: _View, choice: Record) -> list[Record]:
    """The 'is unchoked by' / 'is choked by' lines the neighbours logged for one choice."""
    chooser, at = choice.event.me, _time(choice)
    return sorted((r for kind in ("unchoked", "choked") for r in view.each(kind)
                   if r.event.other == chooser and r.time is not None
                   and 0 <= r.time - at + ROUND_SLACK <= ANSWER_WITHIN),
                  key=lambda r: (_time(r), r.event.me))


def periodic(view: _View, kind: str, interval: int, name: str, what: str) -> list[str]:
    """The peer with the most such lines in one run: a few consecutive choices one by one,
    each with the unchokes and chokes its neighbours logged for it, and the spacing of
    all its choices measured from the stamps against the interval."""
    runs = [[r for r in session.records if r.event.kind == kind and r.time is not None]
            for sessions in view.sessions.values() for session in sessions]
    mine = max(runs, key=len, default=[])  # within a run: a restarted peer chooses afresh
    if not mine:
        return not_shown(f"no '{what}' line with a readable time in any log (one is written when the choice "
                         "changes; the swarm may have ended before one was needed: a larger file, a smaller k or "
                         "'p2p-swarm run --demo-file', which paces the swarm, shows it)")
    me = mine[0].event.me
    k = view.config.common.preferred_neighbors
    size = f" ({len(mine[0].event.others)}; k = {k})" if mine[0].event.others else ""
    gaps = [_time(b) - _time(a) for a, b in zip(mine, mine[1:])]
    off = [gap for gap in gaps if "between rounds" in _gap(gap, interval, name)]
    summary = (f"; {me} logs {len(mine)} such lines, {len(gaps) - len(off)} of {len(gaps)} gaps a whole number "
               f"of {name} = {interval} s (within {ROUND_SLACK:g} s)" if gaps else "")
    out = view.show(mine[0], f"{me} chooses its {what}{size}{summary}")
    out += _one_by_one(view, mine[0], kind)
    for before, after in list(zip(mine, mine[1:]))[: ROUNDS_SHOWN - 1]:
        out += view.show(after, f"{_time(after) - _time(before):.3f} s after its previous choice (line "
                         f"{before.line}): {_gap(_time(after) - _time(before), interval, name)}")
        out += _one_by_one(view, after, kind)
    if not gaps:
        out += not_shown(f"no log has two '{what}' lines in one run, so there is no interval to compare with {name}")
    if off:
        out += not_shown(f"{len(off)} of {me}'s {len(gaps)} gaps are not whole rounds (e.g. {off[0]:.3f} s): "
                         f"the log shows choices between the {name}-second rounds")
    return out


def _unchoked_before(view: _View, choice: Record) -> set[int]:
    """Whom the chooser had unchoked just before ``choice``, as its own log says: its
    previous preferred neighbors and its optimistic neighbor then."""
    before = [r for r in view.each("preferred", choice.event.me) + view.each("optimistic", choice.event.me)
              if r.time is not None and (r.time, r.line) < (_time(choice), choice.line)]
    last = {kind: max((r for r in before if r.event.kind == kind), default=None, key=lambda r: (_time(r), r.line))
            for kind in ("preferred", "optimistic")}
    return (set(last["preferred"].event.others) if last["preferred"] else set()) | (
        {other_peer(last["optimistic"])} if last["optimistic"] else set())


def _one_by_one(view: _View, choice: Record, kind: str) -> list[str]:
    """The neighbours' side of one choice, each line with what it answers: for a
    preferred choice the newly preferred unchoked and the others choked, for an
    optimistic one its neighbour unchoked."""
    out = []
    chosen = set(choice.event.others) if kind == "preferred" else {other_peer(choice)}
    for record in answers(view, choice):
        unchoked = record.event.kind == "unchoked"
        if unchoked != (record.event.me in chosen) or (kind == "optimistic" and not unchoked):
            continue  # another round's answer, at the same moment
        because = ("the optimistically unchoked neighbor" if kind == "optimistic" else
                   "newly preferred" if unchoked else "no longer preferred, nor optimistic")
        out += view.show(record, f"   {choice.event.me} {'unchoked' if unchoked else 'choked'} "
                                 f"{record.event.me}: {because}")
        chosen.discard(record.event.me)
    already = chosen & _unchoked_before(view, choice)
    if already:
        out += why(f"{_ids(sorted(already))} unchoked already: no 'unchoke' is sent again", " " * 10, " " * 10)
    if chosen - already:
        out += why(f"no 'is unchoked by {choice.event.me}' line near this time in the log of "
                   f"{_ids(sorted(chosen - already))}", " " * 10, " " * 10)
    return out


def after_connection(view: _View) -> list[str]:
    common, seeds = view.config.common, {p.peer_id for p in view.config.peers if p.has_file}
    out = note("the handshake and the bitfield are not in the event log. The 'makes a connection' / 'is connected "
               "from' lines of item 1 are written once the handshake checked out, and the bitfield is the first "
               "message after it (the interest lines below answer it). Show them in your diagnostic log, or "
               "capture them (the 'P2PFILESHARINGPROJ' header shows as text):") + \
        [f"         sudo tcpdump -A -i any tcp port {view.config.peers[0].port}"]
    for kind, explain in (("interested", "{other} wants a piece {me} has (seen in its bitfield or a 'have')"),
                          ("not_interested", "{other} needs none of {me}'s pieces")):
        first = view.first(kind)
        out += view.show(first, explain.format(me=first.event.me, other=first.event.other)
                         + (" (a seed)" if first.event.other in seeds else "")) if first else \
            not_shown(f"no '{kind.replace('_', ' ')}' line in any log")
    out += periodic(view, "preferred", common.unchoking_interval, "p", "preferred neighbors")
    sizes = [len(r.event.others) for r in view.each("preferred")]
    if sizes:
        out += note(f"all logs: {len(sizes)} preferred-neighbor lines, at most {max(sizes)} "
                    f"ID{'s' if max(sizes) != 1 else ''} each (k = {common.preferred_neighbors})")
    return out + periodic(view, "optimistic", common.optimistic_unchoking_interval, "m",
                          "optimistically unchoked neighbor")


def exchange(view: _View) -> list[str]:
    pieces = view.config.common.num_pieces
    out = note("'request' is not in the event log: each 'has downloaded the piece' line answers one request, "
               "sent after an 'is unchoked by' line (item 2)")
    have = view.first("have")
    if have:
        sent = [r for r in view.each("downloaded", have.event.other) if r.event.index == have.event.index]
        out += view.show(have, f"{have.event.other} tells its neighbors it now has piece {have.event.index}"
                         + (f" (downloaded on {view.logs[other_peer(have)].file}:{sent[0].line})" if sent else ""))
    else:
        out += not_shown("no 'have' line in any log")
    got = {p.peer_id: view.each("downloaded", p.peer_id) for p in view.config.peers if not p.has_file}
    chosen = max((p for p in got if got[p]), default=None, key=lambda p: len({r.event.other for r in got[p]}))
    if chosen is None:
        return out + not_shown("no log has a 'has downloaded the piece' line")
    mine, sources = got[chosen], Counter(r.event.other for r in got[chosen])
    out += view.show(mine[0], f"{chosen}'s first piece: piece {mine[0].event.index} from {mine[0].event.other}, "
                     f"count {mine[0].event.count}")
    out += view.show(mine[-1], f"its last piece: count {mine[-1].event.count} of {pieces}, one more per piece, "
                     f"{len(mine)} pieces from {_ids(f'{s} ({n})' for s, n in sorted(sources.items()))}")
    done = view.each("complete", chosen)
    if not done:
        return out + not_shown(f"{view.logs[chosen].file} has no completion line")
    out += view.show(done[-1], f"{chosen} has all {pieces} pieces: the complete file")
    told = view.first("not_interested", lambda r: r.event.other == chosen and _time(r) >= _time(done[-1]))
    return out + (view.show(told, f"{chosen} needs nothing more from {told.event.me} now that it has every piece")
                  if told else not_shown(f"no log has a 'not interested' from {chosen} after it completed"))


def stop(view: _View) -> list[str]:
    pieces, out, done = view.config.common.num_pieces, [], []
    for peer in view.config.peers:
        if peer.has_file:
            out += note(f"peer {peer.peer_id} is a seed (hasFile 1): it starts with the file and logs no completion")
        elif peer.peer_id not in view.records:
            out += absent(view.logs[peer.peer_id])
        elif view.each("complete", peer.peer_id):
            done.append(view.each("complete", peer.peer_id)[-1])
        else:
            out += not_shown(f"peer {peer.peer_id} has no completion line (it ends with "
                             f"{pieces_held(view.sessions[peer.peer_id], pieces)} of {pieces} pieces)")
    everyone = len(done) == sum(not p.has_file for p in view.config.peers)
    for n, record in enumerate(sorted(done, key=_time), 1):
        out += view.show(record, f"peer {record.event.me} complete {view.since(record)}" + (
            "" if n < len(done) else ": the last in the swarm, now every peer has the file" if everyone
            else ": the last completion logged"))
    return out + note("exiting is not in the event log: show each peer's process ending after the last completion")


def rubric(result: AuditResult) -> list[str]:
    """The lines to print: each rubric item with its evidence and what each line shows."""
    records = {p: own_records(log) for p, log in result.logs.items() if log.present and p in result.sessions}
    records = {p: rs for p, rs in records.items() if rs}
    start = min((r.time for rs in records.values() for r in rs if r.time is not None), default=None)
    view = _View(result.config, result.logs, records, result.sessions, start)
    out = ["rubric: each item with the log lines that show it, as file:line and the line, then what it shows",
           "(+S s: seconds since the first line of any log)"]
    for number, ((name, weight, what), part) in enumerate(zip(ITEMS, (startup, after_connection, exchange, stop)), 1):
        out += [""] + why(f"{number}. {name} ({weight}%): {what}", "", " " * 3) + part(view)
    return out + [""]
