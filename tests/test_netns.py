"""``p2p-swarm run`` over its remote-shell path, across real hosts: one network namespace per peer.

The hosts are made by :mod:`netns`, in 10.213.7.0/24. PeerInfo.cfg names their
addresses and the launcher reaches each "host" with ``ip netns exec``. Needs root and
iproute2.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from netns import private_hosts
from support import write_config

from twisted_p2p.config import Common, PeerInfo, SwarmConfig

SUBNET = "10.213.7"
PEER_IDS = [1001, 1002, 1003, 1004]
TAG = f"p2p{os.getpid()}"  # at most 10 characters, so interface names stay within 15


@pytest.fixture
def hosts() -> Iterator[list[str]]:
    """One namespace per peer on a private bridge; yields the peers' addresses."""
    with private_hosts(len(PEER_IDS), SUBNET, TAG) as made:
        yield made.addresses


def test_remote_shell_runs_each_peer_on_its_own_host(tmp_path, hosts):
    common = Common(3, 1, 2, "TheFile.dat", 1_000_000, 16384)
    peers = tuple(PeerInfo(peer_id, host, 6008, peer_id == PEER_IDS[0]) for peer_id, host in zip(PEER_IDS, hosts))
    write_config(tmp_path / "conf", SwarmConfig(common, peers))
    template = (f"ip netns exec {TAG}-{{host}} {{twistd}} -n --pidfile= p2ppeer --id {{id}}"
                " --config-dir {config_dir} --work-dir {dir} --echo-events")
    launcher = subprocess.run(
        [sys.executable, "-m", "twisted_p2p.launcher.cli", "run", "conf", "--work-dir", "work", "--demo-file",
         "--pace", "off", "--stagger", "0.05", "--timeout", "60", "--remote-shell", template],
        cwd=tmp_path, capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL,
    )
    output = launcher.stdout + launcher.stderr
    assert launcher.returncode == 0, output
    for peer in peers:
        assert f"started peer {peer.peer_id} on {peer.host} (pid" in output
    report = json.loads((tmp_path / "work" / "swarm-report.json").read_text())
    seed = (tmp_path / "work" / "peer_1001" / "TheFile.dat").read_bytes()
    for entry in report["peers"]:
        host = hosts[PEER_IDS.index(entry["id"])]
        assert (entry["host"], entry["exit_status"], entry["sha256_ok"]) == (host, 0, True)
        assert (tmp_path / "work" / f"peer_{entry['id']}" / "TheFile.dat").read_bytes() == seed
        # The progress of a "remote" peer comes only from what it printed: it must be complete.
        assert report["timeline"][str(entry["id"])][-1][1] == common.num_pieces
        if not entry["seed"]:
            assert sum(entry["received_from"].values()) == common.num_pieces
