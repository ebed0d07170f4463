"""The 'not interested' a peer owes once it holds every piece a neighbour has: the course
has it re-check its neighbours "whenever a peer receives a piece completely", so a last
word of 'interested' that stays is caught -- at completion or earlier -- while a prompt
'not interested', a connection that ended too soon to tell, or a new piece offered in
time are not blamed. The leecher scenario keeps the swarm going long enough to see it."""
from __future__ import annotations

from test_check_judging import (
    HS,
    LEECHER,
    NOTHING,
    N,
    connection,
    piece,
    swarm,
    their_leecher_with_the_seed,
    verdicts,
)

from twisted_p2p import wire
from twisted_p2p.bitfield import PieceSet
from twisted_p2p.launcher.check.scorecard import FAIL, PASS
from twisted_p2p.launcher.check.wirechecks import NOT_INTERESTED_WITHIN, RACE


def _completing(lay, after: list[tuple[float, bytes]], closed: float = 19.0):
    """1002 (theirs) gets all N pieces from our seed 1001 by 0.4 + N/100 s, then says ``after``."""
    theirs = [(0.2, wire.INTERESTED)] + after
    ours = [(0.3, wire.UNCHOKE)] + [(0.4 + index / 100, piece(lay, index)) for index in range(N)]
    talk = their_leecher_with_the_seed(lay, theirs=theirs, ours=ours)
    talk.closed = closed
    return talk


DONE = 0.4 + (N - 1) / 100  # when the last piece was handed to it


def test_complete_and_still_interested_fails_where_the_connection_stayed_open(layout):
    lay = layout()
    verdict = verdicts(swarm(lay, [_completing(lay, [])]))["interest"]
    assert verdict.status == FAIL
    assert verdict.evidence == [f"[leecher] 1002 -> 1001 at {DONE:.2f} s: complete ({N} pieces), but its last word "
                                f"to 1001 stayed 'interested' (no 'not interested' in the {19.0 - DONE:.1f} s the "
                                f"connection stayed open)"]
    late = verdicts(swarm(lay, [_completing(lay, [(DONE + 3.0, wire.NOT_INTERESTED)])]))["interest"]
    assert late.status == FAIL and "'not interested' only 3.0 s later" in late.evidence[0]


def test_a_prompt_not_interested_or_a_connection_too_short_to_tell_passes(layout):
    lay = layout()
    prompt = verdicts(swarm(lay, [_completing(lay, [(DONE + 0.01, wire.NOT_INTERESTED)])]))["interest"]
    assert prompt.status == PASS, prompt
    in_time = [(DONE + NOT_INTERESTED_WITHIN - 0.1, wire.NOT_INTERESTED)]
    generous = verdicts(swarm(lay, [_completing(lay, in_time)]))["interest"]
    assert generous.status == PASS, generous
    short = verdicts(swarm(lay, [_completing(lay, [], closed=DONE + 1.0)]))["interest"]
    assert short.status == PASS, short


def _with_our_leecher(lay, offered: list[int], said_by_theirs: list[tuple[float, bytes]],
                      said_by_ours: list[tuple[float, bytes]] = ()):
    """Our 1003 (offering ``offered``) dialled 1002; 1002 gets piece 3 from the seed at 0.5 s."""
    seed_talk = their_leecher_with_the_seed(lay, theirs=[(0.2, wire.INTERESTED)],
                                            ours=[(0.3, wire.UNCHOKE), (0.5, piece(lay, 3))])
    said = [(0.1, 1003, HS(1003) + wire.encode_bitfield(PieceSet(N, offered))), (0.1, 1002, HS(1002) + NOTHING)]
    said += [(when, 1002, data) for when, data in said_by_theirs] + [(when, 1003, data) for when, data in said_by_ours]
    return [seed_talk, connection(1003, 1002, sorted(said, key=lambda item: item[0]))]


def test_holding_all_a_neighbour_offers_owes_it_a_not_interested_before_completion_too(layout):
    lay = layout()
    stayed = verdicts(swarm(lay, _with_our_leecher(lay, [3], [(0.2, wire.INTERESTED)]), complete=False))["interest"]
    assert stayed.status == FAIL
    assert stayed.evidence == ["[leecher] 1002 -> 1003 at 0.50 s: it held every piece 1003 had offered (1), but its "
                               "last word to 1003 stayed 'interested' (no 'not interested' in the 18.5 s the "
                               "connection stayed open)"]
    told = _with_our_leecher(lay, [3], [(0.2, wire.INTERESTED), (0.51, wire.NOT_INTERESTED)])
    assert verdicts(swarm(lay, told, complete=False))["interest"].status == PASS


def test_a_new_piece_offered_in_time_makes_the_interest_stand_again(layout):
    lay = layout()
    renewed = _with_our_leecher(lay, [3], [(0.2, wire.INTERESTED)], said_by_ours=[(1.0, wire.encode_have(4))])
    assert verdicts(swarm(lay, renewed, complete=False))["interest"].status == PASS
    too_late = _with_our_leecher(lay, [3], [(0.2, wire.INTERESTED)], said_by_ours=[(3.0, wire.encode_have(4))])
    assert verdicts(swarm(lay, too_late, complete=False))["interest"].status == FAIL


def test_the_leecher_scenario_keeps_the_connections_open_long_enough_to_see_it():
    """The last of ours starts only last_after s after theirs completed, and every peer waits
    until it has started and downloaded the file: a connection of theirs lasts longer than
    the bound and the relay's margin."""
    assert LEECHER.quick and LEECHER.last_after is not None
    assert not LEECHER.role(LEECHER.ids[-1]).theirs and not LEECHER.role(LEECHER.ids[-1]).seed
    assert LEECHER.last_after >= NOT_INTERESTED_WITHIN + RACE


def test_our_held_back_peer_never_started_is_nobodys_neighbour(layout):
    lay = layout()
    answered = connection(1003, 1002, [(0.1, 1003, HS(1003) + NOTHING), (0.1, 1002, HS(1002) + NOTHING)])
    run = swarm(lay, [_completing(lay, []), answered], complete=False)  # theirs stalled: 1004 never started
    (lay.their_dir(1002) / "log_peer_1002.log").write_text(
        "2026-12-03 19:45:32.001: Peer 1002 makes a connection to Peer 1001.\n"
        "2026-12-03 19:45:32.002: Peer 1002 is connected from Peer 1003.\n")
    found = verdicts(run)
    assert found["connects"].status == PASS, found["connects"]
    assert found["log-connections"].status == PASS, found["log-connections"]
    run = swarm(lay, [_completing(lay, []), answered], complete=False)
    run.peers[1004].child.started = 9.0  # once started, it is everybody's neighbour
    found = verdicts(run)
    assert found["connects"].status == FAIL and "never answered a connection from 1004" in found["connects"].evidence[0]
    assert found["log-connections"].status == FAIL and "Peer 1004" in found["log-connections"].evidence[0]
