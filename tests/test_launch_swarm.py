"""``p2p-swarm run`` as a real process: a whole swarm to a verified finish, and stopping it.

The launcher runs as a subprocess so that its reactor, its children and its signal
handling are all real. Every run has a --timeout and every wait a bound.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import free_ports, swarm_config, write_config

from twisted_p2p.config import PeerInfo, SwarmConfig

LAUNCHER = [sys.executable, "-m", "twisted_p2p.launcher.cli", "run"]
STARTED = re.compile(r"started peer (\d+)(?: on \S+)? \(pid (\d+)\)")


def run_launcher(args: list[str], cwd: Path, **popen: object) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(LAUNCHER + args, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def read_until(process: subprocess.Popen, pattern: re.Pattern[str], count: int, timeout: float) -> list[str]:
    """Lines of output until ``count`` lines matched ``pattern``; fails after ``timeout`` seconds."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while sum(1 for text in lines if pattern.search(text)) < count:
            left = deadline - time.monotonic()
            assert left > 0 and selector.select(left), f"no {pattern.pattern!r} in time:\n" + "".join(lines)
            text = process.stdout.readline()
            assert text, "launcher ended early:\n" + "".join(lines)
            lines.append(text)
    return lines


def sessions_alive(pids: set[int]) -> list[str]:
    """Processes (from /proc) whose process group is one of ``pids``: what the launcher left."""
    left = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) in pids and fields[0] != "Z":
                left.append(stat)
    return left


def wait_for(condition, what: str, timeout: float = 30) -> None:
    """Poll ``condition`` (a look at /proc) until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.05)


def small_swarm(config_dir: Path, extra: tuple[PeerInfo, ...] = ()) -> SwarmConfig:
    """Five loopback peers on free ports, 2 MB in 16 KiB pieces, plus ``extra`` peers last."""
    config = swarm_config([1001, 1002, 1003, 1004, 1005], [1001], 2_000_000, 16384, k=3, p=1, m=2,
                          ports=free_ports(5))
    config = SwarmConfig(config.common, config.peers + extra)
    write_config(config_dir, config)
    return config


def test_run_finishes_a_swarm_verifies_every_file_and_writes_the_report(tmp_path):
    config = small_swarm(tmp_path / "conf")
    work = tmp_path / "work"
    launcher = run_launcher(["conf", "--work-dir", "work", "--demo-file", "--pace", "off", "--stagger", "0.05",
                             "--timeout", "60"], tmp_path)
    output, _ = launcher.communicate(timeout=90)
    assert launcher.returncode == 0, output
    assert "every peer has the seed's file; exit 0" in output
    assert len(STARTED.findall(output)) == 5
    assert re.search(r"^\[\s*\d+\.\d+s\]\s+1003 \[", output, re.M), "no plain progress lines"
    seed = (work / "peer_1001" / "TheFile.dat").read_bytes()
    assert len(seed) == 2_000_000
    report = json.loads((work / "swarm-report.json").read_text())
    assert (report["outcome"], report["exit_code"]) == ("finished", 0)
    pieces = config.common.num_pieces
    for peer in report["peers"]:
        assert (peer["exit_status"], peer["sha256_ok"]) == (0, True), peer
        assert (work / f"peer_{peer['id']}" / "TheFile.dat").read_bytes() == seed
        if not peer["seed"]:
            assert peer["seconds_to_complete"] > 0
            assert sum(peer["received_from"].values()) == pieces
        assert report["timeline"][str(peer["id"])][-1][1] == pieces
    summary = output[output.index("peer  host"):].splitlines()
    assert [row.split()[0] for row in summary[1:6]] == ["1001", "1002", "1003", "1004", "1005"]
    page = (work / "swarm-report.html").read_text()  # written by every run, with no extra install
    assert "html report: " in output and "<h2>Audit of the event logs</h2>" in page
    assert "clean: 5 peers followed the protocol" in page  # the audit ran on the logs
    assert all(f"peer {peer_id}: " in page for peer_id in range(1001, 1006))
    assert "http://" not in page and "https://" not in page
    if importlib.util.find_spec("matplotlib") is None:
        assert "plot skipped" in output and not (work / "swarm-report.png").exists()
    else:
        assert_png_is_the_plot_of(work / "swarm-report.png", report)


def assert_png_is_the_plot_of(png: Path, report: dict) -> None:
    """The PNG holds, pixel for pixel, the plot of the report: a step line per peer of
    the pieces it held, all reaching the file's pieces (and one of its unchoke counts)."""
    import numpy
    from matplotlib.image import imread

    from twisted_p2p.launcher.runreport import plot_figure

    figure = plot_figure(report)
    pieces, unchoked = figure.axes
    peers = [f"peer {peer['id']}" for peer in report["peers"]]
    assert [line.get_label() for line in pieces.lines] == peers
    assert [line.get_ydata()[-1] for line in pieces.lines] == [report["file"]["pieces"]] * len(peers)
    assert len(unchoked.lines) == len(peers)
    redrawn = png.with_name("redrawn.png")
    figure.savefig(redrawn)
    assert numpy.array_equal(imread(png), imread(redrawn)), "the PNG is not the plot of the report"


def test_a_seed_without_its_file_is_refused_before_anything_starts(tmp_path):
    small_swarm(tmp_path / "conf")
    result = subprocess.run(LAUNCHER + ["conf", "--work-dir", "work"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2
    assert "seed 1001 has no file" in result.stderr and "--demo-file" in result.stderr
    assert "started peer" not in result.stdout


def test_a_config_error_is_one_line_naming_the_file(tmp_path):
    (tmp_path / "conf").mkdir()
    result = subprocess.run(LAUNCHER + ["conf"], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().endswith("Common.cfg: file not found")


# A stand-in for a peer on another host that never shows up: listed last, so no peer
# dials it, and the swarm can never finish because it never gets the file. Its "remote
# shell" leaves a child behind (sleep), which the launcher must stop too.
NEVER = PeerInfo(1099, "never.invalid", 9, False)
NEVER_SHELL = ["--remote-shell", "sh -c 'sleep 300; echo {id}'"]


@pytest.mark.parametrize("signum, code, said", [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")])
def test_ctrl_c_or_sigterm_stops_every_peer_and_their_children(tmp_path, signum, code, said):
    small_swarm(tmp_path / "conf", extra=(NEVER,))
    launcher = run_launcher(["conf", "--work-dir", "work", "--demo-file", "--pace", "off", "--stagger", "0",
                             "--timeout", "60", *NEVER_SHELL], tmp_path)
    try:
        lines = read_until(launcher, STARTED, 6, timeout=30)
        pids = {int(match[1]) for match in STARTED.findall("".join(lines))}
        wait_for(lambda: any("(sleep)" in stat for stat in sessions_alive(pids)), "the remote shell's child")
        launcher.send_signal(signum)
        output, _ = launcher.communicate(timeout=30)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    assert launcher.returncode == code, output
    assert f"{said}: stopping 6 peers ..." in output
    assert "all 6 started peers are gone" in output
    assert sessions_alive(pids) == []
    report = json.loads((tmp_path / "work" / "swarm-report.json").read_text())
    assert report["exit_code"] == code


def test_one_ctrl_c_during_a_run_with_a_dashboard_ends_it_all(tmp_path):
    """The page lingers after a run that ended by itself, not after a Ctrl-C."""
    small_swarm(tmp_path / "conf", extra=(NEVER,))
    launcher = run_launcher(["conf", "--work-dir", "work", "--demo-file", "--pace", "off", "--stagger", "0",
                             "--timeout", "60", "--web", "127.0.0.1:0", *NEVER_SHELL], tmp_path)
    try:
        seen = read_until(launcher, STARTED, 6, timeout=30)
        launcher.send_signal(signal.SIGINT)
        output = "".join(seen) + launcher.communicate(timeout=30)[0]  # no second Ctrl-C
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    assert launcher.returncode == 130, output
    assert "dashboard: http://127.0.0.1:" in output and "the dashboard stays at" not in output
    assert "incomplete" in output and "WRONG" not in output  # the leechers' files were left unfinished


def test_timeout_stops_the_swarm_with_a_failing_status(tmp_path):
    small_swarm(tmp_path / "conf", extra=(NEVER,))
    launcher = run_launcher(["conf", "--work-dir", "work", "--demo-file", "--pace", "off", "--stagger", "0",
                             "--timeout", "2", *NEVER_SHELL], tmp_path)
    output, _ = launcher.communicate(timeout=60)
    pids = {int(match[1]) for match in STARTED.findall(output)}
    assert launcher.returncode == 124, output
    assert "timeout after 2 s: stopping 6 peers ..." in output
    assert len(pids) == 6 and sessions_alive(pids) == []
    summary = output[output.index("peer  host"):].splitlines()
    assert summary[6].split()[:5] == ["1099", "never.invalid", "signal", "15", "no"]


def test_a_peer_that_fails_stops_the_rest(tmp_path):
    config = small_swarm(tmp_path / "conf", extra=(NEVER,))
    launcher = run_launcher(["conf", "--work-dir", "work", "--demo-file", "--pace", "off", "--stagger", "0",
                             "--timeout", "60", "--remote-shell", "sh -c 'exit 3'"], tmp_path)
    output, _ = launcher.communicate(timeout=60)
    pids = {int(match[1]) for match in STARTED.findall(output)}
    assert launcher.returncode == 1, output
    assert "peer 1099 on never.invalid ended with exit 3: stopping 5 peers ..." in output
    assert len(pids) == len(config.peers) and sessions_alive(pids) == []
