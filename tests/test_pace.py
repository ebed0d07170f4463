"""The demo's pace: an upload cap derived from the file, k, p and m (pure), and how
``p2p-swarm run`` applies it."""
from __future__ import annotations

import pytest
from support import swarm_config

from twisted_p2p.launcher import pace, run

MB20 = 20 * 1024 * 1024


def _demo(file_size=MB20, piece=16384, k=3, p=1, m=2, peers=6, seeds=1):
    ids = list(range(1001, 1001 + peers))
    return swarm_config(ids, ids[:seeds], file_size, piece, k=k, p=p, m=m).common, peers, seeds


def test_the_course_demo_is_paced_to_about_a_minute():
    chosen = pace.demo_pace(*_demo())
    # every piece leaves the one seed at least once: 20 MiB at the rate takes the time
    assert chosen.seconds == pytest.approx(pace.DEMO_SECONDS, rel=0.01)
    assert MB20 / chosen.rate == pytest.approx(chosen.seconds, rel=0.01)
    assert "55 rounds of p = 1 s and 28 of m = 2 s" in chosen.why
    assert "--pace off" in chosen.why


def test_long_intervals_make_a_longer_demo_with_enough_rounds():
    chosen = pace.demo_pace(*_demo(p=5, m=15))
    assert chosen.seconds >= pace.ROUNDS * 15
    assert chosen.seconds / 15 >= 3 and chosen.seconds / 5 >= 3


def test_a_small_file_is_never_paced_below_a_few_pieces_per_neighbour_and_round():
    chosen = pace.demo_pace(*_demo(file_size=100_000, piece=16384, k=3, p=1))
    assert chosen.rate * 1 / (3 + 1) >= pace.PIECES_PER_ROUND * 16384
    assert chosen.seconds < pace.DEMO_SECONDS  # the floor wins: shorter than a minute


def test_more_seeds_share_the_first_copy():
    one = pace.demo_pace(*_demo(seeds=1))
    two = pace.demo_pace(*_demo(seeds=2))
    assert two.rate < one.rate


def test_run_paces_only_a_demo_without_a_rate_of_its_own():
    assert run.parse_args(["conf", "--demo-file"]).pace == "auto"
    assert run.parse_args(["conf", "--demo-file", "--pace", "off"]).pace == "off"
    with pytest.raises(SystemExit):
        run.parse_args(["conf", "--pace", "fast"])


def _dry_run(tmp_path, *options):
    import io
    from pathlib import Path

    conf = Path(__file__).resolve().parent.parent / "conf"
    out = io.StringIO()
    assert run.main([str(conf), "--work-dir", str(tmp_path / "work"), "--dry-run", *options], stdout=out) == 0
    return out.getvalue()


def test_a_demo_run_says_how_it_is_paced_and_caps_every_peer(tmp_path):
    output = _dry_run(tmp_path, "--demo-file")
    chosen = pace.demo_pace(*_demo())  # conf/ is the course's demo: 6 peers, 20 MiB, k=3, p=1, m=2
    assert chosen.why in output
    peers = [line for line in output.splitlines() if line.startswith("here: peer")]
    assert len(peers) == 6 and all(f"--upload-rate {chosen.rate}" in line for line in peers)


def test_a_rate_of_its_own_or_pace_off_is_not_paced(tmp_path):
    own = _dry_run(tmp_path, "--demo-file", "--upload-rate", "5000")
    assert "pacing the demo" not in own and own.count("--upload-rate 5000") == 6
    off = _dry_run(tmp_path, "--demo-file", "--pace", "off")
    assert "pacing the demo" not in off and "--upload-rate" not in off
