"""What a user hands ``p2p-swarm push``, read and checked before anything is contacted:
hosts from the command line, a file or standard input (one per line, ``#`` comments),
each as ``[user@]host[:port]`` or a ``~/.ssh/config`` name, and rates such as ``200Mbit``.

A host keeps the name it was given (its row in the table, ``{host}`` in ``--dest``, its
work dir), ssh is given what ssh understands (``-p PORT user@host``), and the peers are
given the address ssh actually reaches (``ssh -G`` applies the config: an alias's
HostName, its Port), since a peer on another host cannot read this machine's ssh config.
"""
from __future__ import annotations

import re
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TextIO

from twisted_p2p.config import PeerInfo, SwarmConfig

_HOST = re.compile(r"[A-Za-z0-9._%-]+|[0-9A-Fa-f:.]+")  # a name, an IPv4 or an IPv6 address
_USER = re.compile(r"[A-Za-z0-9._-]+")
_RATE = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[kKmMgG]?)(?P<bits>bit|bps|b)?(?:/s)?", re.I)
_SCALE = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}


@dataclass(frozen=True)
class HostSpec:
    """One host as given: ``name`` is the text itself, ``destination`` ssh's
    ``[user@]host`` and ``port`` the port asked for, if any."""

    name: str
    destination: str
    port: int | None = None

    def ssh_args(self) -> list[str]:
        """The destination as ssh's arguments (``-p`` is an option, before the host)."""
        return (["-p", str(self.port)] if self.port else []) + [self.destination]


def parse_host(text: str) -> HostSpec:
    """``[user@]host[:port]``; ValueError with the reason if it is not one. An IPv6
    address is taken whole (it has colons of its own): give its port in ssh's config."""
    user, at, rest = text.rpartition("@")
    if at and not _USER.fullmatch(user):
        raise ValueError(f"{text!r}: the user before @ is not a plain user name")
    host, port = rest, None
    if rest.count(":") == 1:
        host, _, number = rest.partition(":")
        if not number.isdigit() or not 0 < int(number) < 65536:
            raise ValueError(f"{text!r}: the port after : must be a number from 1 to 65535")
        port = int(number)
    if not host or host.startswith("-") or not _HOST.fullmatch(host):
        raise ValueError(f"{text!r} is not a host: [user@]host[:port], or a name of your ssh config")
    return HostSpec(text, f"{user}@{host}" if at else host, port)


def read_hosts(stream: TextIO, source: str) -> list[str]:
    """One host per line; blank lines and ``#`` comments (whole or trailing) skipped.
    ValueError names the line of anything else."""
    hosts = []
    for number, line in enumerate(stream, 1):
        words = line.split("#", 1)[0].split()
        if len(words) > 1:
            raise ValueError(f"{source} line {number}: one host per line, not {' '.join(words)!r}")
        if words:
            hosts.append(words[0])
    return hosts


def parse_rate(text: str) -> int:
    """Bytes per second from ``25000000``, ``25M`` (bytes) or ``200Mbit`` (bits);
    ValueError if it is none of these, or not positive."""
    found = _RATE.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"{text!r} is not a rate: bytes per second (25000000, 25M) or bits (200Mbit)")
    rate = float(found["number"]) * _SCALE[found["unit"].lower()]
    bits = found["bits"] is not None and found["bits"].lower() in ("bit", "bps")
    value = int(rate / 8 if bits else rate)
    if value <= 0:
        raise ValueError(f"{text!r}: the rate must be above 0")
    return value


@dataclass(frozen=True)
class Endpoint:
    """Where ssh connects for a host: the address (``ssh -G``'s hostname, resolved
    here) and the port."""

    address: str
    port: int


def ssh_settings(spec: HostSpec, ssh_config: str | None) -> dict[str, str]:
    """``ssh -G``: the settings ssh would use for the host, its config applied; no
    connection is made."""
    argv = ["ssh", "-G"] + (["-F", ssh_config] if ssh_config else []) + spec.ssh_args()
    shown = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True).stdout
    return dict(line.split(" ", 1) for line in shown.splitlines() if " " in line)


def endpoint_of(spec: HostSpec, ssh_config: str | None) -> Endpoint:
    """The address and port ssh reaches for ``spec``; the name ssh would use when it
    does not resolve here (or ssh cannot say), so that the failure is ssh's own later."""
    try:
        settings = ssh_settings(spec, ssh_config)
        name, port = settings.get("hostname", spec.destination), int(settings.get("port", "22"))
    except (OSError, ValueError, subprocess.SubprocessError):
        name, port = spec.destination.rpartition("@")[2], spec.port or 22
    try:
        return Endpoint(str(socket.getaddrinfo(name, port, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]), port)
    except OSError:
        return Endpoint(name, port)


def endpoints(specs: list[HostSpec], ssh_config: str | None) -> dict[str, Endpoint]:
    """:func:`endpoint_of` for every host at once, by name."""
    if not specs:
        return {}
    with ThreadPoolExecutor(max_workers=min(16, len(specs))) as pool:
        return dict(zip((spec.name for spec in specs), pool.map(lambda spec: endpoint_of(spec, ssh_config), specs)))


def with_addresses(config: SwarmConfig, addresses: dict[str, str]) -> SwarmConfig:
    """``config`` with each host name replaced by its address: the PeerInfo.cfg the
    peers read (they dial and admit addresses; the names are this machine's)."""
    peers = tuple(PeerInfo(peer.peer_id, addresses.get(peer.host, peer.host), peer.port, peer.has_file)
                  for peer in config.peers)
    return SwarmConfig(config.common, peers)
