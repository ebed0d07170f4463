"""Hosts that answer ssh: one network namespace per host, each with a real OpenSSH server.

Built on :mod:`netns`: every host is a namespace with its own address in a private /24
(10.213.9.0/24 unless told otherwise), on a bridge of its own. Unlike the bare
:func:`netns.private_hosts`, the bridge has the address ``.1``, so this machine (the
root namespace, where the launcher and a local peer run) reaches the hosts and they
reach it; nothing routes the range anywhere else. Each host's link is capped
(``tbf``, both directions, 50 Mbit/s by default) so a swarm across them is not
loopback-fast.

On each host runs Debian's ``/usr/sbin/sshd`` with a config, host key and
authorized_keys of its own, in a temporary directory, next to a client key and an ssh
client config: ``ssh -F hosts.ssh_config ADDRESS 'echo ok'`` works from here (as root,
batch mode, host keys checked against a known_hosts written here). Nothing in ``~/.ssh``
is read or written.

``private_dirs`` gives every host its own empty, writable copy (a tmpfs) of those
directories, as separate machines have: what the launcher writes there on this machine
is not seen by a host unless it was copied over ssh, and the other way round
(:meth:`SshHosts.path` reads a host's copy from here).

Usage::

    from sshhosts import ssh_hosts, ssh_hosts4   # the context manager, a 4-host fixture

    with ssh_hosts(4) as hosts:
        hosts.ssh(hosts.addresses[0], "echo ok").stdout   # "ok\\n"
        subprocess.run(["ssh", "-F", str(hosts.ssh_config), address, ...])
        hosts.pids(address)          # what runs on the host, sshd itself left out
        hosts.stop_sshd(address)     # connections refused; sessions already open stay
        hosts.link_down(address)     # cut off, its own end without carrier
        hosts.blackhole(address)     # every packet to and from it dropped, carrier kept

Everything is removed afterwards, also on failure: the links come back (so that open
sessions end with a FIN rather than leave a client waiting), each sshd is stopped by its
pid, whatever else runs in the namespaces is killed, then the namespaces, links and
bridge are deleted (by :mod:`netns`) and the temporary directory removed. Needs Linux,
root, iproute2, tc and openssh-server; otherwise the test is skipped with the reason.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest
from netns import Hosts, ip, private_hosts, skip_unless_possible

SSHD = "/usr/sbin/sshd"
SUBNET = "10.213.9"
RATE = "50mbit"
BURST = "64kb"
QUEUE_MS = 50.0  # how long a packet may wait in a cap's queue before it is dropped
READY_WITHIN = 10.0  # seconds for every sshd to accept connections


def default_tag() -> str:
    return f"p2ps{os.getpid()}"  # at most 11 characters, so interface names stay within 15


@dataclass
class _Host:
    address: str
    directory: Path
    holder: subprocess.Popen | None = None  # holds the host's mount namespace
    sshd: list[subprocess.Popen] = field(default_factory=list)
    log: IO[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.directory / "sshd_config"

    @property
    def host_key(self) -> Path:
        return self.directory / "ssh_host_ed25519_key"


@dataclass
class SshHosts:
    """The hosts made by :func:`ssh_hosts`; every method takes a host's address."""

    netns: Hosts
    directory: Path
    rate: str | None
    _hosts: dict[str, _Host]
    gateway: str = ""  # this machine's address on the hosts' bridge (``.1``)
    queue_ms: float = QUEUE_MS

    def tbf(self, rate: str) -> list[str]:
        """A cap's ``tc qdisc ... tbf`` arguments: ``rate`` (tc's words, e.g. ``50mbit``),
        a burst, and the hosts' queue."""
        return ["tbf", "rate", rate, "burst", BURST, "latency", f"{self.queue_ms:g}ms"]

    @property
    def addresses(self) -> list[str]:
        return list(self.netns.addresses)

    @property
    def ssh_config(self) -> Path:
        """For ``ssh -F``: user root, the client key, the known_hosts, batch mode."""
        return self.directory / "ssh_config"

    @property
    def client_key(self) -> Path:
        return self.directory / "client_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.directory / "known_hosts"

    def namespace(self, address: str) -> str:
        return self.netns.namespace(address)

    def run_in(self, address: str) -> list[str]:
        """The command prefix that runs a program on the host, in its namespaces
        (network and, for ``private_dirs``, mounts), as its sshd's sessions run."""
        host = self._hosts[address]
        assert host.holder is not None
        return ["nsenter", "--target", str(host.holder.pid), "--mount", "--net", "--root", "--wd"]

    def ssh_argv(self, address: str, *command: str) -> list[str]:
        return ["ssh", "-F", str(self.ssh_config), address, *command]

    def ssh(self, address: str, command: str, timeout: float = 20) -> subprocess.CompletedProcess:
        """Run ``command`` on the host through its sshd; output captured as text."""
        return subprocess.run(self.ssh_argv(address, command), capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=timeout)

    def path(self, address: str, path: str | os.PathLike) -> Path:
        """``path`` as the host sees it (its own copy of a private directory), read from here."""
        host = self._hosts[address]
        assert host.holder is not None
        return Path(f"/proc/{host.holder.pid}/root") / Path(path).relative_to("/")

    def sshd_pids(self, address: str) -> list[int]:
        """The host's listening sshd (one, or none after :meth:`stop_sshd`)."""
        return [process.pid for process in self._hosts[address].sshd if process.poll() is None]

    def pids(self, address: str) -> list[int]:
        """Every process on the host (``ip netns pids``) but its listening sshd and the
        process that holds its mounts: what ssh sessions started, and the sessions'
        own sshd processes while they last."""
        host = self._hosts[address]
        ours = set(self.sshd_pids(address))
        if host.holder is not None:
            ours.add(host.holder.pid)
        listed = ip("netns", "pids", self.namespace(address), check=False).stdout.split()
        return sorted(int(pid) for pid in listed if int(pid) not in ours)

    def processes(self, address: str) -> list[tuple[int, str]]:
        """:meth:`pids` with each one's command line, for messages."""
        found = []
        for pid in self.pids(address):
            try:
                raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue  # it ended while we looked
            if not raw:
                continue  # a zombie: it has ended, and waits only for its parent to notice
            found.append((pid, raw.replace(b"\0", b" ").decode(errors="replace").strip()))
        return found

    def left_running(self, settle: float = 3.0) -> dict[str, list[tuple[int, str]]]:
        """What still runs on each host; a process that ends within ``settle`` s is not
        left (a restarted sshd's short-lived children, answering the probe that saw it
        listen, showed up so under load; a peer left behind stays)."""
        deadline = time.monotonic() + settle
        while True:
            left = {address: found for address in self.addresses if (found := self.processes(address))}
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.2)

    def sshd_log(self, address: str) -> str:
        return (self._hosts[address].directory / "sshd.log").read_text(errors="replace")

    # -- making a host unreachable ---------------------------------------------

    def stop_sshd(self, address: str) -> None:
        """Stop the host's sshd (SIGTERM by pid): new connections are refused at once;
        sessions already open, and what they started, keep running, as on a real host."""
        for process in self._hosts[address].sshd:
            _terminate(process)

    def start_sshd(self, address: str) -> None:
        """Start the host's sshd again (after :meth:`stop_sshd`) and wait until it listens."""
        if not self.sshd_pids(address):
            _start_sshd(self, self._hosts[address])
            _wait_listening([self._hosts[address]])

    def link_down(self, address: str) -> None:
        """Take the bridge's end of the host's link down: the host is cut off, its own end
        loses carrier (it can tell), nothing answers from either side."""
        self.netns.link_down(address)

    def link_up(self, address: str) -> None:
        self.netns.link_up(address)

    def blackhole(self, address: str) -> None:
        """Drop every packet to and from the host without a word, both links up and with
        carrier: a path that silently lost connectivity (``pfifo limit 0`` on both ends)."""
        for end in (False, True):
            self._tc(address, end, "replace", "root", "pfifo", "limit", "0")

    def restore(self, address: str) -> None:
        """Undo :meth:`blackhole`: the link carries packets again, with its rate cap."""
        for end in (False, True):
            self.cap(address, end)

    def cap(self, address: str, inside: bool) -> None:
        """The rate cap on one end of the host's link (none when ``rate`` is None)."""
        if self.rate:
            self._tc(address, inside, "replace", "root", *self.tbf(self.rate))
        else:
            self._tc(address, inside, "del", "root", check=False)

    def forget_connections(self, address: str) -> None:
        """The host drops every TCP connection it has, as after a reboot."""
        self.netns.forget_connections(address)

    def _tc(self, address: str, inside: bool, verb: str, *args: str, check: bool = True) -> None:
        """``tc qdisc VERB dev END ARGS`` on the bridge's end of the host's link, or on its own."""
        where = ["-n", self.namespace(address)] if inside else []
        dev = self.netns.inside(address) if inside else self.netns.link(address)
        subprocess.run(["tc", *where, "qdisc", verb, "dev", dev, *args], capture_output=True, text=True,
                       timeout=20, check=check)


def skip_unless_sshd() -> None:
    skip_unless_possible()
    if not os.path.exists(SSHD):
        pytest.skip(f"{SSHD} is missing: install openssh-server (apt-get install openssh-server)")
    for program in ("ssh", "ssh-keygen", "tc", "nsenter"):
        if shutil.which(program) is None:
            pytest.skip(f"the {program} command is not installed")


def _keygen(path: Path, comment: str) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
    return path.with_name(path.name + ".pub").read_text().strip()


def _sshd_config(host: _Host, authorized_keys: Path) -> str:
    return "\n".join([
        f"ListenAddress {host.address}",
        "Port 22",
        f"HostKey {host.host_key}",
        f"PidFile {host.directory / 'sshd.pid'}",
        f"AuthorizedKeysFile {authorized_keys}",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "UseDNS no",
        "PrintMotd no",
        "PrintLastLog no",
        "X11Forwarding no",
        "MaxSessions 64",
        "MaxStartups 100:30:200",
        "Subsystem sftp internal-sftp",
        "",
    ])


def _ssh_config(made: SshHosts) -> str:
    return "\n".join([
        "# ssh -F THIS_FILE ADDRESS COMMAND: root on the test's hosts",
        f"Host {' '.join(made.addresses)}",
        "    User root",
        f"    IdentityFile {made.client_key}",
        "    IdentitiesOnly yes",
        "    IdentityAgent none",
        f"    UserKnownHostsFile {made.known_hosts}",
        "    GlobalKnownHostsFile /dev/null",
        "    StrictHostKeyChecking yes",
        "    BatchMode yes",
        "    ConnectTimeout 5",
        "    LogLevel ERROR",
        "",
    ])


def _start_holder(made: SshHosts, host: _Host, private_dirs: Sequence[Path]) -> None:
    """A process in the host's namespace (from ``ip netns exec``, which gives it mounts of
    its own) that mounts the private directories and then sleeps: sshd joins it."""
    script = ('for d; do mount -t tmpfs -o mode=0755 sshhosts "$d" || exit 1; done; '
              "echo ready; exec sleep infinity")
    host.holder = subprocess.Popen(
        ["ip", "netns", "exec", made.namespace(host.address), "sh", "-c", script, "sh", *map(str, private_dirs)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=host.log, cwd="/", start_new_session=True,
    )
    assert host.holder.stdout is not None
    line = host.holder.stdout.readline()
    host.holder.stdout.close()
    if line.strip() != b"ready":
        raise RuntimeError(f"could not prepare host {host.address}: see {host.directory / 'sshd.log'}")


def _start_sshd(made: SshHosts, host: _Host) -> None:
    (host.directory / "sshd.pid").unlink(missing_ok=True)
    host.sshd.append(subprocess.Popen(
        [*made.run_in(host.address), SSHD, "-D", "-f", str(host.config), "-h", str(host.host_key),
         "-E", str(host.directory / "sshd.log")],
        stdin=subprocess.DEVNULL, stdout=host.log, stderr=host.log, cwd="/", start_new_session=True,
    ))


def _wait_listening(hosts: list[_Host]) -> None:
    deadline = time.monotonic() + READY_WITHIN
    waiting = list(hosts)
    while waiting:
        for host in list(waiting):
            process = host.sshd[-1]
            if process.poll() is not None:
                log = (host.directory / "sshd.log").read_text(errors="replace")
                raise RuntimeError(f"sshd on {host.address} exited with {process.returncode}:\n{log}")
            try:
                socket.create_connection((host.address, 22), timeout=0.5).close()
                waiting.remove(host)
            except OSError:
                pass
        if waiting:
            if time.monotonic() > deadline:
                raise RuntimeError(f"sshd not listening within {READY_WITHIN:g} s on "
                                   f"{', '.join(host.address for host in waiting)}")
            time.sleep(0.05)


def _terminate(process: subprocess.Popen, grace: float = 3.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(grace)


@contextmanager
def ssh_hosts(count: int = 4, subnet: str = SUBNET, tag: str | None = None, rate: str | None = RATE,
              private_dirs: Sequence[str | os.PathLike] = (), queue_ms: float = QUEUE_MS) -> Iterator[SshHosts]:
    """``count`` hosts at ``subnet``.2, .3, ..., this machine at ``subnet``.1, each
    running sshd; ``rate`` caps each host's link both ways (None: no cap), a packet
    dropped once it would wait ``queue_ms`` in a cap's queue; ``private_dirs``
    (absolute) are empty and separate on every host."""
    skip_unless_sshd()
    tag = tag or default_tag()
    in_use = ip("-o", "addr", "show", "to", f"{subnet}.0/24", check=False).stdout.strip()
    if in_use:
        raise RuntimeError(f"{subnet}.0/24 is already in use on this machine:\n{in_use}")
    private = [Path(path) for path in private_dirs]
    directory = Path(tempfile.mkdtemp(prefix="sshhosts-"))
    for path in private:
        if not path.is_absolute() or directory.is_relative_to(path):
            raise ValueError(f"private directory {path} must be absolute and not hold {directory}")
    hosts: dict[str, _Host] = {}
    try:
        with private_hosts(count, subnet, tag) as made_hosts:
            made = SshHosts(made_hosts, directory, rate, hosts, gateway=f"{subnet}.1", queue_ms=queue_ms)
            try:
                ip("addr", "add", f"{made.gateway}/24", "dev", made_hosts.bridge)
                for address in made.addresses:
                    if rate:
                        made.cap(address, inside=False)
                        made.cap(address, inside=True)
                os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation
                public = _keygen(made.client_key, "sshhosts client")
                authorized_keys = directory / "authorized_keys"
                authorized_keys.write_text(public + "\n")
                known = []
                for index, address in enumerate(made.addresses):
                    host = hosts[address] = _Host(address, directory / f"host{index}")
                    host.directory.mkdir()
                    host_public = _keygen(host.host_key, f"sshhosts {address}")
                    known.append(f"{address} {' '.join(host_public.split()[:2])}")
                    host.config.write_text(_sshd_config(host, authorized_keys))
                made.known_hosts.write_text("\n".join(known) + "\n")
                made.ssh_config.write_text(_ssh_config(made))
                for path in private:
                    path.mkdir(parents=True, exist_ok=True)
                for host in hosts.values():
                    host.log = open(host.directory / "output.log", "ab")
                    _start_holder(made, host, private)
                    _start_sshd(made, host)
                _wait_listening(list(hosts.values()))
                yield made
            finally:
                for address in hosts:  # open sessions may end in the open
                    made_hosts.link_up(address)
                    made.restore(address)
                for host in hosts.values():
                    for process in host.sshd:
                        _terminate(process)
                # netns now kills whatever else runs on the hosts, the holders too
    finally:
        for host in hosts.values():
            for process in [*host.sshd, *([host.holder] if host.holder else [])]:
                if process.poll() is None:
                    process.kill()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    pass
            if host.log is not None:
                host.log.close()
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def hosts_with_private_work(count: int, subnet: str, tag: str, work: Path) -> Iterator[SshHosts]:
    """``count`` hosts, each with its own empty copy of ``work`` (as separate machines'
    disks); ``work`` here, where a launcher writes, is removed afterwards too. ``tag``
    is made unique to this process."""
    try:
        with ssh_hosts(count, subnet=subnet, tag=f"{tag}{os.getpid()}", private_dirs=[work]) as made:
            yield made
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def ssh_hosts4() -> Iterator[SshHosts]:
    """Four hosts with sshd, at 10.213.9.2 to .5; this machine is 10.213.9.1."""
    with ssh_hosts(4) as made:
        yield made
