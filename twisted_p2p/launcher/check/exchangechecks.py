"""The checks of the file exchange on the wire: requests, pieces and haves (SPEC §3)."""
from __future__ import annotations

from typing import Literal

from .observed import Observed, View
from .scorecard import Verdict, check, judged
from .wirechecks import RACE, WIRE, _offered, _sent

HAVE_WITHIN = 3.0  # seconds from a piece to its 'have' (our bound: advice)
HAVE_SEEN = 1.0  # seconds a connection must outlive a piece for its 'have' to be looked for


def _requests(view: View) -> tuple[int, list[str], list[str]]:
    """The requests the peer under test sent on one connection: how many, those sent
    while choked, and those sent while another was outstanding."""
    choked_ones: list[str] = []
    piled: list[str] = []
    count = 0
    choked, choked_at, unchoked_ever = True, None, False
    outstanding: list[int] = []
    for moment, mine, frame in view.timeline():
        if not mine:
            if frame.kind == "choke":
                choked, choked_at = True, moment
                outstanding.clear()  # a choke returns the request
            elif frame.kind == "unchoke":
                choked, unchoked_ever = False, True
            elif frame.kind == "piece" and frame.index in outstanding:
                outstanding.remove(frame.index)
            continue
        if frame.kind != "request":
            continue
        count += 1
        if not unchoked_ever:
            choked_ones.append(f"{view.where(moment)}: request for piece {frame.index} "
                               f"before {view.other} ever unchoked it")
        elif choked and choked_at is not None and moment - choked_at > RACE:
            choked_ones.append(f"{view.where(moment)}: request for piece {frame.index} while choked "
                       f"(since {choked_at - view.run.started:.2f} s)")
        if outstanding:
            piled.append(f"{view.where(moment)}: request for piece {frame.index} while piece {outstanding[0]} "
                       f"was still outstanding ({len(outstanding) + 1} at once)")
        outstanding.append(frame.index)  # type: ignore[arg-type]
    return count, choked_ones, piled


def _judge_requests(observed: Observed, which: Literal[1, 2], good: str) -> Verdict:
    """``which``: the requests' findings to judge, 1 those while choked, 2 those piled up."""
    bad: list[str] = []
    count = 0
    for view in _sent(observed):
        found = _requests(view)
        count += found[0]
        bad += found[which]
    return judged(bad, f"{count} requests, {good}", None if count or bad else "it requested nothing")


@check("requests-when-unchoked", "exchange", "requests only while unchoked by that neighbour",
       "requesting on 'interested' or on a have without looking at the choke state",
       course="request-until-choked", needs=WIRE)
def requests_when_unchoked(observed: Observed) -> Verdict:
    return _judge_requests(observed, 1, "each while unchoked")


@check("one-request-at-a-time", "exchange",
       "one request outstanding per neighbour: the next after the piece (or a choke)",
       "pipelining several requests, as BitTorrent does; this protocol has one whole piece per request",
       course="one-request", needs=WIRE)
def one_request_at_a_time(observed: Observed) -> Verdict:
    return _judge_requests(observed, 2, "never two outstanding to one neighbour")


@check("requests-wanted-pieces", "exchange", "requests only pieces the neighbour has and it lacks",
       "choosing among all pieces instead of those the neighbour announced (bitfield and haves)",
       course="request", needs=WIRE)
def requests_wanted_pieces(observed: Observed) -> Verdict:
    bad, count = [], 0
    for view in _sent(observed):
        holding = observed.holding(view)
        for frame in view.out.frames:
            if frame.kind != "request":
                continue
            count += 1
            if frame.index in holding.announced(frame.sent):
                bad.append(f"{view.where(frame.sent)}: request for piece {frame.index}, which it had announced having")
            elif frame.index not in _offered(view, frame.sent):
                bad.append(f"{view.where(frame.sent)}: request for piece {frame.index}, "
                           f"which {view.other} never offered")
    return judged(bad, f"{count} requests, each for a piece offered and lacking",
                  None if count else "it requested nothing")


def _told(view: View, index: int) -> list[float]:
    """When the peer under test told the other side it has piece ``index``: a have, or a
    bitfield holding it (one sent once the connection opened after the piece came)."""
    return [f.sent for f in view.out.frames if (f.kind == "have" and f.index == index)
            or (f.kind == "bitfield" and f.pieces is not None and index in f.pieces)]


def _haves(observed: Observed) -> list[tuple[View, int, float, list[float]]]:
    """(connection, piece, from when it could be told there, when it was) for every piece
    a peer under test got, on every connection open then and for HAVE_SEEN s more (a
    connection that ended with the piece may not show it). A piece that came before the
    handshakes were through can be told from then on."""
    found = []
    for run, me in observed.theirs():
        holding = observed.holdings[(id(run), me)]
        firsts = {index: holding.first_arrival(index) for _, index in holding.arrivals}
        for index, arrived in firsts.items():
            assert arrived is not None
            for view in observed.views_of(run, me):
                end = view.recording.closed or run.ended_at
                if view.out.bad is None and view.recording.opened <= arrived and end >= arrived + HAVE_SEEN:
                    ready = max([arrived] + [f.delivered for f in view.into.frames[:1]])
                    found.append((view, index, ready, _told(view, index)))
    return found


@check("have-after-piece", "exchange", "a 'have' to every neighbour for each piece it gets",
       "sending 'have' only to the neighbour the piece came from, or not at all", course="have", needs=WIRE)
def have_after_piece(observed: Observed) -> Verdict:
    """Neighbours keep its bitfield from its haves, so each must get one per piece while the
    connection lasts; how soon is have-within-3s's (advice)."""
    bad, haves = [], _haves(observed)
    for view, index, since, told in haves:
        if not told:
            open_for = (view.recording.closed or view.run.ended_at) - since
            bad.append(f"{view.where(since)}: piece {index} arrived; 'have' to {view.other} never "
                       f"(the connection stayed open {open_for:.1f} s more)")
    return judged(bad, f"{len(haves)} haves, one per piece and neighbour", None if haves else "it received no piece")


@check("have-within-3s", "exchange", f"each 'have' within {HAVE_WITHIN:.0f} s of the piece",
       "haves queued behind a timer (the choking round) instead of sent when the piece is stored",
       advice="the course has neighbours update their bitfields from haves but sets no time; 3 s is our bound",
       needs=WIRE)
def have_within_3s(observed: Observed) -> Verdict:
    bad, count = [], 0
    for view, index, since, told in _haves(observed):
        if told:  # a have never sent is have-after-piece's
            count += 1
            if told[0] > since + HAVE_WITHIN:
                bad.append(f"{view.where(since)}: piece {index} arrived; 'have' to {view.other} only "
                           f"{told[0] - since:.1f} s later")
    return judged(bad, f"{count} haves, each within {HAVE_WITHIN:.0f} s", None if count else "it sent no have")


@check("serves-requests", "exchange", "answers each request of a neighbour it unchoked, with that piece's exact bytes, "
       "and nothing else", "answering requests from choked neighbours, a wrong offset into the file, or a piece twice",
       course="serve", needs=WIRE)
def serves_requests(observed: Observed) -> Verdict:
    bad, served = [], 0
    for view in _sent(observed):
        layout = view.run.layout
        common = layout.scenario.common
        unchoked = False
        asked: list[tuple[float, int | None]] = []  # (when, piece) of each request
        owed: list[tuple[float, int | None]] = []
        early: list[tuple[float, int | None]] = []
        for moment, mine, frame in view.timeline():
            if mine and frame.kind in ("choke", "unchoke"):
                unchoked = frame.kind == "unchoke"  # what was asked before a choke may still be answered
                if not unchoked:
                    owed.clear()  # but need not be
                else:  # the relay gets an unchoke after the peer decided it, once what it sent before is
                    # through: behind paced pieces that can be seconds, so a request that came before it
                    # counts as asked once it is answered after the unchoke
                    asked += early
                    early.clear()
            elif not mine and frame.kind == "request":
                if unchoked:
                    asked.append((moment, frame.index))
                    owed.append((moment, frame.index))
                else:
                    early.append((moment, frame.index))
            elif mine and frame.kind == "piece":
                served += 1
                index = frame.index
                assert index is not None
                start = common.piece_offset(index)
                if frame.payload != layout.content[start:start + common.piece_length(index)]:
                    bad.append(f"{view.where(moment)}: piece {index} with the wrong bytes")
                waiting = [each for each in asked if each[1] == index]
                owed = [each for each in owed if each[1] != index]
                if waiting:
                    asked.remove(waiting[0])
                else:
                    bad.append(f"{view.where(moment)}: piece {index}, not asked for while {view.other} was unchoked")
        end = view.recording.closed or view.run.ended_at
        for moment, index in owed:
            if end - moment > 5.0 and view.out.bad is None:
                bad.append(f"{view.where(moment, mine=False)}: request for piece {index} never answered "
                           f"(the connection stayed open {end - moment:.1f} s more)")
    return judged(bad, f"{served} pieces sent, each asked for by an unchoked neighbour, bytes exact",
                  None if served or bad else "it was asked for nothing")
