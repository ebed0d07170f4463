"""Process supervision: the peers' child processes, followed while they run and stopped
all together when the run must end."""
from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from twisted_p2p.launcher.children import CappedOutput, SessionProcess, exit_of
from twisted_p2p.launcher.display import Display
from twisted_p2p.launcher.plan import Launch
from twisted_p2p.launcher.progress import RECEIVED, LineBuffer, PeerProgress
from twisted_p2p.launcher.remote import PEER_STARTS

# Local peers yield the CPU to the launcher: with more busy peers than cores, an equal
# share left it a few per cent of a core, and its display and dashboard froze for seconds.
PEER_NICE = 5
TICK = 0.2  # seconds between reading the logs and redrawing
GRACE = 3.0  # seconds between SIGTERM and SIGKILL when stopping
TAIL_CHUNK = 128 * 1024  # bytes of one peer's log read per tick
SKIPPED = RECEIVED.encode()  # received-message lines: most of a log, and nothing to show
SSH_FAILED = 255  # ssh's own failure, or its remote command killed by a signal


class LogTail:
    """Reads what was added to a growing file since the last call, at most ``chunk``
    bytes at a time: a launcher starved of CPU by many busy peers must not spend one
    long turn of its reactor on a backlog (its display and dashboard would freeze)."""

    def __init__(self, path: Path, skip: bytes | None = None, chunk: int = TAIL_CHUNK) -> None:
        self.path = path
        self.offset = 0
        self.chunk = chunk
        self.lines = LineBuffer(skip)

    def read(self, everything: bool = False) -> list[str]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read() if everything else handle.read(self.chunk)
        except FileNotFoundError:
            return []
        self.offset += len(data)
        return self.lines.feed(data)


class PeerProcess(SessionProcess):
    """One child: keeps its output, feeds printed event lines to the progress of a remote peer."""

    def __init__(self, launch: Launch, progress: PeerProgress, ended: Callable[[PeerProcess], None]) -> None:
        self.launch = launch
        self.progress = progress
        self.ended = ended
        self.status: int | None = None
        self.running = False
        self.last_line = ""  # the last thing it said: the cause, when it fails
        self.last_error = ""  # the last line on its stderr (ssh's or the peer's own complaint)
        self._output = CappedOutput(launch.output)
        self._lines = LineBuffer(SKIPPED)
        self._errors = LineBuffer()
        self._tail = LogTail(launch.tail, SKIPPED) if launch.tail else None

    def connectionMade(self) -> None:
        # Its standard input stays open: the peer's lifeline (--exit-on-stdin-close).
        super().connectionMade()
        self.running = True

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        self._output.write(data)
        lines = self._lines.feed(data) if childFD == 1 else self._errors.feed(data)
        self._heard(lines, childFD)

    def _heard(self, lines: list[str], childFD: int) -> None:
        for line in lines:
            said = line.strip()
            if childFD == 2 and said == PEER_STARTS:
                # the remote shell's start-up noise is not why the peer ended
                self.last_line = self.last_error = ""
            elif said:
                self.last_line = said
                if childFD == 2:
                    self.last_error = said
            if self._tail is None and childFD == 1:
                self.progress.feed_line(line)

    def poll(self, everything: bool = False) -> None:
        """Read the new lines of a local peer's event log (a chunk, or all once it ended)."""
        if self._tail is not None:
            for line in self._tail.read(everything):
                self.progress.feed_line(line)

    def processEnded(self, reason: Failure) -> None:
        self.poll(everything=True)
        self._heard(self._lines.flush(), 1)
        self._heard(self._errors.flush(), 2)
        self._output.close()
        self.running = False
        self.status, sig = exit_of(reason)
        self.progress.state = f"exit {self.status}" if sig is None else f"killed (signal {sig})"
        self.ended(self)

    def close_stdin(self) -> None:
        """Cut its lifeline: the peer stops cleanly (``--exit-on-stdin-close``), over ssh too."""
        if self.running and self.transport is not None:
            self.transport.closeStdin()


class PeerProcesses:
    """Starts the peers in order, watches them, and stops them all when it must.

    :meth:`run` returns a Deferred that fires with the outcome (a key of EXIT_CODES)
    once every started peer has exited and no process of their sessions is left.

    With ``keep_going`` (push), a leecher that ends badly is dropped (``dropped`` says
    why) and the others carry on; since a peer exits only once every listed peer has
    the file, the swarm is then ended here, cleanly, as soon as every peer still
    running is complete.
    """

    def __init__(self, reactor: Any, launches: list[Launch], progress: dict[int, PeerProgress], display: Display,
                 grace: float = GRACE, keep_going: bool = False, local_nice: int = PEER_NICE) -> None:
        self.reactor = reactor
        self.local_nice = local_nice  # push's one local peer, the seed, is its bottleneck: 0
        self.launches = launches
        self.progress = progress
        self.display = display
        self.grace = grace
        self.keep_going = keep_going
        self.dropped: dict[int, str] = {}  # peer ID -> why it left the swarm early
        self.processes: list[PeerProcess] = []
        self.outcome: str | None = None
        self.why = ""  # what made it stop, when it was stopped
        self.done: Deferred[str] = Deferred()
        self._pending: list[Any] = []
        self._killer: Any = None  # the next step of stopping: SIGKILL, then giving up
        self._gave_up = False
        self._ticker = LoopingCall(self._tick)
        self._ticker.clock = reactor
        self._start = reactor.seconds()

    def run(self, stagger: float, timeout: float | None) -> Deferred[str]:
        for position, launch in enumerate(self.launches):
            self._pending.append(self.reactor.callLater(position * stagger, self._spawn, launch))
        if timeout is not None:
            self._pending.append(self.reactor.callLater(timeout, self.stop, "timeout", f"timeout after {timeout:g} s"))
        self._ticker.start(TICK, now=False)
        return self.done

    def _spawn(self, launch: Launch) -> None:
        progress = self.progress[launch.peer.peer_id]
        process = PeerProcess(launch, progress, self._ended)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        nice = self.local_nice if launch.tail else 0
        try:
            process.spawn_in_session(self.reactor, launch.argv, launch.cwd, nice, env=env, usePTY=False)
        except OSError as exc:
            self.stop("failed", f"cannot start peer {launch.peer.peer_id}: {exc}")
            return
        self.processes.append(process)
        progress.state = "running"
        where = "" if launch.tail else f" on {launch.peer.host}"
        self.display.say(f"started peer {launch.peer.peer_id}{where} (pid {process.pid})")

    def _ended(self, process: PeerProcess) -> None:
        if process.status != 0 and self.outcome is None:
            peer = process.launch.peer
            where = "" if process.launch.tail else f" on {peer.host}"
            said = f": {process.last_line}" if process.last_line else ""
            if self.keep_going and not peer.has_file:
                # its own complaint, not its last event: a peer killed mid-swarm said none
                said = f": {process.last_error}" if process.last_error else ""
                if not said and process.launch.over_ssh and process.status == SSH_FAILED:
                    said = " (its ssh session ended: the peer was killed, or the connection lost)"
                self.dropped[peer.peer_id] = f"its peer ended with {process.progress.state}{said}"
                self.display.say(f"peer {peer.peer_id}{where} ended with {process.progress.state}{said}; "
                                 "dropped, the others carry on")
                self._end_if_the_rest_are_complete()
            else:
                self.stop("failed", f"peer {peer.peer_id}{where} ended with {process.progress.state}{said}")
        self._check_done()

    def _end_if_the_rest_are_complete(self) -> None:
        """Once a peer is dropped, the others would wait for it for ever: when every peer
        still running is complete, close their standard input (each stops cleanly, exit 0);
        SIGTERM and SIGKILL follow only if they do not."""
        if not self.dropped or self.outcome is not None or len(self.processes) < len(self.launches):
            return
        living = [process for process in self.processes if process.running]
        if any(process.progress.completed_at is None for process in living):
            return
        self.outcome = "finished"
        self.display.say(f"every peer still running has the file ({len(self.dropped)} dropped): "
                         f"ending the swarm ...")
        for process in living:
            process.close_stdin()
        self._killer = self.reactor.callLater(self.grace, self._terminate)

    def _terminate(self) -> None:
        for process in self.processes:
            if process.running or process.session_alive():
                process.signal_session(signal.SIGTERM)
        self._killer = self.reactor.callLater(self.grace, self._kill)

    def stop(self, outcome: str, why: str) -> None:
        """Stop every started peer (SIGTERM to its session, SIGKILL after the grace time)."""
        if self.outcome is not None:
            if outcome in ("interrupted", "terminated"):
                self.display.say("asked again: killing every peer now")
                self._kill()
            return
        self.outcome = outcome
        self.why = why
        for call in self._pending:
            if call.active():
                call.cancel()
        alive = [process for process in self.processes if process.running or process.session_alive()]
        self.display.say(f"{why}: stopping {len(alive)} peer{'s' if len(alive) != 1 else ''} ...")
        for process in alive:
            process.signal_session(signal.SIGTERM)
        self._killer = self.reactor.callLater(self.grace, self._kill)
        self._check_done()

    def _give_up(self) -> None:
        """Processes that outlive SIGKILL (stuck in the kernel) must not hang the launcher."""
        left = [process.launch.peer.peer_id for process in self.processes if process.session_alive()]
        self.display.say(f"processes of peers {', '.join(map(str, left))} survived SIGKILL; not waiting for them")
        self._gave_up = True
        self._check_done()

    def interrupt(self, signum: int) -> None:
        """SIGINT or SIGTERM to the launcher."""
        name = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
        self.stop("interrupted" if signum == signal.SIGINT else "terminated", name)

    def _kill(self) -> None:
        if self._killer is not None and self._killer.active():
            self._killer.cancel()
        for process in self.processes:
            if process.running or process.session_alive():
                process.signal_session(signal.SIGKILL)
        self._killer = self.reactor.callLater(self.grace, self._give_up)

    def _tick(self) -> None:
        for process in self.processes:
            process.poll()
        if self.keep_going:
            self._end_if_the_rest_are_complete()
        self.display.update(self.progress.values(), self.reactor.seconds() - self._start)
        self._check_done()

    def _check_done(self) -> None:
        if self.done.called:
            return
        if self.outcome is None and len(self.processes) < len(self.launches):
            return  # still starting peers
        if not self._gave_up:
            if any(process.running for process in self.processes):
                return
            leftovers = [process for process in self.processes if process.session_alive()]
            if leftovers:
                if self.outcome is None:
                    for process in leftovers:  # the peers finished but left something behind
                        process.signal_session(signal.SIGKILL)
                return  # checked again on the next tick
            if self.outcome is not None:
                remote = sum(1 for process in self.processes if process.launch.over_ssh)
                if remote:
                    self.display.say(f"all {len(self.processes)} local processes have ended; "
                                     f"checking the {remote} peers on other hosts ...")
                else:
                    self.display.say(f"all {len(self.processes)} started peers are gone")
        if self._killer is not None and self._killer.active():
            self._killer.cancel()
        if self._ticker.running:
            self._ticker.stop()
        self.display.update(self.progress.values(), self.reactor.seconds() - self._start, final=True)
        self.done.callback(self.outcome or "finished")


