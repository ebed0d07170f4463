"""Peers on other hosts, over ssh: one multiplexed connection per host.

For each host the launcher opens one ssh connection (a ControlMaster; every peer on that
host is a session on it, so a lab that caps logins per account still runs six peers on
four hosts), prepares the remote work dir over it (the earlier run's files cleared, the
config and, where the host lacks it, the seed's file put in place), starts each peer
with ``--exit-on-stdin-close`` so that the peer stops when its ssh session goes, and in
the end checks, by command line, that none of the peers it started still runs there.
"""
from __future__ import annotations

import io
import shlex
import subprocess
import tarfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TypeVar

from twisted_p2p.config import PeerInfo, SwarmConfig
from twisted_p2p.layout import (
    COMMON_CFG,
    JOURNAL_SUFFIX,
    PEER_DIR_GLOB,
    PEER_INFO_CFG,
    STATE_SUFFIX,
    TEMPORARY_SUFFIX,
    event_log_name,
    event_log_path,
    peer_dir_name,
)

T = TypeVar("T")


class RemoteError(Exception):
    """A host cannot be used; ``str()`` is one line with the cause."""


@dataclass(frozen=True)
class Ssh:
    """How to reach hosts: the ssh command, its config file, timeouts, and where the
    control sockets of the per-host connections live."""

    control_dir: Path
    config_file: str | None = None
    connect_timeout: float = 10.0
    program: str = "ssh"
    #: ssh's arguments for a host named otherwise (push's ``user@host:port``: ``-p PORT user@host``)
    destinations: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def _to(self, host: str) -> list[str]:
        return list(self.destinations.get(host, (host,)))

    def options(self) -> list[str]:
        argv = [self.program]
        if self.config_file:
            argv += ["-F", self.config_file]
        return argv + [
            "-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout:g}",
            "-o", f"ControlPath={self.control_dir}/%C", "-o", "ServerAliveInterval=5",
            "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR",
        ]

    def command(self, host: str, remote: str) -> list[str]:
        """``remote`` (a shell command line) run on ``host`` over its connection."""
        return [*self.options(), "-o", "ControlMaster=no", "-T", *self._to(host), remote]

    def open(self, host: str) -> list[str]:
        """The connection in the background; it ends 30 s after its last session even if
        the launcher is killed before it can close it."""
        return [*self.options(), "-o", "ControlMaster=yes", "-o", "ControlPersist=30", "-f", "-N", *self._to(host)]

    def close(self, host: str) -> list[str]:
        return [*self.options(), "-O", "exit", *self._to(host)]


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@dataclass
class Host:
    """One remote host and the peers the launcher runs there."""

    name: str
    directory: str
    peers: list[PeerInfo] = field(default_factory=list)
    #: push's work dir: its one leecher starts from the partial copy of peer_N (N: the
    #: earlier push's ID; 0: from nothing) and every other peer_* dir is removed.
    #: None: as ``run`` prepares it.
    resume_from: int | None = None


def remote_dir_for(template: str, host: str) -> str:
    return template.replace("{host}", host)


#: How a peer on another host tells the launcher its progress: every event line (``run``).
ECHO_EVENTS = ("--echo-events",)

#: Said on stderr just before the peer replaces the remote shell: what came before it is
#: the shell's own start (a host's rc files may print anything there), never the peer's.
PEER_STARTS = "p2p-swarm: the peer starts"


def peer_command(twistd: Sequence[str], peer_id: int, directory: str, echo: Sequence[str] = ECHO_EVENTS) -> str:
    """The shell command line that starts one peer in ``directory`` on its host;
    ``echo``: the options that make it print its progress."""
    d = shlex.quote(directory)
    return (f"cd {d} && echo {shlex.quote(PEER_STARTS)} >&2 && exec {shlex.join(twistd)} -n --pidfile= p2ppeer "
            f"--id {peer_id} --config-dir {d} --work-dir {d} {shlex.join(echo)} --exit-on-stdin-close")


def prepare_script(config: SwarmConfig, host: Host, twistd: Sequence[str]) -> str:
    """Make the work dir, check twistd, clear what an earlier run left, and print
    ``missing-seed N`` for each seed here whose file is absent or the wrong size."""
    common = config.common
    d = shlex.quote(host.directory)
    name = shlex.quote(common.file_name)
    lines = [f"mkdir -p {d} && cd {d} || exit 1"]
    program = shlex.quote(twistd[0])
    lines.append(f"command -v {program} >/dev/null 2>&1 || "
                 f"{{ echo \"twistd not found at {twistd[0]} on this host: install the project there, "
                 f"or give --remote-twistd\" >&2; exit 127; }}")
    for peer in host.peers:
        n = peer.peer_id
        folder = peer_dir_name(n)
        data = f"{folder}/{name}"
        lines.append(f"mkdir -p {folder} && rm -f {event_log_name(n)}")
        if peer.has_file:
            lines.append(f"[ \"$(wc -c < {data} 2>/dev/null)\" = \"{common.file_size}\" ] "
                         f"|| echo missing-seed {n}")
        elif host.resume_from is not None:
            kept = peer_dir_name(host.resume_from)
            lines.append(f"for p in {PEER_DIR_GLOB}; do [ \"$p\" = {kept} ] || rm -rf \"$p\"; done")
            if host.resume_from and host.resume_from != n:
                lines.append(f"[ ! -d {kept} ] || mv {kept} {folder}")
            lines.append(f"mkdir -p {folder} && rm -f {' '.join(temporaries(data))}")
        else:
            lines.append(f"rm -f {' '.join([data, *resume_files(data)])}")
    return "\n".join(lines)


def resume_files(data: str) -> list[str]:
    """The resume files beside ``data`` (a path in the shell), then their temporaries."""
    return [data + STATE_SUFFIX, data + JOURNAL_SUFFIX, *temporaries(data)]


def temporaries(data: str) -> list[str]:
    """The temporary copies of ``data``'s resume files, left by a peer that was stopped."""
    return [data + STATE_SUFFIX + TEMPORARY_SUFFIX, data + JOURNAL_SUFFIX + TEMPORARY_SUFFIX]


def bundle(files: dict[str, Path]) -> bytes:
    """A tar stream of ``{name in the remote dir: local file}``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, path in files.items():
            tar.add(str(path), arcname=name)
    return buffer.getvalue()


class Hosts:
    """The remote hosts of one run: opened, prepared, checked and closed together."""

    def __init__(self, ssh: Ssh, hosts: list[Host], run: Callable[..., subprocess.CompletedProcess] = subprocess.run):
        self.ssh = ssh
        self.hosts = {host.name: host for host in hosts}
        self._run = run
        self._opened: list[str] = []

    def execute(self, host: str, remote: str, data: bytes | None = None, timeout: float = 600) -> str:
        result = self._run(self.ssh.command(host, remote), input=data, capture_output=True, timeout=timeout)
        if result.returncode != 0:
            why = last_line(result.stderr.decode(errors="replace")) or f"exit {result.returncode}"
            raise RemoteError(f"host {host}: {why}")
        return result.stdout.decode(errors="replace")

    def _open(self, host: str) -> None:
        try:
            result = self._run(self.ssh.open(host), capture_output=True, timeout=self.ssh.connect_timeout + 20)
        except subprocess.TimeoutExpired:
            raise RemoteError(f"host {host}: ssh did not connect within {self.ssh.connect_timeout + 20:g} s") from None
        if result.returncode != 0:
            why = last_line(result.stderr.decode(errors="replace")) or f"ssh exit {result.returncode}"
            raise RemoteError(f"host {host}: {why}")
        self._opened.append(host)

    def connect(self, host: str) -> None:
        """Open ``host``'s connection unless it is open; RemoteError says why it cannot be."""
        if host not in self._opened:
            self._open(host)

    def clear(self, config: SwarmConfig, host: Host, twistd: Sequence[str],
              seed_file: Callable[[int], Path | None]) -> tuple[dict[str, Path], list[str]]:
        """Run the prepare script on ``host``; the seeds' files it lacks (to :meth:`put`
        there) and what to say about them."""
        output = self.execute(host.name, prepare_script(config, host, twistd))
        files: dict[str, Path] = {}
        messages = []
        for line in output.splitlines():
            if line.startswith("missing-seed "):
                peer_id = int(line.split()[1])
                source = seed_file(peer_id)
                if source is None:
                    raise RemoteError(f"host {host.name}: seed {peer_id} has no {config.common.file_name} there, "
                                      f"and there is none here to send")
                files[f"{peer_dir_name(peer_id)}/{config.common.file_name}"] = source
                messages.append(f"sending the seed's file to peer {peer_id} on {host.name}")
        return files, messages

    def put(self, host: Host, files: dict[str, Path]) -> None:
        """Local files into ``host``'s work dir (``{name there: path here}``), in one tar stream."""
        self.execute(host.name, f"tar -C {shlex.quote(host.directory)} -xf -", data=bundle(files))

    def _prepare(self, config: SwarmConfig, host: Host, twistd: Sequence[str], config_dir: Path,
                 seed_file: Callable[[int], Path | None]) -> list[str]:
        self.connect(host.name)
        files, messages = self.clear(config, host, twistd, seed_file)
        self.put(host, {COMMON_CFG: config_dir / COMMON_CFG, PEER_INFO_CFG: config_dir / PEER_INFO_CFG, **files})
        return messages

    def each(self, names: Sequence[str], work: Callable[[str], T]) -> dict[str, T | RemoteError]:
        """``work(name)`` on every host at once; a host that failed gets its RemoteError
        (one line with the cause) instead of a result, and the others are not held up."""
        def one(name: str) -> T | RemoteError:
            try:
                return work(name)
            except RemoteError as exc:
                return exc
            except subprocess.TimeoutExpired as exc:
                return RemoteError(f"host {name}: no answer within {exc.timeout:g} s")
            except OSError as exc:
                return RemoteError(f"host {name}: ssh: {exc.strerror or exc}")

        if not names:
            return {}
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            return dict(zip(names, pool.map(one, names)))

    def prepare(self, config: SwarmConfig, twistd: Sequence[str], config_dir: Path,
                seed_file: Callable[[int], Path | None]) -> list[str]:
        """Open and prepare every host at once; RemoteError names every host that failed."""
        done = self.each(list(self.hosts), lambda name: self._prepare(config, self.hosts[name], twistd,
                                                                      config_dir, seed_file))
        errors = [str(result) for result in done.values() if isinstance(result, RemoteError)]
        if errors:
            raise RemoteError("; ".join(errors))
        return [message for result in done.values() if not isinstance(result, RemoteError) for message in result]

    def forget(self, host: str) -> None:
        """Leave ``host`` out from now on (its connection closed): it has no part in the run."""
        if host in self._opened:
            self._opened.remove(host)
            try:
                self._run(self.ssh.close(host), capture_output=True, timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.hosts.pop(host, None)

    def _pattern(self, host: Host, peer_id: int) -> str:
        """A pgrep pattern for that peer's process; ``[p]`` keeps it from matching the
        shell that runs pgrep, whose command line holds the pattern itself."""
        return shlex.quote(f"[p]2ppeer --id {peer_id} --config-dir {host.directory} ")

    def still_running(self) -> dict[str, list[int]]:
        """The peers started on each host whose process is still there. They are found by
        their command line, since a peer stopped early may never have said its pid. All
        hosts are asked at once (one by one, eight hosts took a second)."""
        def left_on(host: Host) -> list[int]:
            check = "; ".join(f"pgrep -f -- {self._pattern(host, peer.peer_id)} >/dev/null && echo {peer.peer_id}"
                              for peer in host.peers) + "; true"
            try:
                return [int(word) for word in self.execute(host.name, check, timeout=30).split()]
            except (RemoteError, subprocess.TimeoutExpired, ValueError, OSError):
                return [peer.peer_id for peer in host.peers]  # cannot tell: assume the worst

        opened = [host for host in self.hosts.values() if host.name in self._opened]
        if not opened:
            return {}
        with ThreadPoolExecutor(max_workers=len(opened)) as pool:
            found = zip([host.name for host in opened], pool.map(left_on, opened))
            return {name: left for name, left in found if left}

    def make_sure_stopped(self, grace: float = 5.0) -> dict[str, list[int]]:
        """Wait up to ``grace`` s for the remote peers to go (their lifeline closed);
        then SIGTERM, then SIGKILL what is left. Returns the peer IDs still running."""
        deadline = time.monotonic() + grace
        alive = self.still_running()
        while alive and time.monotonic() < deadline:
            time.sleep(0.5)
            alive = self.still_running()
        for signal_name in ("TERM", "KILL"):
            if not alive:
                break
            for name, peer_ids in alive.items():
                host = self.hosts[name]
                kill = "; ".join(f"pkill -{signal_name} -f -- {self._pattern(host, peer_id)}" for peer_id in peer_ids)
                try:
                    self.execute(name, kill + "; true", timeout=30)
                except (RemoteError, subprocess.TimeoutExpired):
                    pass
            time.sleep(1.0)
            alive = self.still_running()
        return alive

    def fetch_logs(self, work_dir: Path) -> list[int]:
        """Copy each remote peer's event log into ``work_dir`` where it is not there already
        (a shared home directory has it), so that the audit and its rubric read every log
        of the swarm. A log that cannot be read there is left out; the peers it names."""
        fetched = []
        for host in self.hosts.values():
            if host.name not in self._opened:
                continue
            for peer in host.peers:
                local = event_log_path(work_dir, peer.peer_id)
                if local.exists():
                    continue
                there = shlex.quote(str(event_log_path(PurePosixPath(host.directory), peer.peer_id)))
                try:
                    local.write_text(self.execute(host.name, f"cat {there}", timeout=120), encoding="utf-8")
                except (RemoteError, OSError, subprocess.TimeoutExpired):
                    continue
                fetched.append(peer.peer_id)
        return sorted(fetched)

    def close(self) -> None:
        for host in self._opened:
            try:
                self._run(self.ssh.close(host), capture_output=True, timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._opened.clear()
