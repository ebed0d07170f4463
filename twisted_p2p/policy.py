"""The decisions of SPEC §3, as pure functions of plain state and an injected Random.

Nothing here touches the network, the disk or the clock, so every rule can be tested
with plain values, and each rule lives here once.
"""
from __future__ import annotations

import random
from collections.abc import Collection, Container, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet

from twisted_p2p.bitfield import PieceSet

# How many uniform draws from the missing pieces before listing the candidates; each
# draw is accepted with the probability that a missing piece is a candidate, so this
# keeps choice O(1) in the common case and the result exactly uniform either way.
_DRAWS_BEFORE_SCAN = 24


def wanted_count(ours: PieceSet, theirs: PieceSet) -> int:
    """How many pieces ``theirs`` has that ``ours`` lacks."""
    return (theirs.as_int() & ~ours.as_int()).bit_count()


def is_interested(wanted: int) -> bool:
    """Interest (SPEC §3): the neighbour has at least one piece we lack."""
    return wanted > 0


class MissingPieces:
    """The pieces we lack, as a list with O(1) removal, for uniform random choice."""

    __slots__ = ("_items", "_positions")

    def __init__(self, pieces: Iterable[int]) -> None:
        self._items = list(pieces)
        self._positions = {piece: position for position, piece in enumerate(self._items)}

    def discard(self, piece: int) -> None:
        position = self._positions.pop(piece, None)
        if position is None:
            return
        last = self._items.pop()
        if last != piece:
            self._items[position] = last
            self._positions[last] = position

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, piece: object) -> bool:
        return piece in self._positions

    def __iter__(self):
        return iter(self._items)

    def __getitem__(self, position: int) -> int:
        return self._items[position]


def choose_piece(
    rng: random.Random,
    missing: MissingPieces,
    theirs: PieceSet,
    in_flight: Container[int],
    held: PieceSet | None = None,
) -> int | None:
    """A piece chosen uniformly among those the neighbour has, we lack, and we have
    not requested from anyone (SPEC §3, random selection); None if there is none.

    ``held`` (what ``missing`` lacks, as a PieceSet) lets a neighbour that has nothing
    we lack be answered in C, by byte-wise set algebra, instead of a scan in Python of
    every missing piece: the common case once a neighbour has given what it had. It is
    asked after the random draws, so the choices and the random sequence are the same."""
    if not len(missing):
        return None
    flags = theirs.flags
    for _ in range(_DRAWS_BEFORE_SCAN):
        piece = missing[rng.randrange(len(missing))]
        if flags[piece] and piece not in in_flight:
            return piece
    if held is not None and not theirs.as_int() & ~held.as_int():
        return None
    candidates = [piece for piece in missing if flags[piece] and piece not in in_flight]
    return rng.choice(candidates) if candidates else None


def seed_share(leechers: Sequence[int], peer_id: int, num_pieces: int) -> list[int]:
    """The pieces ``peer_id`` asks a seed for first: every n-th, where n is the number of
    peers that start without the file (``leechers``, in PeerInfo.cfg's order) and the
    offset its place among them; none for a peer that is not one of them."""
    if peer_id not in leechers:
        return []
    return list(range(list(leechers).index(peer_id), num_pieces, len(leechers)))


def choose_preferred(
    rng: random.Random,
    interested: Collection[int],
    rates: Mapping[int, float],
    k: int,
    complete: bool,
) -> frozenset[int]:
    """The k preferred neighbours: the interested ones that sent us data fastest in the
    last interval, ties at random; at random when we have the whole file."""
    candidates = sorted(interested)
    rng.shuffle(candidates)
    if not complete:
        candidates.sort(key=lambda peer: rates.get(peer, 0), reverse=True)  # stable: ties stay random
    return frozenset(candidates[:k])


def fill_free_slots(
    rng: random.Random,
    preferred: AbstractSet[int],
    interested: AbstractSet[int],
    k: int,
) -> frozenset[int]:
    """Between rounds, give a free preferred slot at once to an interested neighbour
    rather than leaving it idle until the next interval.

    A preferred neighbour that is (perhaps only for a moment) not interested keeps its
    slot unless a waiting neighbour needs it: evicting it would choke it and unchoke it
    again as its interest flickers. Returns ``preferred`` unchanged when there is no
    free slot or nobody to put in it."""
    busy = sorted(peer for peer in preferred if peer in interested)
    waiting = sorted(peer for peer in interested if peer not in preferred)
    if len(busy) >= k or not waiting:
        return frozenset(preferred)
    rng.shuffle(waiting)
    admitted = waiting[: k - len(busy)]
    idle = sorted(peer for peer in preferred if peer not in interested)
    return frozenset(busy + admitted + idle[: k - len(busy) - len(admitted)])


def choose_optimistic(
    rng: random.Random,
    interested: AbstractSet[int],
    unchoked: AbstractSet[int],
) -> int | None:
    """One neighbour at random among the choked and interested ones, or None."""
    candidates = sorted(peer for peer in interested if peer not in unchoked)
    return rng.choice(candidates) if candidates else None


def unchoke_changes(
    unchoked: AbstractSet[int],
    preferred: AbstractSet[int],
    optimistic: int | None,
) -> tuple[frozenset[int], frozenset[int]]:
    """(to unchoke, to choke): unchoke the newly chosen, choke the rest that were
    unchoked, except the optimistic neighbour; nothing is sent twice."""
    chosen = set(preferred)
    if optimistic is not None:
        chosen.add(optimistic)
    return frozenset(chosen - set(unchoked)), frozenset(set(unchoked) - chosen)


def neighbourhood(all_peers: AbstractSet[int], me: int, chosen: AbstractSet[int] | None = None) -> frozenset[int]:
    """The peers we connect with and wait for: every other peer of PeerInfo.cfg (the
    course's full mesh), or ``chosen`` (our bounded neighbour set, used only when every
    peer of the swarm is ours). The rules of leaving below take this set, so the full
    mesh is the special case "neighbours = every other peer", with one code path.

    Why nobody is stranded when the neighbour sets are symmetric, their graph connected
    and a seed in it: a peer leaves only once it holds the file, knows every neighbour
    holds it and has told them it does (:func:`swarm_complete`). Suppose some peer never
    completes. Along a path from the seed to it there is a first incomplete peer L, whose
    predecessor C holds the file; C cannot leave while its neighbour L is incomplete, so
    it stays and L can fetch every piece from it, a contradiction. The graph stays
    connected while the swarm runs, as nobody leaves before all its neighbours are done;
    so everyone completes, and then everyone may leave."""
    return frozenset(all_peers if chosen is None else chosen) - {me}


def everyone_has_file(
    our_pieces: PieceSet,
    complete_peers: AbstractSet[int],
    neighbours: AbstractSet[int],
) -> bool:
    """The course's rule of termination (SPEC §3), over our :func:`neighbourhood`: we
    hold the whole file and know that each of ``neighbours`` does."""
    return our_pieces.complete and all(peer in complete_peers for peer in neighbours)


def untold(
    told_peers: AbstractSet[int],
    departed: AbstractSet[int],
    neighbours: AbstractSet[int],
) -> list[int]:
    """The neighbours we have not told that we hold the file (our Choice, SPEC §3): a
    peer that left before telling a neighbour would leave it waiting for ever. A
    neighbour that had the file and went away needs telling no more."""
    return sorted(peer for peer in neighbours if peer not in told_peers and peer not in departed)


def swarm_complete(
    our_pieces: PieceSet,
    complete_peers: AbstractSet[int],
    told_peers: AbstractSet[int],
    neighbours: AbstractSet[int],
) -> bool:
    """We and all our neighbours have the file, and every neighbour has been told that we do."""
    return everyone_has_file(our_pieces, complete_peers, neighbours) and not untold(
        told_peers, frozenset(), neighbours)
