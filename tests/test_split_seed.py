"""``--split-seed`` (push's peers): each leecher asks a neighbour that holds the whole file
only for its own share of the pieces until it holds that share, so that a seed whose
upload is the bottleneck sends each piece about once; other neighbours are asked as
before. Decisions only, under a task.Clock."""
from __future__ import annotations

import random

from piecebook import request_book
from twisted.internet.task import Clock

from twisted_p2p.bitfield import PieceSet
from twisted_p2p.policy import seed_share
from twisted_p2p.requests import RequestBook, Requests

TOTAL = 20
SEED = PieceSet.full(TOTAL)


class Book:
    """Our requests to a seed (peer 1) and to another leecher (peer 2)."""

    def __init__(self, missing=range(TOTAL), depth: int = 64) -> None:
        self.book: RequestBook = request_book(TOTAL, missing, Clock(), random.Random(7))
        self.requests: dict[int, Requests] = {peer: self.book.open(peer, depth) for peer in (1, 2)}

    def set_share(self, pieces: list[int]) -> None:
        self.book.pieces.set_share(pieces)

    def next_request(self, peer: int, theirs: PieceSet):
        return self.requests[peer].next_request(theirs)

    def held(self, index: int) -> None:
        self.book.pieces.write(index, b"")


def book(missing=range(TOTAL), depth: int = 64) -> Book:
    return Book(missing, depth)


def ask_all(requests: Book, peer: int, theirs: PieceSet) -> list[int]:
    asked = []
    while (index := requests.next_request(peer, theirs)) is not None:
        asked.append(index)
    return asked


def test_the_shares_of_the_leechers_cover_every_piece_once_and_a_seed_has_none():
    leechers = [1002, 1003, 1004]
    shares = [seed_share(leechers, peer, 10) for peer in leechers]
    assert shares == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert seed_share(leechers, 1001, 10) == []


def test_a_seed_is_asked_only_for_our_share_however_deep_the_pipeline():
    requests = book()
    requests.set_share([0, 4, 8, 12, 16])
    assert sorted(ask_all(requests, 1, SEED)) == [0, 4, 8, 12, 16]


def test_a_neighbour_without_the_whole_file_is_asked_for_anything_it_has():
    requests = book()
    requests.set_share([0, 4])
    partial = PieceSet(TOTAL, [0, 1, 2, 3])
    assert sorted(ask_all(requests, 2, partial)) == [0, 1, 2, 3]
    assert ask_all(requests, 1, SEED) == [4]  # 0 is in flight from the other


def test_once_the_share_is_held_the_seed_is_asked_for_the_rest():
    requests = book(depth=1)
    requests.set_share([0, 4])
    for index in (0, 4):
        requests.held(index)
    assert requests.next_request(1, SEED) not in (None, 0, 4)


def test_pieces_already_held_are_not_part_of_the_share():
    requests = book(missing=[1, 2, 3])
    requests.set_share([0, 2])
    assert ask_all(requests, 1, SEED) == [2]


def test_without_a_share_the_seed_is_asked_for_any_missing_piece():
    requests = book()
    assert sorted(ask_all(requests, 1, SEED)) == list(range(TOTAL))
