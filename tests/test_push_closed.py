"""``p2p-swarm push`` makes a closed, verified swarm: on namespace hosts with real sshd,
every peer it starts is given this push's secret (by file, readable by its owner only,
never on a command line) and the piece hashes, with ``--tls`` the push's certificate too;
the copies end exact and nothing of the secret is left on the hosts."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshhosts import SshHosts, hosts_with_private_work

from twisted_p2p.launcher.plan import demo_bytes

SUBNET = "10.213.40"
WORK = Path(f"/tmp/p2p-push-closed-{os.getpid()}")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hosts() -> Iterator[SshHosts]:
    with hosts_with_private_work(3, SUBNET, "p2pc", WORK) as made:
        yield made


def watch_peers(hosts: SshHosts, seen: dict[str, str], stop: threading.Event) -> None:
    """Record each host's peer command line, and the mode of its secret, while it runs."""
    while not stop.is_set():
        for address in hosts.addresses:
            for _, command in hosts.processes(address):
                if "p2ppeer" in command and address not in seen:
                    secret = hosts.path(address, WORK / "inbox" / f".p2p-push-{address}" / "push.secret")
                    try:
                        seen[address] = f"{command} | secret mode {secret.stat().st_mode & 0o777:o}"
                    except OSError:
                        pass
        time.sleep(0.05)


@pytest.mark.parametrize("tls", [False, True], ids=["auth", "auth+tls"])
def test_push_starts_every_peer_with_the_pushs_secret_and_hashes(tmp_path, hosts, tls):
    if tls:
        pytest.importorskip("OpenSSL")
    source = tmp_path / "payload.bin"
    source.write_bytes(demo_bytes(40_000_000))
    seen: dict[str, str] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=watch_peers, args=(hosts, seen, stop), daemon=True)
    watcher.start()
    began = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "twisted_p2p.launcher.cli", "push", str(source), *hosts.addresses,
             "--dest", str(WORK / "inbox"), "--ssh-config", str(hosts.ssh_config), *(["--tls"] if tls else [])],
            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    finally:
        stop.set()
        watcher.join(5)
    print(f"\npush of 40 MB to 3 hosts ({'TLS' if tls else 'auth'}): exit {result.returncode} "
          f"after {time.monotonic() - began:.1f} s")
    assert result.returncode == 0, result.stdout + result.stderr
    for address in hosts.addresses:
        assert hosts.path(address, WORK / "inbox" / "payload.bin").read_bytes() == source.read_bytes()
        assert not hosts.path(address, WORK / "inbox" / f".p2p-push-{address}").exists()  # secret gone too
    assert seen, "no peer seen running"  # a 40 MB push is quick: those caught running are enough
    for command in seen.values():
        assert "--secret-file push.secret" in command and command.endswith("secret mode 600"), command
        assert ("--tls-cert push.pem" in command) is tls, command
        assert "--allow-hosts" not in command  # PeerInfo.cfg's hosts, by default
    hosts.path(hosts.addresses[0], WORK / "inbox" / "payload.bin").unlink()
