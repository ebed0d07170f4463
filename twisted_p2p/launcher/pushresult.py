"""What ``push`` decides and says per host, without ssh: whether a host already holds
the file, why a host that did not get it failed, the shell lines that check and deliver
a copy, the closing table, ``--json`` and the exit status. Pure functions, so every
decision is tested without hosts."""
from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

DELIVERED = "delivered"
ALREADY_THERE = "already-there"
FAILED = "failed"
SAID = {DELIVERED: "delivered and verified", ALREADY_THERE: "already there", FAILED: "failed"}
_HEX64 = re.compile(r"\b[0-9a-f]{64}\b")


@dataclass(frozen=True)
class HostOutcome:
    """How one host ended: ``path`` is where the file is (or would be) on it, ``cause``
    why it does not have it (None unless failed)."""

    host: str
    state: str
    path: str
    cause: str | None = None

    @property
    def has_file(self) -> bool:
        return self.state != FAILED


# -- before: does the host hold the file already? ---------------------------------


def check_script(path: str, size: int) -> str:
    """Print ``size N`` (or ``absent``) for the file at ``path`` and, only when N is
    ``size``, its SHA-256: hashing a copy that cannot be right would waste the host's disk."""
    f = shlex.quote(path)
    return (f"if [ -f {f} ]; then s=$(wc -c < {f}); echo \"size $s\"; "
            f"if [ $s = {size} ]; then sha256sum < {f} 2>/dev/null || shasum -a 256 < {f}; fi; "
            f"else echo absent; fi; true")


def holds_file(output: str, size: int, sha256: str) -> tuple[bool, str]:
    """Whether :func:`check_script`'s ``output`` shows the same file, and what was found."""
    words = output.split()
    if not words or words[0] == "absent":
        return False, "no copy there"
    if words[0] != "size" or len(words) < 2 or not words[1].isdigit():
        return False, "its copy could not be checked"
    if int(words[1]) != size:
        return False, f"a copy of {int(words[1])} bytes there, to be replaced"
    found = _HEX64.search(output)
    if found is None:
        return False, "its copy could not be hashed there (no sha256sum)"
    if found.group(0) != sha256:
        return False, "a copy with another SHA-256 there, to be replaced"
    return True, "same size and SHA-256"


# -- after: which copies to verify and move, and why the others failed ------------


def unfinished_cause(held: int, total: int, started: bool, dropped: str | None, outcome: str,
                     why: str) -> str:
    """Why a host's peer did not complete, in a few words (its progress appended)."""
    at = f" at {held}/{total} pieces"
    if not started:
        return f"its peer was not started ({why})" if why else "its peer was not started"
    if dropped is not None:
        return dropped if dropped.endswith("pieces") else f"{dropped}{at}"
    if outcome == "timeout":
        return f"stopped by {why}{at}" if why else f"stopped by the timeout{at}"
    if outcome in ("interrupted", "terminated"):
        return f"push {outcome}{at}"
    return f"the swarm stopped ({why}){at}" if why else f"the swarm stopped{at}"


def deliver_script(work: str, source: str, target: str, sha256: str | None) -> str:
    """Check the copy at ``source`` (under ``work``) against ``sha256`` unless that is
    None (its peer already reported the right one), move it to ``target``, and remove
    ``work``; a wrong copy stays in ``work`` and the script says so on stderr."""
    s, t, w = shlex.quote(source), shlex.quote(target), shlex.quote(work)
    lines = []
    if sha256 is not None:
        lines.append(f"d=$( (sha256sum < {s} 2>/dev/null || shasum -a 256 < {s}) | cut -c1-64)")
        lines.append(f"[ \"$d\" = {sha256} ] || {{ echo \"its copy's SHA-256 is not the file's (kept in "
                     f"{work})\" >&2; exit 3; }}")
    lines.append(f"mv -f {s} {t} && cd / && rm -rf {w}")
    return "\n".join(lines)


# -- the end -------------------------------------------------------------------------


def exit_status(outcomes: Iterable[HostOutcome]) -> int:
    """0 only when every host has the file."""
    return 0 if all(outcome.has_file for outcome in outcomes) else 1


def table(outcomes: list[HostOutcome]) -> list[str]:
    """One line per host, in the order given, then the count."""
    width = max([len("host")] + [len(outcome.host) for outcome in outcomes])
    lines = [f"{'host':<{width}}  result"]
    for outcome in outcomes:
        if outcome.state == FAILED:
            lines.append(f"{outcome.host:<{width}}  failed: {outcome.cause}")
        else:
            lines.append(f"{outcome.host:<{width}}  {SAID[outcome.state]}: {outcome.path}")
    have = sum(outcome.has_file for outcome in outcomes)
    lines.append(f"{have} of {len(outcomes)} host{'s' if len(outcomes) != 1 else ''} have the file")
    return lines


def as_json(outcomes: list[HostOutcome], file_name: str, size: int, sha256: str | None,
            seconds: float, code: int) -> dict[str, Any]:
    """``--json``: the table for scripts (README, "push")."""
    return {
        "file": {"name": file_name, "size": size, "sha256": sha256},
        "seconds": round(seconds, 3),
        "exit": code,
        "hosts": [asdict(outcome) for outcome in outcomes],
    }
