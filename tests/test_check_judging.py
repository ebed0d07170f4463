"""The kit's judgement on recorded conversations, in memory: each rule of SPEC §3 broken
on the wire is caught with its evidence, the same conversation done right passes, and
messages in flight are not blamed."""
from __future__ import annotations

from twisted.internet.task import Clock

from twisted_p2p import wire
from twisted_p2p.bitfield import PieceSet
from twisted_p2p.launcher.check import exchangechecks, runchecks, wirechecks  # noqa: F401  (registers)
from twisted_p2p.launcher.check.frames import Chunk
from twisted_p2p.launcher.check.observed import Observed, transcript
from twisted_p2p.launcher.check.processes import Child
from twisted_p2p.launcher.check.relay import Direction, Recording
from twisted_p2p.launcher.check.runner import PeerRun, ScenarioRun
from twisted_p2p.launcher.check.scenarios import SCENARIOS, Layout
from twisted_p2p.launcher.check.scorecard import FAIL, NA, PASS, evaluate

LEECHER = next(s for s in SCENARIOS if s.name == "leecher")  # ours 1001 seed, theirs 1002, ours 1003
SEED = next(s for s in SCENARIOS if s.name == "seed")  # theirs 1001 seed, k=1, ours 1002-1004


def swarm(layout: Layout, talks: list[Recording], complete: bool = True) -> ScenarioRun:
    clock = Clock()
    run = ScenarioRun(layout, 0.0, {}, recordings=talks, all_complete_at=9.0 if complete else None, ended_at=20.0)
    for peer_id in layout.scenario.ids:
        child = Child(clock, ["x"], layout.root, layout.root / f"out-{peer_id}")
        run.peers[peer_id] = PeerRun(peer_id, layout.scenario.role(peer_id).theirs, child,
                                     listening_at=0.1, complete_at=9.0 if complete else None)
    return run


def connection(dialler: int, acceptor: int, said: list[tuple[float, int, bytes]],
               closed: float | None = 19.0) -> Recording:
    """A recording where each (time, sender, bytes) was got and handed on at that time."""
    up, down = Direction(dialler, acceptor), Direction(acceptor, dialler)
    for when, sender, data in said:
        (up if sender == dialler else down).chunks.append(Chunk(when, when, data))
    for direction in (up, down):
        direction.released, direction.released_by = 0.0, "handshake"
    return Recording(dialler, acceptor, 0.0, up, down, closed)


def verdicts(*runs: ScenarioRun) -> dict[str, str]:
    return {result.check.key: result.verdict for result in evaluate(Observed(list(runs)))}  # type: ignore[misc]


N = LEECHER.common.num_pieces
HS = wire.encode_handshake
NOTHING = wire.encode_bitfield(PieceSet(N))
ALL = wire.encode_bitfield(PieceSet.full(N))


def piece(layout: Layout, index: int, content: bytes | None = None) -> bytes:
    common = layout.scenario.common
    start = common.piece_offset(index)
    data = layout.content[start:start + common.piece_length(index)] if content is None else content
    return wire.encode_piece_header(index, len(data)) + data


def their_leecher_with_the_seed(layout: Layout, theirs: list[tuple[float, bytes]],
                                ours: list[tuple[float, bytes]]) -> Recording:
    """1002 (theirs) dialled our seed 1001; handshakes and bitfields at 0.1 s."""
    said = [(0.1, 1002, HS(1002) + NOTHING), (0.1, 1001, HS(1001) + ALL)]
    said += [(when, 1002, data) for when, data in theirs] + [(when, 1001, data) for when, data in ours]
    return connection(1002, 1001, sorted(said, key=lambda item: item[0]))


def test_requests_by_the_rules_pass_and_the_transcript_shows_them(layout):
    lay = layout()
    talk = their_leecher_with_the_seed(
        lay, theirs=[(0.2, wire.INTERESTED), (0.4, wire.encode_request(5)), (0.7, wire.encode_request(6))],
        ours=[(0.3, wire.UNCHOKE), (0.6, piece(lay, 5)), (0.9, piece(lay, 6))])
    run = swarm(lay, [talk], complete=False)
    found = verdicts(run)
    for key in ("requests-when-unchoked", "one-request-at-a-time", "requests-wanted-pieces", "interest"):
        assert found[key].status == PASS, (key, found[key])
    lines = transcript(Observed([run]), run)
    assert any("1002 -> 1001  request 5" in line for line in lines)
    assert any("1001 -> 1002  piece 6" in line for line in lines)


def test_a_request_before_any_unchoke_is_caught_with_when_and_what(layout):
    lay = layout()
    talk = their_leecher_with_the_seed(
        lay, theirs=[(0.2, wire.INTERESTED + wire.encode_request(5))], ours=[(0.6, wire.UNCHOKE + piece(lay, 5))])
    found = verdicts(swarm(lay, [talk], complete=False))
    verdict = found["requests-when-unchoked"]
    assert verdict.status == FAIL
    assert verdict.evidence == ["[leecher] 1002 -> 1001 at 0.20 s: request for piece 5 before 1001 ever unchoked it"]
    assert found["one-request-at-a-time"].status == PASS


def test_a_request_just_after_a_choke_was_in_flight_but_one_a_second_later_is_not(layout):
    lay = layout()
    in_flight = their_leecher_with_the_seed(
        lay, theirs=[(0.2, wire.INTERESTED), (0.4, wire.encode_request(5)), (1.1, wire.encode_request(7))],
        ours=[(0.3, wire.UNCHOKE), (0.35, wire.CHOKE), (1.0, wire.UNCHOKE), (1.2, piece(lay, 7))])
    assert verdicts(swarm(lay, [in_flight], complete=False))["requests-when-unchoked"].status == PASS
    late = their_leecher_with_the_seed(
        lay, theirs=[(0.2, wire.INTERESTED), (1.5, wire.encode_request(5))],
        ours=[(0.3, wire.UNCHOKE), (0.35, wire.CHOKE)])
    verdict = verdicts(swarm(lay, [late], complete=False))["requests-when-unchoked"]
    assert verdict.status == FAIL and "while choked (since 0.35 s)" in verdict.evidence[0]


def test_two_requests_outstanding_to_one_neighbour(layout):
    lay = layout()
    talk = their_leecher_with_the_seed(
        lay, theirs=[(0.2, wire.INTERESTED), (0.4, wire.encode_request(5) + wire.encode_request(6))],
        ours=[(0.3, wire.UNCHOKE), (0.6, piece(lay, 5) + piece(lay, 6))])
    found = verdicts(swarm(lay, [talk], complete=False))
    assert found["one-request-at-a-time"].status == FAIL
    assert "piece 5 was still outstanding (2 at once)" in found["one-request-at-a-time"].evidence[0]
    assert found["requests-when-unchoked"].status == PASS


def test_a_request_for_a_piece_never_offered(layout):
    lay = layout()
    said = [(0.1, 1002, HS(1002) + NOTHING), (0.1, 1001, HS(1001) + wire.encode_bitfield(PieceSet(N, [1, 2]))),
            (0.2, 1002, wire.INTERESTED), (0.3, 1001, wire.UNCHOKE), (0.4, 1002, wire.encode_request(9))]
    verdict = verdicts(swarm(lay, [connection(1002, 1001, said)], complete=False))["requests-wanted-pieces"]
    assert verdict.status == FAIL and "piece 9, which 1001 never offered" in verdict.evidence[0]


def test_a_have_to_every_neighbour_after_each_piece(layout):
    lay = layout()
    seed_talk = their_leecher_with_the_seed(
        lay, theirs=[(0.2, wire.INTERESTED), (0.4, wire.encode_request(5)), (0.7, wire.encode_have(5))],
        ours=[(0.3, wire.UNCHOKE), (0.6, piece(lay, 5))])
    silent = connection(1003, 1002, [(0.1, 1003, HS(1003) + NOTHING), (0.1, 1002, HS(1002) + NOTHING)])
    verdict = verdicts(swarm(lay, [seed_talk, silent], complete=False))["have-after-piece"]
    assert verdict.status == FAIL
    assert verdict.evidence == ["[leecher] 1002 -> 1003 at 0.60 s: piece 5 arrived; 'have' to 1003 never "
                                "(the connection stayed open 18.4 s more)"]
    told = connection(1003, 1002, [(0.1, 1003, HS(1003) + NOTHING), (0.1, 1002, HS(1002) + NOTHING),
                                   (0.8, 1002, wire.encode_have(5))])
    assert verdicts(swarm(lay, [seed_talk, told], complete=False))["have-after-piece"].status == PASS


def their_seed_with(lay: Layout, leechers: dict[int, list[tuple[float, int, bytes]]]) -> list[Recording]:
    """Our leechers (1002-1004) dialled their seed 1001; each (time, sender, bytes) after the handshakes."""
    talks = []
    for leecher, said in leechers.items():
        start = [(0.1, leecher, HS(leecher) + wire.encode_bitfield(PieceSet(lay.scenario.common.num_pieces))),
                 (0.1, 1001, HS(1001) + wire.encode_bitfield(PieceSet.full(lay.scenario.common.num_pieces))),
                 (0.2, leecher, wire.INTERESTED)]
        talks.append(connection(leecher, 1001, start + said))
    return talks


def test_answers_go_only_to_unchoked_neighbours_with_the_right_bytes(layout):
    lay = layout(SEED)
    good = their_seed_with(lay, {1002: [(0.3, 1001, wire.UNCHOKE), (0.4, 1002, wire.encode_request(3)),
                                        (0.5, 1001, piece(lay, 3))]})
    assert verdicts(swarm(lay, good, complete=False))["serves-requests"].status == PASS
    # its unchoke reached the relay just after the request, behind what it was sending: no violation
    crossed = their_seed_with(lay, {1002: [(0.4, 1002, wire.encode_request(3)), (0.45, 1001, wire.UNCHOKE),
                                           (0.5, 1001, piece(lay, 3))]})
    assert verdicts(swarm(lay, crossed, complete=False))["serves-requests"].status == PASS
    # behind several paced pieces the unchoke reaches the relay seconds after the request
    late = their_seed_with(lay, {1002: [(0.4, 1002, wire.encode_request(3)), (3.4, 1001, wire.UNCHOKE),
                                        (3.5, 1001, piece(lay, 3))]})
    assert verdicts(swarm(lay, late, complete=False))["serves-requests"].status == PASS
    to_choked = their_seed_with(lay, {1002: [(0.4, 1002, wire.encode_request(3)), (1.5, 1001, piece(lay, 3))]})
    verdict = verdicts(swarm(lay, to_choked, complete=False))["serves-requests"]
    assert verdict.status == FAIL and "piece 3, not asked for while 1002 was unchoked" in verdict.evidence[0]
    wrong = their_seed_with(lay, {1002: [(0.3, 1001, wire.UNCHOKE), (0.4, 1002, wire.encode_request(3)),
                                         (0.5, 1001, piece(lay, 3, bytes(16384)))]})
    verdict = verdicts(swarm(lay, wrong, complete=False))["serves-requests"]
    assert verdict.status == FAIL and "piece 3 with the wrong bytes" in verdict.evidence[0]


def test_more_than_k_plus_one_unchoked_but_not_within_one_round(layout):
    lay = layout(SEED)  # k = 1
    three = their_seed_with(lay, {peer: [(1.0 + peer / 1000, 1001, wire.UNCHOKE)] for peer in (1002, 1003, 1004)})
    verdict = verdicts(swarm(lay, three, complete=False))["preferred-every-p"]
    assert verdict.status == FAIL
    assert "3 neighbours unchoked at once; k=1 preferred + 1 optimistic" in verdict.evidence[0]
    # one round: 1004 unchoked (optimistic) and 1003 choked 10 ms later
    rotated = their_seed_with(lay, {1002: [(1.0, 1001, wire.UNCHOKE)], 1003: [(1.0, 1001, wire.UNCHOKE),
                                    (3.01, 1001, wire.CHOKE)], 1004: [(3.0, 1001, wire.UNCHOKE)]})
    found = verdicts(swarm(lay, rotated, complete=False))
    assert found["preferred-every-p"].status == PASS
    assert found["optimistic-every-m"].status == PASS  # two unchoked at once with k = 1


def test_a_neighbour_whose_connection_closed_is_no_longer_unchoked(layout):
    lay = layout(SEED)  # k = 1
    talks = their_seed_with(lay, {1002: [(1.0, 1001, wire.UNCHOKE)], 1003: [(1.0, 1001, wire.UNCHOKE)],
                                  1004: [(3.0, 1001, wire.UNCHOKE)]})
    assert verdicts(swarm(lay, talks, complete=False))["preferred-every-p"].status == FAIL
    talks[0].closed = 2.0  # it closed the connection to 1002 (both complete) before unchoking 1004
    assert verdicts(swarm(lay, talks, complete=False))["preferred-every-p"].status == PASS


def test_never_more_than_k_unchoked_with_three_interested_is_no_optimistic_unchoke(layout):
    lay = layout(SEED)
    preferred_only = their_seed_with(lay, {1002: [(1.0, 1001, wire.UNCHOKE), (2.0, 1001, wire.CHOKE)],
                                           1003: [(2.0, 1001, wire.UNCHOKE)], 1004: []})
    verdict = verdicts(swarm(lay, preferred_only, complete=False))["optimistic-every-m"]
    assert verdict.status == FAIL and "no optimistic unchoke" in verdict.evidence[0]


def test_interest_repeated_is_advisory_and_interest_without_reason_is_not(layout):
    lay = layout()
    repeated = their_leecher_with_the_seed(lay, theirs=[(0.2, wire.INTERESTED), (0.3, wire.INTERESTED)], ours=[])
    found = verdicts(swarm(lay, [repeated], complete=False))
    assert found["interest-on-change"].status == FAIL and not next(
        r.check for r in evaluate(Observed([swarm(lay, [repeated], complete=False)]))
        if r.check.key == "interest-on-change").required
    assert found["interest"].status == PASS
    empty = connection(1003, 1002, [(0.1, 1003, HS(1003) + NOTHING), (0.1, 1002, HS(1002) + NOTHING),
                                    (0.2, 1002, wire.INTERESTED)])
    verdict = verdicts(swarm(lay, [empty], complete=False))["interest"]
    assert verdict.status == FAIL and "'interested', but 1003 had offered nothing" in verdict.evidence[0]


def test_a_handshake_sent_only_after_the_others_is_caught(layout):
    lay = layout()
    talk = their_leecher_with_the_seed(lay, theirs=[], ours=[])
    talk.down.released, talk.down.released_by = 1.0, "timeout"  # the seed's bytes to 1002 were held 1 s
    verdict = verdicts(swarm(lay, [talk], complete=False))["handshake-first"]
    assert verdict.status == FAIL and "it dialled, it sent its handshake" in verdict.evidence[0]


def test_after_a_broken_handshake_the_rest_is_not_blamed_unless_the_swarm_still_completed(layout):
    lay = layout()
    zeros = b"P2PFILESHARINGPROJ" + b"0" * 10 + (1002).to_bytes(4, "big")
    said = [(0.1, 1002, zeros + NOTHING), (0.1, 1001, HS(1001) + ALL), (0.2, 1002, wire.encode_request(1))]
    stuck = verdicts(swarm(lay, [connection(1002, 1001, said)], complete=False))
    assert stuck["handshake-bytes"].status == FAIL
    assert stuck["requests-when-unchoked"].status == NA
    assert "handshake-bytes failed" in stuck["requests-when-unchoked"].evidence[0]
    completed = verdicts(swarm(lay, [connection(1002, 1001, said)], complete=True))
    assert completed["requests-when-unchoked"].status == FAIL


def test_a_choke_recorded_late_behind_paced_pieces_is_not_a_third_unchoke():
    """The peer chokes 1002 and unchokes 1004 in one round; the relay reads the choke
    85 ms later, behind paced pieces: two at once, not three. A state that lasts is."""
    from twisted_p2p.launcher.check.wirechecks import RACE, _most_unchoked

    round_ = [(22.469, 1002, True), (22.469, 1004, False), (23.144, 1004, True), (23.229, 1002, False)]
    start = [(20.0, 1002, True), (20.0, 1003, True)]
    assert _most_unchoked(start + round_) == (2, 20.0)
    lasting = [(23.144, 1004, True), (23.144 + RACE + 0.1, 1002, False)]
    assert _most_unchoked(start + lasting)[0] == 3
