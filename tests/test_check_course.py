"""The kit judges by the course's text: a check is required exactly when it quotes a
course sentence, a margin or bound of ours is advice in a check of its own, only a
dialler must write its handshake first, the logs fail only on the audit's required
findings, and what followed a connection one of our peers closed is blamed on nobody."""
from __future__ import annotations

import pytest
from test_check_judging import (
    ALL,
    HS,
    NOTHING,
    SEED,
    N,
    connection,
    piece,
    swarm,
    their_leecher_with_the_seed,
    their_seed_with,
    verdicts,
)

from twisted_p2p import wire
from twisted_p2p.bitfield import PieceSet
from twisted_p2p.launcher import course
from twisted_p2p.launcher.check.command import our_closes
from twisted_p2p.launcher.check.observed import Observed
from twisted_p2p.launcher.check.runner import Closed
from twisted_p2p.launcher.check.scenarios import SCENARIOS
from twisted_p2p.launcher.check.scorecard import CHECKS, FAIL, NA, PASS, Result, Verdict, check, evaluate, ok, render

RETRY = next(s for s in SCENARIOS if s.name == "retry")  # ours 1001, theirs 1002 started first


def test_a_check_is_required_exactly_when_it_quotes_a_course_sentence():
    assert CHECKS
    for each in CHECKS:
        assert each.required == (each.course is not None), each.key
        if each.required:
            assert each.course in course.QUOTES and course.quote(each.course) in each.basis
        else:
            assert each.advice and each.basis.startswith("advice: "), each.key
    with pytest.raises(ValueError, match="give course= .* or advice="):
        check("both", "connection", "t", "h", course="have", advice="ours")
    with pytest.raises(ValueError, match="give course="):
        check("neither", "connection", "t", "h")
    with pytest.raises(ValueError, match="no course sentence 'made-up'"):
        check("unknown", "connection", "t", "h", course="made-up")


def test_an_advice_failure_is_shown_but_never_fails_the_run(layout):
    lay = layout()
    repeated = their_leecher_with_the_seed(lay, theirs=[(0.2, wire.INTERESTED), (0.3, wire.INTERESTED)], ours=[])
    results = [r for r in evaluate(Observed([swarm(lay, [repeated], complete=False)])) if r.check.key in
               ("interest-on-change", "interest", "handshake-bytes")]
    assert [r.verdict.status for r in results] == [PASS, PASS, FAIL]  # in registry order
    assert ok(results)
    lines = render(results)
    row = next(line for line in lines if "interest-on-change" in line)
    assert row.split()[:3] == ["FAIL", "advice", "interest-on-change"]
    assert any(line.strip().startswith("advice: SPEC §3's choice") for line in lines)
    assert lines[-1] == "2 passed, 1 failed (0 required, 1 advice), 0 not applicable: every required check passes"
    broken = [Result(results[0].check, Verdict(FAIL, ["bad bytes"], 1))]
    assert not ok(broken)
    assert any(line.strip() == f"course: {course.quote('handshake-format')}" for line in render(broken))


def test_only_a_dialler_that_reads_first_fails_an_acceptor_doing_so_is_a_note(layout):
    lay = layout()
    dialler = their_leecher_with_the_seed(lay, theirs=[], ours=[])  # 1002 (theirs) dialled our 1001
    dialler.down.released, dialler.down.released_by = 1.0, "timeout"  # 1001's bytes were held until the timeout
    verdict = verdicts(swarm(lay, [dialler], complete=False))["handshake-first"]
    assert verdict.status == FAIL and "on a connection it dialled" in verdict.evidence[0]
    acceptor = connection(1003, 1002, [(0.1, 1003, HS(1003) + NOTHING), (1.05, 1002, HS(1002) + NOTHING)])
    acceptor.up.released, acceptor.up.released_by = 1.0, "timeout"  # our 1003's bytes reached it only after 1 s
    verdict = verdicts(swarm(lay, [acceptor], complete=False))["handshake-first"]
    assert verdict.status == PASS, verdict
    assert verdict.notes and "on 1 connection it accepted it read the dialler's handshake" in verdict.notes[0]


def test_a_late_bitfield_is_advice_and_the_first_one_still_judged(layout):
    lay = layout()
    again = their_leecher_with_the_seed(lay, theirs=[(0.5, wire.encode_have(3)), (1.0, NOTHING)], ours=[])
    found = verdicts(swarm(lay, [again], complete=False))
    assert found["bitfield"].status == PASS
    assert found["bitfield-only-first"].status == FAIL
    assert "at 1.00 s: a bitfield after other messages (1 in all)" in found["bitfield-only-first"].evidence[0]


def test_a_late_first_unchoke_is_advice_and_only_a_missing_one_fails_preferred(layout):
    # their seed 1001, p = 1, m = 2: the required bound is p + m + 1 = 4 s after 'interested' (0.2 s)
    lay = layout(SEED)
    late = their_seed_with(lay, {1002: [(2.7, 1001, wire.UNCHOKE)]})
    found = verdicts(swarm(lay, late, complete=False))
    assert found["preferred-every-p"].status == PASS
    assert found["unchoke-within-p"].status == FAIL
    assert "the first unchoke only at 2.70 s" in found["unchoke-within-p"].evidence[0]
    never = verdicts(swarm(lay, their_seed_with(lay, {1002: []}), complete=False))
    assert never["preferred-every-p"].status == FAIL
    assert "the first unchoke never" in never["preferred-every-p"].evidence[0]
    assert never["unchoke-within-p"].status == NA  # one fault, blamed once
    withdrawn = their_seed_with(lay, {1002: [(1.0, 1002, wire.NOT_INTERESTED)]})
    assert verdicts(swarm(lay, withdrawn, complete=False))["preferred-every-p"].status == NA  # nobody to unchoke


def test_a_late_have_is_advice_and_only_a_missing_one_fails(layout):
    lay = layout()
    talks = lambda when: [  # noqa: E731
        their_leecher_with_the_seed(lay, theirs=[(0.2, wire.INTERESTED), (0.4, wire.encode_request(5)),
                                                 (0.7, wire.encode_have(5))],
                                    ours=[(0.3, wire.UNCHOKE), (0.6, piece(lay, 5))]),
        connection(1003, 1002, [(0.1, 1003, HS(1003) + NOTHING), (0.1, 1002, HS(1002) + NOTHING)]
                   + ([(when, 1002, wire.encode_have(5))] if when else []))]
    late = verdicts(swarm(lay, talks(4.6), complete=False))
    assert late["have-after-piece"].status == PASS
    assert late["have-within-3s"].status == FAIL
    assert "'have' to 1003 only 4.0 s later" in late["have-within-3s"].evidence[0]
    never = verdicts(swarm(lay, talks(None), complete=False))
    assert never["have-after-piece"].status == FAIL and never["have-within-3s"].status == PASS


def _ended(run, peer_id, at, status=0, by_kit=False):
    child = run.peers[peer_id].child
    child.started, child.ended, child.status, child.stopped_by_kit = 0.0, at, status, by_kit


def test_exiting_at_all_is_required_how_soon_and_with_which_status_is_advice(layout):
    lay = layout()
    run = swarm(lay, [], complete=True)  # the last peer completed at 9.0 s
    _ended(run, 1002, 9.5, status=1)
    found = verdicts(run)
    assert found["exits"].status == PASS
    assert found["exits-cleanly"].status == FAIL and "exit status 1" in found["exits-cleanly"].evidence[0]
    run = swarm(lay, [], complete=True)
    _ended(run, 1002, 19.0, by_kit=True)
    found = verdicts(run)
    assert found["exits"].status == FAIL and "stopped by the kit" in found["exits"].evidence[0]
    assert found["exits-cleanly"].status == NA


def test_a_swarm_that_stalled_after_our_peer_closed_a_connection_blames_nothing_of_theirs(layout):
    lay = layout()
    zeros = b"P2PFILESHARINGPROJ" + b"0" * 10 + (1002).to_bytes(4, "big")
    talk = connection(1002, 1001, [(0.1, 1002, zeros + NOTHING), (0.1, 1001, HS(1001) + ALL)], closed=0.2)
    run = swarm(lay, [talk], complete=False)
    run.closed_by_us.append(Closed(0.2, 1001, 1002, "peer 1002 sent a bitfield after other messages"))
    _ended(run, 1002, 5.0)  # it gave up on the stalled swarm
    found = verdicts(run)
    assert found["waits-for-all"].status == NA
    assert ("in a swarm that stalled after our peer 1001 closed the connection to theirs-1002 at 0.20 s"
            in found["waits-for-all"].notes[0])
    assert found["requests-when-unchoked"].status == NA  # after the bad handshake, and the stall is ours
    assert "our peer 1001 closed the connection to theirs-1002 at 0.20 s: peer 1002 sent a bitfield" \
        in found["requests-when-unchoked"].evidence[0]
    assert found["handshake-bytes"].status == FAIL  # what it sent is still judged
    observed = Observed([run])
    card = render(evaluate(observed), closes=our_closes(observed))
    assert card[1].startswith("Connections our peers closed")
    assert card[2].strip() == ("[leecher] our peer 1001 closed the connection to theirs-1002 at 0.20 s: "
                               "peer 1002 sent a bitfield after other messages")


def test_the_retry_scenario_is_read_by_its_own_check_alone(layout):
    lay = layout(RETRY)
    never = swarm(lay, [], complete=False)
    never.peers[1002].child.started = 0.0
    never.peers[1001].listening_at = 1.6
    found = verdicts(never)
    assert found["retries-earlier"].status == FAIL and "never reached 1001" in found["retries-earlier"].evidence[0]
    assert not next(c for c in CHECKS if c.key == "retries-earlier").required
    assert found["connects"].status == NA  # no swarm of the course's order ran: connects is not judged on it
    reached = swarm(lay, [connection(1002, 1001, [(1.7, 1002, HS(1002) + NOTHING), (1.7, 1001, HS(1001) + ALL)])],
                    complete=False)
    reached.peers[1002].child.started, reached.peers[1001].listening_at = 0.0, 1.6
    assert verdicts(reached)["retries-earlier"].status == PASS


def test_a_peer_that_exits_when_an_earlier_peer_is_not_up_is_told_it_does_not_retry(layout):
    lay = layout(RETRY)
    gone = swarm(lay, [], complete=False)
    _ended(gone, 1002, 0.5, status=1)  # refused by 1001, which the kit had not started yet
    gone.peers[1002].child.last_line = "cannot connect to peer 1001: Connection refused; exiting"
    gone.peers[1002].listening_at = gone.peers[1001].listening_at = None
    verdict = verdicts(gone)["retries-earlier"]
    assert verdict.status == FAIL
    assert verdict.evidence == ["[retry] 1002: exited (status 1) 0.50 s after its start, before 1001 (listed before "
                                "it) was listening, never reaching it: cannot connect to peer 1001: Connection "
                                "refused; exiting"]


def test_a_check_outside_the_item_that_made_the_item_n_a_is_shown_and_fails_the_run(layout):
    lay = layout()
    crashed = swarm(lay, [], complete=False)
    _ended(crashed, 1002, 0.1, status=1)
    crashed.peers[1002].listening_at = None
    results = evaluate(Observed([crashed]), {"connection"})
    shown = {r.check.key: r.verdict.status for r in results}
    assert shown["starts"] == FAIL and {r.check.item for r in results} == {"startup", "connection"}
    assert "connects" not in shown  # only what the item's checks need
    assert not ok(results)
    assert render(results)[-1].endswith("required checks FAIL")


def test_a_run_in_which_nothing_could_be_judged_does_not_pass(layout):
    lay = layout()
    results = evaluate(Observed([swarm(lay, [], complete=False)]), {"robustness"})  # the probes never ran
    assert results and all(r.verdict.status == NA for r in results)
    assert not ok(results)
    assert render(results)[-1].endswith("not applicable: nothing could be judged")


def _log(lay, peer_id, lines):
    home = lay.their_dir(peer_id) if lay.scenario.role(peer_id).theirs else lay.ours_dir
    (home / f"log_peer_{peer_id}.log").write_text("".join(f"{line}\n" for line in lines))


@pytest.mark.parametrize("stamp", ["2026-12-03 19:45:32", "[2026-12-03 19:46:40]", "Thu Dec 03 19:20:33 2026",
                                   "2026-12-03T19:45:32.123+00:00"])
def test_any_dated_stamp_passes_the_log_format(layout, stamp):
    lay = layout()
    _log(lay, 1002, [f"{stamp}: Peer 1002 makes a connection to Peer 1001.",
                     f"{stamp}: Peer 1002 is connected from Peer 1003."])
    found = verdicts(swarm(lay, [], complete=False))
    assert found["log-format"].status == PASS, found["log-format"]
    assert found["log-sentences"].status == PASS, found["log-sentences"]


def test_a_stamp_without_date_fails_once_another_line_fails_the_sentences_and_spacing_is_a_note(layout):
    lay = layout()
    _log(lay, 1002, ["19:45:32.001: Peer 1002 makes a connection to Peer 1001.",
                     "19:45:32.002: Peer 1002  is connected from Peer 1003.",
                     "2026-12-03 19:45:33.000: Peer 1002 sent the 'request' message to 1001 for the piece 3."])
    found = verdicts(swarm(lay, [], complete=False))
    assert found["log-format"].status == FAIL and found["log-format"].count == 1, found["log-format"]
    assert "has the hour, minute and second but no date" in found["log-format"].evidence[0]
    sentences = found["log-sentences"]
    assert sentences.status == FAIL and sentences.count == 1 and "not a SPEC §5 sentence" in sentences.evidence[0]
    assert any("spacing" in note for note in sentences.notes), sentences  # advice: told, not failed


def test_a_piece_that_came_before_the_handshakes_is_told_by_the_bitfield(layout):
    lay = layout()
    seed_talk = their_leecher_with_the_seed(
        lay, theirs=[(0.2, wire.INTERESTED), (0.4, wire.encode_request(5)), (0.7, wire.encode_have(5))],
        ours=[(0.3, wire.UNCHOKE), (0.6, piece(lay, 5))])
    # our 1003 dialled at 0.0; it (accepting) read first, so the handshakes went through only at 1.0 s
    told = connection(1003, 1002, [(1.0, 1003, HS(1003) + NOTHING),
                                   (1.05, 1002, HS(1002) + wire.encode_bitfield(PieceSet(N, [5])))])
    assert verdicts(swarm(lay, [seed_talk, told], complete=False))["have-after-piece"].status == PASS
    untold = connection(1003, 1002, [(1.0, 1003, HS(1003) + NOTHING), (1.05, 1002, HS(1002) + NOTHING)])
    verdict = verdicts(swarm(lay, [seed_talk, untold], complete=False))["have-after-piece"]
    assert verdict.status == FAIL and "at 1.00 s: piece 5 arrived; 'have' to 1003 never" in verdict.evidence[0]
