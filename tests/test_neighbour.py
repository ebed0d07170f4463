"""Neighbour: what we know of one neighbour, through its own API, on a connection that
records what it is sent. (How the service drives it from messages is
tests/test_protocol.py's.)"""
from __future__ import annotations

import random

from piecebook import request_book
from twisted.internet.task import Clock

from twisted_p2p import wire
from twisted_p2p.bitfield import PieceSet
from twisted_p2p.neighbour import Neighbour

TOTAL = 8


class Recorder:
    """The parts of a connection a Neighbour uses: what it sends, whether uploads were cancelled."""

    expected_peer_id: int | None = None
    neighbour: Neighbour | None = None
    outgoing = False
    closing = False

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.uploads_cancelled = 0

    def quiet_for(self) -> float:
        return 0.0

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def send_have(self, have: bytes) -> None:
        self.sent.append(have)

    def queue_upload(self, index: int) -> None:
        pass

    def cancel_uploads(self) -> None:
        self.uploads_cancelled += 1

    def drop(self, why: str) -> None:
        pass

    def close(self, timeout: float) -> None:
        pass


def neighbour() -> tuple[Neighbour, Recorder]:
    connection = Recorder()
    requests = request_book(TOTAL, range(TOTAL), Clock(), random.Random(1)).open(1002)
    return Neighbour(1002, connection, TOTAL, requests), connection


def test_a_new_neighbour_has_nothing_chokes_us_and_has_been_told_nothing():
    them, connection = neighbour()
    assert them.pieces.count == 0 and them.wanted == 0
    assert them.chokes_us and not them.unchoked and not them.interested
    assert them.we_are_interested is None and not connection.sent


def test_a_bitfield_adds_pieces_and_counts_those_we_lack():
    them, _ = neighbour()
    ours = PieceSet(TOTAL, [0, 1])
    them.add_pieces(PieceSet(TOTAL, [0, 2, 3]), ours)
    assert list(them.pieces) == [0, 2, 3] and them.wanted == 2
    them.add_pieces(PieceSet(TOTAL, [4]), ours)  # a later bitfield takes nothing away
    assert list(them.pieces) == [0, 2, 3, 4] and them.wanted == 3


def test_a_have_counts_once_and_only_a_piece_we_lack_is_wanted():
    them, _ = neighbour()
    ours = PieceSet(TOTAL, [0])
    assert them.add_piece(0, ours) and them.wanted == 0
    assert them.add_piece(5, ours) and them.wanted == 1
    assert not them.add_piece(5, ours) and them.wanted == 1


def test_interest_is_told_once_and_again_only_when_it_changes():
    them, connection = neighbour()
    ours = PieceSet(TOTAL)
    them.update_interest()
    assert connection.sent == [wire.NOT_INTERESTED] and them.we_are_interested is False
    them.add_piece(3, ours)
    them.update_interest()
    them.update_interest()
    assert connection.sent == [wire.NOT_INTERESTED, wire.INTERESTED] and them.we_are_interested


def test_getting_its_last_piece_we_lack_ends_our_interest():
    them, connection = neighbour()
    ours = PieceSet(TOTAL)
    them.add_pieces(PieceSet(TOTAL, [2, 6]), ours)
    them.update_interest()
    them.we_got(1)  # not one of its pieces: nothing changes
    assert them.wanted == 2 and connection.sent == [wire.INTERESTED]
    them.we_got(2)
    assert them.wanted == 1 and connection.sent == [wire.INTERESTED]
    them.we_got(6)
    assert them.wanted == 0 and connection.sent == [wire.INTERESTED, wire.NOT_INTERESTED]


def test_a_lying_neighbour_is_not_interesting_whatever_it_has():
    them, connection = neighbour()
    them.add_pieces(PieceSet.full(TOTAL), PieceSet(TOTAL))
    them.lying = True
    them.update_interest()
    assert them.wanted == TOTAL and connection.sent == [wire.NOT_INTERESTED]


def test_unchoke_and_choke_are_sent_and_a_choke_cancels_its_queued_uploads():
    them, connection = neighbour()
    them.unchoke()
    assert them.unchoked and connection.sent == [wire.UNCHOKE] and connection.uploads_cancelled == 0
    them.choke()
    assert not them.unchoked and connection.sent == [wire.UNCHOKE, wire.CHOKE]
    assert connection.uploads_cancelled == 1


def test_what_it_sent_us_is_taken_once_per_interval():
    them, _ = neighbour()
    them.received += 300
    them.received += 200
    assert them.take_received() == 500
    assert them.take_received() == 0
