"""``p2p-swarm run`` and ``push`` across four hosts that answer ssh (real sshd in network
namespaces, each with its own copy of the work dir and a capped link), used as the
README says: no template, only ``--ssh-config`` because the test's keys are not in
``~/.ssh``. After every way of stopping, nothing the launcher started runs on any host.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshhosts import SshHosts, hosts_with_private_work
from support import write_config

from twisted_p2p.config import Common, PeerInfo, SwarmConfig
from twisted_p2p.launcher.plan import demo_bytes

SUBNET = "10.213.10"
WORK = Path(f"/tmp/p2p-remote-launch-{os.getpid()}")  # private on every host: separate disks
FILE_SIZE = 3_000_000


@pytest.fixture(scope="module")
def hosts() -> Iterator[SshHosts]:
    with hosts_with_private_work(4, SUBNET, "p2pr", WORK) as made:
        yield made


def six_peers_on_four_hosts(tmp_path: Path, hosts: SshHosts) -> Path:
    addresses = hosts.addresses
    common = Common(3, 1, 2, "TheFile.dat", FILE_SIZE, 16384)
    peers = tuple(PeerInfo(1001 + i, addresses[i % 4], 7001 + i, i == 0) for i in range(6))
    write_config(tmp_path / "conf", SwarmConfig(common, peers))
    return tmp_path / "conf"


def launcher(tmp_path: Path, hosts: SshHosts, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "twisted_p2p.launcher.cli", *args, "--ssh-config", str(hosts.ssh_config)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
    )


def run(tmp_path: Path, hosts: SshHosts, *args: str, timeout: float = 90) -> tuple[int, str]:
    process = launcher(tmp_path, hosts, *args)
    try:
        output = process.communicate(timeout=timeout)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, output


def wait_for(process: subprocess.Popen, text: str, limit: float = 60) -> str:
    """Read the launcher's output until ``text`` appears."""
    seen = []
    deadline = time.monotonic() + limit
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return "".join(seen)
    raise AssertionError(f"never saw {text!r}:\n{''.join(seen)}")


def test_six_peers_on_four_hosts_with_no_template(tmp_path, hosts):
    six_peers_on_four_hosts(tmp_path, hosts)
    began = time.monotonic()
    code, output = run(tmp_path, hosts, "run", "conf", "--demo-file", "--pace", "off", "--work-dir", str(WORK))
    print(f"\nfour hosts, six peers: exit {code} after {time.monotonic() - began:.1f} s")
    assert code == 0, output
    assert "sending the seed's file to peer 1001 on" in output
    assert "checked over ssh: none of the 6 peers started on 4 other hosts is running" in output
    expected = demo_bytes(FILE_SIZE)
    for peer_id, address in zip(range(1001, 1007), hosts.addresses * 2):
        assert hosts.path(address, WORK / f"peer_{peer_id}" / "TheFile.dat").read_bytes() == expected
    assert hosts.left_running() == {}
    # Each host's event logs come back here, so the audit and its rubric read the whole swarm.
    assert "fetched the event logs of peers 1001, 1002, 1003, 1004, 1005, 1006 from their hosts" in output
    for peer_id, address in zip(range(1001, 1007), hosts.addresses * 2):
        assert (WORK / f"log_peer_{peer_id}.log").read_bytes() == \
            hosts.path(address, WORK / f"log_peer_{peer_id}.log").read_bytes()
    audited = subprocess.run([sys.executable, "-m", "twisted_p2p.launcher.cli", "audit", "--rubric", str(WORK),
                              "--config-dir", str(tmp_path / "conf")], capture_output=True, text=True, timeout=60)
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert "makes a TCP connection to every peer listed before it (1001, 1002, 1003, 1004, 1005)" in audited.stdout
    # A second run in the same dirs: the earlier run's files are cleared there, and it passes.
    code, output = run(tmp_path, hosts, "run", "conf", "--demo-file", "--pace", "off", "--work-dir", str(WORK))
    assert code == 0, output


@pytest.mark.slow  # four launches across four hosts: about 70 s
@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "timeout", "a failed peer"])
def test_every_way_of_stopping_leaves_nothing_on_any_host(tmp_path, hosts, how):
    six_peers_on_four_hosts(tmp_path, hosts)
    extra = ["--timeout", "2"] if how == "timeout" else []
    process = launcher(tmp_path, hosts, "run", "conf", "--demo-file", "--pace", "off", "--work-dir", str(WORK),
                       "--stagger", "0.3", *extra)
    try:
        seen = wait_for(process, "started peer 1006")
        if how in ("SIGINT", "SIGTERM"):
            process.send_signal(getattr(signal, how))
        elif how == "a failed peer":
            victim = hosts.addresses[2]  # peer 1003
            pids = [pid for pid, command in hosts.processes(victim) if "p2ppeer" in command]
            assert pids, hosts.processes(victim)
            hosts.ssh(victim, f"kill -9 {' '.join(map(str, pids))}")
        output = seen + process.communicate(timeout=60)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    expected = {"SIGINT": 130, "SIGTERM": 143, "timeout": 124, "a failed peer": 1}[how]
    assert process.returncode == expected, output
    assert "none of the 6 peers started on 4 other hosts is running" in output, output
    assert hosts.left_running() == {}
    if how == "a failed peer":
        assert "peer 1003 on" in output and "ended with" in output
    if how == "SIGINT":  # a second run after an interrupted one passes
        code, output = run(tmp_path, hosts, "run", "conf", "--demo-file", "--pace", "off", "--work-dir", str(WORK))
        assert code == 0, output


@pytest.mark.parametrize("how", ["refused", "silent"])
def test_an_unreachable_host_is_one_clear_line_and_nothing_starts(tmp_path, hosts, how):
    six_peers_on_four_hosts(tmp_path, hosts)
    gone = hosts.addresses[3]
    if how == "refused":
        hosts.stop_sshd(gone)
    else:
        hosts.blackhole(gone)
    try:
        began = time.monotonic()
        code, output = run(tmp_path, hosts, "run", "conf", "--demo-file", "--pace", "off", "--work-dir", str(WORK),
                           "--connect-timeout", "3")
        took = time.monotonic() - began
    finally:
        if how == "refused":
            hosts.start_sshd(gone)
        else:
            hosts.restore(gone)
    print(f"\nunreachable ({how}): exit {code} after {took:.1f} s: {output.strip().splitlines()[-1]}")
    assert code == 2
    errors = [line for line in output.splitlines() if line.startswith("p2p-swarm run:")]
    assert len(errors) == 1 and f"host {gone}: ssh: connect to host {gone} port 22" in errors[0], output
    assert "Traceback" not in output
    assert took < 30
    assert hosts.left_running() == {}


def test_twistd_missing_on_the_hosts_is_said_in_one_line(tmp_path, hosts):
    six_peers_on_four_hosts(tmp_path, hosts)
    code, output = run(tmp_path, hosts, "run", "conf", "--demo-file", "--pace", "off", "--work-dir", str(WORK),
                       "--remote-twistd", "/nowhere/bin/twistd")
    assert code == 2
    assert "twistd not found at /nowhere/bin/twistd on this host: install the project there, or give " \
           "--remote-twistd" in output


def test_push_sends_a_verified_file_to_three_hosts(tmp_path, hosts):
    source = tmp_path / "payload.bin"
    source.write_bytes(demo_bytes(5_000_000))
    targets = hosts.addresses[:3]
    began = time.monotonic()
    code, output = run(tmp_path, hosts, "push", str(source), *targets, "--dest", str(WORK / "inbox"),
                       "--report", str(tmp_path / "report"))
    print(f"\npush to 3 hosts: exit {code} after {time.monotonic() - began:.1f} s")
    assert code == 0, output
    # 305 pieces need nothing bigger than the smallest, unless the round trip, timed to
    # hosts a bridge away, came out long on a busy machine; either way it says why.
    chosen = re.search(r"piece size (\d+): .*?(\d+\.\d) ms round trip", output)
    assert chosen, output
    assert int(chosen[1]) == 16384 or "one piece per round trip moves" in output
    for address in targets:
        assert hosts.path(address, WORK / "inbox" / "payload.bin").read_bytes() == source.read_bytes()
        assert f"{address}  delivered and verified: {WORK / 'inbox' / 'payload.bin'}" in output
        assert not hosts.path(address, WORK / "inbox" / f".p2p-push-{address}").exists()
    assert hosts.left_running() == {}
    report = json.loads((tmp_path / "report" / "swarm-report.json").read_text())  # kept, as asked
    assert report["exit_code"] == 0 and [peer["sha256_ok"] for peer in report["peers"]] == [True] * 4
    assert (tmp_path / "report" / "swarm-report.html").read_text().startswith("<!DOCTYPE html>")
    assert not list(tmp_path.glob("swarm-report*"))
