"""The names of a peer's files, in one place.

The course fixes most of them (SPEC §1 and §5): the configuration ``Common.cfg`` and
``PeerInfo.cfg``, the event log ``log_peer_ID.log`` in the working directory, and the
file itself in the subdirectory ``peer_ID/``. Ours sit beside the file: ``FileName.state``
and ``FileName.journal`` (resume), and the ``.tmp`` each is written to before a rename.
Everything that reads or writes one of these names (the peer, the launcher on this
machine and over ssh, the audit, the kit, the bench) takes it from here.

Tests: tests/test_config.py and tests/test_resume.py.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

COMMON_CFG = "Common.cfg"
PEER_INFO_CFG = "PeerInfo.cfg"

EVENT_LOG_GLOB = "log_peer_*.log"
_EVENT_LOG_NAME = re.compile(r"log_peer_(\d+)\.log")

STATE_SUFFIX = ".state"
JOURNAL_SUFFIX = ".journal"
TEMPORARY_SUFFIX = ".tmp"

PathLike = str | os.PathLike[str]


def event_log_name(peer_id: int) -> str:
    """``log_peer_ID.log``: the course's name for a peer's event log."""
    return f"log_peer_{peer_id}.log"


def event_log_path(work_dir: PathLike, peer_id: int) -> Path:
    return Path(work_dir) / event_log_name(peer_id)


def event_log_peer(name: str) -> int | None:
    """The peer ID in an event log's file name, or None if the name is not one."""
    found = _EVENT_LOG_NAME.fullmatch(name)
    return int(found[1]) if found else None


def peer_dir_name(peer_id: int) -> str:
    """``peer_ID``: the course's subdirectory that holds a peer's copy of the file."""
    return f"peer_{peer_id}"


#: Every peer's subdirectory (a shell glob, as :func:`peer_dir_name` spells them).
PEER_DIR_GLOB = "peer_*"


def twistd_output_name(peer_id: int) -> str:
    """``twistd_peer_ID.log``: where the launcher keeps what a peer's twistd printed."""
    return f"twistd_peer_{peer_id}.log"


def data_path(work_dir: PathLike, peer_id: int, file_name: str) -> Path:
    """``WORK_DIR/peer_ID/FileName``: where a peer keeps the shared file."""
    return Path(work_dir) / peer_dir_name(peer_id) / file_name


def state_path(data: Path) -> Path:
    """``FileName.state``: the pieces synced to disk, beside the data (resume)."""
    return data.with_name(data.name + STATE_SUFFIX)


def journal_path(data: Path) -> Path:
    """``FileName.journal``: pieces written since the last state, beside the data."""
    return data.with_name(data.name + JOURNAL_SUFFIX)


def temporary_path(path: Path) -> Path:
    """Where ``path`` is written before it is renamed into place."""
    return path.with_name(path.name + TEMPORARY_SUFFIX)
