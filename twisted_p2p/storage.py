"""The shared file on disk (SPEC §1): ``peer_ID/FileName``, pieces at their offsets."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Callable, Optional

from twisted.logger import Logger

from twisted_p2p.bitfield import BitfieldError, PieceSet
from twisted_p2p.config import Common

STATE_FORMAT = "twisted_p2p resume state 1"
log = Logger()


class StorageError(Exception):
    """The file cannot be used; ``str()`` is one line for a person."""


def data_path(work_dir: str | os.PathLike[str], peer_id: int, common: Common) -> Path:
    return Path(work_dir) / f"peer_{peer_id}" / common.file_name


_DIGEST_REPORT = re.compile(r"peer (?P<peer>\d+) has the file with SHA-256 (?P<digest>[0-9a-f]{64})")


def digest_report(peer_id: int, digest: str) -> str:
    """The diagnostic line a finished peer prints with ``--echo-events``, so that a
    launcher can check the file of a peer on another host."""
    return f"peer {peer_id} has the file with SHA-256 {digest}"


def parse_digest_report(line: str) -> Optional[tuple[int, str]]:
    found = _DIGEST_REPORT.search(line)
    return (int(found["peer"]), found["digest"]) if found else None


def file_sha256(path: Path) -> str:
    """A file's SHA-256 in hex, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def state_path(path: Path) -> Path:
    """The resume state lives beside the data: ``peer_ID/FileName.state``."""
    return path.with_name(path.name + ".state")


def _state_checksum(fields: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def encode_state(common: Common, held: PieceSet) -> bytes:
    fields: dict[str, object] = {
        "format": STATE_FORMAT,
        "file_name": common.file_name,
        "file_size": common.file_size,
        "piece_size": common.piece_size,
        "pieces": held.to_bitfield().hex(),
    }
    fields["sha256"] = _state_checksum(fields)
    return (json.dumps(fields, sort_keys=True) + "\n").encode()


def decode_state(data: bytes, common: Common) -> PieceSet:
    """The pieces a resume state vouches for; ValueError if it is torn, altered or
    describes another file."""
    try:
        fields = json.loads(data)
        claimed = fields.pop("sha256")
    except (ValueError, TypeError, AttributeError, KeyError):
        raise ValueError("it is torn or not a resume state") from None
    if claimed != _state_checksum(fields):
        raise ValueError("its checksum does not match (torn or altered)")
    expected = {"format": STATE_FORMAT, "file_name": common.file_name,
                "file_size": common.file_size, "piece_size": common.piece_size}
    for key, value in expected.items():
        if fields.get(key) != value:
            raise ValueError(f"it is for {key} {fields.get(key)!r}, not {value!r}")
    try:
        return PieceSet.from_bitfield(bytes.fromhex(fields["pieces"]), common.num_pieces)
    except (KeyError, ValueError, TypeError, BitfieldError) as exc:
        raise ValueError(f"its piece list is wrong: {exc}") from None


class PieceStore:
    """Reads pieces with ``os.pread`` and writes them with ``os.pwrite`` at their offsets.

    A seed's file must exist with exactly FileSize bytes. A leecher's file is created
    at full size so that each piece can be written where it belongs as it arrives, and
    which pieces it holds is saved in a resume state beside it (:meth:`save_state`), so
    a peer that is killed and started again fetches only what it had not saved.
    """

    def __init__(self, path: Path, common: Common, has_file: bool) -> None:
        self.path = path
        self.common = common
        self.state_path = state_path(path)
        self._fd = -1
        self._unsynced = False
        self._unsaved = False
        self.held = PieceSet.full(common.num_pieces) if has_file else PieceSet(common.num_pieces)
        try:
            if has_file:
                size = path.stat().st_size
                if size != common.file_size:
                    raise StorageError(
                        f"{path} has {size} bytes; Common.cfg says FileSize {common.file_size}"
                    )
                self._fd = os.open(path, os.O_RDONLY)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self.held = self._restore()
                self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
                os.ftruncate(self._fd, common.file_size)
                self._reserve(common.file_size)
        except FileNotFoundError:
            raise StorageError(f"{path} does not exist, but PeerInfo.cfg says this peer has the file") from None
        except OSError as exc:
            raise StorageError(f"cannot use {path}: {exc.strerror or exc}") from None

    def _restore(self) -> PieceSet:
        """What the resume state vouches for, or nothing: a state that is missing, torn
        or does not match the data file means trust nothing (never a crash)."""
        empty = PieceSet(self.common.num_pieces)
        try:
            data = self.state_path.read_bytes()
        except FileNotFoundError:
            return empty
        except OSError as exc:
            log.warn("cannot read {state}: {error}; starting with no pieces", state=self.state_path, error=exc)
            return empty
        try:
            held = decode_state(data, self.common)
            size = self.path.stat().st_size if self.path.exists() else None
            if size != self.common.file_size:
                raise ValueError(f"the data file has {size} bytes, not {self.common.file_size}")
        except ValueError as exc:
            log.warn("ignoring {state}: {why}; starting with no pieces", state=self.state_path, why=exc)
            return empty
        log.info("resuming with {count} of {total} pieces from {state}",
                 count=held.count, total=held.total, state=self.state_path)
        return held

    def save_state(self) -> None:
        """Record the pieces written so far (see :meth:`commit_state`)."""
        state = self.snapshot_state()
        if state is not None:
            self.commit_state(state)

    def snapshot_state(self) -> Optional[bytes]:
        """The state to save for the pieces written so far, or None if it is saved."""
        if not self._unsaved or self._fd < 0:
            return None
        self._unsaved = False
        return encode_state(self.common, self.held)

    def commit_state(self, state: bytes) -> None:
        """Sync the data, then replace the state file atomically, so that it never
        claims a piece that is not on disk. Safe in a thread while pieces are written
        (those come after the snapshot, so the state does not claim them)."""
        os.fdatasync(self._fd)
        temporary = self.state_path.with_name(self.state_path.name + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(descriptor, state)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, self.state_path)

    def _reserve(self, size: int) -> None:
        """Allocate the blocks now: writes are then cheaper, and a full disk shows at
        start rather than halfway through the download."""
        try:
            os.posix_fallocate(self._fd, 0, size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                os.close(self._fd)
                raise

    def keep_verified(self, intact: Callable[[int, bytes], bool]) -> int:
        """Re-read every held piece and forget those ``intact`` rejects (a resumed
        leecher with a manifest: trust the bytes, not only the state file). Returns
        how many were forgotten."""
        kept = PieceSet(self.common.num_pieces, (i for i in self.held if intact(i, self.read(i))))
        dropped = self.held.count - kept.count
        if dropped:
            self.held = kept
            self._unsaved = True
        return dropped

    def sha256(self) -> str:
        return file_sha256(self.path)

    def read(self, index: int) -> bytes:
        length = self.common.piece_length(index)
        data = os.pread(self._fd, length, self.common.piece_offset(index))
        if len(data) != length:
            raise StorageError(f"{self.path} is shorter than piece {index} needs")
        return data

    def write(self, index: int, data: bytes) -> None:
        """Write piece ``index`` at its offset; it counts as held only once written."""
        offset = self.common.piece_offset(index)
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, offset)
            view = view[written:]
            offset += written
        self.held.add(index)
        self._unsynced = True
        self._unsaved = True

    def flush(self) -> None:
        """Make what was written durable (a seed, which never writes, skips this)."""
        if self._fd >= 0 and self._unsynced:
            os.fsync(self._fd)
            self._unsynced = False

    def close(self) -> None:
        if self._fd >= 0:
            self.save_state()
            self.flush()
            os.close(self._fd)
            self._fd = -1
