"""The optional piece-hash manifest, ``FileName.hashes`` in the config directory.

SPEC has no piece hashes, so a neighbour that answers with wrong bytes would poison
the file. When the manifest is there, every piece is checked against its SHA-256
before it is written. The wire protocol is unchanged: peers without it interoperate.
"""
from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

from twisted_p2p.config import Common, ConfigError

_HEADER = "# SHA-256 of each piece of {name}: FileSize {size} PieceSize {piece}, one line a piece, in order"
# Compiled by load_manifest, not at import: most peers have no manifest, and every
# peer imports this module at start-up.
_HEADER_PATTERN = r"# SHA-256 of each piece of (?P<name>\S+): FileSize (?P<size>\d+) PieceSize (?P<piece>\d+)"
_DIGEST = r"[0-9a-f]{64}"


def manifest_path(config_dir: str | os.PathLike[str], common: Common) -> Path:
    return Path(config_dir) / f"{common.file_name}.hashes"


def piece_hashes(data_file: Path, common: Common) -> list[bytes]:
    """SHA-256 of every piece of ``data_file``, which must have exactly FileSize bytes."""
    size = data_file.stat().st_size
    if size != common.file_size:
        raise ConfigError(data_file, None, f"has {size} bytes; Common.cfg says FileSize {common.file_size}")
    digests = []
    with open(data_file, "rb") as stream:
        for index in range(common.num_pieces):
            digests.append(hashlib.sha256(stream.read(common.piece_length(index))).digest())
    return digests


def write_manifest(path: Path, common: Common, digests: Sequence[bytes]) -> None:
    header = _HEADER.format(name=common.file_name, size=common.file_size, piece=common.piece_size)
    lines = [header] + [digest.hex() for digest in digests]
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text("\n".join(lines) + "\n", encoding="ascii")
    os.replace(temporary, path)


def write_manifest_from(data_file: Path, config_dir: str | os.PathLike[str], common: Common) -> Path:
    """Write ``config_dir``/FileName.hashes from a complete copy of the file; its path."""
    target = manifest_path(config_dir, common)
    write_manifest(target, common, piece_hashes(data_file, common))
    return target


def load_manifest(path: Path, common: Common) -> list[bytes] | None:
    """The digests of ``path``, or None when there is no manifest; a manifest that does
    not fit Common.cfg is a ConfigError naming the file and line."""
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, None, f"cannot read: {exc}") from None
    header_pattern, digest_pattern = re.compile(_HEADER_PATTERN), re.compile(_DIGEST)
    digests = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        header = header_pattern.match(line)
        if header:
            found = (header["name"], int(header["size"]), int(header["piece"]))
            expected = (common.file_name, common.file_size, common.piece_size)
            if found != expected:
                raise ConfigError(path, number, f"is for {found[0]} of {found[1]} bytes in pieces of "
                                  f"{found[2]}; Common.cfg says {expected[0]}, {expected[1]}, {expected[2]}")
            continue
        if not line or line.startswith("#"):
            continue
        if not digest_pattern.fullmatch(line):
            raise ConfigError(path, number, f"expected a SHA-256 in hex, got {line[:80]!r}")
        digests.append(bytes.fromhex(line))
    if len(digests) != common.num_pieces:
        raise ConfigError(path, None, f"has {len(digests)} hashes; {common.num_pieces} pieces expected")
    return digests


def piece_is_intact(digests: Sequence[bytes] | None, index: int, data: bytes | memoryview) -> bool:
    """True when there is no manifest, or the piece's SHA-256 matches it."""
    return digests is None or hashlib.sha256(data).digest() == digests[index]
