"""Resuming an interrupted push, and the room it needs: pure decisions, no ssh.

A push leaves, in each host's work dir, ``push.json``: the file (name, size, SHA-256),
the piece size and the host's peer ID. A host whose copy was not finished keeps that
dir (its peer's partial file, resume state and journal). The next push of the same file
finds the record in the same ssh command that asks whether the file is there, cuts the
file into the same pieces (the piece IDs of the partial copy mean nothing with another
piece size), and starts that host's peer from the partial copy: the peer trusts only
the pieces its journal records and the manifest confirms (:mod:`twisted_p2p.resume`).
Anything that does not match is removed, never trusted.

The same command says how much room the destination's filesystem has (``df -P``), so
that a host whose disk cannot hold the file is left out before anything is sent.
"""
from __future__ import annotations

import json
import shlex
from collections import Counter
from dataclasses import asdict, dataclass

RECORD_NAME = "push.json"
RECORD_FORMAT = "p2p-swarm push 1"
PREFIXES = ("record ", "work ", "free ")
#: Room kept beyond the file for the peer's logs, state and journal, and the config.
MARGIN = 2 << 20


@dataclass(frozen=True)
class Record:
    """What a push wrote in a host's work dir."""

    file_name: str
    file_size: int
    sha256: str
    piece_size: int
    peer_id: int

    def encode(self) -> str:
        return json.dumps({"format": RECORD_FORMAT, **asdict(self)}, sort_keys=True) + "\n"

    def same_file(self, file_name: str, size: int, sha256: str) -> bool:
        return (self.file_name, self.file_size, self.sha256) == (file_name, size, sha256)


def decode_record(text: str) -> Record:
    """ValueError if ``text`` is torn, altered or not a push's record."""
    try:
        fields = json.loads(text)
        if fields.pop("format") != RECORD_FORMAT:
            raise ValueError
        record = Record(**fields)
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ValueError("its push record is torn or unknown") from None
    if not (isinstance(record.piece_size, int) and isinstance(record.peer_id, int) and record.piece_size > 0
            and isinstance(record.file_size, int) and isinstance(record.sha256, str)):
        raise ValueError("its push record is torn or unknown")
    return record


@dataclass(frozen=True)
class Probe:
    """What a host said of its work dir and its disk: the record (None if there is
    none or it is torn: ``torn`` says which), the KiB its work dir holds (freed or
    reused by this push) and the KiB free on the destination's filesystem (None if
    ``df`` could not say)."""

    record: Record | None = None
    torn: bool = False
    work_kib: int = 0
    free_kib: int | None = None


def probe_script(work: str, dest: str) -> str:
    """Print the record, ``work KiB`` and ``free KiB`` (of the nearest existing
    directory on the way to ``dest``: it may not be made yet). Never fails."""
    w, d = shlex.quote(work), shlex.quote(dest)
    return "\n".join([
        f"if [ -f {w}/{RECORD_NAME} ]; then printf 'record '; head -c 4096 {w}/{RECORD_NAME} | tr -d '\\n'; echo; fi",
        f"if [ -d {w} ]; then echo \"work $(du -sk {w} 2>/dev/null | cut -f1)\"; fi",
        f"p={d}; while [ ! -d \"$p\" ]; do p=$(dirname \"$p\"); done",
        "echo \"free $(df -Pk \"$p\" 2>/dev/null | awk 'NR==2 {print $4}')\"",
        "true",
    ])


def split_answer(output: str) -> tuple[str, Probe]:
    """The survey's answer cut into the check script's part and the probe's."""
    check, probe = [], {}
    for line in output.splitlines():
        prefix = next((p for p in PREFIXES if line.startswith(p)), None)
        if prefix is None:
            check.append(line)
        else:
            probe[prefix.strip()] = line[len(prefix):].strip()
    record, torn = None, False
    if "record" in probe:
        try:
            record = decode_record(probe["record"])
        except ValueError:
            torn = True
    work = probe.get("work", "")
    free = probe.get("free", "")
    return "\n".join(check), Probe(record, torn, int(work) if work.isdigit() else 0,
                                   int(free) if free.isdigit() else None)


def piece_size_to_resume(probes: list[Probe], file_name: str, size: int, sha256: str) -> int | None:
    """The piece size of the earlier pushes of this very file whose copies are
    partial on these hosts (the most common one), or None if there are none."""
    sizes = Counter(probe.record.piece_size for probe in probes
                    if probe.record is not None and probe.record.same_file(file_name, size, sha256))
    return sizes.most_common(1)[0][0] if sizes else None


def resume_from(probe: Probe, file_name: str, size: int, sha256: str, piece_size: int) -> tuple[int, str]:
    """The earlier peer ID whose partial copy the host's peer starts from (0: none),
    and what to say of what is there (empty when there is nothing)."""
    record = probe.record
    if record is None:
        return 0, "an earlier push's work dir with a torn record there, cleared" if probe.torn else ""
    if not record.same_file(file_name, size, sha256):
        return 0, "an unfinished copy of another file there, cleared"
    if record.piece_size != piece_size:
        return 0, f"an unfinished copy in pieces of {record.piece_size} there (not {piece_size}), cleared"
    return record.peer_id, "an unfinished copy there: its verified pieces are kept"


def lacks_room(probe: Probe, size: int, dest: str) -> str | None:
    """Why the host's disk cannot take the file, or None: what is free, plus what its
    work dir holds (reused or removed by this push), must hold the file and a margin."""
    if probe.free_kib is None:
        return None
    room = (probe.free_kib + probe.work_kib) * 1024
    if room >= size + MARGIN:
        return None
    return (f"not enough disk space: {dest} has {room / 1e6:.1f} MB free, "
            f"the file needs {(size + MARGIN) / 1e6:.1f} MB")
