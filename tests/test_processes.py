"""Real ``twistd p2ppeer`` processes: a whole swarm, the errors a person sees, packaging."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import (
    free_ports,
    seed_bytes,
    start_peer,
    swarm_config,
    twistd,
    wait_for_peers,
    write_config,
    write_seed_files,
)

from twisted_p2p.eventlog import parse_line


def run_twistd(args: list[str], cwd: Path, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        twistd() + args, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


@pytest.mark.parametrize("seeds", [[1001], [1001, 1003]], ids=["one seed", "two seeds"])
def test_six_twistd_processes_in_the_course_layout_finish_by_themselves(tmp_path, seeds):
    ids = [1001, 1002, 1003, 1004, 1005, 1006]
    config = swarm_config(ids, seeds, 2_000_000, 16384, k=3, p=1, m=2, ports=free_ports(6))
    write_config(tmp_path, config)  # Common.cfg and PeerInfo.cfg in the working directory
    content = seed_bytes(config.common.file_size)
    write_seed_files(tmp_path, config, content)
    processes = {peer_id: start_peer(tmp_path, peer_id) for peer_id in ids}
    outputs = wait_for_peers(processes)
    for peer_id, process in processes.items():
        output = outputs[peer_id]
        assert process.returncode == 0, output
        assert (tmp_path / f"peer_{peer_id}" / "TheFile.dat").read_bytes() == content
        lines = (tmp_path / f"log_peer_{peer_id}.log").read_text().splitlines()
        assert lines and all(parse_line(line) for line in lines), [line for line in lines if not parse_line(line)]
        completions = [line for line in lines if line.endswith(f"Peer {peer_id} has downloaded the complete file.")]
        assert len(completions) == (0 if peer_id in seeds else 1)
        assert "Traceback" not in output, output
    assert not (tmp_path / "twistd.pid").exists()


def _write_good_config(tmp_path: Path) -> None:
    config = swarm_config([1001, 1002], [1001], 1000, 100, ports=free_ports(2))
    write_config(tmp_path / "conf", config)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["p2ppeer"], "--id is required"),
        (["p2ppeer", "--id", "abc"], "--id must be a peer ID"),
        (["p2ppeer", "--id", "1001", "--bogus"], "option --bogus not recognized"),
        (["p2ppeer", "--id", "4242"], "PeerInfo.cfg: peer 4242 is not listed"),
        (["p2ppeer", "--id", "1001"], "peer_1001/TheFile.dat does not exist"),
        (["p2ppeer", "--id", "1002", "--config-dir", "nowhere"], "nowhere/Common.cfg: file not found"),
    ],
)
def test_mistakes_give_one_clear_line_and_a_failing_status(tmp_path, args, expected):
    _write_good_config(tmp_path)
    result = run_twistd(["-n", "--pidfile="] + args, tmp_path)
    assert result.returncode == 1  # SystemExit with a message
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_config_error_names_the_file_and_line(tmp_path):
    _write_good_config(tmp_path)
    common = tmp_path / "conf" / "Common.cfg"
    common.write_text(common.read_text().replace("PieceSize 100", "PieceSize 1OO"))
    result = run_twistd(["-n", "--pidfile=", "p2ppeer", "--id", "1002"], tmp_path)
    assert result.returncode == 1  # SystemExit with a message
    assert "conf/Common.cfg:6: PieceSize must be a whole number, not '1OO'" in result.stderr
    assert "Traceback" not in result.stderr


def test_seed_file_of_the_wrong_size_is_refused(tmp_path):
    _write_good_config(tmp_path)
    (tmp_path / "peer_1001").mkdir()
    (tmp_path / "peer_1001" / "TheFile.dat").write_bytes(b"x" * 999)
    result = run_twistd(["-n", "--pidfile=", "p2ppeer", "--id", "1001"], tmp_path)
    assert result.returncode == 1  # SystemExit with a message
    assert "has 999 bytes; Common.cfg says FileSize 1000" in result.stderr


def test_twistd_lists_the_plugin_and_its_help(tmp_path):
    listing = run_twistd(["--help"], tmp_path)
    assert "p2ppeer" in listing.stdout
    helped = run_twistd(["p2ppeer", "--help"], tmp_path)
    assert helped.returncode == 0
    for option in ("--id", "--config-dir", "--work-dir", "--echo-events"):
        assert option in helped.stdout


def test_installed_tree_holds_the_plugin_pointing_at_a_real_tap(tmp_path):
    """Asked from outside the source tree, so only what is installed can answer."""
    probe = (
        "import os, twisted.plugins\n"
        "from twisted.application.service import IServiceMaker\n"
        "from twisted.plugin import getPlugins\n"
        "print(any(os.path.exists(os.path.join(d, 'p2ppeer_plugin.py')) for d in twisted.plugins.__path__))\n"
        "(maker,) = [p for p in getPlugins(IServiceMaker) if p.tapname == 'p2ppeer']\n"
        "print(callable(maker.makeService), bool(maker.options().synopsis))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["True", "True", "True"], result.stderr


def _waiting_leecher(tmp_path: Path, twistd_options: list[str], *options: str, stdin=subprocess.DEVNULL
                     ) -> subprocess.Popen:
    """Peer 1002 of two, started alone: it runs, waiting for its seed, until stopped."""
    config = swarm_config([1001, 1002], [1001], 100_000, 16384, ports=free_ports(2))
    write_config(tmp_path, config)
    peer = subprocess.Popen(
        twistd() + ["-n", *twistd_options, "p2ppeer", "--id", "1002", *options],
        cwd=tmp_path, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        # A suite started in the background by a shell inherits SIGINT ignored, and so
        # would the peer (rightly: Python and Twisted leave an ignored SIGINT ignored).
        preexec_fn=_default_sigint,
    )
    deadline = time.monotonic() + 30
    while not (tmp_path / "peer_1002" / "TheFile.dat.journal").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    return peer


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _output_once_stopped(peer: subprocess.Popen, stop) -> str:
    """``stop(peer)``, then its output once it has exited (its standard input closed)."""
    try:
        assert peer.poll() is None  # still waiting for its seed
        stop(peer)
        return peer.communicate(timeout=15)[0].decode()
    finally:
        if peer.poll() is None:
            peer.kill()
            peer.wait()


def test_a_peer_with_a_lifeline_stops_cleanly_when_its_standard_input_closes(tmp_path):
    """What ssh does to a remote peer when the launcher goes, however it goes."""
    peer = _waiting_leecher(tmp_path, ["--pidfile="], "--exit-on-stdin-close", stdin=subprocess.PIPE)
    output = _output_once_stopped(peer, lambda peer: None)  # communicate closes its standard input
    assert peer.returncode == 0, output
    assert "standard input closed (the launcher is gone): stopping" in output
    assert "peer 1002 stopping with 0 of 7 pieces" in output


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_a_peer_cleanly_with_status_0(tmp_path, signum):
    """twistd raises a stopping signal again once the reactor has stopped, so a plain
    twistd service dies "killed by signal"; a peer stopped so has saved its state and
    closed its connections, and says so with status 0. twistd still ends as usual (its
    last line, its pidfile removed)."""
    peer = _waiting_leecher(tmp_path, [])  # with the default pidfile, twistd.pid
    assert (tmp_path / "twistd.pid").read_text().strip() == str(peer.pid)
    output = _output_once_stopped(peer, lambda peer: peer.send_signal(signum))
    assert peer.returncode == 0, output
    assert f"Received {signum.name}, shutting down." in output
    assert "peer 1002 stopping with 0 of 7 pieces" in output
    assert output.rstrip().endswith("Server Shut Down."), output
    assert not (tmp_path / "twistd.pid").exists()
    assert "Traceback" not in output, output


def test_a_peer_whose_port_is_taken_says_so_and_exits_non_zero(tmp_path):
    import socket

    config = swarm_config([1001, 1002], [1001], 100_000, 16384, ports=free_ports(2))
    write_config(tmp_path, config)
    with socket.socket() as taken:
        taken.bind(("", config.peers[1].port))
        taken.listen()
        result = run_twistd(["-n", "--pidfile=", "p2ppeer", "--id", "1002"], tmp_path, timeout=30)
    assert result.returncode == 1
    assert f"cannot listen on port {config.peers[1].port}" in result.stdout


class _NotYetRunning:
    """A reactor assembled but not yet running: what a signal finds during start-up."""

    running = False

    def __init__(self) -> None:
        self.from_thread: list[object] = []
        self.when_running: list[object] = []

    def callFromThread(self, function, *args) -> None:  # noqa: N802 (Twisted's name)
        self.from_thread.append(function)

    def callWhenRunning(self, function, *args) -> None:  # noqa: N802
        self.when_running.append(function)

    def stop(self) -> None:
        raise AssertionError("stopped before it runs")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_start_up_is_a_clean_stop_once_the_reactor_runs(signum):
    """A SIGINT before the reactor runs was a KeyboardInterrupt wherever twistd was (inside
    a Deferred's callback, a Failure: the stop was lost); a SIGTERM killed the peer."""
    from twisted.internet.defer import Deferred

    from twisted_p2p import process

    saved = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    reactor = _NotYetRunning()
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        process.end_with(reactor, Deferred(), lifeline=False)
        handler = signal.getsignal(signum)
        assert callable(handler) and handler not in (signal.SIG_DFL, signal.default_int_handler)
        handler(signum, None)
        assert reactor.from_thread == [reactor.stop]  # done in the reactor's first iteration
    finally:
        for number, previous in saved.items():
            signal.signal(number, previous)
