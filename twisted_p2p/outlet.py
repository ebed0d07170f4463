"""Standard output that never blocks the reactor.

With ``--echo-events`` a peer prints every event-log line, and twistd's own log goes
to standard output too. If whoever reads it stalls (a launcher busy elsewhere, a
terminal paused with Ctrl-S, an ssh link that froze), a plain ``write`` blocks once the
pipe is full, and with it the whole peer. :class:`Outlet` takes the text at once into a
bounded queue that a thread writes out; if the reader stays away until the queue is
full, the newest text is dropped (and counted) rather than the peer stopping.
"""
from __future__ import annotations

import io
import threading
from collections import deque
from typing import TextIO


class Outlet(io.TextIOBase):
    def __init__(self, stream: TextIO, limit: int = 8 << 20) -> None:
        super().__init__()
        self._stream = stream
        self._limit = limit
        self._queued: deque[str] = deque()
        self._size = 0
        self.dropped = 0  # characters dropped because the reader stalled too long
        self._lock = threading.Condition()
        self._closing = False
        self._direct = False  # after a drain that emptied the queue: the last lines go straight out
        self._thread = threading.Thread(target=self._pump, name="stdout", daemon=True)
        self._thread.start()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self._direct:
            self._stream.write(text)
            self._stream.flush()
            return len(text)
        with self._lock:
            if self._closing or self._size + len(text) > self._limit:
                self.dropped += len(text)
            else:
                self._queued.append(text)
                self._size += len(text)
                self._lock.notify()
        return len(text)

    def flush(self) -> None:
        """Nothing to wait for: the thread writes and flushes as soon as it can."""

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for everything queued to be written (at exit);
        True if it was."""
        with self._lock:
            self._closing = True
            self._lock.notify()
        self._thread.join(timeout)
        self._direct = not self._thread.is_alive()
        return self._direct

    def _pump(self) -> None:
        while True:
            with self._lock:
                while not self._queued and not self._closing:
                    self._lock.wait()
                if not self._queued:
                    return
                text = "".join(self._queued)
                self._queued.clear()
            try:
                self._stream.write(text)
                self._stream.flush()
            except (OSError, ValueError):
                return  # the reader is gone for good: nothing more can be shown
            finally:
                with self._lock:
                    self._size -= len(text)
