"""What the cases of ``python -m bench`` share: sizes, the log, test files, repeated runs
and their medians, the libtorrent child, number formats."""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from bench import swarm

MiB = 1 << 20
KiB = 1 << 10
HERE = os.path.dirname(os.path.abspath(__file__))
SYSTEM_PYTHON = "/usr/bin/python3"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Files:
    """Random files, made once per size (in 1 MiB writes, so this process stays small)."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="p2pbench-files-")
        self.paths: dict[int, str] = {}

    def get(self, size: int) -> str:
        if size not in self.paths:
            path = os.path.join(self.dir, f"file_{size // MiB}MiB", swarm.FILE_NAME)
            os.makedirs(os.path.dirname(path))
            with open(path, "wb") as out:
                for _ in range(size // MiB):
                    out.write(os.urandom(MiB))
                out.write(os.urandom(size % MiB))
            self.paths[size] = path
        return self.paths[size]

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def repeat(times: int, once: Callable[[], dict], what: str) -> list[dict]:
    runs = []
    for attempt in range(times):
        result = once()
        status = "ok" if result.get("ok", True) else f"FAILED: {result.get('failure')}"
        if result.get("transfer_s") is not None:
            status += (f", transfer {result['transfer_s']:.2f} s, start-up {result['startup_s']:.2f} s, "
                       f"from start {result['time_to_last_complete_s']:.2f} s")
        log(f"  {what} run {attempt + 1}/{times}: {status}")
        runs.append(result)
    return runs


def median_of(runs: list[dict], key: str) -> float | None:
    values = [run[key] for run in runs if run.get("ok", True) and run.get(key) is not None]
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


# -- libtorrent --------------------------------------------------------------------

def libtorrent_version() -> str | None:
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return None
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import libtorrent; print(libtorrent.__version__)"],
        capture_output=True, text=True,
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


def run_libtorrent(args: dict) -> dict:
    child = subprocess.Popen(
        [SYSTEM_PYTHON, os.path.join(HERE, "lt_swarm.py"), json.dumps(args)],
        stdout=subprocess.PIPE, text=True,
    )
    out, _ = child.communicate()
    try:
        result = json.loads(out.strip().splitlines()[-1])
    except (IndexError, ValueError):
        result = {"ok": False, "failure": f"lt_swarm.py exited {child.returncode}"}
    return result


def fmt(value: float | None, digits: int = 2, suffix: str = "", scale: float = 1) -> str:
    if value is None:
        return "—"
    return f"{value * scale:.{digits}f}{suffix}"
