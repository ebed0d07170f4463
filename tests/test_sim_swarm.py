"""Whole swarms of real peers on the simulator: complete, audited, reproducible, and as
fast as the links allow but no faster."""
from __future__ import annotations

import dataclasses

from twisted_p2p.config import load
from twisted_p2p.eventlog import parse_line
from twisted_p2p.launcher.audit.result import audit
from twisted_p2p.layout import EVENT_LOG_GLOB, data_path
from twisted_p2p.settings import PeerSettings
from twisted_p2p.sim.net import LinkModel
from twisted_p2p.sim.swarm import EPOCH, host_address, simulate

REPO_CONF = "conf"


def _repo_config(file_size: int, piece_size: int):
    """The repo's swarm (1 seed + 5, k=3, p=1, m=2) with a smaller file."""
    config = load(REPO_CONF)
    common = dataclasses.replace(config.common, file_size=file_size, piece_size=piece_size)
    return dataclasses.replace(config, common=common)


def _logs(work_dir):
    return {path.name: path.read_bytes() for path in sorted(work_dir.glob(EVENT_LOG_GLOB))}


def test_the_repo_swarm_completes_with_identical_files_and_a_clean_audit(tmp_path):
    config = _repo_config(100_000, 4096)
    result = simulate(config, tmp_path, seed=7, link=LinkModel(delay=0.005))
    assert result.unfinished == [] and result.call_failures == 0
    assert result.files_identical
    seed_file = data_path(tmp_path, 1001, config.common.file_name).read_bytes()
    for peer in config.peers:
        assert data_path(tmp_path, peer.peer_id, config.common.file_name).read_bytes() == seed_file
    assert all(peer.complete_at is not None and peer.done_at is not None for peer in result.peers.values())
    assert result.completion == max(peer.complete_at for peer in result.peers.values())
    pieces = config.common.num_pieces
    assert result.messages()["piece"] >= 5 * pieces
    assert all(peer.connections == 5 for peer in result.peers.values())  # full mesh
    assert result.peers[1002].address == host_address(1) == "10.0.0.2"
    audited = audit(tmp_path, load(tmp_path))
    assert audited.clean, audited.findings


def test_one_seed_gives_one_run_and_another_seed_another(tmp_path):
    config = _repo_config(60_000, 2048)
    runs = {}
    for name, seed in (("first", 3), ("again", 3), ("other", 4)):
        simulate(config, tmp_path / name, seed=seed, link=LinkModel(delay=0.002, upload=500_000))
        runs[name] = _logs(tmp_path / name)
    assert len(runs["first"]) == 6
    assert runs["first"] == runs["again"]
    assert runs["first"] != runs["other"]


def test_completion_respects_the_textbook_bound_under_an_upload_cap(tmp_path):
    rate = 1_000_000
    config = _repo_config(2_000_000, 16384)
    result = simulate(config, tmp_path, seed=1, link=LinkModel(upload=rate, delay=0.001))
    assert result.unfinished == [] and result.files_identical
    size, leechers, peers = config.common.file_size, 5, 6
    bound = max(size / rate, leechers * size / (peers * rate))  # the seed's copy; every copy's bytes
    assert result.completion is not None
    assert bound <= result.completion <= 3 * bound


def test_at_the_limit_the_unfinished_are_reported_and_stopped(tmp_path):
    config = _repo_config(1_000_000, 16384)
    result = simulate(config, tmp_path, seed=1, link=LinkModel(upload=100_000), limit=2.0)
    assert result.unfinished == [1001, 1002, 1003, 1004, 1005, 1006]
    assert result.completion is None and not result.files_identical
    # The limit, then the closing: a connection closes or is aborted within close_timeout.
    assert 2.0 <= result.sim_seconds <= 2.0 + PeerSettings().close_timeout
    assert all(peer.complete_at is None for peer in result.peers.values() if not peer.has_file)
    assert sorted(audit(tmp_path, load(tmp_path)).logs) == [peer.peer_id for peer in config.peers]


def test_each_peer_takes_its_own_settings_and_starts_in_turn(tmp_path):
    config = _repo_config(100_000, 4096)
    capped = 200_000  # the seed's own upload cap (the course's token bucket, not the link)
    result = simulate(config, tmp_path, seed=2, stagger=0.25,
                      settings_for=lambda peer_id: PeerSettings(upload_rate=capped if peer_id == 1001 else 0))
    assert result.unfinished == [] and result.files_identical
    assert result.completion >= config.common.file_size / capped
    first_lines = [(tmp_path / f"log_peer_{peer.peer_id}.log").read_text().splitlines()[0] for peer in config.peers]
    starts = [parse_line(line).time - EPOCH for line in first_lines[1:]]  # the seed's first line is a connection
    assert all(start >= 0.25 * position for position, start in enumerate(starts, start=1))


def test_peers_not_started_by_the_limit_never_start_and_hold_up_nothing(tmp_path):
    config = _repo_config(60_000, 2048)
    result = simulate(config, tmp_path, seed=1, stagger=10.0, limit=25.0)  # the last three start after it
    assert result.unfinished == [1001, 1002, 1003, 1004, 1005, 1006]
    assert 25.0 <= result.sim_seconds <= 25.0 + PeerSettings().close_timeout
    assert [(tmp_path / f"log_peer_{peer.peer_id}.log").stat().st_size > 0 for peer in config.peers] == [
        True, True, True, False, False, False]


def test_the_cycle_collector_is_off_for_the_run_and_as_it_was_after(tmp_path, monkeypatch):
    import gc

    from twisted_p2p.sim.clock import SimClock

    during = []
    run = SimClock.run

    def watched(self, until, limit):
        during.append(gc.isenabled())
        return run(self, until, limit)

    monkeypatch.setattr(SimClock, "run", watched)
    config = _repo_config(20_000, 4096)
    assert gc.isenabled()
    assert simulate(config, tmp_path / "on", seed=1).unfinished == []
    assert gc.isenabled() and during == [False, False]
    gc.disable()
    try:
        assert simulate(config, tmp_path / "off", seed=1).unfinished == []
        assert not gc.isenabled()
    finally:
        gc.enable()
