"""Private hosts for the tests: one network namespace per host, on a bridge of their own.

Each namespace gets a veth pair to a bridge made for the test and its own address in a
/24 that exists only inside these namespaces (the bridge has no address, so nothing
outside can reach them nor they it). Every name carries a tag with the test process's
pid, and everything is removed afterwards, also on failure: first whatever still runs
inside the namespaces, then the namespaces (each takes its end of a veth pair, and so
the pair), then the bridge. Needs Linux, root and iproute2; otherwise the test is
skipped with the reason.

Interface names must stay within 15 characters: the tag is at most 11 (``p2p`` or
``p2pl`` and a pid of up to 7 digits) and the longest suffix is 4.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=check)


@dataclass
class Hosts:
    """The hosts made by :func:`private_hosts`, in order: addresses, namespaces, links."""

    tag: str
    addresses: list[str]
    namespaces: list[str] = field(default_factory=list)

    def namespace(self, address: str) -> str:
        """The namespace of the host with ``address``: ``TAG-ADDRESS``."""
        return f"{self.tag}-{address}"

    @property
    def bridge(self) -> str:
        """The bridge every host's link is on: ``TAGbr``."""
        return f"{self.tag}br"

    def inside(self, address: str) -> str:
        """The host's own end of its veth pair, inside its namespace."""
        return f"{self.tag}n{self.addresses.index(address)}"

    def link(self, address: str) -> str:
        """The outside end of the host's veth pair, on the bridge: with it down the host
        is cut off, its processes and sockets untouched, its own end without carrier."""
        return f"{self.tag}h{self.addresses.index(address)}"

    def run_in(self, address: str) -> list[str]:
        """The command prefix that runs a program on the host with ``address``."""
        return ["ip", "netns", "exec", self.namespace(address)]

    def link_down(self, address: str) -> None:
        ip("link", "set", self.link(address), "down")

    def link_up(self, address: str) -> None:
        ip("link", "set", self.link(address), "up")

    def forget_connections(self, address: str) -> None:
        """The host drops every TCP connection it still has, as a host that restarts
        does: with its link down, the others hear nothing of it. (A killed process's
        connections linger in the kernel and would say goodbye when the link is back.)"""
        subprocess.run([*self.run_in(address), "ss", "-K", "-t", "-n", "state", "connected"],
                       capture_output=True, text=True, timeout=20, check=True)


def skip_unless_possible() -> None:
    import pytest

    if not sys.platform.startswith("linux"):
        pytest.skip("network namespaces are a Linux feature")
    if os.geteuid() != 0:
        pytest.skip("making network namespaces needs root")
    if shutil.which("ip") is None:
        pytest.skip("the ip command (iproute2) is not installed")


@contextmanager
def private_hosts(count: int, subnet: str, tag: str) -> Iterator[Hosts]:
    """``count`` hosts at ``subnet``.2, .3, ... on a bridge of their own, named with ``tag``."""
    import pytest

    skip_unless_possible()
    if len(tag) > 11:
        raise ValueError(f"tag {tag!r} would make interface names longer than 15 characters")
    hosts = Hosts(tag, [f"{subnet}.{index + 2}" for index in range(count)])
    bridge = hosts.bridge
    made = hosts.namespaces
    try:
        first = hosts.namespace(hosts.addresses[0])
        probe = ip("netns", "add", first, check=False)
        if probe.returncode != 0:
            pytest.skip(f"cannot make a network namespace here: {probe.stderr.strip()}")
        made.append(first)
        ip("link", "add", bridge, "type", "bridge")
        ip("link", "set", bridge, "up")
        for index, address in enumerate(hosts.addresses):
            name = hosts.namespace(address)
            if name not in made:
                ip("netns", "add", name)
                made.append(name)
            outside, inside = f"{tag}h{index}", f"{tag}n{index}"
            ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            ip("link", "set", inside, "netns", name)
            ip("link", "set", outside, "master", bridge, "up")
            ip("-n", name, "addr", "add", f"{address}/24", "dev", inside)
            ip("-n", name, "link", "set", inside, "up")
            ip("-n", name, "link", "set", "lo", "up")
        yield hosts
    finally:
        for name in made:
            for pid in ip("netns", "pids", name, check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)  # only what was left in our namespace
                except ProcessLookupError:
                    pass
            ip("netns", "del", name, check=False)
        for index in range(count):
            ip("link", "del", f"{tag}h{index}", check=False)
        ip("link", "del", bridge, check=False)
