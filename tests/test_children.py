"""The child-process helper shared by the launcher, the kit and the bench: capped output,
a whole session signalled and stopped (SIGTERM, then SIGKILL on the clock), and the
blocking side's rusage and stop."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from twisted.internet.task import Clock

from twisted_p2p.launcher.children import (
    CappedOutput,
    SessionProcess,
    group_alive,
    in_new_session,
    stop_popen,
    wait_for,
)

WAIT_S = 20.0
# Ignores SIGTERM, leaves a grandchild in its session, says it is ready, then waits.
STUBBORN = ("import signal, subprocess, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n")


def test_capped_output_keeps_the_first_cap_bytes_and_counts_them_all(tmp_path: Path) -> None:
    output = CappedOutput(tmp_path / "out", cap=10)
    for data in (b"12345", b"67890abc", b"def"):
        output.write(data)
    output.close()
    assert (tmp_path / "out").read_bytes() == b"1234567890"
    assert output.received == 16


def test_uncapped_output_keeps_everything(tmp_path: Path) -> None:
    output = CappedOutput(tmp_path / "out")
    output.write(b"x" * 1000)
    output.close()
    assert (tmp_path / "out").read_bytes() == b"x" * 1000


def _session_leader(tmp_path: Path) -> subprocess.Popen:
    child = subprocess.Popen(in_new_session([sys.executable, "-c", STUBBORN]), stdout=subprocess.PIPE, cwd=tmp_path)
    assert child.stdout is not None and child.stdout.readline() == b"ready\n"
    return child


def _until_gone(pgid: int) -> bool:
    deadline = time.monotonic() + WAIT_S
    while group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_stopping_a_session_sends_sigterm_now_and_sigkill_only_after_the_grace_time(tmp_path: Path) -> None:
    child = _session_leader(tmp_path)
    process = SessionProcess()
    process.pid, process.running = child.pid, True
    clock = Clock()
    try:
        process.stop_session(clock, grace=3.0)
        clock.advance(2.9)
        time.sleep(0.2)
        assert child.poll() is None and process.session_alive()  # it ignores SIGTERM
        clock.advance(0.1)
        assert child.wait(timeout=WAIT_S) == -signal.SIGKILL
        assert _until_gone(child.pid)  # its grandchild went with it
        assert not process.session_alive()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_wait_for_gives_the_exit_status_and_the_childs_own_cpu() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "import sys, time\nend = time.process_time() + 0.3\n"
                             "while time.process_time() < end: pass\nsys.exit(3)"])
    reaped = wait_for(busy.pid)
    busy.returncode = 3  # reaped here, not by Popen
    assert reaped is not None
    status, usage = reaped
    assert status == 3
    assert usage.cpu_s >= 0.3
    assert usage.maxrss_mib > 1


def test_wait_for_without_blocking_says_none_while_the_child_runs() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert wait_for(child.pid, block=False) is None
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize("ignores_term", [False, True])
def test_stop_popen_ends_a_child_and_returns_what_it_printed(ignores_term: bool, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    script = ("import pathlib, signal, sys, time\n"
              + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if ignores_term else "")
              + f"print('hello', flush=True)\npathlib.Path({str(ready)!r}).touch()\ntime.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + WAIT_S
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    out, _ = stop_popen(child, grace=0.5)
    assert child.returncode == (-signal.SIGKILL if ignores_term else -signal.SIGTERM)
    assert out == "hello\n"
