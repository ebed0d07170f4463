"""The checks read from the wire: every byte a peer under test sent, against SPEC §2-3."""
from __future__ import annotations

from typing import Optional

from .frames import hexdump
from .observed import Holdings, Observed, View
from .runner import ScenarioRun
from .scorecard import Verdict, check, judged

WIRE = ("handshake-bytes", "message-framing", "bitfield")
RACE = 0.5  # seconds a message may be in flight when the other side acts on its own
ROUND = 0.05  # seconds within which chokes and unchokes belong to one round


def _sent(observed: Observed) -> list[View]:
    return [view for view in observed.views if view.out.frames or view.out.unfinished]


@check("handshake-bytes", "connection", "its handshake is 'P2PFILESHARINGPROJ', ten zero bytes, its ID as 4 bytes big-endian",
       "the ten reserved bytes written as the text '0000000000', or the ID written as text or little-endian")
def handshake_bytes(observed: Observed) -> Verdict:
    bad, good = [], ""
    for view in _sent(observed):
        first = view.out.frames[0] if view.out.frames else None
        if first is None:
            continue
        if first.kind == "bad" and first.offset == 0:
            bad.append(f"{view.where(first.sent)}: {first.problem}: {hexdump(first.head, 32)}")
        elif first.kind == "handshake" and first.problem:
            bad.append(f"{view.where(first.sent)}: {first.problem}: {hexdump(first.head, 32)}")
        elif first.kind == "handshake" and not good:
            good = f"{len(_sent(observed))} connections, e.g. {view.where(first.sent)}: {hexdump(first.head, 32)}"
    return judged(bad, good, None if good or bad else "no handshake was sent")


@check("handshake-first", "connection", "it sends its handshake at once, without waiting for the other side's",
       "reading the neighbour's handshake before writing its own: two such peers wait for each other for ever")
def handshake_first(observed: Observed) -> Verdict:
    bad, count = [], 0
    for view in observed.views:
        into = view.recording.direction_from(view.other) if view.other is not None else None
        if into is None or into.released is None or into.released_by == "closed":
            continue
        count += 1
        if into.released_by == "timeout":
            sent = view.out.frames[0].sent if view.out.frames else None
            when = "never" if sent is None else f"only after it got {view.other}'s, at {sent - view.run.started:.2f} s"
            kind = "dialled" if view.dialled else "accepted"
            bad.append(f"{view.where()}: on a connection it {kind}, it sent its handshake {when} "
                       f"(the relay held {view.other}'s for {into.released - view.recording.opened:.1f} s)")
    return judged(bad, f"{count} connections: its handshake came before it read anything", None if count else "no connection")


@check("message-framing", "connection", "every message is length (4 bytes, big-endian, counting type and payload), type, payload",
       "little-endian lengths (Java's ByteBuffer is big-endian by default; C's htonl is needed), or a length without the type byte",
       needs=("handshake-bytes",))
def message_framing(observed: Observed) -> Verdict:
    bad, messages = [], 0
    for view in _sent(observed):
        messages += max(0, len(view.out.frames) - 1)
        frame = view.out.bad
        if frame is not None and frame.offset > 0 and not frame.problem.startswith("a bitfield"):
            nth = len(view.out.frames) - 1
            bad.append(f"{view.where(frame.sent)}: message {nth} after the handshake: {frame.problem}: "
                       f"bytes {hexdump(frame.head, 16)}")
    return judged(bad, f"{messages} messages framed exactly", None if messages or bad else "no message was sent")


@check("bitfield", "connection", "its first message is a bitfield of ceil(n/8) bytes, high bit first, spare bits 0, "
       "with the pieces it has (a peer with none may skip it)",
       "bits set LSB-first, a byte too few, or the bitfield sent late", needs=("handshake-bytes",))
def bitfield(observed: Observed) -> Verdict:
    bad, good = [], ""
    for view in _sent(observed):
        frames = view.out.frames[1:]
        if not frames:
            continue
        holding = observed.holding(view)
        first = frames[0]
        if first.kind == "bad" and first.problem.startswith("a bitfield"):
            bad.append(f"{view.where(first.sent)}: {first.problem}: bytes {hexdump(first.head, 16)}")
            continue
        if first.kind == "bad":
            continue  # message-framing says what
        later = next((f for f in frames[1:] if f.kind == "bitfield"), None)
        if later is not None:
            bad.append(f"{view.where(later.sent)}: a bitfield after its first message ('{first.kind}')")
        if first.kind != "bitfield":
            if holding.announced(first.sent) or holding.seed:
                bad.append(f"{view.where(first.sent)}: first message '{first.kind}', but it has pieces: a bitfield must come first")
            continue
        assert first.pieces is not None
        pieces = set(first.pieces)
        if holding.seed and len(pieces) != holding.total:
            bad.append(f"{view.where(first.sent)}: a seed's bitfield with {len(pieces)} of {holding.total} pieces: "
                       f"bytes {hexdump(first.head, 16)}")
        elif not pieces <= holding.held(first.sent):
            extra = sorted(pieces - holding.held(first.sent))
            bad.append(f"{view.where(first.sent)}: the bitfield claims pieces it was never given: {extra[:8]}")
        elif not good:
            good = f"{view.where(first.sent)}: {hexdump(first.head, 16)} ({len(pieces)} of {holding.total} pieces)"
    return judged(bad, good, None if good or bad else "no bitfield was sent (allowed for a peer with no pieces)")


def _interest_events(view: View) -> list[tuple[float, bool]]:
    return [(f.sent, f.kind == "interested") for f in view.out.frames if f.kind in ("interested", "not interested")]


def _offered(view: View, moment: float) -> set[int]:
    """What the other side had said it has, by what was handed to the peer under test."""
    pieces: set[int] = set()
    for frame in view.into.frames:
        if frame.delivered > moment:
            break
        if frame.kind == "bitfield" and frame.pieces is not None:
            pieces |= set(frame.pieces)
        elif frame.kind == "have" and frame.index is not None:
            pieces.add(frame.index)
    return pieces


@check("interest", "connection", "'interested' when the neighbour has a piece it lacks, 'not interested' when it has none",
       "interest not re-checked after each bitfield, have and downloaded piece",
       needs=WIRE)
def interest(observed: Observed) -> Verdict:
    bad, said = [], 0
    for view in _sent(observed):
        holding = observed.holding(view)
        events = _interest_events(view)
        said += len(events)
        for moment, interested in events:
            if interested and not _offered(view, moment) - holding.announced(moment):
                bad.append(f"{view.where(moment)}: 'interested', but {view.other} had offered nothing it had not "
                           f"announced having")
            if not interested:
                wanted = _offered(view, moment - RACE) - holding.held(moment)
                if wanted:
                    bad.append(f"{view.where(moment)}: 'not interested' while {view.other} had pieces it lacked: "
                               f"{sorted(wanted)[:8]}")
        wanted_long = _lacked_for(view, holding, 3.0)
        if wanted_long is not None and not any(interested for _, interested in events):
            bad.append(f"{view.where(wanted_long)}: never 'interested' in {view.other}, which had pieces it lacked "
                       f"for over 3 s")
        if events and events[-1][1] and view.run.peers[view.me].complete_at is not None:
            done = view.run.peers[view.me].complete_at
            closed = view.recording.closed
            if done is not None and (closed is None or closed - done > 2.0):
                bad.append(f"{view.where(done)}: complete, but its last word to {view.other} stayed 'interested'")
    return judged(bad, f"{said} interest messages, each justified", None if said or bad else "it never had to say")


def _lacked_for(view: View, holding: Holdings, seconds: float) -> Optional[float]:
    """A moment from which the other side offered a piece the peer under test still lacked
    ``seconds`` later, with the connection still open then (None if there is none)."""
    end = view.recording.closed or view.run.ended_at
    for frame in view.into.frames:
        if frame.kind not in ("bitfield", "have"):
            continue
        moment = frame.delivered
        if moment + seconds > end:
            break
        if _offered(view, moment) - holding.held(moment + seconds):
            return moment
    return None


@check("interest-on-change", "connection", "'interested' / 'not interested' only when its interest changes",
       "sending 'interested' again after every have; the original text allows it, SPEC's choice is only on change",
       required=False, needs=WIRE)
def interest_on_change(observed: Observed) -> Verdict:
    bad, said = [], 0
    for view in _sent(observed):
        events = _interest_events(view)
        said += len(events)
        for (_, before), (moment, now) in zip(events, events[1:]):
            if before == now:
                bad.append(f"{view.where(moment)}: '{'interested' if now else 'not interested'}' twice in a row")
    return judged(bad, f"{said} interest messages, none repeated", None if said else "it never had to say")


def _unchoked_over_time(observed: Observed, run: ScenarioRun, me: int) -> list[tuple[float, Optional[int], bool]]:
    """(time, neighbour, unchoked) for every choke/unchoke the peer under test sent."""
    changes = []
    for view in observed.views_of(run, me):
        changes += [(f.sent, view.other, f.kind == "unchoke") for f in view.out.frames if f.kind in ("choke", "unchoke")]
    changes.sort(key=lambda change: change[0])
    return changes


def _most_unchoked(changes: list[tuple[float, Optional[int], bool]]) -> tuple[int, float]:
    """The most neighbours unchoked at one time, and the first moment it happened; the
    changes of one round (sent within :data:`ROUND`) count together."""
    state: dict[Optional[int], bool] = {}
    most, when = 0, 0.0
    for position, (moment, other, unchoked) in enumerate(changes):
        state[other] = unchoked
        following = changes[position + 1][0] if position + 1 < len(changes) else None
        if following is not None and following - moment < ROUND:
            continue
        count = sum(state.values())
        if count > most:
            most, when = count, moment
    return most, when


def _interested_count(observed: Observed, run: ScenarioRun, me: int, moment: float) -> int:
    """Neighbours whose last word to the peer under test by ``moment`` was 'interested'."""
    count = 0
    for view in observed.views_of(run, me):
        said = [f.kind == "interested" for f in view.into.frames
                if f.kind in ("interested", "not interested") and f.delivered <= moment]
        if said and said[-1] and (view.recording.closed is None or view.recording.closed > moment):
            count += 1
    return count


@check("preferred-every-p", "connection", "at most k preferred + 1 optimistic neighbours unchoked; the first unchoke "
       "within p s of an 'interested'", "unchoking every interested neighbour, or no timer for the preferred choice",
       needs=WIRE)
def preferred_every_p(observed: Observed) -> Verdict:
    bad, good = [], ""
    for run, me in observed.theirs():
        common = run.layout.scenario.common
        changes = _unchoked_over_time(observed, run, me)
        most, when = _most_unchoked(changes)
        where = f"[{run.layout.scenario.name}] {me}"
        if most > common.preferred_neighbors + 1:
            bad.append(f"{where} at {when - run.started:.2f} s: {most} neighbours unchoked at once; "
                       f"k={common.preferred_neighbors} preferred + 1 optimistic at most")
        first_interest = min((f.delivered for v in observed.views_of(run, me) for f in v.into.frames
                              if f.kind == "interested"), default=None)
        if first_interest is None:
            continue
        first_unchoke = next((moment for moment, _, unchoked in changes if unchoked), None)
        limit = first_interest + common.unchoking_interval + 1.0
        if (first_unchoke is None and (run.peers[me].child.ended or run.ended_at) > limit) or \
                (first_unchoke is not None and first_unchoke > limit):
            late = "never" if first_unchoke is None else f"only at {first_unchoke - run.started:.2f} s"
            bad.append(f"{where}: 'interested' came at {first_interest - run.started:.2f} s, the first unchoke {late} "
                       f"(p={common.unchoking_interval} s)")
        elif not good and first_unchoke is not None:
            good = (f"{where}: first unchoke {first_unchoke - first_interest:.2f} s after the first 'interested'; "
                    f"at most {most} unchoked at once (k={common.preferred_neighbors})")
    return judged(bad, good, None if good or bad else "no neighbour was ever interested in it")


@check("optimistic-every-m", "connection", "one more choked, interested neighbour unchoked every m s",
       "the optimistic timer never started, or it picks only among neighbours that are already unchoked",
       needs=WIRE, scenarios=("seed", "two-seeds"))
def optimistic_every_m(observed: Observed) -> Verdict:
    bad, good = [], ""
    for run, me in observed.theirs():
        common = run.layout.scenario.common
        k, m, p = common.preferred_neighbors, common.optimistic_unchoking_interval, common.unchoking_interval
        where = f"[{run.layout.scenario.name}] {me}"
        # Observable when more than k were interested for long enough.
        moments = sorted({f.delivered for v in observed.views_of(run, me) for f in v.into.frames})
        crowded = next((t for t in moments if _interested_count(observed, run, me, t) > k
                        and _interested_count(observed, run, me, t + m + p + 0.5) > k), None)
        if crowded is None:
            continue
        most, when = _most_unchoked(_unchoked_over_time(observed, run, me))
        if most <= k:
            bad.append(f"{where}: from {crowded - run.started:.2f} s over {k} neighbours were interested for over "
                       f"m+p={m + p} s, yet never more than {most} were unchoked at once: no optimistic unchoke")
        elif not good:
            good = f"{where}: {most} unchoked at once at {when - run.started:.2f} s (k={k}, so one optimistic)"
    return judged(bad, good, None if good or bad else "never more than k neighbours interested for long enough")
