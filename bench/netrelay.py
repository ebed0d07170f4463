"""A delaying TCP relay: latency for benchmarks on loopback, where the kernel has no netem.

One relay process listens on one port per target port (all on 127.0.0.1). Each accepted
connection is joined to a connection to its target, and every chunk read from either end
is written to the other end ``delay`` seconds after it was read. Each direction is a FIFO
with one timer, so bytes never overtake each other; the end of a stream (EOF or a reset)
travels the same FIFO, after the bytes before it, and closes the other end. Reading never
stops (buffering is unbounded), so the relay adds delay, not a bandwidth limit. The
joining of the two connections is the shared relay core's (``twisted_p2p.launcher.tcprelay``);
what is the bench's own is the :class:`DelayLine` each direction goes through.

It runs in its own process, so that its CPU is not charged to whoever measures:
``python -m bench.netrelay --delay-ms D TARGET_PORT...`` prints one JSON line with its
listening ports (in the order of the targets), and on SIGTERM or SIGINT one JSON line with
the bytes it forwarded. :class:`RelayProcess` starts and stops it.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from twisted_p2p.launcher import tcprelay
from twisted_p2p.launcher.children import stop_popen
from twisted_p2p.launcher.tcprelay import Dialling, Line, Link

#: How long the relay keeps dialling a target that refuses (a peer still starting) before
#: it gives up and closes the accepted connection; and how often it tries.
CONNECT_PATIENCE_S = 30.0
CONNECT_RETRY_S = 0.01


class _End:
    """The end of a stream, queued behind the bytes that came before it."""


END = _End()


class DelayLine(Line):
    """One direction of one connection: what is pushed comes out ``delay`` seconds later, in order.

    A FIFO of (due time, chunk) with a single timer set for the head, so that chunks cannot
    race each other as separate timers might. With ``delay`` 0 a chunk goes out at once.
    By default the bytes go to the line's sink, and the end closes it.
    """

    def __init__(self, clock: IReactorTime, delay: float, deliver: Callable[[bytes], None] | None = None,
                 finish: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.clock = clock
        self.delay = delay
        self.deliver = deliver or self.write  # called with the bytes that are due, joined
        self.finish = finish or self.close_sink  # called once, after the last bytes, when the end is due
        self.queue: collections.deque[tuple[float, bytes | _End]] = collections.deque()
        self.timer: IDelayedCall | None = None
        self.ended = False

    def push(self, data: bytes) -> None:
        self._enqueue(data)

    def end(self) -> None:
        """The stream ended: pass that on after the bytes already queued."""
        if not self.ended:
            self.ended = True
            self._enqueue(END)

    def _enqueue(self, item: bytes | _End) -> None:
        if self.delay <= 0 and not self.queue:
            self._emit([item])
            return
        self.queue.append((self.clock.seconds() + self.delay, item))
        if self.timer is None:
            self._arm()

    def _arm(self) -> None:
        due = self.queue[0][0]
        self.timer = self.clock.callLater(max(0.0, due - self.clock.seconds()), self._release)

    def _release(self) -> None:
        self.timer = None
        now = self.clock.seconds()
        ready: list[bytes | _End] = []
        while self.queue and self.queue[0][0] <= now:
            ready.append(self.queue.popleft()[1])
        self._emit(ready)
        if self.queue:
            self._arm()

    def _emit(self, items: list[bytes | _End]) -> None:
        data = b"".join(item for item in items if isinstance(item, bytes))
        if data:
            self.deliver(data)
        if items and items[-1] is END:  # nothing is queued after the end
            self.finish()

    def cancel(self) -> None:
        """Drop what is queued (the receiving end is gone)."""
        self.queue.clear()
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None


# -- the relay process (Twisted) -----------------------------------------------------

class Relay(tcprelay.Relay):
    """Every relayed pair of one process, with the delay and the counters they share.

    An accepted socket reads nothing until its target has answered; a target that refuses
    (a peer still starting) is dialled again every CONNECT_RETRY_S for CONNECT_PATIENCE_S.
    The peers ask for no Nagle delay on their sockets, so the relay's sockets add none
    either (40 ms stalls on small messages, against delayed ACKs, that a real path lacks).
    """

    def __init__(self, reactor: Any, delay: float) -> None:
        super().__init__(reactor, Dialling(patience=CONNECT_PATIENCE_S, retry=CONNECT_RETRY_S, no_delay=True))
        self.delay = delay
        self.connections = 0
        self.forwarded = 0  # bytes read, both directions

    def listen(self, target: int) -> int:
        """Relay a new port on 127.0.0.1 to ``target``; the new port."""
        return int(self.listen_on(0, target).getHost().port)

    def new_link(self, route: Any) -> Link:
        self.connections += 1
        return _CountedLink(self, route, DelayLine(self.clock, self.delay), DelayLine(self.clock, self.delay))


class _CountedLink(Link):
    relay: Relay

    def received(self, end: tcprelay.Socket, data: bytes) -> None:
        self.relay.forwarded += len(data)
        super().received(end, data)


def main(argv: list[str] | None = None) -> int:
    from twisted.internet import reactor

    parser = argparse.ArgumentParser(prog="python -m bench.netrelay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay-ms", type=float, required=True, help="one-way delay per chunk, each direction")
    parser.add_argument("targets", type=int, nargs="+", metavar="TARGET_PORT", help="ports on 127.0.0.1 to relay to")
    options = parser.parse_args(argv)
    relay = Relay(reactor, options.delay_ms / 1000)
    ports = [relay.listen(target) for target in options.targets]

    stopping: list[bool] = []

    def stop_once() -> None:
        if not stopping:
            stopping.append(True)
            reactor.stop()

    def stop(signum: int, frame: object) -> None:
        # The reactor is typed as its common interfaces, which leave out IReactorThreads.
        reactor.callFromThread(stop_once)  # type: ignore[attr-defined]

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def lifeline() -> None:
        """When whoever started us goes, even by SIGKILL, our standard input closes."""
        sys.stdin.read()
        stop(0, None)
    threading.Thread(target=lifeline, daemon=True).start()
    print(json.dumps({"ports": ports}), flush=True)
    # IReactorCore.run() leaves out the installSignalHandlers every real reactor's run() takes.
    reactor.run(installSignalHandlers=False)  # type: ignore[call-arg]
    print(json.dumps({"connections": relay.connections, "bytes": relay.forwarded}), flush=True)
    return 0


# -- the bench's side ------------------------------------------------------------------

class RelayProcess:
    """A relay in a child process: ``ports`` lists its listening ports, one per target.
    Use it as a context manager, so that it is stopped (by its pid) whatever happens."""

    def __init__(self, targets: list[int], delay_ms: float, python: str = sys.executable) -> None:
        self.summary: dict | None = None
        self.stopped = False
        self.child = subprocess.Popen(
            [python, "-m", "bench.netrelay", "--delay-ms", str(delay_ms), *map(str, targets)],
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True,
        )
        assert self.child.stdout is not None
        line = self.child.stdout.readline()
        try:
            self.ports: list[int] = json.loads(line)["ports"]
        except (ValueError, KeyError):
            self.stop()
            raise RuntimeError(f"the relay did not start (it printed {line!r})") from None

    def stop(self) -> dict | None:
        """Stop the relay (once); what it forwarded (``connections``, ``bytes``), if it said."""
        if self.stopped:
            return self.summary
        self.stopped = True
        out, _ = stop_popen(self.child, grace=10)  # closes its standard input too
        lines = (out or "").strip().splitlines()
        try:
            self.summary = json.loads(lines[-1]) if lines else None
        except ValueError:
            self.summary = None
        return self.summary

    def __enter__(self) -> RelayProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
