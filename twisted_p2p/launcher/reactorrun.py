"""The peers of a swarm run in the global reactor: the one place that runs it and takes the signals.

:func:`run_peers` serves ``run`` and ``push`` alike. It starts the planned peers when the
reactor runs, hands Ctrl-C and SIGTERM to them (or, once the run is over and only the
dashboard lingers, stops the reactor), serves the dashboard if asked, and returns when
the reactor has stopped -- once per process, since the global reactor cannot be run twice.
"""
from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from twisted.python.failure import Failure

from twisted_p2p.config import SwarmConfig
from twisted_p2p.launcher.display import Display
from twisted_p2p.launcher.options import RunOptions
from twisted_p2p.launcher.plan import Launch
from twisted_p2p.launcher.progress import PeerProgress
from twisted_p2p.launcher.supervise import PeerProcesses
from twisted_p2p.launcher.web.feed import Feed
from twisted_p2p.launcher.web.server import Dashboard

CHECKING = "checking"  # the dashboard's outcome while the files are checked
CANNOT_LISTEN = 2  # the exit status when the dashboard cannot listen


@dataclass
class RunState:
    """One run of the peers, as its end needs it: ``outcome`` is a key of the exit codes
    once the peers are done, and ``code`` the exit status once the run is concluded."""

    swarm: PeerProcesses
    display: Display
    started: float
    reactor: Any
    outcome: str = "failed"
    duration: float = 0.0  # seconds from the start until the peers were done
    code: int | None = None
    lingering: bool = False  # only the dashboard is left: a signal ends it

    @property
    def progress(self) -> dict[int, PeerProgress]:
        return self.swarm.progress

    def elapsed(self) -> float:
        return self.reactor.seconds() - self.started


#: What ends a run (its checks, summary and reports), given it; the exit status.
Conclude = Callable[[RunState], int]


def run_peers(options: RunOptions, config: SwarmConfig, launches: list[Launch], stdout: TextIO,
              conclude: Conclude | None = None, dropped: dict[int, str] | None = None,
              push: bool = False) -> RunState:
    """Run ``launches`` to their end (``options``: stagger, timeout, dashboard) and then
    ``conclude`` the run, once: before the dashboard lingers, else after the reactor
    stops. ``push``: a leecher that fails is dropped (``dropped``: those never started,
    and why) and the rest go on, the seed is not niced (its upload is what a push waits
    for), and the display has a line per host."""
    from twisted.internet import reactor

    started = reactor.seconds()
    progress = {
        peer.peer_id: PeerProgress(peer.peer_id, peer.host, config.common.num_pieces, peer.has_file, started)
        for peer in config.peers
    }
    display = Display(stdout, config.common.piece_size, tty=stdout.isatty(), hosts=push)
    pushed: dict[str, Any] = {"keep_going": True, "local_nice": 0} if push else {}
    swarm = PeerProcesses(reactor, launches, progress, display, **pushed)
    swarm.dropped.update(dropped or {})
    run = RunState(swarm, display, started, reactor)
    dashboard = None
    if options.web is not None:
        dashboard = serve_dashboard(run, config, options.web)
        if dashboard is None:
            run.code = CANNOT_LISTEN
            return run
        print(f"dashboard: {dashboard.url}", file=stdout)
    program = "push" if push else "run"
    ended = ended_by(run, program, dashboard, options.web_linger, conclude, stdout)
    reactor.callWhenRunning(take_signals, run)
    reactor.callWhenRunning(lambda: swarm.run(options.stagger, options.timeout).addBoth(ended))
    reactor.run()
    if dashboard is not None:
        dashboard.stop()
    if run.code is None:  # not concluded while the dashboard lingered
        run.duration = run.elapsed()
        if conclude is not None:
            run.code = conclude(run)
    return run


def serve_dashboard(run: RunState, config: SwarmConfig, address: tuple[str, int]) -> Dashboard | None:
    """The live dashboard at ``address``, or None (and why, on stderr) if it cannot listen."""
    from twisted.internet.error import CannotListenError

    try:
        return Dashboard(run.reactor, Feed(config, run.progress, run.elapsed), *address)
    except CannotListenError as exc:
        print(f"p2p-swarm run: --web: cannot listen on {address[0]}:{address[1]}: {exc.socketError}",
              file=sys.stderr)
        return None


def ended_by(run: RunState, program: str, dashboard: Dashboard | None, linger: float | None,
             conclude: Conclude | None, stdout: TextIO) -> Callable[[object], None]:
    """What to do when the peers are done: stop the reactor, or, with a dashboard, tell
    the page that the files are being checked (the check holds the reactor for a
    while), conclude, and keep the page up ``linger`` seconds (None: until Ctrl-C)."""
    reactor = run.reactor

    def ended(result: object) -> None:
        if isinstance(result, Failure):
            run.display.say(f"p2p-swarm {program}: internal error: {result.getTraceback()}")
            run.swarm.outcome = run.outcome = "failed"
        else:
            run.outcome = str(result)
        if dashboard is None:
            reactor.stop()
            return
        run.duration = run.elapsed()
        dashboard.finish(CHECKING)
        reactor.callLater(0.2, stay)

    def stay() -> None:
        assert dashboard is not None
        if conclude is not None:
            run.code = conclude(run)
        dashboard.finish(run.outcome)
        if run.outcome in ("interrupted", "terminated"):  # one Ctrl-C ends it all, the dashboard too
            reactor.stop()
            return
        run.lingering = True
        until = "Ctrl-C" if linger is None else f"{linger:g} s have passed (or Ctrl-C)"
        print(f"the dashboard stays at {dashboard.url} until {until}", file=stdout, flush=True)
        if linger is not None:
            reactor.callLater(linger, reactor.stop)

    return ended


def take_signals(run: RunState) -> None:
    """SIGINT and SIGTERM stop the peers (:meth:`PeerProcesses.interrupt`), or, once only the
    dashboard lingers, the reactor; the handler runs between the reactor's steps."""
    def handler(signum: int, frame: object) -> None:
        if run.lingering:
            run.reactor.callFromThread(run.reactor.stop)
        else:
            run.reactor.callFromThread(run.swarm.interrupt, signum)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
