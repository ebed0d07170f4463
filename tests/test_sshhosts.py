"""The ssh hosts of :mod:`sshhosts`: four namespaces, each with a real sshd, reachable from
here with ``ssh -F``, reaching each other and this machine, and gone without a trace
afterwards. Needs root, iproute2 and openssh-server."""
from __future__ import annotations

import os
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from sshhosts import ssh_hosts

TAG = f"p2ps{os.getpid()}"
LIMIT = 20.0  # seconds for the whole test, teardown included


def reaches(hosts, address: str, target: str, port: int) -> bool:
    """Whether a shell on the host can open a TCP connection to ``target:port``."""
    done = hosts.ssh(address, f"exec 3<>/dev/tcp/{target}/{port} && echo yes")
    return done.stdout.strip() == "yes"


def refused_or_silent(address: str) -> str:
    try:
        socket.create_connection((address, 22), timeout=1).close()
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "silent"
    return "open"


def test_four_hosts_answer_ssh_and_leave_nothing(tmp_path):
    began = time.monotonic()
    private = tmp_path / "per-host"
    with ssh_hosts(4, tag=TAG, private_dirs=[private]) as hosts:
        assert hosts.addresses == [f"10.213.9.{n}" for n in (2, 3, 4, 5)]
        assert hosts.gateway == "10.213.9.1"
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda address: hosts.ssh(address, "echo ok; hostname -I"), hosts.addresses))
        for address, answer in zip(hosts.addresses, answers):
            assert answer.returncode == 0, answer.stderr
            assert answer.stdout.split() == ["ok", address]  # its own address, and only that
        # The same from a plain command line, as a launcher would run it.
        plain = subprocess.run(["ssh", "-F", str(hosts.ssh_config), hosts.addresses[0], "echo ok"],
                               capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
        assert (plain.returncode, plain.stdout) == (0, "ok\n"), plain.stderr

        # Hosts reach each other and this machine's address on their bridge.
        with socket.create_server((hosts.gateway, 0)) as here:
            assert reaches(hosts, hosts.addresses[0], hosts.gateway, here.getsockname()[1])
        assert reaches(hosts, hosts.addresses[0], hosts.addresses[3], 22)

        # Each link is capped both ways.
        for address in hosts.addresses:
            outside = subprocess.run(["tc", "qdisc", "show", "dev", hosts.netns.link(address)],
                                     capture_output=True, text=True, check=True).stdout
            inside = subprocess.run(["tc", "-n", hosts.namespace(address), "qdisc", "show", "dev",
                                     hosts.netns.inside(address)], capture_output=True, text=True, check=True).stdout
            assert "tbf" in outside and "rate 50Mbit" in outside and "tbf" in inside, (outside, inside)

        # A private directory: each host has its own, this machine's is not theirs.
        (private / "here.txt").write_text("here")
        assert hosts.ssh(hosts.addresses[1], f"echo there > {private}/there.txt; ls {private}").stdout == "there.txt\n"
        assert hosts.path(hosts.addresses[1], private / "there.txt").read_text() == "there\n"
        assert not hosts.path(hosts.addresses[2], private / "there.txt").exists()
        assert sorted(os.listdir(private)) == ["here.txt"]

        # What runs on a host: a command started over ssh, not sshd itself.
        sleeper = hosts.ssh(hosts.addresses[2], "nohup sleep 30 >/dev/null 2>&1 & echo $!")
        sleeper_pid = int(sleeper.stdout)
        assert sleeper_pid in hosts.pids(hosts.addresses[2])
        assert not set(hosts.sshd_pids(hosts.addresses[2])) & set(hosts.pids(hosts.addresses[2]))
        assert [pid for pid, command in hosts.processes(hosts.addresses[2]) if command == "sleep 30"] == [sleeper_pid]

        # Refused, silent, and back.
        last = hosts.addresses[3]
        hosts.stop_sshd(last)
        assert hosts.sshd_pids(last) == [] and refused_or_silent(last) == "refused"
        hosts.start_sshd(last)
        assert refused_or_silent(last) == "open"
        hosts.blackhole(last)
        assert refused_or_silent(last) == "silent"
        hosts.restore(last)
        assert refused_or_silent(last) == "open"
        hosts.link_down(last)
        assert refused_or_silent(last) == "silent"
        hosts.link_up(last)
        assert hosts.ssh(last, "echo ok").stdout == "ok\n"

        sshd = [pid for address in hosts.addresses for pid in hosts.sshd_pids(address)]
        directory = hosts.directory
        namespaces = [hosts.namespace(address) for address in hosts.addresses]

    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert not [name for name in namespaces if name in listed]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert TAG not in links
    assert "10.213.9." not in subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    for pid in [*sshd, sleeper_pid]:
        assert not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read().split()[2]
    assert not directory.exists()
    assert time.monotonic() - began < LIMIT
