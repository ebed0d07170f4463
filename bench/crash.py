"""``python -m bench.crash``: how many written pieces a leecher loses to ``kill -9``.

One seed and one leecher on 127.0.0.1 (k=1), a 250 MB file of 16 KiB pieces (15,259
pieces). The leecher is killed with SIGKILL at given moments after its first
connection, and started again at once each time, until it completes. At each kill:
the pieces its event log shows as downloaded (a lower bound of what it had written:
the log is flushed once per reactor turn), and the pieces it resumed with (its
"resuming with N of M pieces" line). Lost = logged - resumed, when positive. At the
end: pieces downloaded more than once over all its sessions, and the file checked.

``--twistd`` runs another installation's peer (to measure an older version).
"""
from __future__ import annotations

import argparse
import filecmp
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.procs import LOOPBACK, free_ports, twistd_path
from bench.swarm import FILE_NAME, events
from twisted_p2p.layout import COMMON_CFG, PEER_INFO_CFG, data_path, event_log_path

PIECE = 16384
SEED, LEECHER = 1001, 1002
_RESUMING = re.compile(r"resuming with (\d+) of (\d+) pieces")


def _start(twistd: str, work: str, peer_id: int, out: str) -> subprocess.Popen:
    with open(out, "ab") as log:
        return subprocess.Popen([twistd, "-n", "--pidfile=", "p2ppeer", "--id", str(peer_id), "--config-dir", work,
                                 "--work-dir", work], cwd=work, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)


def _prepare(work: str, size: int) -> Path:
    """The seed's file of ``size`` random bytes and the two peers' configs; the file."""
    seed_file = data_path(work, SEED, FILE_NAME)
    seed_file.parent.mkdir(parents=True)
    with open(seed_file, "wb") as out:
        for _ in range(size // (1 << 20)):
            out.write(os.urandom(1 << 20))
        out.write(os.urandom(size % (1 << 20)))
    ports = free_ports(2)
    with open(os.path.join(work, COMMON_CFG), "w") as cfg:
        cfg.write(f"NumberOfPreferredNeighbors 1\nUnchokingInterval 1\nOptimisticUnchokingInterval 1\n"
                  f"FileName {FILE_NAME}\nFileSize {size}\nPieceSize {PIECE}\n")
    with open(os.path.join(work, PEER_INFO_CFG), "w") as cfg:
        cfg.write(f"{SEED} {LOOPBACK} {ports[0]} 1\n{LEECHER} {LOOPBACK} {ports[1]} 0\n")
    return seed_file


def _resumed(leecher: subprocess.Popen, out: str, seen: int) -> int | None:
    """The pieces a restarted leecher says it resumes with (0: it listens without
    resuming; None: it said neither within 30 s), from its output after ``seen``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and leecher.poll() is None:
        text = open(out, errors="replace").read()[seen:]
        found = _RESUMING.search(text)
        if found:
            return int(found.group(1))
        if "listening on port" in text:
            return 0
        time.sleep(0.005)
    return None


def measure(size: int, kill_after: list[float], twistd: str | None = None, timeout: float = 120) -> dict:
    twistd = twistd or twistd_path()
    work = tempfile.mkdtemp(prefix="p2pbench-crash-")
    seed_file = _prepare(work, size)
    log = str(event_log_path(work, LEECHER))
    out = os.path.join(work, "leecher.out")
    seed = _start(twistd, work, SEED, os.path.join(work, "seed.out"))
    kills = []
    try:
        leecher = _start(twistd, work, LEECHER, out)
        sessions = 0
        for moment in kill_after:
            sessions += 1
            deadline = time.monotonic() + 30
            while (sum(e.kind == "connect_to" for e in events(log)) < sessions
                   and time.monotonic() < deadline):  # this session's connection to the seed
                time.sleep(0.005)
            time.sleep(moment)
            leecher.send_signal(signal.SIGKILL)
            leecher.wait()
            logged = len({e.index for e in events(log) if e.kind == "downloaded"})
            seen = len(open(out, errors="replace").read())
            leecher = _start(twistd, work, LEECHER, out)
            resumed = _resumed(leecher, out, seen)
            kills.append({"after_s": moment, "logged": logged, "resumed": resumed,
                          "lost": max(0, logged - (resumed or 0))})
        status = leecher.wait(timeout=timeout)
        seed.wait(timeout=30)
        downloads = Counter(e.index for e in events(log) if e.kind == "downloaded")
        return {
            "pieces": -(-size // PIECE),
            "kills": kills,
            "leecher_status": status,
            "downloaded_twice": sum(1 for count in downloads.values() if count > 1),
            "file_ok": filecmp.cmp(seed_file, data_path(work, LEECHER, FILE_NAME), shallow=False),
        }
    finally:
        for process in (seed, leecher):
            if process.poll() is None:
                process.kill()
                process.wait()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.crash", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=250_000_000, help="file size in bytes [250,000,000]")
    parser.add_argument("--kill-after", type=float, action="append",
                        help="seconds after the leecher's connection to kill it (repeatable) [0.35, 1.5]")
    parser.add_argument("--twistd", help="the twistd to run the peers with [the one beside this Python]")
    options = parser.parse_args(argv)
    result = measure(options.size, options.kill_after or [0.35, 1.5], options.twistd)
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0 if result["file_ok"] and result["leecher_status"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
