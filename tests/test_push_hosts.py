"""``p2p-swarm push`` to hosts that answer ssh (real sshd in network namespaces, each
with its own disk), when some fail: one host refuses ssh and the peer on another is
killed mid-push, and the others still get exact copies; then a second push of the same
file skips the hosts that hold it, and ``--json`` says the same as the table."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshhosts import SshHosts, hosts_with_private_work

from twisted_p2p.launcher.plan import demo_bytes

SUBNET = "10.213.11"
WORK = Path(f"/tmp/p2p-push-hosts-{os.getpid()}")  # private on every host: separate disks
INBOX = WORK / "inbox"
FILE_SIZE = 12_000_000  # at the hosts' 50 Mbit/s, seconds to send: time to kill a peer mid-push


@pytest.fixture(scope="module")
def hosts() -> Iterator[SshHosts]:
    with hosts_with_private_work(4, SUBNET, "p2pu", WORK) as made:
        yield made


@pytest.fixture
def source(tmp_path: Path, hosts: SshHosts) -> Path:
    for address in hosts.addresses:  # every test starts with empty destinations
        inbox = hosts.path(address, INBOX)
        if inbox.is_dir():
            shutil.rmtree(inbox)
        inbox.unlink(missing_ok=True)
    path = tmp_path / "payload.bin"
    path.write_bytes(demo_bytes(FILE_SIZE))
    return path


def push(hosts: SshHosts, source: Path, targets: list[str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "twisted_p2p.launcher.cli", "push", str(source), *targets, "--dest", str(INBOX),
         "--ssh-config", str(hosts.ssh_config), "--connect-timeout", "3", "--timeout", "120", *args],
        cwd=source.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
    )


def finish(process: subprocess.Popen, timeout: float = 150) -> str:
    try:
        return process.communicate(timeout=timeout)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def copy_on(hosts: SshHosts, address: str) -> bytes | None:
    path = hosts.path(address, INBOX / "payload.bin")
    return path.read_bytes() if path.exists() else None


def kill_peer_once_it_has_pieces(hosts: SshHosts, address: str, peer_id: int, limit: float = 60) -> int:
    """SIGKILL the peer on ``address`` as soon as its event log shows a piece received
    (mid-push: it is far from complete); the number of pieces it had logged."""
    log = hosts.path(address, INBOX / f".p2p-push-{address}" / f"log_peer_{peer_id}.log")
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            text = log.read_text(errors="replace")
        except OSError:
            text = ""
        pieces = len(re.findall(r"has downloaded the piece", text))
        if pieces:
            victims = [pid for pid, command in hosts.processes(address) if "p2ppeer" in command and "twistd" in command]
            assert victims, hosts.processes(address)
            for pid in victims:
                os.kill(pid, signal.SIGKILL)
            return pieces
        time.sleep(0.02)
    raise AssertionError(f"peer {peer_id} on {address} received no piece within {limit:g} s")


def test_an_unreachable_host_and_a_peer_killed_mid_push_leave_the_others_with_exact_copies(hosts, source):
    first, victim, third, gone = hosts.addresses
    hosts.stop_sshd(gone)
    try:
        began = time.monotonic()
        process = push(hosts, source, [first, victim, third, gone])
        had = kill_peer_once_it_has_pieces(hosts, victim, 1003)  # the second of the three hosts left
        output = finish(process)
        took = time.monotonic() - began
    finally:
        hosts.start_sshd(gone)
    print(f"\npush to 4 hosts, one refusing ssh, one peer killed at {had} pieces: "
          f"exit {process.returncode} after {took:.1f} s")
    assert process.returncode == 1, output
    assert "Traceback" not in output
    for address in (first, third):
        assert copy_on(hosts, address) == source.read_bytes(), output
        assert re.search(rf"^{re.escape(address)} +delivered and verified: {re.escape(str(INBOX))}/payload.bin$",
                         output, re.M), output
    assert copy_on(hosts, victim) is None and copy_on(hosts, gone) is None
    assert re.search(rf"^{re.escape(gone)} +failed: ssh: connect to host {re.escape(gone)} port 22: "
                     "Connection refused$", output, re.M), output
    row = re.search(rf"^{re.escape(victim)} +failed: its peer ended with exit 255 \(its ssh session ended: "
                    r"the peer was killed, or the connection lost\) at (\d+)/(\d+) pieces "
                    rf"\(kept in {re.escape(str(INBOX))}/\.p2p-push-{re.escape(victim)}\)$", output, re.M)
    assert row and int(row.group(1)) < int(row.group(2)), output
    assert "2 of 4 hosts have the file" in output
    assert "every peer still running has the file (1 dropped): ending the swarm" in output
    # The victim's work dir stays, its partial copy in it, for a later push to resume; its
    # PeerInfo.cfg lists the hosts that were ready, not the one that refused ssh (the
    # others would have waited for it for ever).
    kept = hosts.path(victim, INBOX / f".p2p-push-{victim}")
    assert (kept / "peer_1003" / "payload.bin").exists()
    listed = [line.split()[1] for line in (kept / "PeerInfo.cfg").read_text().splitlines()]
    assert listed == [hosts.gateway, first, victim, third]
    assert not hosts.path(first, INBOX / f".p2p-push-{first}").exists()  # removed with the delivery
    assert hosts.left_running() == {}


def test_a_second_push_skips_the_hosts_that_hold_the_file_and_the_json_says_so(hosts, source, tmp_path):
    first, second, third, _ = hosts.addresses
    output = finish(push(hosts, source, [first, second]))
    assert "2 of 2 hosts have the file" in output, output
    # Pushed again, with one more host: only that one is sent the file.
    report = tmp_path / "result.json"
    output = finish(push(hosts, source, [first, second, third], "--json", str(report)))
    assert f"{first}: {INBOX}/payload.bin is already there (same size and SHA-256); left out" in output, output
    assert "pushing payload.bin (12000000 bytes" in output and "to 1 host, into" in output
    assert "started peer 1002 on " + third in output and "started peer 1003" not in output
    for address in (first, second, third):
        assert copy_on(hosts, address) == source.read_bytes()
    result = json.loads(report.read_text())
    assert result["exit"] == 0
    assert result["file"] == {"name": "payload.bin", "size": FILE_SIZE,
                              "sha256": hashlib.sha256(source.read_bytes()).hexdigest()}
    assert [(h["host"], h["state"], h["path"], h["cause"]) for h in result["hosts"]] == [
        (first, "already-there", f"{INBOX}/payload.bin", None),
        (second, "already-there", f"{INBOX}/payload.bin", None),
        (third, "delivered", f"{INBOX}/payload.bin", None),
    ]
    # Every host holds it now: a push is one ssh round to each, and nothing starts.
    began = time.monotonic()
    process = push(hosts, source, [first, second, third])
    output = finish(process)
    took = time.monotonic() - began
    print(f"\nsecond push of {FILE_SIZE} bytes to 3 hosts that hold it: exit {process.returncode} after {took:.1f} s")
    assert process.returncode == 0, output
    assert "nothing to send: every host holds the file already" in output
    assert "started peer" not in output and "preparing" not in output
    assert took < 10
    assert hosts.left_running() == {}


def test_a_host_that_cannot_be_prepared_is_left_out_and_the_other_gets_the_file(hosts, source):
    first, blocked = hosts.addresses[:2]
    hosts.path(blocked, INBOX).write_bytes(b"")  # a file where the destination directory should be
    process = push(hosts, source, [first, blocked])
    output = finish(process)
    assert process.returncode == 1, output
    assert copy_on(hosts, first) == source.read_bytes()
    assert re.search(rf"^{re.escape(blocked)}: cannot be prepared: mkdir: .*; left out$", output, re.M), output
    assert re.search(rf"^{re.escape(blocked)} +failed: mkdir: ", output, re.M), output
    assert "started peer 1003" not in output  # never started, and not waited for
    assert "Traceback" not in output
    assert hosts.left_running() == {}


def test_push_timeout_stops_every_peer_and_says_how_far_each_got(hosts, source):
    first, second = hosts.addresses[:2]
    process = push(hosts, source, [first, second], "--timeout", "0.5")  # the file needs 2 s at least
    output = finish(process)
    assert process.returncode == 1, output
    for address in (first, second):
        assert re.search(rf"^{re.escape(address)} +failed: stopped by timeout after 0.5 s at \d+/\d+ pieces "
                         rf"\(kept in ", output, re.M), output
        assert copy_on(hosts, address) is None
    assert "none of the 2 peers started on other hosts is running" in output
    assert hosts.left_running() == {}
