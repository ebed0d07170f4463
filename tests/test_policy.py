"""The decisions of SPEC §3, with seeded Random instances (deterministic)."""
from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest

from twisted_p2p import policy
from twisted_p2p.bitfield import PieceSet
from twisted_p2p.policy import MissingPieces

# -- interest ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "ours", "theirs", "wanted"),
    [
        (0, [], [], 0),
        (5, [], [], 0),
        (5, [], [0, 4], 2),
        (5, [0], [0, 4], 1),
        (5, [0, 4], [0, 4], 0),
        (5, [0, 1, 2, 3, 4], [], 0),
        (5, [1, 2], [0, 1, 2, 3, 4], 3),
        (306, [], range(306), 306),
        (306, range(0, 306, 2), range(306), 153),
        (9, [8], [8], 0),
        (9, [], [8], 1),
    ],
)
def test_wanted_count(total, ours, theirs, wanted):
    assert policy.wanted_count(PieceSet(total, ours), PieceSet(total, theirs)) == wanted
    assert policy.is_interested(policy.wanted_count(PieceSet(total, ours), PieceSet(total, theirs))) == (wanted > 0)


def test_wanted_count_matches_set_difference():
    rng = random.Random(42)
    for total in (1, 7, 8, 9, 64, 306):
        for _ in range(20):
            ours = {i for i in range(total) if rng.random() < 0.5}
            theirs = {i for i in range(total) if rng.random() < 0.5}
            assert policy.wanted_count(PieceSet(total, ours), PieceSet(total, theirs)) == len(theirs - ours)


@pytest.mark.parametrize(("wanted", "interested"), [(0, False), (1, True), (306, True)])
def test_is_interested(wanted, interested):
    assert policy.is_interested(wanted) is interested


# -- MissingPieces ---------------------------------------------------------------------


def test_missing_pieces_basics():
    missing = MissingPieces([0, 1, 2, 3, 4])
    assert len(missing) == 5
    assert 3 in missing and 5 not in missing and -1 not in missing
    missing.discard(0)  # the first
    missing.discard(4)  # the last
    missing.discard(2)  # the middle
    missing.discard(2)  # again: no effect
    missing.discard(99)  # never there: no effect
    assert len(missing) == 2
    assert sorted(missing) == [1, 3]
    assert sorted(missing[i] for i in range(len(missing))) == [1, 3]
    assert 2 not in missing and 0 not in missing and 4 not in missing
    missing.discard(1)
    missing.discard(3)
    assert len(missing) == 0 and list(missing) == []


def test_missing_pieces_matches_a_set_under_random_discards():
    rng = random.Random(3)
    missing = MissingPieces(range(200))
    model = set(range(200))
    for _ in range(400):
        piece = rng.randrange(-5, 210)
        missing.discard(piece)
        model.discard(piece)
        assert len(missing) == len(model)
        assert (piece in missing) == (piece in model)
    assert set(missing) == model
    assert {missing[i] for i in range(len(missing))} == model
    assert all(p in missing for p in model)


def test_missing_pieces_from_a_piece_set():
    held = PieceSet(10, [0, 5, 9])
    missing = MissingPieces(held.missing())
    assert sorted(missing) == [1, 2, 3, 4, 6, 7, 8]


# -- choose_piece ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_choose_piece_only_wanted_and_not_in_flight(seed):
    rng = random.Random(seed)
    total = 306
    ours = {i for i in range(total) if rng.random() < 0.6}
    theirs = PieceSet(total, (i for i in range(total) if rng.random() < 0.4))
    in_flight = {i for i in range(total) if i not in ours and rng.random() < 0.3}
    missing = MissingPieces(i for i in range(total) if i not in ours)
    allowed = {i for i in missing if i in theirs and i not in in_flight}
    for _ in range(50):
        piece = policy.choose_piece(rng, missing, theirs, in_flight)
        if allowed:
            assert piece in allowed
        else:
            assert piece is None


@pytest.mark.parametrize(
    ("missing", "theirs", "in_flight"),
    [
        ([], {0, 1, 2}, set()),  # we lack nothing
        ([0, 1], set(), set()),  # they have nothing
        ([0, 1], {2, 3}, set()),  # they have only what we have
        ([0, 1, 2], {0, 1, 2}, {0, 1, 2}),  # all requested elsewhere
        (list(range(1000)), {999}, {999}),  # the only candidate is in flight (scan path)
    ],
)
def test_choose_piece_none(missing, theirs, in_flight):
    rng = random.Random(1)
    theirs = PieceSet(1000, theirs)
    for _ in range(10):
        assert policy.choose_piece(rng, MissingPieces(missing), theirs, in_flight) is None


@pytest.mark.parametrize(
    ("n_missing", "candidates"),
    [
        (60, range(0, 50)),  # most missing pieces qualify: the quick draws
        (100, range(10, 15)),  # few qualify: draws and the scan both happen
        (5000, [17, 4999]),  # almost never hit by a draw: the scan
        (1, [0]),
    ],
)
def test_choose_piece_roughly_uniform(n_missing, candidates):
    candidates = set(candidates)
    missing = MissingPieces(range(n_missing))
    theirs = PieceSet(n_missing + 3, candidates | {n_missing + 1})  # and one we do not lack
    in_flight = {n_missing + 2}
    rng = random.Random(12345)
    draws = 400 * len(candidates) if len(candidates) < 10 else 100 * len(candidates)
    if n_missing >= 5000:
        draws = 600
    counts = Counter(policy.choose_piece(rng, missing, theirs, in_flight) for _ in range(draws))
    assert set(counts) == candidates  # every candidate, nothing else
    expected = draws / len(candidates)
    assert all(0.6 * expected <= count <= 1.4 * expected for count in counts.values()), counts


@pytest.mark.parametrize("seed", range(20))
def test_choose_piece_with_held_chooses_as_the_scan_does(seed):
    """Given what we hold, a neighbour with nothing we lack is answered without the
    scan; every choice, and what is left of the random sequence, is the scan's."""
    rng = random.Random(seed)
    total = 500
    ours = {i for i in range(total) if rng.random() < 0.7}
    # Half the neighbours have nothing we lack (the shortcut), half something (the scan).
    only_ours = seed % 2 == 0
    theirs = PieceSet(total, (i for i in range(total) if (i in ours if only_ours else rng.random() < 0.05)))
    in_flight = {i for i in range(total) if i not in ours and rng.random() < 0.5}
    held = PieceSet(total, ours)
    missing = MissingPieces(i for i in range(total) if i not in ours)
    scanning, shortcut = random.Random(seed), random.Random(seed)
    for _ in range(30):
        chosen = policy.choose_piece(scanning, missing, theirs, in_flight)
        assert policy.choose_piece(shortcut, missing, theirs, in_flight, held) == chosen
        if only_ours:
            assert chosen is None
    assert scanning.random() == shortcut.random()


def test_choose_piece_reproducible_and_seed_dependent():
    missing = MissingPieces(range(306))
    theirs = PieceSet.full(306)

    def sequence(seed):
        rng = random.Random(seed)
        return [policy.choose_piece(rng, missing, theirs, set()) for _ in range(20)]

    assert sequence(7) == sequence(7)
    assert sequence(7) != sequence(8)


def test_choose_piece_after_discard():
    missing = MissingPieces(range(10))
    for piece in range(9):
        missing.discard(piece)
    rng = random.Random(0)
    assert {policy.choose_piece(rng, missing, PieceSet.full(10), set()) for _ in range(30)} == {9}


# -- choose_preferred --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interested", "rates", "k", "expected"),
    [
        ({1, 2, 3, 4}, {1: 10, 2: 40, 3: 30, 4: 20}, 2, {2, 3}),
        ({1, 2, 3, 4}, {1: 10, 2: 40, 3: 30, 4: 20}, 1, {2}),
        ({1, 2, 3, 4}, {1: 10, 2: 40, 3: 30, 4: 20}, 3, {2, 3, 4}),
        ({1, 2, 3, 4}, {1: 10, 2: 40, 3: 30, 4: 20}, 4, {1, 2, 3, 4}),
        ({1, 2, 3, 4}, {1: 10, 2: 40, 3: 30, 4: 20}, 9, {1, 2, 3, 4}),
        ({1, 3}, {1: 10, 2: 40, 3: 30, 4: 20}, 2, {1, 3}),  # the fast ones are not interested
        ({1, 3, 4}, {1: 10, 2: 40, 3: 30, 4: 20}, 1, {3}),
        ({1, 2, 3}, {3: 0.5}, 1, {3}),  # no rate at all counts as zero
        ({5, 6, 7}, {5: 1.5, 6: 2.5, 7: 0.25}, 2, {5, 6}),  # float rates
        (set(), {1: 100}, 3, set()),
    ],
)
def test_choose_preferred_highest_rates(interested, rates, k, expected):
    for seed in range(10):
        chosen = policy.choose_preferred(random.Random(seed), interested, rates, k, complete=False)
        assert chosen == frozenset(expected)
        assert isinstance(chosen, frozenset)


def test_choose_preferred_ties_broken_at_random():
    interested = {1, 2, 3, 4, 5}
    rates = {1: 100, 2: 50, 3: 50, 4: 50, 5: 1}
    winners = Counter()
    for seed in range(200):
        chosen = policy.choose_preferred(random.Random(seed), interested, rates, 2, complete=False)
        assert len(chosen) == 2 and 1 in chosen and 5 not in chosen
        (tie_winner,) = chosen - {1}
        winners[tie_winner] += 1
    assert set(winners) == {2, 3, 4}
    assert all(40 <= count <= 95 for count in winners.values()), winners


def _orders(peers: list[int]) -> list:
    """The same peers in containers that iterate them in different orders."""
    shuffled = random.Random(3).sample(peers, len(peers))
    return [sorted(peers), sorted(peers, reverse=True), shuffled, tuple(shuffled[::-1]), set(peers),
            dict.fromkeys(shuffled).keys()]


@pytest.mark.parametrize("complete", [False, True])
def test_choose_preferred_depends_on_the_seed_not_on_the_containers_order(complete):
    peers = list(range(1, 11))
    rates = dict.fromkeys(peers, 7) | {4: 9}  # 4 is fastest; the other nine tie for two slots
    chosen = Counter()
    for seed in range(300):
        choices = {policy.choose_preferred(random.Random(seed), order, rates, 3, complete) for order in _orders(peers)}
        assert len(choices) == 1, (seed, choices)  # one seed, one choice, whatever the order
        (choice,) = choices
        assert len(choice) == 3 and choice <= set(peers) and (complete or 4 in choice)
        chosen.update(choice)
    # Over the seeds every tied peer gets a fair share of the slots: each of the nine is
    # expected 600/9 = 67 times (90 each, all ten, when complete and rates do not count).
    expected = 90 if complete else 600 / 9
    tied = peers if complete else [peer for peer in peers if peer != 4]
    assert all(0.6 * expected <= chosen[peer] <= 1.4 * expected for peer in tied), chosen


def test_choose_preferred_complete_ignores_rates():
    interested = {1, 2, 3, 4, 5}
    rates = {1: 10**9, 2: 10**9, 3: 0, 4: 0, 5: 0}
    seen = Counter()
    for seed in range(300):
        chosen = policy.choose_preferred(random.Random(seed), interested, rates, 2, complete=True)
        assert len(chosen) == 2 and chosen <= interested
        seen[chosen] += 1
    assert set(seen) == {frozenset(pair) for pair in itertools.combinations(interested, 2)}
    assert seen[frozenset({1, 2})] < 60  # not favoured: 30 expected out of 300


def test_choose_preferred_complete_only_interested_and_at_most_k():
    rng = random.Random(5)
    for _ in range(100):
        interested = {p for p in range(1, 10) if rng.random() < 0.5}
        k = rng.randrange(1, 5)
        chosen = policy.choose_preferred(rng, interested, {}, k, complete=True)
        assert chosen <= interested
        assert len(chosen) == min(k, len(interested))


@pytest.mark.parametrize("complete", [False, True])
def test_choose_preferred_never_more_than_k(complete):
    rng = random.Random(11)
    for _ in range(200):
        interested = {p for p in range(1000, 1012) if rng.random() < 0.6}
        rates = {p: rng.choice([0, 1, 2, 5]) for p in range(1000, 1012)}
        k = rng.randrange(1, 6)
        chosen = policy.choose_preferred(rng, interested, rates, k, complete)
        assert len(chosen) == min(k, len(interested))
        assert chosen <= interested
        if not complete:
            # nobody left out is faster than somebody chosen
            left_out = interested - chosen
            if chosen and left_out:
                assert max(rates[p] for p in left_out) <= min(rates[p] for p in chosen)


# -- fill_free_slots ------------------------------------------------------------------------


def test_fill_free_slots_no_free_slot_is_unchanged():
    rng = random.Random(0)
    assert policy.fill_free_slots(rng, frozenset({1, 2}), {1, 2, 3, 4}, 2) == {1, 2}
    assert policy.fill_free_slots(rng, frozenset({1, 2, 3}), {1, 2, 3, 4}, 2) == {1, 2, 3}
    # exactly k still interested: no slot is free, so nothing changes (3 is left to the next round)
    assert policy.fill_free_slots(rng, frozenset({1, 2, 3}), {1, 2, 4}, 2) == {1, 2, 3}


def test_fill_free_slots_nobody_waiting_is_unchanged():
    rng = random.Random(0)
    assert policy.fill_free_slots(rng, frozenset({1}), {1}, 3) == {1}
    assert policy.fill_free_slots(rng, frozenset(), set(), 3) == frozenset()
    # a preferred neighbour that lost interest stays while nobody else wants the slot
    assert policy.fill_free_slots(rng, frozenset({1, 2}), {2}, 2) == {1, 2}


@pytest.mark.parametrize("seed", range(10))
def test_fill_free_slots_fills_from_the_interested(seed):
    rng = random.Random(seed)
    result = policy.fill_free_slots(rng, frozenset({1}), {1, 2, 3, 4}, 3)
    assert 1 in result and len(result) == 3 and result <= {1, 2, 3, 4}
    # fewer waiting than free slots: all of them
    assert policy.fill_free_slots(rng, frozenset(), {7}, 3) == {7}
    assert policy.fill_free_slots(rng, frozenset({1}), {1, 7}, 3) == {1, 7}


def test_fill_free_slots_replaces_the_uninterested():
    rng = random.Random(0)
    result = policy.fill_free_slots(rng, frozenset({1, 2}), {2, 3}, 2)
    assert result == {2, 3}  # 1 is no longer interested: its slot goes to 3


def test_fill_free_slots_keeps_the_uninterested_while_there_is_room():
    # Evicting 1 would choke it, only to unchoke it when its interest comes back.
    rng = random.Random(0)
    assert policy.fill_free_slots(rng, frozenset({1, 2}), {2, 3}, 3) == {1, 2, 3}
    assert policy.fill_free_slots(rng, frozenset({1, 2, 5}), {2, 3, 4}, 4) in ({1, 2, 3, 4}, {5, 2, 3, 4})
    assert policy.fill_free_slots(rng, frozenset({1, 5}), {3}, 2) == {3, 1}


def test_fill_free_slots_random_among_waiting_and_reproducible():
    winners = Counter()
    for seed in range(200):
        result = policy.fill_free_slots(random.Random(seed), frozenset({1}), {1, 2, 3, 4, 5}, 2)
        assert len(result) == 2 and 1 in result
        winners[next(iter(result - {1}))] += 1
    assert set(winners) == {2, 3, 4, 5}
    assert all(25 <= count <= 80 for count in winners.values()), winners
    first = policy.fill_free_slots(random.Random(4), frozenset({1}), {1, 2, 3, 4, 5}, 2)
    assert all(policy.fill_free_slots(random.Random(4), frozenset({1}), {5, 4, 3, 2, 1}, 2) == first for _ in range(5))


# -- choose_optimistic --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interested", "unchoked", "allowed"),
    [
        ({1, 2, 3}, set(), {1, 2, 3}),
        ({1, 2, 3}, {1, 2}, {3}),
        ({1, 2, 3}, {1, 4, 5}, {2, 3}),
        ({1}, set(), {1}),
    ],
)
def test_choose_optimistic_only_choked_and_interested(interested, unchoked, allowed):
    seen = set()
    for seed in range(60):
        choice = policy.choose_optimistic(random.Random(seed), interested, unchoked)
        assert choice in allowed
        seen.add(choice)
    assert seen == allowed  # every candidate turns up over the seeds


@pytest.mark.parametrize(
    ("interested", "unchoked"),
    [(set(), set()), (set(), {1, 2}), ({1, 2}, {1, 2}), ({1}, {1, 2, 3})],
)
def test_choose_optimistic_none(interested, unchoked):
    assert policy.choose_optimistic(random.Random(0), interested, unchoked) is None


def test_choose_optimistic_depends_on_the_seed_not_on_the_containers_order():
    interested = [3, 5, 7, 9, 11, 13]
    unchoked = [9, 2, 13]
    picks = Counter()
    for seed in range(400):
        choices = {
            policy.choose_optimistic(random.Random(seed), dict.fromkeys(order).keys(), dict.fromkeys(ordered).keys())
            for order in _orders(interested)
            for ordered in (unchoked, unchoked[::-1])
        }
        assert len(choices) == 1, (seed, choices)  # one seed, one choice, whatever the order
        picks.update(choices)
    # Only the choked interested ones, each about a quarter of the time over the seeds.
    assert set(picks) == {3, 5, 7, 11}
    assert all(70 <= picks[peer] <= 130 for peer in picks), picks


# -- unchoke_changes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unchoked", "preferred", "optimistic", "to_unchoke", "to_choke"),
    [
        (set(), {1, 2}, None, {1, 2}, set()),
        ({1, 2}, {1, 2}, None, set(), set()),  # no repeated unchoke, no choke
        ({1, 2}, {2, 3}, None, {3}, {1}),
        ({1, 2}, {2, 3}, 1, {3}, set()),  # the optimistic one keeps its unchoke
        ({1, 2}, {2, 3}, 4, {3, 4}, {1}),
        ({1, 2}, {2, 3}, 3, {3}, {1}),  # optimistic and preferred at once
        ({1, 2, 3}, set(), None, set(), {1, 2, 3}),
        ({1, 2, 3}, set(), 2, set(), {1, 3}),
        (set(), set(), None, set(), set()),
        (set(), set(), 5, {5}, set()),
    ],
)
def test_unchoke_changes(unchoked, preferred, optimistic, to_unchoke, to_choke):
    result = policy.unchoke_changes(frozenset(unchoked), frozenset(preferred), optimistic)
    assert result == (frozenset(to_unchoke), frozenset(to_choke))


def test_unchoke_changes_properties():
    rng = random.Random(8)
    for _ in range(300):
        unchoked = {p for p in range(8) if rng.random() < 0.5}
        preferred = {p for p in range(8) if rng.random() < 0.4}
        optimistic = rng.choice([None, *range(8)])
        to_unchoke, to_choke = policy.unchoke_changes(unchoked, preferred, optimistic)
        chosen = preferred | ({optimistic} if optimistic is not None else set())
        assert not to_unchoke & unchoked  # nothing unchoked twice
        assert to_choke <= unchoked  # only choke the unchoked
        assert not to_choke & chosen
        assert (unchoked | to_unchoke) - to_choke == chosen


# -- swarm_complete ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ours", "complete_peers", "told", "done"),
    [
        ([0, 1, 2], {1002, 1003}, {1002, 1003}, True),
        ([0, 1, 2], {1001, 1002, 1003}, {1002, 1003}, True),  # ourselves in the set does not matter
        ([0, 1, 2], {1002}, {1002, 1003}, False),  # 1003 not known complete
        ([0, 1], {1002, 1003}, {1002, 1003}, False),  # we lack a piece
        ([], {1002, 1003}, {1002, 1003}, False),
        ([0, 1, 2], {1002, 1003, 9999}, {1002, 1003}, True),
        ([0, 1, 2], {1002, 1003}, {1002}, False),  # 1003 has not heard that we are complete
        ([0, 1, 2], {1002, 1003}, set(), False),
    ],
)
def test_swarm_complete(ours, complete_peers, told, done):
    neighbours = policy.neighbourhood({1001, 1002, 1003}, 1001)
    assert policy.swarm_complete(PieceSet(3, ours), complete_peers, told, neighbours) is done


def test_swarm_complete_alone():
    alone = policy.neighbourhood({1001}, 1001)
    assert policy.swarm_complete(PieceSet.full(4), set(), set(), alone) is True
    assert policy.swarm_complete(PieceSet(4, [0]), set(), set(), alone) is False


def test_the_full_mesh_is_every_other_peer_and_a_bounded_set_is_its_own():
    assert policy.neighbourhood({1001, 1002, 1003}, 1002) == {1001, 1003}
    assert policy.neighbourhood({1001, 1002, 1003, 1004}, 1002, frozenset({1004})) == {1004}


@pytest.mark.parametrize(
    ("complete_peers", "told", "done"),
    [
        ({1004, 1007}, {1004, 1007}, True),  # 1003 and 1005 are not our neighbours: not waited for
        ({1004}, {1004, 1007}, False),  # a neighbour not known complete
        ({1004, 1007, 1003, 1005}, {1004, 1003, 1005}, False),  # a neighbour not told
    ],
)
def test_with_a_bounded_set_only_the_neighbours_count(complete_peers, told, done):
    neighbours = policy.neighbourhood(set(range(1001, 1008)), 1001, frozenset({1004, 1007}))
    assert policy.swarm_complete(PieceSet.full(3), complete_peers, told, neighbours) is done
    assert policy.untold(told, set(), neighbours) == ([] if told >= neighbours else [1007])
