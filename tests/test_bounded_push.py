"""push with bounded neighbour sets: the choice of degree, and the peers' command lines
(with a stand-in for ssh; no host is contacted, no peer started)."""
from __future__ import annotations

import io
import random
import re
import subprocess

import pytest

from twisted_p2p.launcher import push
from twisted_p2p.launcher.options import DEFAULT_PIPELINE
from twisted_p2p.launcher.pushmesh import (
    BOUNDED_PIPELINE,
    DEFAULT_DEGREE,
    FULL_MESH_UP_TO,
    degree_for,
    neighbour_options,
    parse_degree,
)
from twisted_p2p.launcher.pushresult import DELIVERED, HostOutcome
from twisted_p2p.launcher.pushrun import Push
from twisted_p2p.launcher.remote import Host, Hosts, Ssh


@pytest.mark.parametrize("text, degree", [("auto", None), ("all", 0), ("1", 1), ("12", 12)])
def test_the_neighbours_option_reads_auto_all_or_a_degree(text, degree):
    assert parse_degree(text) == degree


@pytest.mark.parametrize("text", ["0", "-3", "many", ""])
def test_a_bad_neighbours_option_says_what_it_takes(text):
    with pytest.raises(ValueError, match="--neighbours takes auto, all or a number of neighbours"):
        parse_degree(text)


def test_auto_is_the_full_mesh_up_to_its_bound_and_bounded_above():
    assert degree_for(None, FULL_MESH_UP_TO) == 0
    assert degree_for(None, FULL_MESH_UP_TO + 1) == DEFAULT_DEGREE
    assert degree_for(0, 500) == 0 and degree_for(3, 5) == 3


def sets_of(options: dict[int, list[str]]) -> dict[int, set[int]]:
    sets = {}
    for peer, argv in options.items():
        assert argv[0] == "--neighbours" and len(argv) == 2
        sets[peer] = {int(word) for word in argv[1].split(",")}
    return sets


def test_each_peer_gets_its_set_the_seed_too_and_the_sets_agree():
    ids = list(range(1001, 1041))
    sets = sets_of(neighbour_options(ids, 4, random.Random(2)))
    assert set(sets) == set(ids) and sets[1001]  # the seed is in the graph like any other peer
    assert all(peer in sets[other] for peer, mine in sets.items() for other in mine)


def test_the_seeds_neighbours_and_only_they_split_its_pieces_among_them():
    ids = list(range(1001, 1041))
    options = neighbour_options(ids, 4, random.Random(2), seed=1001)
    sets = sets_of({peer: argv[:2] for peer, argv in options.items()})
    for peer, argv in options.items():
        if peer in sets[1001]:
            assert argv[2:] == ["--split-among", ",".join(map(str, sorted(sets[1001])))]
        else:
            assert argv[2:] == []


def test_a_full_mesh_or_a_degree_that_joins_everyone_adds_no_option():
    assert neighbour_options([1001, 1002, 1003], 0, random.Random(1)) == {1001: [], 1002: [], 1003: []}
    assert neighbour_options([1001, 1002, 1003], 2, random.Random(1)) == {1001: [], 1002: [], 1003: []}


def stand_in_ssh(calls: list[list[str]]):
    """Every host answers that it lacks the file; every other command succeeds."""
    def run(argv: list[str], input: bytes | None = None, capture_output: bool = True,
            timeout: float | None = None) -> subprocess.CompletedProcess:
        calls.append(argv)
        answer = "absent\n" if "-T" in argv and argv[-1].startswith("if [ -f") else ""
        return subprocess.CompletedProcess(argv, 0, answer.encode(), b"")

    return run


def test_push_hands_every_peer_its_set_and_asks_for_summaries(tmp_path, monkeypatch):
    source = tmp_path / "f.bin"
    source.write_bytes(random.Random(1).randbytes(200_000))
    names = [f"lab{i}" for i in range(1, 21)]
    remote = Hosts(Ssh(tmp_path), [Host(name, f"/d/.p2p-push-{name}") for name in names],
                   run=stand_in_ssh([]))
    started: list = []

    def run_and_deliver(self, remote, config, launches, dropped, targets, outcomes, say):
        started.extend(launches)
        outcomes.update({host: HostOutcome(host, DELIVERED, target.path) for host, target in targets.items()})
        return None

    monkeypatch.setattr(Push, "_run_and_deliver", run_and_deliver)

    def configure(needed: list[str], resumable: int | None):
        return push.swarm_for(source, needed, "127.0.0.1", 7000, random.Random(1), 16384), "a test's"

    out = io.StringIO()
    job = Push(source, names, "/d", "/d/.p2p-push-{host}", configure, None, None, out, rng=random.Random(4))
    job.run(remote)
    assert len(started) == 21
    sets, splits = {}, {}
    for launch in started:
        words = " ".join(launch.argv)
        found = re.search(r"--neighbours ([\d,]+)", words)
        assert found, words
        sets[launch.peer.peer_id] = {int(word) for word in found[1].split(",")}
        among = re.search(r"--split-among ([\d,]+)", words)
        splits[launch.peer.peer_id] = among[1] if among else None
        if launch.over_ssh:
            assert "--echo-summary 1" in words and "--echo-events" not in words
        # a neighbour's upload is shared by its own set: shallow queues at each
        assert re.findall(r"--pipeline (\d+)", words) == [str(BOUNDED_PIPELINE)]
    assert all(peer in sets[other] for peer, mine in sets.items() for other in mine)
    assert all(DEFAULT_DEGREE <= len(mine) <= DEFAULT_DEGREE + 2 for mine in sets.values())
    seed_set = ",".join(map(str, sorted(sets[1001])))
    assert splits == {peer: seed_set if peer in sets[1001] else None for peer in sets}
    assert "neighbours: each peer connects with 8 or so of the 21 peers" in out.getvalue()


def test_a_dry_run_shows_the_sets_and_a_small_push_keeps_the_full_mesh(tmp_path):
    source = tmp_path / "f.bin"
    source.write_bytes(bytes(100_000))
    hosts = [f"10.77.0.{i}" for i in range(1, 5)]
    out = io.StringIO()
    assert push.main([str(source), *hosts, "--seed-address", "10.77.0.250", "--dry-run", "--dest", "/d"], out) == 0
    # the full mesh: every event line echoed, so an interrupted push knows each piece as it landed
    assert "--neighbours" not in out.getvalue() and "--echo-summary" not in out.getvalue()
    assert "--echo-events" in out.getvalue()
    assert set(re.findall(r"--pipeline (\d+)", out.getvalue())) == {str(DEFAULT_PIPELINE)}
    out = io.StringIO()
    push.main([str(source), *hosts, "--seed-address", "10.77.0.250", "--dry-run", "--dest", "/d",
               "--neighbours", "2"], out)
    assert len(re.findall(r"p2ppeer --id \d+ .* --neighbours [\d,]+", out.getvalue())) == 5
    assert "--echo-summary 1" in out.getvalue() and "--echo-events" not in out.getvalue()
    assert set(re.findall(r"--pipeline (\d+)", out.getvalue())) == {str(BOUNDED_PIPELINE)}
