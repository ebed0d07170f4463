"""What the dashboard shows, as JSON: one snapshot, then deltas.

The launcher already follows every peer (its log here, or its echoed events from
another host) into :class:`PeerProgress`; this turns that into what the page needs.
A snapshot is everything; a delta is what changed since the previous delta. Both are
idempotent (fields are absolute values, pieces and points carry their index or time,
log lines a sequence number), so a page that got a snapshot between two deltas can
apply the next delta as it comes. A delta carries only the newest timeline point and
the newest log lines: the page draws a line and shows the last lines, and a big swarm
makes thousands of each a second.

Piece maps are compact: one character per piece, ``.`` for missing, ``*`` for a
piece a seed started with, else the neighbour's slot as a letter (slots follow
PeerInfo.cfg's order; see ``peers`` in the snapshot).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted_p2p.config import SwarmConfig
from twisted_p2p.launcher.progress import PeerProgress
from twisted_p2p.launcher.runpage import PALETTE, SEED_COLOUR

MISSING, OWN = ".", "*"
SLOTS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"  # peers beyond 62 share '~'
LINES = 100  # log lines a snapshot or a delta carries at most (the newest)
POINTS = 200  # timeline points per peer in a snapshot at most; a delta carries the newest


def thin(points: list[tuple[float, int]]) -> list[tuple[float, int]]:
    """At most POINTS of them, evenly picked, the last always kept: enough for a line."""
    if len(points) <= POINTS:
        return points
    step = len(points) / (POINTS - 1)
    return [points[int(i * step)] for i in range(POINTS - 1)] + [points[-1]]


def slot(position: int) -> str:
    return SLOTS[position] if position < len(SLOTS) else "~"


@dataclass
class _Sent:
    """What the previous delta left each peer at."""

    fields: dict[str, Any] = field(default_factory=dict)
    pieces: int = 0
    points: int = 0
    lines: int = 0


class Feed:
    """Snapshots and deltas of a running swarm (``now`` gives seconds since its start)."""

    def __init__(self, config: SwarmConfig, progress: dict[int, PeerProgress], now: Callable[[], float]) -> None:
        self.config = config
        self.progress = progress
        self.now = now
        self.slots = {peer.peer_id: slot(position) for position, peer in enumerate(config.peers)}
        self.sent = {peer_id: _Sent() for peer_id in progress}
        self.line_seq = 0
        self.lines: list[tuple[int, float, int, str]] = []  # (seq, time, peer, line), the last LINES
        self.finished: str | None = None  # the run's outcome, once it is over
        self._finished_sent: str | None = None

    # -- the parts ----------------------------------------------------------------

    def _fields(self, peer: PeerProgress, now: float) -> dict[str, Any]:
        return {
            "held": peer.held, "state": peer.state,
            "completed": None if peer.completed_at is None else round(peer.completed_at, 2),
            "rate": round(peer.rate(now) * self.config.common.piece_size),  # bytes/s
            "unchoked_by": sorted(other for other, yes in peer.unchoked_by.items() if yes),
            "neighbours": len(peer.unchoked_by),
            "preferred": list(peer.preferred), "optimistic": peer.optimistic,
            "received_from": {str(other): count for other, count in sorted(peer.received_from.items())},
        }

    def _piece_map(self, peer: PeerProgress) -> str:
        if peer.seed:
            return OWN * peer.total
        cells = [MISSING] * peer.total
        for index, source in peer.pieces.items():
            if 0 <= index < peer.total:
                cells[index] = self.slots.get(source, "~")
        return "".join(cells)

    def _new_pieces(self, peer: PeerProgress, since: int) -> list[Any]:
        """[index, slot, index, slot, ...] of the pieces got after the first ``since``."""
        flat: list[Any] = []
        for index, source in list(peer.pieces.items())[since:]:
            flat += [index, self.slots.get(source, "~")]
        return flat

    def _collect_lines(self) -> list[list[Any]]:
        """The log lines added since the last call, numbered, in time order."""
        fresh = []
        for peer_id, peer in self.progress.items():
            sent = self.sent[peer_id]
            new = peer.lines_seen - sent.lines
            if new > 0:
                fresh += [(when, peer_id, text) for when, text in list(peer.lines)[-min(new, len(peer.lines)):]]
                sent.lines = peer.lines_seen
        numbered = []
        for when, peer_id, text in sorted(fresh)[-LINES:]:
            self.line_seq += 1
            numbered.append((self.line_seq, when, peer_id, text))
        self.lines = (self.lines + numbered)[-LINES:]
        return [[seq, round(when, 3), peer_id, text] for seq, when, peer_id, text in numbered]

    # -- what is sent -------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything, for a page that just connected."""
        now = self.now()
        common = self.config.common
        return {
            "kind": "snapshot",
            "time": round(now, 2),
            "file": {"name": common.file_name, "size": common.file_size, "pieces": common.num_pieces,
                     "piece_size": common.piece_size, "k": common.preferred_neighbors,
                     "p": common.unchoking_interval, "m": common.optimistic_unchoking_interval},
            "peers": [{"id": peer.peer_id, "host": peer.host, "seed": peer.has_file, "slot": self.slots[peer.peer_id],
                       "colour": PALETTE[position % len(PALETTE)]}  # as in swarm-report.html
                      for position, peer in enumerate(self.config.peers)],
            "seed_colour": SEED_COLOUR,
            "state": {str(peer_id): {**self._fields(peer, now), "map": self._piece_map(peer),
                                     "timeline": [[round(t, 2), held] for t, held in thin(peer.timeline)]}
                      for peer_id, peer in self.progress.items()},
            "lines": [[seq, round(when, 3), peer_id, text] for seq, when, peer_id, text in self.lines],
            "finished": self.finished,
        }

    def delta(self) -> dict[str, Any] | None:
        """What changed since the last delta (None: nothing); marks it all as sent."""
        now = self.now()
        changes: dict[str, Any] = {}
        for peer_id, peer in self.progress.items():
            sent = self.sent[peer_id]
            fields = self._fields(peer, now)
            change = {key: value for key, value in fields.items() if sent.fields.get(key, object()) != value}
            pieces = len(peer.pieces)
            if pieces > sent.pieces:
                change["pieces"] = self._new_pieces(peer, sent.pieces)
            if len(peer.timeline) > sent.points:
                t, held = peer.timeline[-1]
                change["timeline"] = [[round(t, 2), held]]
            sent.fields, sent.pieces, sent.points = fields, pieces, len(peer.timeline)
            if change:
                changes[str(peer_id)] = change
        lines = self._collect_lines()
        if not changes and not lines and self.finished == self._finished_sent:
            return None
        self._finished_sent = self.finished
        return {"kind": "delta", "time": round(now, 2), "state": changes, "lines": lines, "finished": self.finished}
