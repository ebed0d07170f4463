"""Who runs where, with what: which peers are this machine's, the command that starts
each peer, and the work dir prepared for a fresh run. Pure functions, no processes."""
from __future__ import annotations

import ipaddress
import os
import random
import re
import shlex
import shutil
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from twisted_p2p.config import ConfigError, PeerInfo, SwarmConfig
from twisted_p2p.launcher.remote import ECHO_EVENTS, Host, Ssh, peer_command, remote_dir_for
from twisted_p2p.layout import PEER_INFO_CFG, data_path, event_log_path, twistd_output_name
from twisted_p2p.resume import forget as forget_resume_state

_SAFE_HOST = re.compile(r"[A-Za-z0-9._:%@-]+")  # push names hosts user@host:port too
DEMO_SEED = 20240101  # every seed's demo file is the same bytes


# -- which peers are local ---------------------------------------------------------


def local_identity() -> tuple[set[str], set[str]]:
    """This machine's names and the addresses they resolve to (no other lookups)."""
    names = {"localhost", socket.gethostname().lower(), socket.getfqdn().lower()}
    addresses: set[str] = set()
    for name in list(names):
        try:
            addresses.update(str(info[4][0]).split("%")[0] for info in socket.getaddrinfo(name, None))
        except OSError:
            pass
    return names, addresses


def is_local_host(host: str, names: set[str], addresses: set[str]) -> bool:
    """True when ``host`` is this machine: loopback, or one of its own names or addresses."""
    host = host.lower().strip("[]")
    if host in names or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or str(address) in addresses or _bindable(address)


def _bindable(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """An address of one of this machine's interfaces (a socket can be bound to it)."""
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((str(address), 0))
        return True
    except OSError:
        return False


# -- commands ----------------------------------------------------------------------


def twistd_command() -> list[str]:
    """twistd next to this Python (its virtualenv), else twistd's entry point through it."""
    found = shutil.which("twistd", path=os.path.dirname(sys.executable))
    if found:
        return [found]
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def local_command(twistd: list[str], peer_id: int, config_dir: Path, work_dir: Path) -> list[str]:
    """The peer stops when the launcher goes, however it goes (its standard input is a
    pipe from the launcher)."""
    return [*twistd, "-n", "--pidfile=", "p2ppeer", "--id", str(peer_id),
            "--config-dir", str(config_dir), "--work-dir", str(work_dir), "--exit-on-stdin-close"]


def remote_command(template: str, twistd: list[str], peer: PeerInfo, remote_dir: str, config_dir: Path) -> list[str]:
    """The template split into words, each placeholder filled in the word it sits in.

    ``{twistd}`` standing alone becomes the twistd command's own words; inside a longer
    word (a command line for ssh's remote shell) it is filled in shell-quoted.
    The host comes from a config file and may end up in a remote shell, so it must
    be a plain host name or address.
    """
    if not _SAFE_HOST.fullmatch(peer.host):
        raise ConfigError(PEER_INFO_CFG, None, f"host {peer.host!r} of peer {peer.peer_id} is not a plain host name")
    values = {"host": peer.host, "id": str(peer.peer_id), "dir": remote_dir,
              "config_dir": str(config_dir), "twistd": shlex.join(twistd)}
    argv: list[str] = []
    for word in shlex.split(template):
        if word == "{twistd}":
            argv.extend(twistd)
        else:
            try:
                argv.append(word.format(**values))
            except (KeyError, IndexError, ValueError) as exc:
                raise ConfigError("--remote-shell", None, f"bad placeholder in {word!r}: {exc}") from None
    return argv


# -- the work dir ------------------------------------------------------------------


def demo_bytes(size: int) -> bytes:
    return random.Random(DEMO_SEED).randbytes(size)


def prepare_work_dir(config: SwarmConfig, work_dir: Path, demo_file: bool) -> list[str]:
    """Make peer_ID/ for every peer and clear what an earlier run left; return messages.

    A seed's missing file is copied from another seed's file (so all seeds agree) or,
    with none, made from a fixed pseudo-random sequence.
    """
    messages = []
    for peer in config.peers:
        path = data_path(work_dir, peer.peer_id, config.common.file_name)
        path.parent.mkdir(parents=True, exist_ok=True)
        event_log_path(work_dir, peer.peer_id).unlink(missing_ok=True)
        if not peer.has_file:
            path.unlink(missing_ok=True)
            forget_resume_state(path)  # a fresh run: nothing to resume
    if demo_file:
        seeds = [data_path(work_dir, peer.peer_id, config.common.file_name) for peer in config.peers if peer.has_file]
        existing = [path for path in seeds if path.is_file() and path.stat().st_size == config.common.file_size]
        for path in seeds:
            if not path.exists():
                if existing:
                    shutil.copyfile(existing[0], path)
                else:
                    path.write_bytes(demo_bytes(config.common.file_size))
                    existing.append(path)
                messages.append(f"created {path} ({config.common.file_size} bytes)")
    return messages


@dataclass
class Launch:
    """How to start one peer and where its progress comes from.

    A local peer is followed through its event log file; a remote one through the
    event lines it prints. Either way its output is kept in ``output``.
    """

    peer: PeerInfo
    argv: list[str]
    cwd: Path
    output: Path
    tail: Path | None
    over_ssh: bool = False  # on its host's ssh connection: the launcher checks it is gone


def plan(
    config: SwarmConfig,
    config_dir: Path,
    work_dir: Path,
    ssh: Ssh,
    remote_dir: str,
    remote_twistd: list[str] | None = None,
    template: str | None = None,
    echo: Sequence[str] = ECHO_EVENTS,
) -> tuple[list[Launch], list[Host]]:
    """Each peer's launch, and the remote hosts to prepare. A peer on another host runs
    over that host's ssh connection in ``remote_dir`` (``{host}`` replaced), with the
    same twistd as here unless ``remote_twistd`` says otherwise, telling its progress as
    ``echo`` says; with a ``template``, the template's own command instead, and no host
    is prepared."""
    names, addresses = local_identity()
    twistd = twistd_command()
    launches = []
    hosts: dict[str, Host] = {}
    for peer in config.peers:
        output = work_dir / twistd_output_name(peer.peer_id)
        if is_local_host(peer.host, names, addresses):
            argv = local_command(twistd, peer.peer_id, config_dir, work_dir)
            launches.append(Launch(peer, argv, work_dir, output, event_log_path(work_dir, peer.peer_id)))
            continue
        if not _SAFE_HOST.fullmatch(peer.host) or peer.host.startswith("-"):
            raise ConfigError(PEER_INFO_CFG, None,
                              f"host {peer.host!r} of peer {peer.peer_id} is not a plain host name")
        if template is not None:
            argv = remote_command(template, twistd, peer, remote_dir_for(remote_dir, peer.host), config_dir)
        else:
            host = hosts.setdefault(peer.host, Host(peer.host, remote_dir_for(remote_dir, peer.host)))
            host.peers.append(peer)
            argv = ssh.command(peer.host, peer_command(remote_twistd or twistd, peer.peer_id, host.directory, echo))
        launches.append(Launch(peer, argv, work_dir, output, None, over_ssh=template is None))
    return launches, list(hosts.values())
