"""Child processes, as the launcher, the conformance kit and the benchmarks start them.

A child runs in a session of its own, so that one signal reaches it and whatever it
started; stopping it is SIGTERM to the whole session, then SIGKILL after a grace time.
The launcher and the kit follow their children on the Twisted reactor
(:class:`SessionProcess`); the benchmarks block in :mod:`subprocess` and read each
child's own rusage (:func:`wait_for`, :func:`stop_popen`).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet import protocol
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.python.failure import Failure

# Runs the command in a session of its own, so one killpg stops it and its children,
# at a lower priority when asked (argv[1]: the nice increment). Linux gives each session
# its own scheduling group ("autogroup") and shares the CPU between groups, whatever
# the nice values inside them, so the group's own nice is set too where there is one.
_NEW_SESSION = """import os, sys
os.setsid()
if int(sys.argv[1]):
    os.nice(int(sys.argv[1]))
    try:
        with open("/proc/self/autogroup", "w") as group:
            group.write(sys.argv[1])
    except OSError:
        pass
os.execvp(sys.argv[2], sys.argv[2:])"""


def in_new_session(argv: list[str], nice: int = 0) -> list[str]:
    """``argv`` run in a session of its own (and ``nice`` lower), by the same program."""
    return [sys.executable, "-c", _NEW_SESSION, str(nice), *argv]


def signal_session(pid: int, signum: int, running: bool) -> None:
    """Signal the session a child leads; right after the spawn, before its setsid, only
    the process itself exists, so it gets the signal alone."""
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        if running:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
    except PermissionError:
        pass


def group_alive(pgid: int) -> bool:
    """Whether a process group has a member that is not a zombie.

    A child left by a peer is reparented to init when the peer dies and stays a
    zombie until init reaps it, which may take a while: it is gone for our purpose.
    Where there is no /proc, any member counts.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # it ended while we looked
            state, _parent, group = stat[stat.rindex(")") + 2:].split()[:3]
            if int(group) == pgid and state != "Z":
                return True
    return False


class CappedOutput:
    """A child's output on disk, at most ``cap`` bytes of it (None: all of it), so that
    a child that floods its output cannot fill the disk."""

    def __init__(self, path: Path, cap: int | None = None) -> None:
        self._file = open(path, "wb")
        self.cap = cap
        self.received = 0  # bytes the child wrote, kept or not

    def write(self, data: bytes) -> None:
        if self.cap is None:
            self._file.write(data)
        elif self.received < self.cap:
            self._file.write(data[: self.cap - self.received])
        self.received += len(data)

    def close(self) -> None:
        self._file.close()


def exit_of(reason: Failure) -> tuple[int, int | None]:
    """A child's end, from the reason ``processEnded`` was given: its status (the exit
    code, or -signal when a signal ended it) and that signal (None when it exited)."""
    ended = reason.value
    assert isinstance(ended, (ProcessDone, ProcessTerminated)), ended
    if ended.signal is not None:
        return -ended.signal, ended.signal
    assert ended.exitCode is not None  # Twisted gives one of the two
    return ended.exitCode, None


class SessionProcess(protocol.ProcessProtocol):
    """A child on the reactor, in a session of its own: signalled and stopped as a whole.

    Subclasses say whether it still runs (``running``) and follow its output.
    """

    pid: int | None = None
    running = False

    def spawn_in_session(self, reactor: Any, argv: list[str], cwd: Path, nice: int = 0, **options: Any) -> None:
        """Start ``argv`` in a session of its own (OSError if it cannot be started)."""
        command = in_new_session(argv, nice)
        reactor.spawnProcess(self, command[0], command, path=str(cwd), **options)

    def connectionMade(self) -> None:
        assert self.transport is not None  # makeConnection has just set it
        self.pid = self.transport.pid

    def session_alive(self) -> bool:
        """Whether anything of its session (the child or one it left) still runs."""
        return self.pid is not None and group_alive(self.pid)

    def signal_session(self, signum: int) -> None:
        if self.pid is not None:
            signal_session(self.pid, signum, self.running)

    def stop_session(self, clock: Any, grace: float) -> Any:
        """SIGTERM to its session now, SIGKILL after ``grace`` seconds (the delayed call)."""
        self.signal_session(signal.SIGTERM)
        return clock.callLater(grace, self.signal_session, signal.SIGKILL)


# -- blocking children (subprocess), for the benchmarks ----------------------------------

@dataclass(frozen=True)
class Usage:
    """What one child used, from its own rusage: CPU seconds (user + system), peak RSS."""

    cpu_s: float
    maxrss_mib: float

    @classmethod
    def of(cls, usage: Any) -> Usage:
        return cls(usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def wait_for(pid: int, block: bool = True) -> tuple[int, Usage] | None:
    """Reap the child ``pid`` (os.wait4): its exit status as a return code (-signal when
    killed) and its own usage; None if it still runs and ``block`` is False."""
    got, status, usage = os.wait4(pid, 0 if block else os.WNOHANG)
    if got == 0:
        return None
    return os.waitstatus_to_exitcode(status), Usage.of(usage)


def stop_popen(child: subprocess.Popen, grace: float) -> tuple[Any, Any]:
    """SIGTERM, then SIGKILL if it has not ended after ``grace`` seconds; what it printed
    (its standard input, if a pipe, is closed: a lifeline ends too)."""
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
    try:
        return child.communicate(timeout=grace)
    except subprocess.TimeoutExpired:
        child.kill()
        return child.communicate()
