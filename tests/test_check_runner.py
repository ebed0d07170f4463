"""How the kit runs a scenario: peers start in PeerInfo.cfg order, each once the earlier
ones listen (or, in the retry scenario, ours after theirs), listening is seen without a
connection, and the connections our peers drop are read from their own words."""
from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.task import Clock

from twisted_p2p.launcher.check import runner
from twisted_p2p.launcher.check.processes import Child
from twisted_p2p.launcher.check.runner import (
    ASSUMED_UP,
    STAGGER,
    Closed,
    PeerRun,
    ScenarioRun,
    closed_by,
    next_to_start,
)
from twisted_p2p.launcher.check.scenarios import SCENARIOS, Layout, prepare

LATE = next(s for s in SCENARIOS if s.name == "late")  # ours 1001, 1002; theirs 1003 3 s late; ours 1004
RETRY = next(s for s in SCENARIOS if s.name == "retry")  # ours 1001; theirs 1002, started first
LEECHER = next(s for s in SCENARIOS if s.name == "leecher")  # ours 1001 seed; theirs 1002; ours 1003, 1004 held back


@pytest.fixture
def made(tmp_path: Path):
    layouts: list[Layout] = []

    def make(scenario) -> ScenarioRun:
        layout = prepare(scenario, tmp_path / scenario.name)
        layouts.append(layout)
        run = ScenarioRun(layout, 100.0, {})
        for peer_id in scenario.ids:
            child = Child(Clock(), ["x"], layout.root, layout.root / f"out-{peer_id}")
            run.peers[peer_id] = PeerRun(peer_id, scenario.role(peer_id).theirs, child)
        return run
    yield make
    for layout in layouts:
        layout.release()


def _start(run: ScenarioRun, now: float) -> int:
    peer = next_to_start(run, now)
    assert peer is not None
    peer.child.started = now
    return peer.peer_id


def test_each_peer_starts_once_every_earlier_one_listens(made):
    run = made(LATE)
    assert _start(run, 100.0) == 1001
    assert next_to_start(run, 105.0) is None  # 1001 is not listening yet, however long it takes
    run.peers[1001].listening_at = 105.0
    assert next_to_start(run, 105.0 + STAGGER / 2) is None
    assert _start(run, 105.0 + STAGGER) == 1002
    run.peers[1002].listening_at = 105.5
    assert _start(run, 105.5 + STAGGER) == 1003  # theirs: 3 s late was long past
    assert next_to_start(run, 110.0) is None  # our 1004 waits for theirs to listen
    run.peers[1003].listening_at = 110.0
    assert _start(run, 110.0 + STAGGER) == 1004
    assert next_to_start(run, 120.0) is None


def test_a_late_peer_under_test_waits_for_its_delay_too(made):
    run = made(LATE)
    for peer_id, at in ((1001, 100.0), (1002, 100.3)):
        run.peers[peer_id].child.started, run.peers[peer_id].listening_at = at, at + 0.1
    assert next_to_start(run, 102.9) is None
    assert _start(run, 103.0) == 1003


def test_in_the_retry_scenario_theirs_start_first_and_ours_after_they_listen(made):
    run = made(RETRY)
    assert _start(run, 100.0) == 1002
    run.peers[1002].listening_at = 100.4
    assert next_to_start(run, 101.3) is None
    assert _start(run, 100.4 + RETRY.theirs_first) == 1001


def test_a_peer_under_test_that_dials_before_it_listens_still_gets_an_earlier_peer_to_reach(made):
    run = made(RETRY)
    assert _start(run, 100.0) == 1002  # it never listens: it is busy dialling 1001
    assert next_to_start(run, 100.0 + ASSUMED_UP + RETRY.theirs_first - 0.1) is None
    assert _start(run, 100.0 + ASSUMED_UP + RETRY.theirs_first) == 1001


def test_the_last_of_ours_waits_until_theirs_completed_and_then_some(made):
    run = made(LEECHER)
    for peer_id, at in ((1001, 100.0), (1002, 100.5), (1003, 101.0)):
        run.peers[peer_id].child.started, run.peers[peer_id].listening_at = at, at + 0.2
    assert next_to_start(run, 150.0) is None  # theirs never completed: 1004 is never started
    assert run.held_back(1004) and not run.held_back(1003)
    run.peers[1002].complete_at = 107.0
    assert next_to_start(run, 107.0 + LEECHER.last_after - 0.1) is None
    assert _start(run, 107.0 + LEECHER.last_after) == 1004
    assert not run.held_back(1004)


def test_the_last_of_ours_starts_after_theirs_exited_without_completing(made):
    run = made(LEECHER)
    for peer_id, at in ((1001, 100.0), (1002, 100.5), (1003, 101.0)):
        run.peers[peer_id].child.started, run.peers[peer_id].listening_at = at, at + 0.2
    run.peers[1002].child.ended = 103.0
    assert next_to_start(run, 103.0 + LEECHER.last_after - 0.1) is None
    assert _start(run, 103.0 + LEECHER.last_after) == 1004


def test_without_a_proc_table_a_started_peer_is_taken_to_listen_after_a_while(made, monkeypatch):
    run = made(LATE)
    monkeypatch.setattr(runner, "listening_ports", lambda candidates: None)
    child = run.peers[1001].child
    child.started = 100.0
    progress = [100.0]
    runner._see_listening(run, 100.0 + ASSUMED_UP / 2, progress)
    assert run.peers[1001].listening_at is None
    runner._see_listening(run, 100.0 + ASSUMED_UP, progress)
    assert run.peers[1001].listening_at == 100.0 + ASSUMED_UP and run.peers[1001].listening_assumed
    assert progress == [100.0 + ASSUMED_UP]


LINE = "2026-12-03T20:43:53+0000 [twisted_p2p.protocol.PeerProtocol#warn] {}"


def test_the_connections_our_peer_dropped_are_read_from_its_own_words():
    ids, theirs = [1001, 1002, 1003], [1002]
    said = LINE.format("peer 1002 sent a message of length 100663296; at most 16389 is legal here; "
                       "closing the connection")
    assert closed_by(said, 1001, ids, theirs) == Closed(
        0.0, 1001, 1002, "peer 1002 sent a message of length 100663296; at most 16389 is legal here")
    quiet = LINE.format("peer 1002 sent no handshake within 10 s; closing")
    assert closed_by(quiet, 1003, ids, theirs) == Closed(0.0, 1003, 1002, "peer 1002 sent no handshake within 10 s")
    garbled = LINE.format("peer 825241649 sent a handshake with ID 825241649, which is not in PeerInfo.cfg; "
                          "closing the connection")
    assert closed_by(garbled, 1001, ids, theirs).theirs == 1002  # the only peer under test
    assert closed_by(garbled, 1001, ids, [1002, 1003]).theirs is None  # which one, nobody can tell
    assert closed_by(LINE.format("peer 1003 sent piece 4, which we never requested from it; closing the connection"),
                     1001, ids, theirs) is None  # between two of ours: not theirs to answer for
    stopping = LINE.format("peer 1001 stopping with 22 of 22 pieces; closing connections and saving state")
    assert closed_by(stopping, 1001, ids, theirs) is None


def test_the_last_completion_seen_in_the_same_tick_as_every_exit_is_still_noted(made):
    # The seed under test exits once the last leecher's have reaches it: the kit may see
    # that leecher's completion and every peer's exit in one tick, and must still note
    # when the swarm completed (waits-for-all judges each exit against it).
    run = made(LEECHER)
    for n, peer in enumerate(run.peers.values()):
        peer.child.started, peer.child.ended = 101.0 + n, 120.0
        peer.listening_at, peer.complete_at = 101.5 + n, 110.0 + n
    over = runner._over(run, False, 120.5, 119.0, runner.Limits())
    assert over == "every peer exited"
    assert run.all_complete_at == 110.0 + len(run.peers) - 1


def test_a_swarm_not_complete_when_every_peer_exited_has_no_completion_time(made):
    run = made(LEECHER)
    for n, peer in enumerate(run.peers.values()):
        peer.child.started, peer.child.ended = 101.0 + n, 120.0
        peer.listening_at = 101.5 + n
        peer.complete_at = None if peer.theirs else 110.0
    assert runner._over(run, False, 120.5, 119.0, runner.Limits()) == "every peer exited"
    assert run.all_complete_at is None
