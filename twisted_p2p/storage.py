"""The shared file on disk (SPEC §1): ``peer_ID/FileName``, pieces at their offsets.

Tests: tests/test_resume.py, tests/test_protocol.py and tests/test_manifest.py.
"""
from __future__ import annotations

import errno
import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path

from twisted_p2p.bitfield import PieceSet
from twisted_p2p.config import Common


class StorageError(Exception):
    """The file cannot be used; ``str()`` is one line for a person."""


# A pattern string, compiled (and cached by re) on the launcher's first parse rather
# than at import: every peer imports this module at start-up and never parses.
_DIGEST_REPORT = r"peer (?P<peer>\d+) has the file with SHA-256 (?P<digest>[0-9a-f]{64})"


def digest_report(peer_id: int, digest: str) -> str:
    """The diagnostic line a finished peer prints with ``--echo-events``, so that a
    launcher can check the file of a peer on another host."""
    return f"peer {peer_id} has the file with SHA-256 {digest}"


def parse_digest_report(line: str) -> tuple[int, str] | None:
    found = re.search(_DIGEST_REPORT, line)
    return (int(found["peer"]), found["digest"]) if found else None


_RESUME_REPORT = r"peer (?P<peer>\d+) resumes with (?P<held>\d+) of (?P<total>\d+) pieces"


def resume_report(peer_id: int, held: int, total: int) -> str:
    """The line a leecher logs when it starts with pieces from before (verified against
    the manifest if it has one), so that a launcher can say how much was kept."""
    return f"peer {peer_id} resumes with {held} of {total} pieces"


def parse_resume_report(line: str) -> tuple[int, int] | None:
    """(peer ID, pieces held) from a :func:`resume_report` line, or None."""
    found = re.search(_RESUME_REPORT, line)
    return (int(found["peer"]), int(found["held"])) if found else None


def file_sha256(path: Path) -> str:
    """A file's SHA-256 in hex, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class PieceStore:
    """Reads pieces with ``os.pread`` and writes them with ``os.pwrite`` at their offsets.

    A seed's file must exist with exactly FileSize bytes. A leecher's file is created
    at full size so that each piece can be written where it belongs as it arrives;
    ``held`` says which pieces it starts with (what :mod:`twisted_p2p.resume` trusts).
    """

    def __init__(self, path: Path, common: Common, has_file: bool, held: PieceSet | None = None) -> None:
        self.path = path
        self.common = common
        self._fd = -1
        self._unsynced = False
        if has_file:
            self.held = PieceSet.full(common.num_pieces)
        else:
            self.held = held if held is not None else PieceSet(common.num_pieces)
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
                self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
                os.ftruncate(self._fd, common.file_size)
                self._reserve(common.file_size)
        except FileNotFoundError:
            raise StorageError(f"{path} does not exist, but PeerInfo.cfg says this peer has the file") from None
        except OSError as exc:
            raise StorageError(f"cannot use {path}: {exc.strerror or exc}") from None

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
        leecher with a manifest: trust the bytes, not only the resume state). Returns
        how many were forgotten."""
        kept = PieceSet(self.common.num_pieces, (i for i in self.held if intact(i, self.read(i))))
        dropped = self.held.count - kept.count
        self.held = kept
        return dropped

    def sha256(self) -> str:
        return file_sha256(self.path)

    def read(self, index: int) -> bytes:
        length = self.common.piece_length(index)
        data = os.pread(self._fd, length, self.common.piece_offset(index))
        if len(data) != length:
            raise StorageError(f"{self.path} is shorter than piece {index} needs")
        return data

    def write(self, index: int, data: bytes | memoryview) -> None:
        """Write piece ``index`` at its offset; it counts as held only once written."""
        offset = self.common.piece_offset(index)
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, offset)
            view = view[written:]
            offset += written
        self.held.add(index)
        self._unsynced = True

    def sync(self) -> None:
        """Make what was written durable; blocking, so call it from a worker thread
        (a seed, which never writes, skips this)."""
        if self._fd >= 0 and self._unsynced:
            self._unsynced = False
            os.fdatasync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
