"""The process around a peer: what twistd leaves to the plugin.

twistd runs the service makeService returns; how the process lives and ends is this
module's job: the allocator's tuning, a standard output that never blocks, the stdin
lifeline, what SIGTERM and SIGINT mean, and the exit status.

Exit status: 0 once the swarm is complete, on SIGTERM or SIGINT (a clean stop: state
saved, connections closed), and when the stdin lifeline ends; 1 when the peer failed
after it started (its port is taken, its disk failed). A mistake in the options or the
files ends the process earlier, in makeService, with status 1 and one line.

Tests: tests/test_processes.py (real twistd processes: signals, the lifeline, exit statuses).
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import MutableMapping
from types import FrameType
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from twisted_p2p.outlet import Outlet

log = Logger()


def without_pyopenssl(modules: MutableMapping[str, Any] = sys.modules) -> bool:
    """Run as on an install without pyOpenSSL (Twisted's ``tls`` extra), for a peer not
    given --tls-cert. Where pyOpenSSL is installed, the reactor's TCP module imports it,
    cryptography and service_identity, for TLS such a peer never uses: a quarter of the
    instructions of its start. Twisted falls back, as when pyOpenSSL is absent, if
    importing it fails, which ``None`` in ``modules`` makes it do. Only in a process
    that has neither imported yet (twistd parses the options before it imports the
    reactor); says whether it did."""
    if any(name in modules for name in ("OpenSSL", "twisted.internet.tcp", "twisted.internet.reactor")):
        return False
    modules["OpenSSL"] = None
    return True


def keep_piece_buffers() -> None:
    """glibc hands freed blocks over 128 KiB back to the kernel, so with large pieces
    every piece buffer is page-faulted in afresh (measured: half the throughput at
    256 KiB pieces). Keep such blocks in the heap for reuse; elsewhere, do nothing."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 8 << 20)  # M_MMAP_THRESHOLD: blocks up to 8 MiB from the heap
        libc.mallopt(-1, 128 << 20)  # M_TRIM_THRESHOLD: keep up to 128 MiB of free heap
    except (OSError, AttributeError):
        pass


def echo_to_stdout(reactor: Any) -> Outlet:
    """Standard output through an :class:`~twisted_p2p.outlet.Outlet`, for the echoed
    events. twistd's own log goes to standard output too once makeService returns:
    through the outlet as well, so that a stalled reader blocks neither."""
    from twisted_p2p.outlet import Outlet

    echo = sys.stdout = Outlet(sys.stdout)
    reactor.addSystemEventTrigger("after", "shutdown", echo.drain, 5.0)
    return echo


def end_with(reactor: Any, done: Deferred[None], lifeline: bool) -> None:
    """Stop the reactor when ``done`` fires, with status 1 if it failed; take SIGTERM
    and SIGINT as a clean stop; with ``lifeline``, stop when standard input closes."""

    def failed(_: object) -> None:
        exit_after_shutdown(reactor, 1)
        stop_reactor(reactor)

    done.addCallbacks(lambda _: stop_reactor(reactor), failed)
    signals_stop_before_running(reactor)
    reactor.callWhenRunning(signals_stop_cleanly, reactor)
    if lifeline:
        reactor.callWhenRunning(stop_when_stdin_closes, reactor)


def stop_reactor(reactor: Any) -> None:
    """Stop the reactor, now or as soon as it runs: the peer may fail before it runs
    (its port is taken: twistd starts the services first)."""
    if reactor.running:
        reactor.stop()
    else:
        reactor.callWhenRunning(reactor.stop)


def signals_stop_before_running(reactor: Any) -> None:
    """SIGTERM and SIGINT stop the peer cleanly from the moment it is assembled, not only
    once the reactor runs. Before, a SIGINT then was Python's KeyboardInterrupt, raised
    wherever twistd was (inside a Deferred's callback it became a Failure and the peer
    ran on, a stop lost) and a SIGTERM killed it outright. The reactor installs its own
    handlers as it starts; :func:`signals_stop_cleanly` then puts ours back. Only the
    default handlers are replaced."""
    for number in (signal.SIGTERM, signal.SIGINT):
        if signal.getsignal(number) in (signal.SIG_DFL, signal.default_int_handler):
            signal.signal(number, lambda number, frame: _stop_on_signal(reactor, number, frame))


def signals_stop_cleanly(reactor: Any) -> None:
    """SIGTERM and SIGINT stop the reactor, and the process then exits 0.

    The reactor's own handlers stop it too, but they also note the signal, and twistd
    raises it again once the reactor has stopped, so the process would die "killed by
    signal". For a peer such a stop is clean (state saved, connections closed), so once
    the reactor runs (it installs its handlers as it starts) ours take their place.
    A handler that is not the reactor's (``twistd --debug``'s debugger) is left alone.
    """
    for number in (signal.SIGTERM, signal.SIGINT):
        if getattr(signal.getsignal(number), "__self__", None) is reactor:
            signal.signal(number, lambda number, frame: _stop_on_signal(reactor, number, frame))


def _stop_on_signal(reactor: Any, number: int, frame: FrameType | None) -> None:
    log.info("Received {name}, shutting down.", name=signal.Signals(number).name)
    reactor.callFromThread(reactor.stop)


def stop_when_stdin_closes(reactor: Any) -> None:
    """Read standard input in a thread until it ends, then stop the reactor: whatever
    holds the other end (ssh, a launcher) going away is the signal to stop."""

    def watch() -> None:
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        reactor.callFromThread(stop)

    def stop() -> None:
        if reactor.running:
            log.info("standard input closed (the launcher is gone): stopping")
            reactor.stop()

    threading.Thread(target=watch, name="lifeline", daemon=True).start()


def exit_after_shutdown(reactor: Any, status: int) -> None:
    """Exit with ``status`` once the reactor has shut down. twistd exits 0 whenever the
    reactor stops; a failed peer must not, and ``os._exit`` here is the one way out
    with another status (it skips twistd's removal of its pidfile)."""

    def leave() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)

    reactor.addSystemEventTrigger("after", "shutdown", leave)
