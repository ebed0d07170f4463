"""The bench's children (each with its own rusage), free loopback ports, machine facts.

Reaping and rusage are the shared child-process helper's (``twisted_p2p.launcher.children``);
what is the bench's own is the deadline its swarms are held to.
"""
from __future__ import annotations

import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from twisted_p2p.launcher.children import wait_for

LOOPBACK = "127.0.0.1"


@dataclass
class Exited:
    """How one child ended: status, wall time to exit, CPU seconds, peak RSS (MiB)."""

    name: str
    status: int | None  # None: killed by us at the deadline
    exited_at: float
    cpu_s: float
    maxrss_mib: float


@dataclass
class Child:
    name: str
    popen: subprocess.Popen
    started: float = field(default_factory=time.time)


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (bound together, then released)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOOPBACK, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def spawn(name: str, argv: list[str], cwd: str, log_path: str, env: dict | None = None) -> Child:
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    return Child(name, popen)


def reap(children: list[Child], deadline: float) -> list[Exited]:
    """Wait for every child with os.wait4 (its own rusage); kill those past ``deadline``."""
    pending = {child.popen.pid: child for child in children}
    done: dict[int, Exited] = {}
    killed: set[int] = set()
    while pending:
        for pid, child in list(pending.items()):
            reaped = wait_for(pid, block=False)
            if reaped is None:
                continue
            child.popen.returncode, usage = reaped
            status = None if pid in killed else child.popen.returncode
            done[pid] = Exited(child.name, status, time.time(), usage.cpu_s, usage.maxrss_mib)
            del pending[pid]
        if pending and time.time() > deadline:
            for pid in pending:
                if pid not in killed:
                    killed.add(pid)
                    os.kill(pid, signal.SIGKILL)
        if pending:
            time.sleep(0.005)
    return [done[child.popen.pid] for child in children]


def twistd_path() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "twistd")
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("twistd")
    if not found:
        raise SystemExit("bench: twistd not found next to this Python or on PATH; install the project first")
    return found


def machine() -> dict:
    model = "?"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gib = None
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    import twisted

    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": mem_gib,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "twisted": twisted.__version__,
    }
