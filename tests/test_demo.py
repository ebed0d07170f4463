"""The README's main command, as a user runs it: the course's demo, paced, course-exact,
with every rubric item shown (slow: about a minute, the demo's own length)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from twisted_p2p.config import load
from twisted_p2p.eventlog import parse_line

CONF = Path(__file__).resolve().parent.parent / "conf"
#: How far off a whole number of rounds a logged choice may be on a busy two-core machine.
SLACK = 0.1


def _off_rounds(times: list[float], interval: int) -> list[float]:
    gaps = [b - a for a, b in zip(times, times[1:])]
    return [gap for gap in gaps if round(gap / interval) < 1 or abs(gap - round(gap / interval) * interval) > SLACK]


@pytest.mark.slow
def test_the_paced_demo_follows_p_and_m_and_shows_every_rubric_item(tmp_path):
    work = tmp_path / "work"
    cli = [sys.executable, "-m", "twisted_p2p.launcher.cli"]
    run = subprocess.run([*cli, "run", str(CONF), "--demo-file", "--work-dir", str(work)],
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    assert "pacing the demo: every peer uploads at most" in run.stdout
    config = load(CONF)
    p, m = config.common.unchoking_interval, config.common.optimistic_unchoking_interval
    optimistic_changes = 0
    for peer in config.peers:
        events = [parse_line(line) for line in (work / f"log_peer_{peer.peer_id}.log").read_text().splitlines()]
        assert None not in events
        preferred = [e.time for e in events if e.kind == "preferred"]
        optimistic = [e.time for e in events if e.kind == "optimistic"]
        # A change is logged only when there is someone to change to: a peer whose
        # interested neighbours all fit in its k preferred slots keeps its optimistic
        # neighbour for as many rounds as that lasts (once 38 s of a 51 s run), so one
        # peer may log as few as one change; the swarm logs dozens.
        assert len(preferred) >= 3 and len(optimistic) >= 1, (peer.peer_id, len(preferred), len(optimistic))
        assert _off_rounds(preferred, p) == [] and _off_rounds(optimistic, m) == [], peer.peer_id
        optimistic_changes += len(optimistic)
        kinds = {e.kind for e in events}
        assert peer.has_file or {"choked", "unchoked"} <= kinds
    assert optimistic_changes >= 3 * len(config.peers), optimistic_changes
    audit = subprocess.run([*cli, "audit", "--rubric", "--html", str(tmp_path / "rubric.html"), str(work),
                            "--config-dir", str(CONF)], capture_output=True, text=True, timeout=120)
    assert audit.returncode == 0, audit.stdout[-3000:]
    assert "not shown" not in audit.stdout
    assert "optimistically unchoked neighbor" in audit.stdout and "is choked by" in audit.stdout
    assert (tmp_path / "rubric.html").read_text().count('class="item"') >= 4
