"""Who neighbours whom in a swarm of our own peers (our extension, ``--neighbours``).

The course's swarm is a full mesh: N - 1 connections per peer, and every piece
announced to every peer. A push to hundreds of hosts gives each peer a few neighbours
instead: a random ring (so the graph is connected whatever the chords) plus random
chords until every peer has ``degree`` neighbours. Pure: the only chance is the
injected Random.

Tests: tests/test_graph.py.
"""
from __future__ import annotations

import random
from collections.abc import Sequence

#: Random draws for a chord's other end before the peers still short of neighbours are
#: listed: the draws are O(1), the list O(N).
_DRAWS = 16


class _Wanting:
    """The peers still short of neighbours, with O(1) random choice and removal."""

    def __init__(self, peers: Sequence[int]) -> None:
        self.items = list(peers)
        self.positions = {peer: position for position, peer in enumerate(self.items)}

    def discard(self, peer: int) -> None:
        position = self.positions.pop(peer, None)
        if position is None:
            return
        last = self.items.pop()
        if last != peer:
            self.items[position] = last
            self.positions[last] = position


def neighbour_sets(peer_ids: Sequence[int], degree: int, rng: random.Random) -> dict[int, frozenset[int]]:
    """Each peer's neighbours: symmetric, connected, every peer with at least ``degree``
    neighbours (two at least: the ring) and at most two more than that (the last
    chords may have to end at a peer that has enough); the full mesh
    when there are no more than ``degree + 1`` peers. The same Random state gives the
    same sets."""
    if degree < 1:
        raise ValueError(f"a peer needs at least one neighbour, not {degree}")
    peers = list(dict.fromkeys(peer_ids))
    if len(peers) <= degree + 1:
        return {peer: frozenset(peers) - {peer} for peer in peers}
    links: dict[int, set[int]] = {peer: set() for peer in peers}
    order = list(peers)
    rng.shuffle(order)
    for one, other in zip(order, order[1:] + order[:1]):
        links[one].add(other)
        links[other].add(one)
    wanting = _Wanting([peer for peer in order if len(links[peer]) < degree])
    while wanting.items:
        peer = wanting.items[rng.randrange(len(wanting.items))]
        other = _chord_end(peer, links, wanting, rng)
        links[peer].add(other)
        links[other].add(peer)
        for end in (peer, other):
            if len(links[end]) >= degree:
                wanting.discard(end)
    return {peer: frozenset(linked) for peer, linked in links.items()}


def _chord_end(peer: int, links: dict[int, set[int]], wanting: _Wanting, rng: random.Random) -> int:
    """A peer to link ``peer`` with: one also short of neighbours if there is one it is
    not linked with yet, else the least linked of the others (it gets one more)."""
    mine = links[peer]
    for _ in range(_DRAWS):
        other = wanting.items[rng.randrange(len(wanting.items))]
        if other != peer and other not in mine:
            return other
    short = [other for other in wanting.items if other != peer and other not in mine]
    if short:
        return rng.choice(short)
    free = sorted((len(linked), other) for other, linked in links.items() if other != peer and other not in mine)
    fewest = free[0][0]
    return rng.choice([other for count, other in free if count == fewest])
