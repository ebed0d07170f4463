"""The CPU of the one machine every simulated host runs on, when it is the limit.

Peers on one machine's loopback are limited by its CPU, not by links: 32 peers on two
cores take four times as long as their network would allow. With a :class:`CpuModel`,
each host is one single-threaded process (a Twisted reactor), and the processes share
the machine's cores:

- bytes that reach a host wait for its process; the process takes everything waiting in
  one reactor *turn* and hands it to the protocols at the turn's start;
- what the process writes in a turn leaves when the turn is over; a write made outside
  a turn (a timer's, a producer resumed by the network) starts a turn of its own;
- a turn costs one core :meth:`CpuModel.turn_cost` seconds; a process runs one turn at a
  time, the machine at most ``cores`` at once, and processes that want a core wait for
  it first come, first served (a turn is short: this is close to the kernel's sharing);
- ``relay``: every segment also passes through one more process on the machine that
  reads and writes it (the bench's delaying relay, one Python process for every
  connection), before its delay;
- ``start``: each peer's process first spends that much CPU starting (``twistd``'s
  imports), which the machine's cores share as well.

:class:`Machine` only keeps the cores' queue; what a turn does is the caller's.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from twisted_p2p.sim.clock import SimClock


@dataclass(frozen=True)
class CpuModel:
    """Seconds of one core per unit of work, and how many cores the machine has."""

    cores: int = 2
    per_turn: float = 0.0  # waking the reactor with something to do
    per_read: float = 0.0  # one connection's bytes read in a turn
    per_write: float = 0.0  # one connection's bytes sent in a turn
    per_message: float = 0.0  # one message received, framed and handled (but a have)
    per_have: float = 0.0  # one have received: framed in place and a bit set, most of a big swarm's messages
    per_byte: float = 0.0  # each byte read or sent (copies, checksums, the disk's page cache)
    relay: bool = False  # every segment is forwarded by one more process
    start: float = 0.0  # a peer's process starting, before it listens

    def turn_cost(self, reads: int, messages: int, read_bytes: int, writes: int, written_bytes: int,
                  haves: int = 0) -> float:
        """What a turn that read and wrote so much costs; ``haves``: how many of its
        ``messages`` were haves."""
        return (self.per_turn + self.per_read * reads + self.per_message * (messages - haves) + self.per_have * haves
                + self.per_write * writes + self.per_byte * (read_bytes + written_bytes))


def fitted(cores: int) -> CpuModel:
    """Our peer's costs on a two-core x86-64 machine of 2026 running Python 3.11, as
    ``python -m bench.simcheck --calibrate`` fitted them (docs/simulator.rst), on a
    machine of ``cores`` cores."""
    return CpuModel(cores=cores, per_turn=5e-6, per_read=10e-6, per_write=10e-6, per_message=55e-6, per_have=15e-6,
                    per_byte=0.75e-9)


class Process:
    """One process: the work waiting for it, and whether it is running a turn.

    ``run(work)`` does a turn's work at its start and says what it costs; ``over(work)``
    is called when the turn's time has passed."""

    __slots__ = ("run", "over", "inbox", "running", "waiting", "cpu", "turns")

    def __init__(self, run: Callable[[list], float], over: Callable[[list], None]) -> None:
        self.run = run
        self.over = over
        self.inbox: list = []
        self.running = False
        self.waiting = False  # in the machine's queue for a core
        self.cpu = 0.0  # seconds of CPU its turns took
        self.turns = 0


class Machine:
    """The cores, and the processes waiting for one, on one clock."""

    def __init__(self, clock: SimClock, model: CpuModel) -> None:
        self.clock = clock
        self.model = model
        self.busy = 0  # cores running a turn
        self.queue: deque[Process] = deque()

    def give(self, process: Process, work: object) -> None:
        """``work`` for ``process``: it runs in the process's next turn."""
        process.inbox.append(work)
        self.wake(process)

    def wake(self, process: Process) -> None:
        if process.running or process.waiting:
            return  # its next turn takes it
        if self.busy < self.model.cores:
            self._start(process)
        else:
            process.waiting = True
            self.queue.append(process)

    def _start(self, process: Process) -> None:
        self.busy += 1
        process.running = True
        work, process.inbox = process.inbox, []
        cost = process.run(work)
        process.cpu += cost
        process.turns += 1
        self.clock.schedule(cost, self._over, process, work)

    def _over(self, process: Process, work: list) -> None:
        process.over(work)
        process.running = False
        self.busy -= 1
        if process.inbox:
            process.waiting = True
            self.queue.append(process)  # behind those already waiting
        while self.queue and self.busy < self.model.cores:
            waiting = self.queue.popleft()
            waiting.waiting = False
            self._start(waiting)
