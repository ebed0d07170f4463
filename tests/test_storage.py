"""PieceStore writes: a piece given as a view (of a received chunk) lands at its offset."""
from __future__ import annotations

from twisted_p2p.config import Common
from twisted_p2p.storage import PieceStore

COMMON = Common(2, 5, 15, "f", 23, 8)  # pieces of 8, 8 and 7 bytes


def test_a_piece_written_from_a_view_lands_at_its_offset(tmp_path):
    store = PieceStore(tmp_path / "1002" / "f", COMMON, has_file=False)
    chunk = b"header--" + b"ABCDEFGH" + b"trailer"
    store.write(1, memoryview(chunk)[8:16])
    store.close()
    data = (tmp_path / "1002" / "f").read_bytes()
    assert data == b"\0" * 8 + b"ABCDEFGH" + b"\0" * 7
    assert list(store.held) == [1]


def test_a_short_last_piece_from_a_view_ends_the_file(tmp_path):
    store = PieceStore(tmp_path / "1002" / "f", COMMON, has_file=False)
    store.write(2, memoryview(b"xx1234567")[2:])
    assert store.read(2) == b"1234567"
    store.close()
    assert (tmp_path / "1002" / "f").read_bytes()[16:] == b"1234567"
    assert (tmp_path / "1002" / "f").stat().st_size == 23
