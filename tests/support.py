"""Builders shared by the tests: swarm configs, seed files, free loopback ports."""
from __future__ import annotations

import os
import random
import socket
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from twisted_p2p.config import Common, PeerInfo, SwarmConfig, write
from twisted_p2p.launcher.plan import twistd_command
from twisted_p2p.settings import PeerSettings


def free_ports(count: int) -> list[int]:
    """Ports the kernel just gave out on 127.0.0.1 (bound, then released)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def swarm_config(
    peer_ids: Sequence[int],
    seeds: Iterable[int],
    file_size: int,
    piece_size: int,
    k: int = 2,
    p: int = 5,
    m: int = 15,
    ports: Sequence[int] | None = None,
) -> SwarmConfig:
    seeds = set(seeds)
    ports = list(ports) if ports is not None else [6000 + i for i in range(len(peer_ids))]
    common = Common(k, p, m, "TheFile.dat", file_size, piece_size)
    peers = tuple(PeerInfo(pid, "127.0.0.1", port, pid in seeds) for pid, port in zip(peer_ids, ports))
    return SwarmConfig(common, peers)


def peer_settings(**values) -> PeerSettings:
    """The settings of a peer under test: as a peer's defaults, but listening on
    127.0.0.1 only (a test's peers are all local), and with ``values``."""
    return PeerSettings(**{"interface": "127.0.0.1", **values})


def write_config(config_dir: Path, config: SwarmConfig) -> None:
    """Write ``config`` as Common.cfg and PeerInfo.cfg in ``config_dir``."""
    write(config_dir, config)


def seed_bytes(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def write_seed_files(work_dir: Path, config: SwarmConfig, content: bytes) -> None:
    for peer in config.peers:
        if peer.has_file:
            path = work_dir / f"peer_{peer.peer_id}" / config.common.file_name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)


def twistd() -> list[str]:
    """twistd of this environment, found as the launcher finds it."""
    return twistd_command()


def start_peer(cwd: Path, peer_id: int, *extra: str) -> subprocess.Popen:
    """``twistd -n --pidfile= p2ppeer --id peer_id extra...`` in ``cwd``, output captured."""
    return subprocess.Popen(
        twistd() + ["-n", "--pidfile=", "p2ppeer", "--id", str(peer_id), *extra],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )


def wait_for_peers(processes: Mapping[int, subprocess.Popen], limit: float = 60) -> dict[int, str]:
    """Each peer's output once all have exited; any still running after ``limit`` s is killed."""
    outputs = {}
    try:
        for peer_id, process in processes.items():
            outputs[peer_id] = process.communicate(timeout=limit)[0].decode()
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return outputs


def listening(port: int) -> bool:
    """Whether some socket listens on TCP ``port`` (read from /proc/net/tcp where there is
    one, so that asking makes no connection the peer would have to accept)."""
    table = Path("/proc/net/tcp")
    if table.exists():
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                return True
        return False
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop_processes(processes: Iterable[subprocess.Popen], grace: float = 10) -> None:
    """SIGTERM to every process still running, by its pid; SIGKILL if it lingers."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def processes_mentioning(text: str) -> list[str]:
    """Every process of this machine (this one aside) whose command line holds ``text``:
    what a test left running."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in command:
                found.append(f"{entry.name}: {command}")
    return found
