"""``p2p-swarm push`` to real sshd hosts in namespaces: a push interrupted mid-way is
resumed by the next one (which sends less and ends with exact copies); hosts named in
a file, on standard input, as ``user@host:port`` and as ssh config aliases; and a host
whose disk cannot hold the file is left out in one line while the others get it."""
from __future__ import annotations

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

SUBNET = "10.213.12"
WORK = Path(f"/tmp/p2p-push-resume-{os.getpid()}")  # private on every host: separate disks
INBOX = WORK / "inbox"
FILE_SIZE = 12_000_000  # at the hosts' 50 Mbit/s: seconds to send, time to interrupt half-way


@pytest.fixture(scope="module")
def hosts() -> Iterator[SshHosts]:
    with hosts_with_private_work(3, SUBNET, "p2ps", WORK) as made:
        yield made


@pytest.fixture
def source(tmp_path: Path, hosts: SshHosts) -> Path:
    for address in hosts.addresses:  # every test starts with empty destinations
        shutil.rmtree(hosts.path(address, INBOX), ignore_errors=True)
    path = tmp_path / "payload.bin"
    path.write_bytes(demo_bytes(FILE_SIZE))
    return path


def push(hosts: SshHosts, source: Path, targets: list[str], *args: str, stdin: str | None = None,
         config: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "twisted_p2p.launcher.cli", "push", str(source), *targets, "--dest", str(INBOX),
         "--ssh-config", str(config or hosts.ssh_config), "--connect-timeout", "3", "--timeout", "120", *args],
        cwd=source.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
    )


def finish(process: subprocess.Popen, stdin: str | None = None, timeout: float = 150) -> str:
    try:
        return process.communicate(stdin, timeout=timeout)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def received(hosts: SshHosts) -> int:
    """Bytes sent into the hosts so far (the bridge's ends of their links), from the
    seed or from each other."""
    return sum(int(Path(f"/sys/class/net/{hosts.netns.link(address)}/statistics/tx_bytes").read_text())
               for address in hosts.addresses)


def copy_on(hosts: SshHosts, address: str) -> bytes | None:
    path = hosts.path(address, INBOX / "payload.bin")
    return path.read_bytes() if path.exists() else None


def pieces_logged(hosts: SshHosts, address: str, peer_id: int) -> int:
    try:
        text = hosts.path(address, INBOX / f".p2p-push-{address}" / f"log_peer_{peer_id}.log").read_text(
            errors="replace")
    except OSError:
        return 0
    counts = re.findall(r"Now the number of pieces it has is (\d+)", text)
    return int(counts[-1]) if counts else 0


def test_an_interrupted_push_is_resumed_from_the_verified_pieces_and_sends_less(hosts, source):
    targets = hosts.addresses
    began, before = time.monotonic(), received(hosts)
    # Its pieces are 64 KiB (184 of them); the next push, not told, must choose the same.
    process = push(hosts, source, targets, "--piece-size", "65536")
    deadline = time.monotonic() + 90
    while process.poll() is None and pieces_logged(hosts, targets[0], 1002) < 92:  # about half
        assert time.monotonic() < deadline, "the first host got no pieces"
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    output = finish(process)
    first_bytes, first_took = received(hosts) - before, time.monotonic() - began
    assert process.returncode == 130, output
    rows = re.findall(r"^\S+ +failed: push interrupted at (\d+)/(\d+) pieces \(kept in ", output, re.M)
    assert len(rows) == 3 and all(0 < int(held) < int(total) for held, total in rows), output
    assert hosts.left_running() == {}

    began, before = time.monotonic(), received(hosts)
    output = finish(push(hosts, source, targets))
    resumed_bytes, resumed_took = received(hosts) - before, time.monotonic() - began
    print(f"\ninterrupted push: {first_took:.1f} s, {first_bytes / 1e6:.1f} MB into the hosts; "
          f"the resumed one: {resumed_took:.1f} s, {resumed_bytes / 1e6:.1f} MB")
    assert "Traceback" not in output
    assert "piece size 65536: the same as the unfinished push's, whose pieces are there" in output, output
    kept = {host: int(count.replace(",", "")) for host, count in
            re.findall(r"^(\S+): resuming: ([\d,]+) of 184 pieces already there$", output, re.M)}
    assert set(kept) == set(targets), output
    assert all(count >= 1 for count in kept.values())
    assert "3 of 3 hosts have the file" in output, output
    for address in targets:
        assert copy_on(hosts, address) == source.read_bytes()
        assert not hosts.path(address, INBOX / f".p2p-push-{address}").exists()
    # Each host is sent what it lacked, not the whole file again (plus the protocol's overhead).
    lacked = sum(184 - count for count in kept.values()) * 65536
    assert resumed_bytes < lacked * 1.15 + 1_000_000, (resumed_bytes, lacked)
    assert resumed_bytes < 3 * FILE_SIZE * 0.85
    assert hosts.left_running() == {}


def test_hosts_from_a_file_and_standard_input_by_alias_and_user_at_host_port(hosts, source, tmp_path):
    first, second, third = hosts.addresses
    config = tmp_path / "ssh_config"  # the hosts' own config, and an alias for the first
    config.write_text(f"Host lab-one\n    HostName {first}\n" + hosts.ssh_config.read_text().replace(
        f"Host {' '.join(hosts.addresses)}", f"Host lab-one {' '.join(hosts.addresses)}"))
    listed = tmp_path / "hosts.txt"
    listed.write_text(f"# the lab\nlab-one\nroot@{second}:22   # by user and port\n")
    process = push(hosts, source, [], "-f", str(listed), "-f", "-", stdin=f"{third}\n", config=config)
    output = finish(process, stdin=f"{third}\n")
    assert process.returncode == 0, output
    assert "lab-one: ssh reaches" not in output  # (that is --dry-run's line)
    for name in ("lab-one", f"root@{second}:22", third):
        assert re.search(rf"^{re.escape(name)} +delivered and verified: {re.escape(str(INBOX))}/payload.bin$",
                         output, re.M), output
    for address in hosts.addresses:
        assert copy_on(hosts, address) == source.read_bytes()
    # what a dry run shows for them: ssh's own arguments, and the addresses peers are listed by
    dry = subprocess.run([sys.executable, "-m", "twisted_p2p.launcher.cli", "push", str(source), "lab-one",
                          f"root@{second}:2222", "--dest", str(INBOX), "--ssh-config", str(config), "--dry-run",
                          "--upload-rate", "200Mbit"], capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert f"lab-one: ssh reaches it at {first}, the address its peer is listed by" in dry.stdout
    assert f"-p 2222 root@{second}" in dry.stdout and "--upload-rate 25000000" in dry.stdout
    assert hosts.left_running() == {}


def test_a_host_whose_disk_is_too_small_is_left_out_in_one_line_and_the_others_get_the_file(hosts, source):
    first, small, third = hosts.addresses
    inbox = hosts.path(small, INBOX)
    inbox.mkdir(parents=True)
    mount = [*hosts.run_in(small), "mount", "-t", "tmpfs", "-o", "size=4m", "tiny", str(INBOX)]
    subprocess.run(mount, check=True, capture_output=True, timeout=20)
    try:
        process = push(hosts, source, [first, small, third], "--upload-rate", "100Mbit")
        output = finish(process)
    finally:
        subprocess.run([*hosts.run_in(small), "umount", str(INBOX)], check=True, capture_output=True, timeout=20)
    assert process.returncode == 1, output
    line = (f"{small}: not enough disk space: {INBOX} has 4.2 MB free, the file needs 14.1 MB; left out")
    assert line in output.splitlines(), output
    assert re.search(rf"^{re.escape(small)} +failed: not enough disk space: ", output, re.M), output
    assert "to 2 hosts, into" in output and "Traceback" not in output
    assert copy_on(hosts, first) == source.read_bytes() and copy_on(hosts, third) == source.read_bytes()
    assert copy_on(hosts, small) is None
    assert hosts.left_running() == {}
