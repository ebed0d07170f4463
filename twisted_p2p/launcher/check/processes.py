"""The kit's child processes: started in a session of their own, followed, always stopped.

Whatever the program under test does -- hang, ignore SIGTERM, fork, flood its output --
:meth:`Child.stop` ends the whole session (SIGTERM, then SIGKILL), and its output is
kept up to a cap.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from twisted_p2p.launcher.children import CappedOutput, SessionProcess, exit_of
from twisted_p2p.launcher.progress import LineBuffer

OUTPUT_CAP = 4 << 20  # bytes of a child's output kept on disk
GRACE = 2.0  # seconds between SIGTERM and SIGKILL


class Child(SessionProcess):
    """One process: its output in ``output``, its lines to ``on_line``, its end in ``status``."""

    running_ones: set[Child] = set()  # every child not yet ended, to stop them all on the way out

    def __init__(self, reactor: Any, argv: list[str], cwd: Path, output: Path,
                 on_line: Callable[[str], None] | None = None) -> None:
        self.reactor = reactor
        self.argv = argv
        self.cwd = cwd
        self.on_line = on_line
        self.started: float | None = None
        self.ended: float | None = None
        self.status: int | None = None  # exit status, or -signal
        self.stopped_by_kit = False
        self.last_line = ""
        self.done: Deferred[None] = Deferred()
        self._output = CappedOutput(output, OUTPUT_CAP)
        self._lines = {1: LineBuffer(), 2: LineBuffer()}

    def spawn(self) -> None:
        self.started = self.reactor.seconds()
        Child.running_ones.add(self)
        try:
            self.spawn_in_session(self.reactor, self.argv, self.cwd, env=os.environ.copy(),
                                  childFDs={0: "w", 1: "r", 2: "r"})
        except OSError as exc:  # the kit's own Python cannot start: nothing of theirs ran
            self._finish(127, f"could not start: {exc}")

    @property
    def running(self) -> bool:  # type: ignore[override]  # derived from started and ended: read-only here
        return self.started is not None and self.ended is None

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        # its standard input stays open, unused
        self._output.write(data)
        for line in self._lines[childFD if childFD in self._lines else 2].feed(data[:65536]):
            self._heard(line)

    def _heard(self, line: str) -> None:
        if line.strip():
            self.last_line = line.strip()[:200]
        if self.on_line is not None:
            self.on_line(line)

    def processEnded(self, reason: Failure) -> None:
        for buffer in self._lines.values():
            for line in buffer.flush():
                self._heard(line)
        status, _ = exit_of(reason)
        self._finish(status, None)

    def _finish(self, status: int, why: str | None) -> None:
        self.ended = self.reactor.seconds()
        Child.running_ones.discard(self)
        self.status = status
        if why:
            self.last_line = why
        self._output.close()
        self.done.callback(None)

    def stop(self) -> Deferred[None]:
        """End its whole session: SIGTERM, then SIGKILL after GRACE; fires once it has ended."""
        if self.running:
            self.stopped_by_kit = True
        self.stop_session(self.reactor, GRACE)
        return self._when_done()

    def _when_done(self) -> Deferred[None]:
        finished: Deferred[None] = Deferred()
        if self.ended is not None or self.started is None:
            finished.callback(None)
        else:
            self.done.addBoth(lambda _: finished.callback(None))
        return finished
