"""Standard output that a stalled reader cannot use to stop a peer."""
from __future__ import annotations

import os
import subprocess
import threading
import time

from support import (
    free_ports,
    seed_bytes,
    start_peer,
    swarm_config,
    twistd,
    wait_for_peers,
    write_config,
    write_seed_files,
)

from twisted_p2p.outlet import Outlet


def _pipe():
    read, write = os.pipe()
    return os.fdopen(read, "rb"), os.fdopen(write, "w")


def test_writes_return_at_once_while_nobody_reads_and_the_excess_is_dropped():
    reader, writer = _pipe()
    outlet = Outlet(writer, limit=200_000)
    line = "x" * 99 + "\n"
    done = threading.Event()

    def write_a_lot():
        for _ in range(10_000):  # 1 MB, far more than the pipe (64 KiB) and the queue hold
            outlet.write(line)
        done.set()

    threading.Thread(target=write_a_lot, daemon=True).start()
    assert done.wait(10), "a write blocked on the stalled reader"
    assert outlet.dropped > 0
    assert not outlet.drain(0.2)  # the reader is still away: the drain gives up
    reader.close()
    writer.close()


def test_everything_reaches_a_reader_that_keeps_up():
    reader, writer = _pipe()
    outlet = Outlet(writer)
    received = []
    thread = threading.Thread(target=lambda: received.append(reader.read()), daemon=True)
    thread.start()
    for index in range(1000):
        outlet.write(f"line {index}\n")
    assert outlet.drain(10)
    outlet.write("after the drain\n")  # the last lines of a stopping peer go straight out
    writer.close()
    thread.join(10)
    text = received[0].decode()
    assert text == "".join(f"line {index}\n" for index in range(1000)) + "after the drain\n"
    assert outlet.dropped == 0


def test_a_peer_whose_standard_output_nobody_reads_still_completes(tmp_path):
    """--echo-events with a pipe that is never read: before, the leecher blocked as soon
    as the pipe was full (after a few hundred event lines) and the swarm stalled."""
    config = swarm_config([1001, 1002], [1001], 2_000_000, 1024, ports=free_ports(2))
    write_config(tmp_path, config)
    content = seed_bytes(config.common.file_size)
    write_seed_files(tmp_path, config, content)
    seed = start_peer(tmp_path, 1001)
    stalled = subprocess.Popen(
        twistd() + ["-n", "--pidfile=", "p2ppeer", "--id", "1002", "--echo-events"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )
    try:
        outputs = wait_for_peers({1001: seed}, limit=60)  # the seed exits once 1002 has the file
        assert seed.returncode == 0, outputs[1001]
        assert (tmp_path / "peer_1002" / "TheFile.dat").read_bytes() == content
        deadline = time.monotonic() + 30
        while stalled.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stalled.returncode == 0  # it gives up waiting for its reader and exits
    finally:
        if stalled.poll() is None:
            stalled.kill()
        stalled.wait()
        stalled.stdout.close()
