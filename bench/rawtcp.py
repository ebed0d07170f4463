"""The reference for the data plane: a raw TCP stream between two Python processes on
127.0.0.1 (sendall of 1 MiB chunks; the receiver recv_into one buffer and discards).

Run by :func:`measure`; as a script it is one side: ``rawtcp.py recv`` prints its port,
then one JSON line when the stream ends; ``rawtcp.py send PORT BYTES``.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from twisted_p2p.launcher.children import Usage

CHUNK = 1 << 20


def _recv() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    print(server.getsockname()[1], flush=True)
    conn, _ = server.accept()
    buffer = bytearray(CHUNK)
    total = conn.recv_into(buffer)
    first = time.perf_counter()
    while True:
        got = conn.recv_into(buffer)
        if not got:
            break
        total += got
    elapsed = time.perf_counter() - first
    print(json.dumps({"bytes": total, "seconds": elapsed}), flush=True)


def _send(port: int, size: int) -> None:
    chunk = memoryview(os.urandom(CHUNK))
    with socket.create_connection(("127.0.0.1", port)) as conn:
        left = size
        while left > 0:
            part = chunk[: min(CHUNK, left)]
            conn.sendall(part)
            left -= len(part)


def measure(size: int) -> dict:
    """One stream of ``size`` bytes: MiB/s and each side's CPU seconds."""
    here = os.path.abspath(__file__)
    receiver = subprocess.Popen([sys.executable, here, "recv"], stdout=subprocess.PIPE, text=True)
    said = receiver.stdout
    assert said is not None  # stdout=PIPE
    port = int(said.readline())
    sender = subprocess.Popen([sys.executable, here, "send", str(port), str(size)])
    _, send_usage = _reap(sender)
    result = json.loads(said.readline())
    said.close()
    _, recv_usage = _reap(receiver)
    return {
        "mib_per_s": result["bytes"] / 2**20 / result["seconds"],
        "seconds": result["seconds"],
        "cpu_s_sender": send_usage.cpu_s,
        "cpu_s_receiver": recv_usage.cpu_s,
    }


def _reap(child: subprocess.Popen) -> tuple[int, Usage]:
    """Wait for ``child`` (its own rusage); Popen is told it was reaped."""
    # imported here: the two sides run this file as a script, and their CPU is measured
    from twisted_p2p.launcher.children import wait_for

    reaped = wait_for(child.pid)
    assert reaped is not None  # a blocking wait returns once it has ended
    child.returncode = 0
    return reaped


if __name__ == "__main__":
    if sys.argv[1] == "recv":
        _recv()
    else:
        _send(int(sys.argv[2]), int(sys.argv[3]))
