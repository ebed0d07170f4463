"""Common.cfg and PeerInfo.cfg (SPEC §1), read into frozen dataclasses.

Every deviation is a :class:`ConfigError` that names the file and the line, so a
person can fix it without reading a traceback.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from twisted_p2p.layout import COMMON_CFG, PEER_INFO_CFG

MAX_UINT32 = 2**32 - 1

_COMMON_KEYS = {
    "NumberOfPreferredNeighbors": "preferred_neighbors",
    "UnchokingInterval": "unchoking_interval",
    "OptimisticUnchokingInterval": "optimistic_unchoking_interval",
    "FileName": "file_name",
    "FileSize": "file_size",
    "PieceSize": "piece_size",
}


def write(config_dir: str | os.PathLike[str], config: SwarmConfig) -> None:
    """Write ``config`` as Common.cfg and PeerInfo.cfg in ``config_dir`` (made if need
    be): the keys are the ones :func:`load` reads, in its order."""
    directory = Path(config_dir)
    directory.mkdir(parents=True, exist_ok=True)
    common = config.common
    (directory / COMMON_CFG).write_text(
        "".join(f"{key} {getattr(common, field)}\n" for key, field in _COMMON_KEYS.items()))
    (directory / PEER_INFO_CFG).write_text(
        "".join(f"{p.peer_id} {p.host} {p.port} {int(p.has_file)}\n" for p in config.peers))


class ConfigError(Exception):
    """A configuration file is wrong; ``str()`` is one line naming file and line."""

    def __init__(self, path: str | os.PathLike[str], line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Common:
    """The swarm-wide settings of Common.cfg and the piece geometry they imply."""

    preferred_neighbors: int
    unchoking_interval: int
    optimistic_unchoking_interval: int
    file_name: str
    file_size: int
    piece_size: int

    @property
    def num_pieces(self) -> int:
        return -(-self.file_size // self.piece_size)

    def piece_length(self, index: int) -> int:
        """Bytes in piece ``index``: PieceSize, except the short last piece."""
        if not 0 <= index < self.num_pieces:
            raise IndexError(f"piece {index} out of range for {self.num_pieces} pieces")
        if index == self.num_pieces - 1:
            return self.file_size - index * self.piece_size
        return self.piece_size

    def piece_offset(self, index: int) -> int:
        return index * self.piece_size


@dataclass(frozen=True)
class PeerInfo:
    """One line of PeerInfo.cfg."""

    peer_id: int
    host: str
    port: int
    has_file: bool


@dataclass(frozen=True)
class SwarmConfig:
    """Both files: the common settings and the peers in start order."""

    common: Common
    peers: tuple[PeerInfo, ...]

    def peer(self, peer_id: int) -> PeerInfo:
        for info in self.peers:
            if info.peer_id == peer_id:
                return info
        raise KeyError(peer_id)

    def peers_before(self, peer_id: int) -> tuple[PeerInfo, ...]:
        """The peers listed before ``peer_id``: the ones it dials (SPEC §3)."""
        for position, info in enumerate(self.peers):
            if info.peer_id == peer_id:
                return self.peers[:position]
        raise KeyError(peer_id)

    @property
    def peer_ids(self) -> frozenset[int]:
        return frozenset(info.peer_id for info in self.peers)


def _meaningful_lines(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) for each line that is not blank or a ``#`` comment."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM (Windows editors) is not part of a key
    except FileNotFoundError:
        raise ConfigError(path, None, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, None, f"cannot read: {exc}") from None
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped and not stripped.startswith("#"):
            lines.append((number, stripped.split()))
    return lines


def _positive_int(path: Path, line: int, name: str, text: str, maximum: int = MAX_UINT32) -> int:
    if not text.isdigit() or not text.isascii():
        raise ConfigError(path, line, f"{name} must be a whole number, not {text!r}")
    value = int(text)
    if value <= 0:
        raise ConfigError(path, line, f"{name} must be positive, not {value}")
    if value > maximum:
        raise ConfigError(path, line, f"{name} must be at most {maximum}, not {value}")
    return value


def _check_file_name(path: Path, line: int, name: str) -> str:
    if "/" in name or "\\" in name or ".." in name or name == "." or "\0" in name:
        raise ConfigError(path, line, f"FileName must be a plain file name, not {name!r}")
    return name


def load_common(path: str | os.PathLike[str]) -> Common:
    path = Path(path)
    values: dict[str, object] = {}
    for line, fields in _meaningful_lines(path):
        if len(fields) != 2:
            raise ConfigError(path, line, f"expected 'Key Value', got {' '.join(fields)!r}")
        key, text = fields
        if key not in _COMMON_KEYS:
            raise ConfigError(path, line, f"unknown key {key!r}; expected one of {', '.join(_COMMON_KEYS)}")
        attribute = _COMMON_KEYS[key]
        if attribute in values:
            raise ConfigError(path, line, f"{key} is given twice")
        if attribute == "file_name":
            values[attribute] = _check_file_name(path, line, text)
        else:
            values[attribute] = _positive_int(path, line, key, text, maximum=2**63 - 1)
    missing = [key for key, attribute in _COMMON_KEYS.items() if attribute not in values]
    if missing:
        raise ConfigError(path, None, f"missing {', '.join(missing)}")
    common = Common(**values)  # type: ignore[arg-type]
    if common.piece_size + 5 > MAX_UINT32:
        raise ConfigError(path, None, f"PieceSize {common.piece_size} does not fit a message length")
    if common.num_pieces > MAX_UINT32:
        raise ConfigError(path, None, f"{common.num_pieces} pieces do not fit a 4-byte index")
    return common


def load_peers(path: str | os.PathLike[str]) -> tuple[PeerInfo, ...]:
    path = Path(path)
    peers: list[PeerInfo] = []
    seen_ids: dict[int, int] = {}
    seen_addresses: dict[tuple[str, int], int] = {}
    for line, fields in _meaningful_lines(path):
        if len(fields) != 4:
            raise ConfigError(path, line, f"expected 'peerID host port hasFile', got {' '.join(fields)!r}")
        id_text, host, port_text, has_text = fields
        peer_id = _positive_int(path, line, "peerID", id_text)
        port = _positive_int(path, line, "port", port_text, maximum=65535)
        if has_text not in ("0", "1"):
            raise ConfigError(path, line, f"hasFile must be 0 or 1, not {has_text!r}")
        if peer_id in seen_ids:
            raise ConfigError(path, line, f"peer ID {peer_id} is already on line {seen_ids[peer_id]}")
        address = (host.lower(), port)  # host names ignore case
        if address in seen_addresses:
            raise ConfigError(path, line, f"{host}:{port} is already on line {seen_addresses[address]}")
        seen_ids[peer_id] = line
        seen_addresses[address] = line
        peers.append(PeerInfo(peer_id, host, port, has_text == "1"))
    if not peers:
        raise ConfigError(path, None, "no peers listed")
    if not any(peer.has_file for peer in peers):
        raise ConfigError(path, None, "no peer has the file (hasFile 1), so the swarm can never finish")
    return tuple(peers)


def load(config_dir: str | os.PathLike[str]) -> SwarmConfig:
    """Read Common.cfg and PeerInfo.cfg from ``config_dir``."""
    config_dir = Path(config_dir)
    return SwarmConfig(load_common(config_dir / COMMON_CFG), load_peers(config_dir / PEER_INFO_CFG))
