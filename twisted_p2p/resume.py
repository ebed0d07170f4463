"""What survives a crash: which pieces a leecher holds, and which peers are complete.

Two files beside the data, ``FileName.state`` and ``FileName.journal``:

- the *journal* gets one 5-byte record right after each piece's ``pwrite`` returns (and
  when a neighbour is learned complete, or told that we are). It is never synced: the kernel's page cache
  keeps both it and the data through a crash of the process (even ``kill -9``), but not
  through a crash of the machine. Its header names the boot it was written in
  (``/proc/sys/kernel/random/boot_id``), and it is trusted only in that same boot.
- the *state* is a checkpoint written in the background every few seconds, after the
  data is synced to disk, so what it lists survives power loss too.

On start, the state is trusted if intact, the journal too if it is from this boot, and
both are written afresh (the journal by rename, never torn). Nothing here syncs on the
reactor's thread: :meth:`Resume.commit` is meant for a worker thread.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from twisted_p2p.bitfield import BitfieldError, PieceSet
from twisted_p2p.config import Common
from twisted_p2p.layout import journal_path, state_path, temporary_path
from twisted_p2p.storage import PieceStore

_Decoded = TypeVar("_Decoded")

STATE_FORMAT = "twisted_p2p resume state 1"
JOURNAL_FORMAT = "twisted_p2p resume journal 1"
BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
_RECORD = struct.Struct(">cI")
_PIECE, _COMPLETE, _INCOMPLETE, _TOLD = b"P", b"C", b"I", b"T"
log = Logger()


def current_boot_id() -> str | None:
    """This boot of the machine, or None where the kernel does not say (then a journal
    is never trusted, only the synced state)."""
    try:
        return BOOT_ID_PATH.read_text().strip() or None
    except OSError:
        return None


def forget(data: Path) -> None:
    """Remove what a run left to resume from (a fresh run starts with nothing)."""
    for path in (state_path(data), journal_path(data)):
        path.unlink(missing_ok=True)


def _geometry(common: Common) -> dict[str, object]:
    return {"file_name": common.file_name, "file_size": common.file_size, "piece_size": common.piece_size}


def _checksum(fields: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


@dataclass
class Restored:
    """What a leecher may trust at start."""

    held: PieceSet
    durable: PieceSet  # the part of ``held`` that was synced (the state's)
    complete_peers: set[int] = field(default_factory=set)
    told_peers: set[int] = field(default_factory=set)  # peers we told that we hold the file


def encode_state(common: Common, held: PieceSet, complete_peers: Iterable[int] = (),
                 told_peers: Iterable[int] = ()) -> bytes:
    fields: dict[str, object] = {"format": STATE_FORMAT, **_geometry(common), "pieces": held.to_bitfield().hex()}
    for key, peers in (("complete_peers", sorted(complete_peers)), ("told_peers", sorted(told_peers))):
        if peers:
            fields[key] = peers
    fields["sha256"] = _checksum(fields)
    return (json.dumps(fields, sort_keys=True) + "\n").encode()


def decode_state(data: bytes, common: Common) -> tuple[PieceSet, set[int], set[int]]:
    """The pieces, complete peers and told peers a state vouches for; ValueError if it
    is torn, altered or describes another file."""
    try:
        fields = json.loads(data)
        claimed = fields.pop("sha256")
    except (ValueError, TypeError, AttributeError, KeyError):
        raise ValueError("it is torn or not a resume state") from None
    if claimed != _checksum(fields):
        raise ValueError("its checksum does not match (torn or altered)")
    for key, value in {"format": STATE_FORMAT, **_geometry(common)}.items():
        if fields.get(key) != value:
            raise ValueError(f"it is for {key} {fields.get(key)!r}, not {value!r}")
    try:
        held = PieceSet.from_bitfield(bytes.fromhex(fields["pieces"]), common.num_pieces)
        peers = {int(peer) for peer in fields.get("complete_peers", [])}
        told = {int(peer) for peer in fields.get("told_peers", [])}
    except (KeyError, ValueError, TypeError, BitfieldError) as exc:
        raise ValueError(f"its piece list is wrong: {exc}") from None
    return held, peers, told


def encode_journal_header(common: Common, boot_id: str) -> bytes:
    return (json.dumps({"format": JOURNAL_FORMAT, "boot_id": boot_id, **_geometry(common)}, sort_keys=True)
            + "\n").encode()


def piece_record(index: int) -> bytes:
    return _RECORD.pack(_PIECE, index)


def peer_record(peer: int, complete: bool) -> bytes:
    return _RECORD.pack(_COMPLETE if complete else _INCOMPLETE, peer)


def told_record(peer: int) -> bytes:
    return _RECORD.pack(_TOLD, peer)


def decode_journal(
    data: bytes, common: Common, boot_id: str | None
) -> tuple[list[int], dict[int, bool], set[int]]:
    """The pieces a journal records, what it learned of other peers (last word wins)
    and whom it told that we hold the file; ValueError if it is not from this boot or
    not for this file. A torn last record (the process died writing it) is ignored."""
    header, newline, records = data.partition(b"\n")
    try:
        fields = json.loads(header)
    except ValueError:
        raise ValueError("its header is torn") from None
    if not newline or not isinstance(fields, dict):
        raise ValueError("its header is torn")
    for key, value in {"format": JOURNAL_FORMAT, **_geometry(common)}.items():
        if fields.get(key) != value:
            raise ValueError(f"it is for {key} {fields.get(key)!r}, not {value!r}")
    if boot_id is None or fields.get("boot_id") != boot_id:
        raise ValueError("it was written before the machine restarted, so its pieces may not be on disk")
    pieces: list[int] = []
    peers: dict[int, bool] = {}
    told: set[int] = set()
    whole = len(records) - len(records) % _RECORD.size
    for kind, value in _RECORD.iter_unpack(records[:whole]):
        if kind == _PIECE and value < common.num_pieces:
            pieces.append(value)
        elif kind in (_COMPLETE, _INCOMPLETE):
            peers[value] = kind == _COMPLETE
        elif kind == _TOLD:
            told.add(value)
        else:
            raise ValueError(f"it holds a record {kind!r} {value} that cannot be")
    return pieces, peers, told


def _replace(path: Path, data: bytes, sync: bool) -> None:
    """Write ``data`` to ``path`` by rename, so that it is never seen half-written."""
    temporary = temporary_path(path)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view):]
        if sync:
            os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)


class Resume:
    """A leecher's resume state and journal (see the module's docstring)."""

    def __init__(self, data: Path, common: Common, boot_id: str | None = None) -> None:
        self.data = data
        self.common = common
        self.boot_id = boot_id
        self.state_path = state_path(data)
        self.journal_path = journal_path(data)
        self._journal = -1
        self._dirty = False

    def restore(self) -> Restored:
        """What may be trusted, or nothing: files that are missing, torn or do not match
        the data mean trust nothing of them (never a crash). Call before the data file
        is created."""
        total = self.common.num_pieces
        nothing = Restored(PieceSet(total), PieceSet(total))
        size = self.data.stat().st_size if self.data.exists() else None
        if size != self.common.file_size:
            if self.state_path.exists() or self.journal_path.exists():
                log.warn("ignoring the resume state of {data}: it has {size} bytes, not {expected}",
                         data=self.data, size=size, expected=self.common.file_size)
            return nothing
        no_state: tuple[PieceSet, set[int], set[int]] = (PieceSet(total), set(), set())
        durable, peers, told = self._read("state", self.state_path, lambda data: decode_state(data, self.common),
                                          no_state)
        no_journal: tuple[list[int], dict[int, bool], set[int]] = ([], {}, set())
        journalled, learned, told_since = self._read(
            "journal", self.journal_path, lambda data: decode_journal(data, self.common, self.boot_id), no_journal)
        held = PieceSet(total, durable)
        for index in journalled:
            held.add(index)
        for peer, complete in learned.items():
            (peers.add if complete else peers.discard)(peer)
        if held.count:
            log.info("resuming with {count} of {total} pieces ({durable} synced to disk, the rest "
                     "written before the last stop in this boot)", count=held.count, total=total,
                     durable=durable.count)
        return Restored(held, durable, peers, told | told_since)

    def _read(self, what: str, path: Path, decode: Callable[[bytes], _Decoded], empty: _Decoded) -> _Decoded:
        try:
            return decode(path.read_bytes())
        except FileNotFoundError:
            return empty
        except (OSError, ValueError) as exc:
            log.warn("ignoring the resume {what} {path}: {why}", what=what, path=path, why=exc)
            return empty

    def start(self, restored: Restored) -> None:
        """Begin this run: the state says what is synced, a fresh journal what else is
        held (and which peers are complete), then records go on being appended to it.

        The state is synced, so that a machine crash cannot bring back an older state
        file that claims more than is trusted now. At a first start there is no older
        file, and a state that claims nothing leaves nothing to claim whatever a crash
        makes of it (no file, a torn one, the whole one): the sync, a disk flush on the
        reactor's thread before the peer listens, is skipped then."""
        first = not (restored.durable.count or restored.complete_peers or restored.told_peers
                     or self.state_path.exists())
        _replace(self.state_path, encode_state(self.common, restored.durable, restored.complete_peers,
                                               restored.told_peers), sync=not first)
        records = b"".join(piece_record(index) for index in restored.held if index not in restored.durable)
        records += b"".join(peer_record(peer, True) for peer in sorted(restored.complete_peers))
        records += b"".join(told_record(peer) for peer in sorted(restored.told_peers))
        _replace(self.journal_path, encode_journal_header(self.common, self.boot_id or "") + records, sync=False)
        self._journal = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND)

    def piece_written(self, index: int) -> None:
        """Called right after the piece's bytes were handed to the kernel."""
        os.write(self._journal, piece_record(index))
        self._dirty = True

    def peer_learned(self, peer: int, complete: bool) -> None:
        os.write(self._journal, peer_record(peer, complete))
        self._dirty = True

    def peer_told(self, peer: int) -> None:
        """We sent ``peer`` our complete bitfield, or the have of our last piece."""
        os.write(self._journal, told_record(peer))
        self._dirty = True

    def snapshot(self, held: PieceSet, complete_peers: Iterable[int], told_peers: Iterable[int] = ()) -> bytes | None:
        """The state to commit for what is held now, or None if nothing changed since
        the last snapshot. Taken on the reactor's thread, so it lists only pieces
        written before it."""
        if not self._dirty or self._journal < 0:
            return None
        self._dirty = False
        return encode_state(self.common, held, complete_peers, told_peers)

    def commit(self, state: bytes, sync_data: Callable[[], None]) -> None:
        """Sync the data, then replace the state: it never claims a piece that is not
        on disk. Blocking: run it in a thread."""
        sync_data()
        _replace(self.state_path, state, sync=True)

    def close(self) -> None:
        if self._journal >= 0:
            os.close(self._journal)
            self._journal = -1


class Checkpoints:
    """Commits the resume state every ``interval`` seconds in a worker thread, and on
    demand (at completion, at stop), never two at once. ``run_in_thread`` runs a
    blocking call and returns a Deferred (a thread pool in a real peer; by default the
    call is made at once, for tests); ``on_error`` gets a one-line reason."""

    def __init__(
        self,
        resume: Resume,
        store: PieceStore,
        complete_peers: Iterable[int],
        told_peers: Iterable[int],
        clock: IReactorTime,
        on_error: Callable[[str], None],
        interval: float = 2.0,
        run_in_thread: Callable[..., Deferred[None]] | None = None,
    ) -> None:
        self.resume = resume
        self.store = store
        self.complete_peers = complete_peers
        self.told_peers = told_peers
        self.on_error = on_error
        self.interval = interval
        self.run_in_thread = run_in_thread or (lambda function, *args: maybeDeferred(function, *args))
        self._saving: Deferred[None] | None = None
        self._loop = LoopingCall(self._save_in_background)
        self._loop.clock = clock

    def start(self) -> None:
        self._loop.start(self.interval, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def save(self) -> Deferred[None]:
        """Save now (or right after the save under way); fires when it is on disk."""
        if self._saving is not None:
            following: Deferred[None] = Deferred()

            def again(_: object) -> None:
                self.save().chainDeferred(following)

            self._saving.addBoth(again)
            return following
        self._save_in_background()
        return self._saving if self._saving is not None else succeed(None)

    def _save_in_background(self) -> None:
        if self._saving is not None:
            return  # the last one is still syncing
        state = self.resume.snapshot(self.store.held, self.complete_peers, self.told_peers)
        if state is None:
            return
        saving = self.run_in_thread(self.resume.commit, state, self.store.sync)
        saving.addErrback(lambda failure: self.on_error(
            f"cannot save the resume state {self.resume.state_path}: {failure.getErrorMessage()}"))
        saving.addBoth(self._saved)
        if not saving.called:
            self._saving = saving

    def _saved(self, _: object) -> None:
        self._saving = None
