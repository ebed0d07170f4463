"""The checks read from the processes, the files and the event logs of the peers under test.

The logs are judged by the audit's rules: a finding of a rule the course requires
(:func:`audit.rules.is_required`) fails its check, any other is told as a note. Where one
of our peers closed a connection to a peer under test, what its log shows of that
connection (a second 'is connected from' after our redial) is a note too.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator

from twisted_p2p.launcher.audit import reading as audit_reading
from twisted_p2p.launcher.audit import required as audit_rules  # the rules by name, and which the course requires
from twisted_p2p.layout import data_path

from .observed import Observed
from .robust import Probe
from .runner import PeerRun, ScenarioRun
from .scenarios import FILE_NAME
from .scorecard import Verdict, check, judged
from .wirechecks import WIRE

CONNECTION_RULES = {audit_rules.MISSING_CONNECTION, audit_rules.WRONG_DIRECTION, audit_rules.CONNECTION_TWICE}
CHOKING_RULES = {audit_rules.TOO_MANY_PREFERRED, audit_rules.OPTIMISTIC_TOO_SOON}
DOWNLOAD_RULES = {
    audit_rules.COUNT_NOT_RISING, audit_rules.COUNT_TOO_HIGH, audit_rules.DOWNLOADED_TWICE,
    audit_rules.SEED_DOWNLOADED, audit_rules.NO_COMPLETION, audit_rules.COMPLETION_TWICE,
    audit_rules.EARLY_COMPLETION, audit_rules.DOWNLOAD_AFTER_COMPLETION, audit_rules.HAVE_NOT_DOWNLOADED,
    audit_rules.SOURCE_LACKED_PIECE,
}
TIME_RULES = {audit_reading.NO_DATE, audit_reading.NO_TIME, audit_reading.UNREAD_TIME}
ROBUST = "the course never sends bad input, so it says nothing of it; surviving it is SPEC §4's robustness"
EXIT_SOON = 3.0  # seconds after the last peer completed within which a peer exits cleanly


def _swarms(observed: Observed) -> Iterator[ScenarioRun]:
    return (run for run in observed.runs if not run.layout.scenario.robust)


def _theirs(observed: Observed) -> Iterator[tuple[ScenarioRun, PeerRun]]:
    for run in observed.runs:
        for peer in run.theirs():
            yield run, peer


def _where(run: ScenarioRun, peer_id: int) -> str:
    return f"[{run.layout.scenario.name}] {peer_id}"


def _audit(observed: Observed, wanted: set[str], other: bool = False) -> tuple[list[str], list[str]]:
    """The findings of the rules in ``wanted`` (with ``other``: of every rule no other log
    check reads) on each peer under test's logs: (required ones, notes)."""
    known = CONNECTION_RULES | CHOKING_RULES | DOWNLOAD_RULES | TIME_RULES
    bad, notes = [], []
    for run in _swarms(observed):
        for peer_id, findings in observed.log_findings[id(run)].items():
            complete = run.peers[peer_id].complete_at is not None
            closes = observed.closes(run, peer_id)
            for finding in findings:
                if finding.rule == audit_rules.NO_COMPLETION and not complete:
                    continue  # the swarm did not give it every piece
                if not ((finding.rule in wanted) or (other and finding.rule not in known)):
                    continue
                line = f"[{run.layout.scenario.name}] theirs-{peer_id}/{finding}"
                if closes and finding.rule in CONNECTION_RULES:
                    notes.append(f"{line} (after {closes[0]})")
                elif audit_rules.is_required(finding):
                    bad.append(line)
                else:
                    notes.append(line)
    return bad, notes


def _unseen(observed: Observed, why: str) -> str:
    """Why a check saw nothing: ``why``, and one of our peers' closes if a swarm stalled on it."""
    return why + observed.stalled_by_us()


@check("starts", "startup", "it starts in the course layout (Common.cfg and PeerInfo.cfg in its working directory) "
       "and listens on its port", "reading the config from another directory, or a port other than PeerInfo.cfg's",
       course="listens")
def starts(observed: Observed) -> Verdict:
    bad, good = [], ""
    for run, peer in _theirs(observed):
        child, where = peer.child, _where(run, peer.peer_id)
        if child.started is None:
            continue
        if peer.listening_assumed:
            listened_after = peer.listening_at - child.started  # type: ignore[operator]
            good = good or f"{where}: taken to listen after {listened_after:.2f} s (no /proc/net/tcp to look in)"
        elif peer.listening_at is not None:
            good = good or (f"{where}: listening on port {run.layout.real[peer.peer_id]} "
                            f"{peer.listening_at - child.started:.2f} s after start")
        elif child.ended is not None and not child.stopped_by_kit:
            bad.append(f"{where}: exited with status {child.status} after {child.ended - child.started:.2f} s, "
                       f"never listening: {child.last_line or '(no output)'}")
        else:
            bad.append(f"{where}: not listening on port {run.layout.real[peer.peer_id]} ({run.ended_why}); "
                       f"last output: {child.last_line or '(none)'}")
    return judged(bad, good, None if good or bad else "nothing was started")


@check("connects", "startup", "it connects to every peer listed before it and takes connections from every later one",
       "dialling only the peer listed just before, or not accepting", course="start-order", needs=("starts",))
def connects(observed: Observed) -> Verdict:
    bad, count = [], 0
    for run in _swarms(observed):
        ids = run.layout.scenario.ids
        for me in run.layout.scenario.theirs:
            views = observed.views_of(run, me)
            for other in ids:
                if other == me or run.held_back(other):
                    continue
                dials = ids.index(other) < ids.index(me)
                ok = [v for v in views if v.other == other and v.dialled == dials and v.out.frames]  # started in order
                count += 1
                if not ok:
                    verb = "never connected to" if dials else "never answered a connection from"
                    bad.append(f"{_where(run, me)}: {verb} {other} (listed {'before' if dials else 'after'} it)")
    return judged(bad, f"{count} connections, each dialled by the later peer and answered",
                  None if count else "no swarm ran")


@check("retries-earlier", "startup", "started before an earlier peer listens, it keeps trying and reaches it",
       "one connection attempt per earlier peer at start, with no retry when it is refused",
       advice="the course has peers started in order, so a first attempt always finds the earlier peer up; "
       "retrying is SPEC §3's choice, which lets peers start in any order", needs=("starts",), scenarios=("retry",))
def retries_earlier(observed: Observed) -> Verdict:
    bad, good = [], ""
    for run in observed.runs_for("retries-earlier"):
        ids = run.layout.scenario.ids
        for peer in run.theirs():
            where, child = _where(run, peer.peer_id), peer.child
            if child.started is None:
                continue  # starts says why
            for other in ids[: ids.index(peer.peer_id)]:
                up = run.peers[other].listening_at
                reached = [v for v in observed.views_of(run, peer.peer_id)
                           if v.other == other and v.dialled and v.out.frames]
                if reached and up is not None:
                    good = good or (f"{where}: started {up - child.started:.1f} s before {other} listened, "
                                    f"reached it {reached[0].recording.opened - up:.2f} s after")
                elif child.ended is not None and not child.stopped_by_kit and (up is None or child.ended < up):
                    bad.append(f"{where}: exited (status {child.status}) {child.ended - child.started:.2f} s after "
                               f"its start, before {other} (listed before it) was listening, never reaching it: "
                               f"{child.last_line or '(no output)'}")
                elif up is None:
                    continue  # ours never came up (it was stopped before): nothing to reach
                elif child.ended is not None and not child.stopped_by_kit:
                    bad.append(f"{where}: exited (status {child.status}) {child.ended - up:.2f} s after {other} began "
                               f"to listen, never having reached it: {child.last_line or '(no output)'}")
                else:
                    bad.append(f"{where}: never reached {other}, which began to listen "
                               f"{up - child.started:.1f} s after it started ({run.ended_why})")
    return judged(bad, good, None if good or bad else "the retry scenario did not run with it started")


@check("log-connections", "startup",
       "its log has 'makes a connection to' each earlier peer, 'is connected from' each later one",
       "logging connections on the wrong side, or once per message instead of once per connection",
       course="log-connections", needs=("starts",) + WIRE)
def log_connections(observed: Observed) -> Verdict:
    bad, notes = _audit(observed, CONNECTION_RULES)
    return judged(bad, "every connection logged once, in the right direction", notes=notes)


@check("waits-for-all", "startup", "it does not stop before every peer has the whole file",
       "stopping when its own file is complete, or when its neighbours say 'not interested'",
       course="terminate", needs=("starts",))
def waits_for_all(observed: Observed) -> Verdict:
    bad, good, notes = [], "", []
    for run, peer in _theirs(observed):
        child = peer.child
        if run.layout.scenario.robust or run.layout.scenario.only or child.ended is None or child.stopped_by_kit:
            continue
        closes = observed.closes(run, peer.peer_id)
        if run.all_complete_at is None and closes:
            notes.append(f"{_where(run, peer.peer_id)}: exited (status {child.status}) in a swarm that stalled "
                         f"after {closes[0]}; not judged")
        elif run.all_complete_at is None or child.ended < run.all_complete_at:
            waiting = [str(p.peer_id) for p in run.peers.values()
                       if p.complete_at is None or p.complete_at > child.ended]
            bad.append(f"{_where(run, peer.peer_id)}: exited (status {child.status}) "
                       f"at {child.ended - run.started:.2f} s, "
                       f"before {', '.join(waiting)} had the whole file")
        else:
            good = good or (f"{_where(run, peer.peer_id)}: exited {child.ended - run.all_complete_at:.2f} s "
                            "after the last peer completed")
    return judged(bad, good, None if good or bad else _unseen(observed, "it never exited on its own"), notes)


@check("log-format", "connection", "each event-log line's time has the date, hour, minute and second (in any format)",
       "a time of day without the date", course="log-time", needs=("starts",))
def log_format(observed: Observed) -> Verdict:
    bad, notes = _audit(observed, TIME_RULES)
    return judged(bad, "every time stamp has the date, hour, minute and second", notes=notes)


@check("log-sentences", "connection", "it writes log_peer_ID.log with the course's sentences, and nothing else",
       "no log_peer_ID.log in the working directory, or debug output and other sentences in the event log",
       course="log", needs=("starts",))
def log_sentences(observed: Observed) -> Verdict:
    bad, notes = _audit(observed, set(), other=True)
    return judged(bad, "the log is there, every line one of the course's sentences", notes=notes)


@check("log-choking", "connection", "its log shows at most k preferred neighbours and optimistic changes m s apart",
       "logging the preferred list each round even when unchanged is fine; more than k or a faster timer is not",
       course="preferred", needs=("starts",) + WIRE)
def log_choking(observed: Observed) -> Verdict:
    bad, notes = _audit(observed, CHOKING_RULES)
    return judged(bad, "preferred and optimistic lines within k and m", notes=notes)


@check("log-downloads", "exchange",
       "a 'downloaded the piece' line per piece with the count rising by one, then one completion line",
       "counting pieces per neighbour, logging a piece twice, or no 'has downloaded the complete file' line",
       course="log-downloads", needs=("starts",) + WIRE)
def log_downloads(observed: Observed) -> Verdict:
    bad, notes = _audit(observed, DOWNLOAD_RULES)
    return judged(bad, "counts, pieces and completion lines right", notes=notes)


@check("file-exact", "exchange", "its file is byte for byte the seed's at the end (a seed's is unchanged)",
       "writing pieces at the wrong offset, or a short last piece padded to PieceSize",
       course="layout", needs=("starts",) + WIRE)
def file_exact(observed: Observed) -> Verdict:
    bad, count = [], 0
    for run, peer in _theirs(observed):
        scenario = run.layout.scenario
        if scenario.robust or scenario.only or (peer.complete_at is None and not scenario.role(peer.peer_id).seed):
            continue
        count += 1
        path = data_path(run.layout.their_dir(peer.peer_id), peer.peer_id, FILE_NAME)
        try:
            data = path.read_bytes()
        except OSError as exc:
            bad.append(f"{_where(run, peer.peer_id)}: peer_{peer.peer_id}/{FILE_NAME}: {exc.strerror}")
            continue
        if data != run.layout.content:
            bad.append(f"{_where(run, peer.peer_id)}: peer_{peer.peer_id}/{FILE_NAME} differs: "
                       f"{_difference(data, run)}")
    digest = hashlib.sha256(observed.runs[0].layout.content).hexdigest()[:16]
    return judged(bad, f"{count} files exact (SHA-256 {digest}...)" if count else "",
                  None if count else _unseen(observed, "no peer under test got the whole file"))


def _difference(data: bytes, run: ScenarioRun) -> str:
    content, common = run.layout.content, run.layout.scenario.common
    if len(data) != len(content):
        return f"{len(data):,} bytes; {len(content):,} expected"
    first = next(i for i in range(len(data)) if data[i] != content[i])
    return f"first at byte {first:,} (piece {first // common.piece_size})"


@check("exits", "stop", "it exits by itself once every peer has the file, and leaves no process",
       "no termination check, a thread that is not a daemon, or a server socket still accepting",
       course="no-runaway", needs=("starts",))
def exits(observed: Observed) -> Verdict:
    """Still running when the kit gives up (``exit_within`` s after the last peer
    completed: many rounds of p and m) is not terminating; how soon is exits-cleanly's."""
    bad, good = [], ""
    for run, peer in _theirs(observed):
        child, where = peer.child, _where(run, peer.peer_id)
        if run.layout.scenario.robust or run.layout.scenario.only or run.all_complete_at is None:
            continue
        if child.stopped_by_kit:
            bad.append(f"{where}: still running {run.ended_at - run.all_complete_at:.1f} s "
                       "after the last peer completed; stopped by the kit")
        elif peer.leftovers:
            bad.append(f"{where}: exited, but left processes running in its session (killed by the kit)")
        elif child.ended is not None and not good:
            good = f"{where}: exited {child.ended - run.all_complete_at:.2f} s after the last peer completed"
    return judged(bad, good, None if good or bad else _unseen(observed, "no swarm with it completed"))


@check("exits-cleanly", "stop", f"it exits with status 0 within {EXIT_SOON:.0f} s of the last peer completing",
       "an exception on the way out (a socket closed twice), or a termination check on a slow timer",
       advice="the course asks that peers terminate, not how soon or with which status; a prompt exit with "
       "status 0 is what a clean end looks like", needs=("starts",))
def exits_cleanly(observed: Observed) -> Verdict:
    bad, count = [], 0
    for run, peer in _theirs(observed):
        child, where = peer.child, _where(run, peer.peer_id)
        if run.layout.scenario.robust or run.layout.scenario.only or run.all_complete_at is None \
                or child.ended is None or child.stopped_by_kit:
            continue  # exits judges whether it ended at all
        count += 1
        after = child.ended - run.all_complete_at
        if child.status != 0:
            bad.append(f"{where}: exit status {child.status} {after:.2f} s after the last peer completed: "
                       f"{child.last_line or '(no output)'}")
        elif after > EXIT_SOON:
            bad.append(f"{where}: exited {after:.2f} s after the last peer completed")
    return judged(bad, f"{count} exits, each with status 0 in time", None if count else "it never exited on its own")


def _probes(observed: Observed, names: tuple[str, ...]) -> list[tuple[ScenarioRun, Probe]]:
    return [(run, each) for run in observed.runs for each in run.probes if each.name in names]


def _survived(observed: Observed, names: tuple[str, ...]) -> Verdict:
    bad, good = [], []
    for run, each in _probes(observed, names):
        where = f"[{run.layout.scenario.name}] {each.name} ({each.sent})"
        if not each.alive:
            bad.append(f"{where}: it crashed (exit status {each.status})")
        elif not each.responsive:
            bad.append(f"{where}: it hung: a new neighbour got no handshake within 3 s")
        else:
            closed = ("kept the connection" if each.closed_after is None
                      else f"closed it after {each.closed_after:.2f} s")
            good.append(f"{where}: {closed}, still serving")
    return judged(bad, "; ".join(good), None if good or bad else "not probed (it did not start)")


@check("unsolicited-piece", "exchange", "a piece it never requested does not change its file",
       "writing every 'piece' message to disk without checking it was requested",
       advice="the course never sends a piece unasked, so it says nothing of one; a file kept intact is SPEC §4's "
       "robustness", needs=("starts",), scenarios=("robust",))
def unsolicited_piece(observed: Observed) -> Verdict:
    bad, good = [], ""
    for run, each in _probes(observed, ("unsolicited piece",)):
        if not each.file_intact:
            bad.append(f"[{run.layout.scenario.name}] piece 0 of bytes 0xaa, never requested: its file changed")
        else:
            good = f"[{run.layout.scenario.name}] piece 0 of bytes 0xaa, never requested: its file is unchanged"
    return judged(bad, good, None if good or bad else "not probed (it did not start)")


@check("bad-messages", "robustness", "a length of 0 or an unknown type: it closes that connection and carries on",
       "reading the type without checking the length, or an unchecked enum", advice=ROBUST,
       needs=("starts",), scenarios=("robust",))
def bad_messages(observed: Observed) -> Verdict:
    return _survived(observed, ("length 0", "unknown type"))


@check("huge-length", "robustness", "a 4 GiB length prefix: it neither allocates it nor waits for it",
       "allocating a buffer of the announced length before checking it against PieceSize + 5", advice=ROBUST,
       needs=("starts",), scenarios=("robust",))
def huge_length(observed: Observed) -> Verdict:
    return _survived(observed, ("4 GiB length",))


@check("garbage-and-silence", "robustness",
       "random bytes, or a connection that never says anything: others are still served",
       "one blocking read per peer on the main thread, or no handshake timeout", advice=ROBUST,
       needs=("starts",), scenarios=("robust",))
def garbage_and_silence(observed: Observed) -> Verdict:
    return _survived(observed, ("garbage", "silence"))


@check("file-survives", "robustness", "its file is unchanged after every other bad input",
       "a write on any 'piece' message", advice=ROBUST, needs=("starts",), scenarios=("robust",))
def file_survives(observed: Observed) -> Verdict:
    bad, count = [], 0
    for run in observed.runs:
        intact_before = True
        for each in run.probes:
            count += 1
            if intact_before and not each.file_intact and each.name != "unsolicited piece":
                bad.append(f"[{run.layout.scenario.name}] after '{each.name}' ({each.sent}): its file changed")
            intact_before = each.file_intact
    return judged(bad, f"unchanged after {count} bad inputs", None if count else "not probed (it did not start)")
