"""The live progress view: redrawn in place on a terminal, plain lines otherwise."""
from __future__ import annotations

import shutil
from collections.abc import Iterable
from typing import TextIO

from twisted_p2p.launcher.progress import PeerProgress, render, render_hosts

PLAIN_EVERY = 2.0  # seconds between blocks of plain lines when output is not a terminal


class Display:
    """Shows one line per peer.

    On a terminal it moves the cursor back over the lines it drew and rewrites them,
    cut to the terminal's width so a wrapped line cannot spoil the count. Elsewhere
    (a pipe, a CI log) it prints a block every PLAIN_EVERY seconds and at the end.
    Messages go through :meth:`say` so they never land inside the block.
    """

    def __init__(self, stream: TextIO, piece_size: int, tty: bool, hosts: bool = False) -> None:
        self.stream = stream
        self.piece_size = piece_size
        self.tty = tty
        #: push's view: a line per host by name (compact when many), each resume said once
        self.hosts = hosts
        self._resumes_said: set[int] = set()
        self._drawn = 0
        self._last_plain: float | None = None

    def update(self, peers: Iterable[PeerProgress], now: float, final: bool = False) -> None:
        peers = list(peers)
        width = shutil.get_terminal_size().columns - 1
        if self.hosts:
            for peer in peers:
                if peer.resumed is not None and peer.peer_id not in self._resumes_said:
                    self._resumes_said.add(peer.peer_id)
                    self.say(f"{peer.host}: resuming: {peer.resumed:,} of {peer.total:,} pieces already there")
        lines = render_hosts(peers, now, self.piece_size, width) if self.hosts else render(peers, now, self.piece_size)
        if self.tty:
            out = [f"\x1b[{self._drawn}F"] if self._drawn else []
            out += [f"\x1b[2K{line[:width]}\n" for line in lines]
            self.stream.write("".join(out))
            self._drawn = len(lines)
        elif final or self._last_plain is None or now - self._last_plain >= PLAIN_EVERY:
            self._last_plain = now
            self.stream.write("".join(f"[{now:6.1f}s] {line}\n" for line in lines))
        self.stream.flush()

    def say(self, text: str) -> None:
        if self.tty and self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0
        self.stream.write(text + "\n")
        self.stream.flush()
