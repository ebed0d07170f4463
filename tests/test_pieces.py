"""Pieces: what we hold, lack and have asked for, over an in-memory store, with a seeded
Random. (How requests move pieces in and out of flight is tests/test_requests.py's;
a seed's share, asked through requests, is tests/test_split_seed.py's.)"""
from __future__ import annotations

import random

import pytest
from piecebook import MemoryStore

from twisted_p2p.bitfield import PieceSet
from twisted_p2p.pieces import Pieces

TOTAL = 10


def pieces(missing=range(TOTAL)) -> Pieces:
    return Pieces(MemoryStore(TOTAL, missing))


def choices(book: Pieces, theirs: PieceSet, draws: int = 200) -> set[int | None]:
    rng = random.Random(3)
    return {book.choose(rng, theirs) for _ in range(draws)}


def test_what_is_held_and_lacked_starts_from_the_store():
    book = pieces(missing=[2, 5, 7])
    assert list(book.held) == [0, 1, 3, 4, 6, 8, 9]
    assert sorted(book.missing) == [2, 5, 7]
    assert not book.in_flight


def test_a_piece_is_chosen_only_if_they_have_it_we_lack_it_and_nobody_is_asked_for_it():
    book = pieces(missing=[2, 5, 7])
    theirs = PieceSet(TOTAL, [1, 2, 5, 7])
    book.in_flight.add(7)
    assert choices(book, theirs) == {2, 5}


def test_nothing_is_chosen_when_they_have_nothing_we_lack_that_is_not_in_flight():
    book = pieces(missing=[2, 5])
    assert book.choose(random.Random(1), PieceSet(TOTAL, [0, 1, 3])) is None
    book.in_flight.update({2, 5})
    assert book.choose(random.Random(1), PieceSet.full(TOTAL)) is None
    assert pieces(missing=[]).choose(random.Random(1), PieceSet.full(TOTAL)) is None


def test_a_written_piece_is_held_and_never_chosen_again():
    book = pieces(missing=[2, 5])
    book.write(2, b"data")
    assert 2 in book.held and book.held.count == TOTAL - 1
    assert list(book.missing) == [5]
    assert choices(book, PieceSet.full(TOTAL)) == {5}
    book.write(5, b"data")
    assert book.held.complete and not len(book.missing)


def test_a_write_the_disk_refuses_leaves_everything_as_it_was():
    class FullDisk(MemoryStore):
        def write(self, index: int, data: bytes) -> None:
            raise OSError(28, "No space left on device")

    book = Pieces(FullDisk(TOTAL, [2, 5]))
    book.set_share([2])
    with pytest.raises(OSError):
        book.write(2, b"data")
    assert 2 not in book.held and sorted(book.missing) == [2, 5]
    assert choices(book, PieceSet.full(TOTAL)) == {2}  # still our share of a seed


def test_from_a_seed_only_our_share_is_chosen_until_we_hold_it():
    book = pieces()
    book.set_share([0, 4, 8])
    seed = PieceSet.full(TOTAL)
    assert choices(book, seed) == {0, 4, 8}
    book.in_flight.update({0, 4})
    assert choices(book, seed) == {8}
    book.in_flight.add(8)
    assert book.choose(random.Random(1), seed) is None  # the rest is for others to ask it
    for index in (0, 4, 8):
        book.in_flight.discard(index)
        book.write(index, b"data")
    assert choices(book, seed) == set(range(TOTAL)) - {0, 4, 8}  # then anything


def test_a_share_does_not_limit_what_is_asked_of_a_neighbour_without_the_whole_file():
    book = pieces()
    book.set_share([0, 4])
    assert choices(book, PieceSet(TOTAL, [1, 2, 4])) == {1, 2, 4}


def test_a_share_counts_only_pieces_we_still_lack():
    book = pieces(missing=[1, 2, 3])
    book.set_share([0, 1, 9])  # 0 and 9 are held already
    assert choices(book, PieceSet.full(TOTAL)) == {1}
