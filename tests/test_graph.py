"""graph.neighbour_sets: who neighbours whom with our bounded neighbour sets."""
from __future__ import annotations

import random

import pytest

from twisted_p2p.graph import neighbour_sets


def reached(sets: dict[int, frozenset[int]]) -> set[int]:
    """The peers reachable from the first, by breadth-first search."""
    start = next(iter(sets))
    seen, frontier = {start}, [start]
    while frontier:
        frontier = [other for peer in frontier for other in sets[peer] if other not in seen]
        seen.update(frontier)
    return seen


def check(sets: dict[int, frozenset[int]], ids: list[int], degree: int) -> None:
    assert set(sets) == set(ids)
    for peer, neighbours in sets.items():
        assert peer not in neighbours and neighbours <= set(ids)
        assert all(peer in sets[other] for other in neighbours)  # symmetric
        assert min(degree, len(ids) - 1) <= len(neighbours) <= max(degree, 2) + 2
    assert reached(sets) == set(ids)  # connected


@pytest.mark.parametrize("size", [2, 3, 4, 5, 7, 9, 10, 16, 33, 64, 100, 257, 1000, 2000])
@pytest.mark.parametrize("degree", [1, 2, 3, 4, 8, 16])
def test_symmetric_connected_and_within_the_degree_bounds(size, degree):
    ids = [1001 + i for i in range(size)]
    check(neighbour_sets(ids, degree, random.Random(size * 31 + degree)), ids, degree)


def test_dense_sets_on_many_seeds_stay_within_the_bounds():
    for seed in range(20):
        for size, degree in [(12, 9), (12, 10), (45, 40), (30, 7), (50, 3)]:
            ids = list(range(size))
            check(neighbour_sets(ids, degree, random.Random(seed)), ids, degree)


@pytest.mark.parametrize("size, degree", [(2, 1), (4, 3), (9, 8), (9, 20)])
def test_few_peers_are_a_full_mesh(size, degree):
    ids = list(range(1001, 1001 + size))
    assert neighbour_sets(ids, degree, random.Random(1)) == {peer: frozenset(ids) - {peer} for peer in ids}


def test_one_seed_gives_the_same_sets_and_another_seed_others():
    ids = list(range(1001, 1201))
    first = neighbour_sets(ids, 4, random.Random(7))
    assert neighbour_sets(ids, 4, random.Random(7)) == first
    assert neighbour_sets(ids, 4, random.Random(8)) != first


def test_a_degree_below_one_is_refused():
    with pytest.raises(ValueError, match="at least one neighbour"):
        neighbour_sets([1, 2, 3], 0, random.Random(1))
