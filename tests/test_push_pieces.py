"""``push`` chooses the piece size from the file's size and the round trip to the hosts."""
from __future__ import annotations

import shutil
import socket

import pytest

from twisted_p2p.launcher import push
from twisted_p2p.launcher.push import MAX_PIECE, MIN_PIECE, piece_size_for

MB = 10**6


def test_without_a_round_trip_the_size_gives_about_two_thousand_pieces():
    assert piece_size_for(1 * MB).size == MIN_PIECE
    assert piece_size_for(1 * MB).why == "the course's smallest; the round trip to the hosts could not be timed"
    assert piece_size_for(100 * MB).size == 64 << 10  # 1,526 pieces
    assert piece_size_for(2_000 * MB).size == 1 << 20
    assert piece_size_for(100_000 * MB).size == MAX_PIECE
    for size in (1, 40 * MB, 3_000 * MB):
        choice = piece_size_for(size)
        assert MIN_PIECE <= choice.size <= MAX_PIECE and choice.size & (choice.size - 1) == 0


def test_a_long_round_trip_gets_pieces_that_fill_the_path_one_per_round_trip():
    lan = piece_size_for(100 * MB, round_trip=0.0002, hosts=4)
    assert lan.size == 64 << 10 and "needs nothing bigger" in lan.why
    far = piece_size_for(100 * MB, round_trip=0.010, hosts=2)  # 1.25 MB per round trip
    assert far.size == 2 << 20 and "10.0 ms round trip" in far.why
    assert far.size / 0.010 >= push.PATH_RATE
    crowded = piece_size_for(100 * MB, round_trip=0.010, hosts=4)  # 16 pieces each caps it
    assert crowded.size == 1 << 20


def test_the_piece_never_passes_four_mib_nor_leaves_a_host_fewer_than_sixteen_pieces():
    assert piece_size_for(10_000 * MB, round_trip=0.200, hosts=2).size == MAX_PIECE
    few = piece_size_for(20 * MB, round_trip=0.050, hosts=8)  # the path alone would want 8 MiB
    assert 20 * MB / few.size >= push.PIECES_PER_HOST * 8
    assert few.size == 128 << 10


def test_the_round_trip_is_timed_against_the_port_ssh_would_use(tmp_path):
    if shutil.which("ssh") is None:
        pytest.skip("no ssh client here to resolve host names")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        config = tmp_path / "ssh_config"
        config.write_text(f"Host lab7\n  HostName 127.0.0.1\n  Port {server.getsockname()[1]}\n")
        assert push.ssh_endpoint("lab7", str(config)) == ("127.0.0.1", server.getsockname()[1])
        measured = push.round_trip_to("lab7", str(config))
        assert measured is not None and 0 < measured < 1
        assert push.farthest_round_trip(["lab7", "lab7"], str(config)) is not None
    assert push.round_trip_to("lab7", str(config)) is None  # nothing listens now


def test_an_unknown_host_has_no_round_trip_and_the_size_alone_decides(tmp_path):
    if shutil.which("ssh") is None:
        pytest.skip("no ssh client here to resolve host names")
    config = tmp_path / "ssh_config"
    config.write_text("Host nowhere\n  HostName no-such-host.invalid\n")
    assert push.farthest_round_trip(["nowhere"], str(config)) is None
