"""bench.simscale: the same file in fewer pieces, and rows added to a table kept."""
from __future__ import annotations

import json

import pytest

from bench import simscale


def test_fewer_pieces_cut_the_same_file():
    config = simscale.config(1000, push=False, pieces=20)
    assert config.common.file_size == simscale.FILE_SIZE == simscale.config(10, push=False).common.file_size
    assert config.common.num_pieces == 20 and len(config.peers) == 1000


def test_rows_run_again_replace_theirs_and_new_ones_follow():
    old = [{"case": "a", "peers": 20, "n": 1}, {"case": "b", "peers": 20, "n": 2}]
    new = [{"case": "b", "peers": 20, "n": 3}, {"case": "a", "peers": 1000, "n": 4}]
    assert [row["n"] for row in simscale.merged(old, new)] == [1, 3, 4]


def test_added_rows_keep_the_table_and_name_their_pieces(tmp_path, capsys):
    out = tmp_path / "scale.json"
    common = ["--sizes", "4", "--rate", "1000000", "--out", str(out)]
    assert simscale.main([*common, "--cases", "course-mesh,course-bounded"]) == 0
    assert simscale.main([*common, "--cases", "course-mesh", "--pieces", "10", "--add"]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(row["case"], row["pieces"]) for row in rows] == [
        ("course, full mesh", 1000), ("course, 8 neighbours", 1000), ("course, full mesh, 10 pieces", 10)]
    assert all(row["unfinished"] == 0 and row["files_identical"] for row in rows)
    assert rows[2]["haves_per_peer"] < rows[0]["haves_per_peer"]
    table = (tmp_path / "scale.rst").read_text()
    assert "course, full mesh, 10 pieces" in table and "full mesh of 1,000 pieces only up to 4 peers" in table


def test_an_unknown_case_is_refused_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        simscale.main(["--cases", "course", "--out", str(tmp_path / "x.json")])
    assert "no such case course" in capsys.readouterr().err
