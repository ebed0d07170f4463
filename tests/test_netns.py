"""``p2p-swarm run`` over its remote-shell path, across real hosts: one network namespace per peer.

Each namespace gets a veth pair to a bridge made for this test and its own address in
10.213.7.0/24, which exists only inside these namespaces (the bridge has no address, so
nothing outside can reach them nor they it). PeerInfo.cfg names those addresses and the
launcher reaches each "host" with ``ip netns exec``. Everything made here has the pid
in its name and is removed afterwards, also on failure. Needs root and iproute2.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from typing import Iterator

import pytest

from twisted_p2p.config import Common, PeerInfo, SwarmConfig

from support import write_config

SUBNET = "10.213.7"
PEER_IDS = [1001, 1002, 1003, 1004]
TAG = f"p2p{os.getpid()}"  # at most 10 characters, so interface names stay within 15


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=check)


def namespace(host: str) -> str:
    return f"{TAG}-{host}"


@pytest.fixture
def hosts() -> Iterator[list[str]]:
    """One namespace per peer on a private bridge; yields the peers' addresses."""
    if not sys.platform.startswith("linux"):
        pytest.skip("network namespaces are a Linux feature")
    if os.geteuid() != 0:
        pytest.skip("making network namespaces needs root")
    if shutil.which("ip") is None:
        pytest.skip("the ip command (iproute2) is not installed")
    addresses = [f"{SUBNET}.{index + 2}" for index in range(len(PEER_IDS))]
    bridge = f"{TAG}br"
    made: list[str] = []
    try:
        probe = ip("netns", "add", namespace(addresses[0]), check=False)
        if probe.returncode != 0:
            pytest.skip(f"cannot make a network namespace here: {probe.stderr.strip()}")
        made.append(namespace(addresses[0]))
        ip("link", "add", bridge, "type", "bridge")
        ip("link", "set", bridge, "up")
        for index, address in enumerate(addresses):
            name = namespace(address)
            if name not in made:
                ip("netns", "add", name)
                made.append(name)
            outside, inside = f"{TAG}h{index}", f"{TAG}n{index}"
            ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            ip("link", "set", inside, "netns", name)
            ip("link", "set", outside, "master", bridge, "up")
            ip("-n", name, "addr", "add", f"{address}/24", "dev", inside)
            ip("-n", name, "link", "set", inside, "up")
            ip("-n", name, "link", "set", "lo", "up")
        yield addresses
    finally:
        for name in made:
            for pid in ip("netns", "pids", name, check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)  # only what the launcher left in our namespace
                except ProcessLookupError:
                    pass
            ip("netns", "del", name, check=False)  # takes its end of the veth pair, and so the pair
        for index in range(len(PEER_IDS)):
            ip("link", "del", f"{TAG}h{index}", check=False)
        ip("link", "del", bridge, check=False)


def test_remote_shell_runs_each_peer_on_its_own_host(tmp_path, hosts):
    common = Common(3, 1, 2, "TheFile.dat", 1_000_000, 16384)
    peers = tuple(PeerInfo(peer_id, host, 6008, peer_id == PEER_IDS[0]) for peer_id, host in zip(PEER_IDS, hosts))
    write_config(tmp_path / "conf", SwarmConfig(common, peers))
    template = (f"ip netns exec {TAG}-{{host}} {{twistd}} -n --pidfile= p2ppeer --id {{id}}"
                " --config-dir {config_dir} --work-dir {dir} --echo-events")
    launcher = subprocess.run(
        [sys.executable, "-m", "twisted_p2p.swarm.cli", "run", "conf", "--work-dir", "work", "--demo-file",
         "--stagger", "0.05", "--timeout", "60", "--remote-shell", template],
        cwd=tmp_path, capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL,
    )
    output = launcher.stdout + launcher.stderr
    assert launcher.returncode == 0, output
    for peer in peers:
        assert f"started peer {peer.peer_id} on {peer.host} (pid" in output
    report = json.loads((tmp_path / "work" / "swarm-report.json").read_text())
    seed = (tmp_path / "work" / "peer_1001" / "TheFile.dat").read_bytes()
    for entry in report["peers"]:
        assert (entry["host"], entry["exit_status"], entry["sha256_ok"]) == (hosts[PEER_IDS.index(entry["id"])], 0, True)
        assert (tmp_path / "work" / f"peer_{entry['id']}" / "TheFile.dat").read_bytes() == seed
        # The progress of a "remote" peer comes only from what it printed: it must be complete.
        assert report["timeline"][str(entry["id"])][-1][1] == common.num_pieces
        if not entry["seed"]:
            assert sum(entry["received_from"].values()) == common.num_pieces
