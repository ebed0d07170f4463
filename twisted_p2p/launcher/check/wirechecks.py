"""The checks read from the wire: every byte a peer under test sent, against SPEC §2-3.

A FAIL rests on the course sentence the check quotes; a margin in seconds is ours and
always in the peer's favour, and where a tighter bound is only our choice it is a check
of its own, marked advice."""
from __future__ import annotations

from .frames import hexdump
from .observed import Holdings, Observed, View
from .runner import ScenarioRun
from .scorecard import Verdict, check, judged

WIRE = ("handshake-bytes", "message-framing", "bitfield")
RACE = 0.5  # seconds a message may be in flight when the other side acts on its own
NOT_INTERESTED_WITHIN = 1.5  # seconds from holding all a neighbour offers to the 'not interested' owed (generous)


def _sent(observed: Observed) -> list[View]:
    return [view for view in observed.views if view.out.frames or view.out.unfinished]


@check("handshake-bytes", "connection",
       "its handshake is 'P2PFILESHARINGPROJ', ten zero bytes, its ID as 4 bytes big-endian",
       "the ten reserved bytes written as the text '0000000000', or the ID written as text or little-endian",
       course="handshake-format")
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


@check("handshake-first", "connection",
       "on a connection it made, it sends its handshake without waiting for the other side's",
       "a dialler reading the neighbour's handshake before writing its own: "
       "two such peers wait for each other for ever",
       course="handshake-dialler")
def handshake_first(observed: Observed) -> Verdict:
    """Only the dialler must write first. An acceptor that reads the dialler's handshake
    before sending its own still sends it before any other message, and cannot deadlock
    (the dialler wrote first): a note. The relay held the other side's bytes up to 1 s,
    so a peer that waits to read shows as a hold ended by the timeout."""
    bad, count, accepted = [], 0, []
    for view in observed.views:
        into = view.recording.direction_from(view.other) if view.other is not None else None
        if into is None or into.released is None or into.released_by == "closed":
            continue
        count += 1
        if into.released_by != "timeout":
            continue
        sent = view.out.frames[0].sent if view.out.frames else None
        when = "never" if sent is None else f"only after it got {view.other}'s, at {sent - view.run.started:.2f} s"
        held = f"(the relay held {view.other}'s for {into.released - view.recording.opened:.1f} s)"
        if view.dialled:
            bad.append(f"{view.where()}: on a connection it dialled, it sent its handshake {when} {held}")
        else:
            accepted.append(f"{view.where()}: it sent its handshake {when} {held}")
    notes = [f"on {len(accepted)} connection{'s' if len(accepted) > 1 else ''} it accepted it read the dialler's "
             f"handshake before sending its own "
             f"(allowed: the dialler writes first), e.g. {accepted[0]}"] if accepted else []
    return judged(bad, f"{count} connections: on each it dialled, its handshake came before it read anything",
                  None if count else "no connection", notes)


@check("message-framing", "connection",
       "every message is length (4 bytes, big-endian, counting type and payload), type, payload",
       "little-endian lengths (Java's ByteBuffer is big-endian by default; C's htonl is needed), "
       "or a length without the type byte",
       course="message-format", needs=("handshake-bytes",))
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
       "bits set LSB-first, a byte too few, or a peer with pieces that sends something else first",
       course="bitfield", needs=("handshake-bytes",))
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
        if first.kind != "bitfield":
            if holding.announced(first.sent) or holding.seed:
                bad.append(f"{view.where(first.sent)}: first message '{first.kind}', but it has pieces: "
                           "a bitfield must come first")
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


@check("bitfield-only-first", "connection", "no bitfield after its first message",
       "re-sending the whole bitfield (every second, or once complete) instead of a 'have' per piece",
       advice="the course sends the bitfield only first, but a later one (as some peers re-send theirs once "
       "complete) can only repeat what its haves told; SPEC §3 accepts it as an update, so nothing breaks",
       needs=("handshake-bytes",))
def bitfield_only_first(observed: Observed) -> Verdict:
    bad, count = [], 0
    for view in _sent(observed):
        frames = view.out.frames[1:]
        count += bool(frames)
        later = next((f for f in frames[1:] if f.kind == "bitfield"), None)
        if later is not None:
            again = sum(1 for f in frames[1:] if f.kind == "bitfield")
            bad.append(f"{view.where(later.sent)}: a bitfield after other messages ({again} in all)")
    return judged(bad, f"{count} connections, at most one bitfield each, first",
                  None if count else "no message was sent")


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


@check("interest", "connection",
       "'interested' when the neighbour has a piece it lacks, 'not interested' when it has none",
       "interest not re-checked after each bitfield, have and downloaded piece",
       course="interest-kept", needs=WIRE)
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
        owed = _not_interested_owed(view, holding, events)
        if owed:
            bad.append(owed)
    return judged(bad, f"{said} interest messages, each justified", None if said or bad else "it never had to say")


def _not_interested_owed(view: View, holding: Holdings, events: list[tuple[float, bool]]) -> str | None:
    """What was wrong if the peer under test came to hold every piece the other side had
    offered (once complete, or earlier) while its last word there was 'interested', and
    said no 'not interested' within NOT_INTERESTED_WITHIN s (None: nothing). Judged only
    where the connection stayed open that long and nothing new was offered meanwhile."""
    end = view.recording.closed or view.run.ended_at
    offers = [f.delivered for f in view.into.frames if f.kind in ("bitfield", "have")]
    moments = sorted({moment for moment, _ in holding.arrivals}
                     | {moment for moment, interested in events if interested})
    for moment in moments:
        said = [interested for sent, interested in events if sent <= moment]
        offered = _offered(view, moment)
        if not said or not said[-1] or offered - holding.held(moment):
            continue
        due = moment + NOT_INTERESTED_WITHIN
        if end < due + RACE:
            return None  # the connection ended too soon to tell
        told = next((sent for sent, interested in events if sent > moment and not interested), None)
        until = due if told is None else min(told, due)
        if any(_offered(view, when) - holding.held(when) for when in offers if moment < when <= until):
            continue  # something new to want came first: interest stood again
        if told is not None and told <= due:
            continue
        what = (f"complete ({holding.total} pieces)" if len(holding.held(moment)) == holding.total
                else f"it held every piece {view.other} had offered ({len(offered)})")
        later = (f"'not interested' only {told - moment:.1f} s later" if told is not None
                 else f"no 'not interested' in the {end - moment:.1f} s the connection stayed open")
        return f"{view.where(moment)}: {what}, but its last word to {view.other} stayed 'interested' ({later})"
    return None


def _lacked_for(view: View, holding: Holdings, seconds: float) -> float | None:
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
       "sending 'interested' again after every have",
       advice="SPEC §3's choice: say interest only when it changes; the course lets a peer say it again", needs=WIRE)
def interest_on_change(observed: Observed) -> Verdict:
    bad, said = [], 0
    for view in _sent(observed):
        events = _interest_events(view)
        said += len(events)
        for (_, before), (moment, now) in zip(events, events[1:]):
            if before == now:
                bad.append(f"{view.where(moment)}: '{'interested' if now else 'not interested'}' twice in a row")
    return judged(bad, f"{said} interest messages, none repeated", None if said else "it never had to say")


def _unchoked_over_time(observed: Observed, run: ScenarioRun, me: int) -> list[tuple[float, int | None, bool]]:
    """(time, neighbour, unchoked) for every choke/unchoke the peer under test sent; a
    connection that closed unchokes nobody from then on (a peer may close one to a
    neighbour that completed, and unchoke another)."""
    changes = []
    for view in observed.views_of(run, me):
        changes += [(f.sent, view.other, f.kind == "unchoke")
                    for f in view.out.frames if f.kind in ("choke", "unchoke")]
        if view.recording.closed is not None:
            changes.append((view.recording.closed, view.other, False))
    changes.sort(key=lambda change: change[0])
    return changes


def _most_unchoked(changes: list[tuple[float, int | None, bool]]) -> tuple[int, float]:
    """The most neighbours unchoked at one time, and the first moment it happened; the
    changes of one round count together, and a state that lasted less than
    :data:`RACE` does not count: the relay records what the peer sent when it reads it,
    so a choke queued behind paced pieces on one connection shows up after an unchoke
    the peer wrote at the same moment on another."""
    state: dict[int | None, bool] = {}
    most, when = 0, 0.0
    for position, (moment, other, unchoked) in enumerate(changes):
        state[other] = unchoked
        following = changes[position + 1][0] if position + 1 < len(changes) else None
        if following is not None and following - moment < RACE:
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


def _first_interest(observed: Observed, run: ScenarioRun, me: int) -> tuple[float, int, float] | None:
    """(when the first 'interested' was handed to it, from whom, until when that interest
    lasted: a 'not interested', the connection's or the peer's end)."""
    firsts = []
    for view in observed.views_of(run, me):
        said = [f for f in view.into.frames if f.kind in ("interested", "not interested")]
        start = next((n for n, f in enumerate(said) if f.kind == "interested"), None)
        if start is None or view.other is None:
            continue
        ends = [f.delivered for f in said[start:] if f.kind == "not interested"]
        ends += [view.recording.closed or run.ended_at, run.peers[me].child.ended or run.ended_at]
        firsts.append((said[start].delivered, view.other, min(ends)))
    return min(firsts, default=None)


def _first_unchoke_after(observed: Observed, run: ScenarioRun, me: int, within: float) -> str | None:
    """What was wrong if its first unchoke came more than ``within`` s after the first
    'interested', while that interest lasted so long (None: nothing)."""
    first = _first_interest(observed, run, me)
    if first is None:
        return None
    interest, other, lasted = first
    unchoke = next((moment for moment, _, unchoked in _unchoked_over_time(observed, run, me) if unchoked), None)
    if lasted < interest + within or (unchoke is not None and unchoke <= interest + within):
        return None
    common = run.layout.scenario.common
    late = "never" if unchoke is None else f"only at {unchoke - run.started:.2f} s"
    return (f"[{run.layout.scenario.name}] {me}: 'interested' from {other} came at {interest - run.started:.2f} s "
            f"and stayed; the first unchoke {late} "
            f"(p={common.unchoking_interval} s, m={common.optimistic_unchoking_interval} s)")


@check("preferred-every-p", "connection",
       "at most k preferred + 1 optimistic neighbours unchoked; an interested neighbour unchoked within p + m s",
       "unchoking every interested neighbour, or no timer for the preferred choice",
       course="preferred", needs=WIRE)
def preferred_every_p(observed: Observed) -> Verdict:
    """Every p s a peer picks k preferred among the interested ones, so an interested
    neighbour cannot wait p + m s (and a second of slack) for anybody to be unchoked."""
    bad, good = [], ""
    for run, me in observed.theirs():
        common = run.layout.scenario.common
        most, when = _most_unchoked(_unchoked_over_time(observed, run, me))
        where = f"[{run.layout.scenario.name}] {me}"
        if most > common.preferred_neighbors + 1:
            bad.append(f"{where} at {when - run.started:.2f} s: {most} neighbours unchoked at once; "
                       f"k={common.preferred_neighbors} preferred + 1 optimistic at most")
        within = common.unchoking_interval + common.optimistic_unchoking_interval + 1.0
        late = _first_unchoke_after(observed, run, me, within)
        if late:
            bad.append(late)
        elif not good and most:
            good = f"{where}: at most {most} unchoked at once (k={common.preferred_neighbors}), the first in time"
    return judged(bad, good, None if good or bad else "no neighbour was ever interested in it")


@check("unchoke-within-p", "connection", "the first unchoke within p s (and a second) of the first 'interested'",
       "the preferred-neighbour timer started only after all neighbours connected, or a first round after m s",
       advice="the course has a preferred choice every p s; how soon the first comes, to the second, is our bound",
       needs=WIRE)
def unchoke_within_p(observed: Observed) -> Verdict:
    bad, count = [], 0
    for run, me in observed.theirs():
        common = run.layout.scenario.common
        loose = common.unchoking_interval + common.optimistic_unchoking_interval + 1.0
        if _first_interest(observed, run, me) is None or _first_unchoke_after(observed, run, me, loose):
            continue  # nobody interested, or preferred-every-p already says it
        count += 1
        late = _first_unchoke_after(observed, run, me, common.unchoking_interval + 1.0)
        if late:
            bad.append(late)
    return judged(bad, f"{count} peers under test, each unchoked within p s",
                  None if count else "no neighbour was ever interested in it")


@check("optimistic-every-m", "connection", "one more choked, interested neighbour unchoked every m s",
       "the optimistic timer never started, or it picks only among neighbours that are already unchoked",
       course="optimistic", needs=WIRE, scenarios=("seed", "two-seeds"))
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
