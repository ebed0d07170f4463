"""The dashboard in a real browser during a real swarm: ``p2p-swarm run --web`` with six
peers paced by ``--upload-rate``, one headless Chromium page open on it the whole time.
The page must show every peer, counts that rise while the swarm runs, every peer
complete at the end, and a screenshot that is not blank (kept for a person to look at)."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from browser import blankness, needs_chromium
from support import swarm_config, write_config

pytestmark = needs_chromium

PEERS = [1001, 1002, 1003, 1004, 1005, 1006]
PIECES = 123  # 2 MB of 16 KiB pieces


def _counts(page) -> dict[str, int]:
    """Pieces held per peer card, as the page shows them."""
    return page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('.peer')].map(card => "
        "[card.id, parseInt(card.querySelector('.numbers').textContent)]))")


@pytest.fixture
def launcher(tmp_path: Path):
    from twisted_p2p.launcher.check.scenarios import reserve_ports  # free ports, claimed while the swarm runs

    ports, claim = reserve_ports(len(PEERS))
    config = swarm_config(PEERS, seeds=[1001], file_size=PIECES * 16384 - 1000, piece_size=16384, k=2, p=1, m=2,
                          ports=ports)
    write_config(tmp_path / "conf", config)
    output = open(tmp_path / "launcher.txt", "w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "twisted_p2p.launcher.cli", "run", str(tmp_path / "conf"), "--demo-file",
         "--pace", "off", "--work-dir", str(tmp_path / "work"), "--upload-rate", "150000",
         "--web", "127.0.0.1:0", "--web-linger", "60"],
        stdout=output, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True)
    deadline = time.monotonic() + 20
    url = None
    while url is None and time.monotonic() < deadline and process.poll() is None:
        output.seek(0)
        found = re.search(r"dashboard: (http://127\.0\.0\.1:\d+/)", output.read())
        url = found[1] if found else None
        time.sleep(0.1)
    try:
        assert url, f"no dashboard address: {(tmp_path / 'launcher.txt').read_text()}"
        yield url, process, tmp_path
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        output.close()
        if claim is not None:
            claim.close()


def test_the_dashboard_follows_a_live_swarm_to_its_end(launcher):
    from cdp import Chromium

    url, process, tmp_path = launcher
    with Chromium(timeout=30) as browser:
        page = browser.open(url)
        page.wait_for("document.querySelectorAll('.peer').length === 6")
        ids = page.evaluate("[...document.querySelectorAll('.peer .id')].map(e => e.textContent)")
        assert ids == [str(peer) for peer in PEERS]
        page.wait_for("document.querySelector('#status').textContent.startsWith('live')")
        early = _counts(page)
        assert early["peer-1001"] == PIECES  # the seed
        page.wait_for("Object.values(" + "Object.fromEntries([...document.querySelectorAll('.peer')].map(c => "
                      "[c.id, parseInt(c.querySelector('.numbers').textContent)]))).filter(n => n > 0).length >= 4",
                      timeout=20)
        middle = _counts(page)
        assert any(0 < middle[f"peer-{peer}"] < PIECES for peer in PEERS[1:]), middle  # caught while running
        page.screenshot(tmp_path / "dashboard-running.png")
        page.wait_for("document.querySelector('#status').textContent.startsWith('swarm finished')", timeout=60)
        final = _counts(page)
        assert final == {f"peer-{peer}": PIECES for peer in PEERS}
        assert all(final[key] >= middle[key] >= early[key] for key in final)  # counts only rise
        states = page.evaluate("[...document.querySelectorAll('.peer .state')].map(e => e.textContent)")
        assert states == ["exit 0"] * 6
        arrows = page.evaluate("document.querySelectorAll('#graph line').length")
        lines = page.evaluate("document.querySelector('#log').textContent.split('\\n').filter(Boolean).length")
        assert arrows >= 1 and lines >= 10
        shot = page.screenshot(tmp_path / "dashboard-finished.png")
    ink, colours = blankness(shot)
    assert ink > 0.15 and colours > 20, (ink, colours)
    launched = (tmp_path / "launcher.txt").read_text()
    assert "the dashboard stays at" in launched and "exit 0" in launched
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C ends the lingering page
    assert process.wait(timeout=20) == 0
