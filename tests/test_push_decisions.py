"""What ``push`` decides per host, without ssh: which hosts hold the file already (the
check and delivery scripts run in a real shell here), why a host failed, the table,
``--json``, the exit status, and the swarm that drops a failed peer and ends itself
once the peers still running are complete (real local processes)."""
from __future__ import annotations

import hashlib
import io
import json
import subprocess
import time
from pathlib import Path

import pytest_twisted

from twisted_p2p.config import PeerInfo
from twisted_p2p.eventlog import format_time
from twisted_p2p.launcher import push
from twisted_p2p.launcher.display import Display
from twisted_p2p.launcher.plan import Launch
from twisted_p2p.launcher.progress import PeerProgress
from twisted_p2p.launcher.pushresult import (
    ALREADY_THERE,
    DELIVERED,
    FAILED,
    HostOutcome,
    as_json,
    check_script,
    deliver_script,
    exit_status,
    holds_file,
    table,
    unfinished_cause,
)
from twisted_p2p.launcher.remote import peer_command
from twisted_p2p.launcher.supervise import PeerProcesses

CONTENT = b"the pushed file\n" * 1000
DIGEST = hashlib.sha256(CONTENT).hexdigest()


def sh(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=20)


# -- does the host hold the file already? ----------------------------------------


def asked(path: Path) -> tuple[bool, str]:
    result = sh(check_script(str(path), len(CONTENT)))
    assert result.returncode == 0 and result.stderr == "", result
    return holds_file(result.stdout, len(CONTENT), DIGEST)


def test_only_the_same_size_and_sha256_count_as_already_there(tmp_path):
    path = tmp_path / "dir with space" / "file's name"
    path.parent.mkdir()
    assert asked(path) == (False, "no copy there")
    path.write_bytes(CONTENT[:-1])
    assert asked(path) == (False, f"a copy of {len(CONTENT) - 1} bytes there, to be replaced")
    path.write_bytes(CONTENT[:-1] + b"?")  # same size, other bytes
    assert asked(path) == (False, "a copy with another SHA-256 there, to be replaced")
    path.write_bytes(CONTENT)
    assert asked(path) == (True, "same size and SHA-256")


def test_an_answer_that_says_nothing_clear_means_the_file_is_sent():
    assert holds_file("", 10, DIGEST)[0] is False
    assert holds_file("size 10\n", 10, DIGEST) == (False, "its copy could not be hashed there (no sha256sum)")
    assert holds_file("size ?\n", 10, DIGEST) == (False, "its copy could not be checked")
    assert holds_file(f"size 10\n{DIGEST}  -\n", 10, DIGEST) == (True, "same size and SHA-256")


# -- delivering a finished copy ------------------------------------------------------


def test_a_right_copy_is_moved_into_place_and_the_work_dir_removed(tmp_path):
    work = tmp_path / ".p2p-push-lab2"
    (work / "peer_1002").mkdir(parents=True)
    (work / "peer_1002" / "f.bin").write_bytes(CONTENT)
    target = tmp_path / "f.bin"
    target.write_bytes(b"an older version")
    result = sh(deliver_script(str(work), str(work / "peer_1002" / "f.bin"), str(target), DIGEST))
    assert result.returncode == 0, result.stderr
    assert target.read_bytes() == CONTENT and not work.exists()


def test_a_wrong_copy_stays_in_the_work_dir_and_is_said_in_one_line(tmp_path):
    work = tmp_path / ".p2p-push-lab2"
    (work / "peer_1002").mkdir(parents=True)
    (work / "peer_1002" / "f.bin").write_bytes(CONTENT[:-1] + b"?")
    target = tmp_path / "f.bin"
    result = sh(deliver_script(str(work), str(work / "peer_1002" / "f.bin"), str(target), DIGEST))
    assert result.returncode == 3
    assert result.stderr.strip() == f"its copy's SHA-256 is not the file's (kept in {work})"
    assert not target.exists() and (work / "peer_1002" / "f.bin").exists()


def test_a_copy_its_peer_already_vouched_for_is_not_hashed_again(tmp_path):
    script = deliver_script("/w", "/w/peer_1002/f", "/d/f", None)
    assert "sha256" not in script and script.startswith("mv -f /w/peer_1002/f /d/f")


# -- why a host failed ---------------------------------------------------------------


def test_the_cause_of_an_unfinished_copy_names_what_stopped_it_and_how_far_it_got():
    assert unfinished_cause(309, 1145, True, "its peer ended with exit 255", "finished", "") == \
        "its peer ended with exit 255 at 309/1145 pieces"
    assert unfinished_cause(5, 10, True, None, "timeout", "timeout after 2 s") == \
        "stopped by timeout after 2 s at 5/10 pieces"
    assert unfinished_cause(5, 10, True, None, "interrupted", "Ctrl-C") == "push interrupted at 5/10 pieces"
    assert unfinished_cause(0, 10, True, None, "failed", "peer 1001 ended with exit 1: port in use") == \
        "the swarm stopped (peer 1001 ended with exit 1: port in use) at 0/10 pieces"
    assert unfinished_cause(0, 10, False, None, "failed", "cannot start peer 1002") == \
        "its peer was not started (cannot start peer 1002)"


# -- the end -------------------------------------------------------------------------

OUTCOMES = [
    HostOutcome("lab2", DELIVERED, "/d/f.bin"),
    HostOutcome("lab3", ALREADY_THERE, "/d/f.bin"),
    HostOutcome("lab10", FAILED, "/d/f.bin", "ssh: connect to host lab10 port 22: Connection refused"),
]


def test_the_table_has_one_line_per_host_in_order_then_the_count():
    assert table(OUTCOMES) == [
        "host   result",
        "lab2   delivered and verified: /d/f.bin",
        "lab3   already there: /d/f.bin",
        "lab10  failed: ssh: connect to host lab10 port 22: Connection refused",
        "2 of 3 hosts have the file",
    ]


def test_exit_zero_only_when_every_host_has_the_file():
    assert exit_status(OUTCOMES) == 1
    assert exit_status(OUTCOMES[:2]) == 0
    assert exit_status([]) == 0


def test_the_json_holds_the_same_as_the_table():
    written = json.loads(json.dumps(as_json(OUTCOMES, "f.bin", 10, DIGEST, 1.23456, 1)))
    assert written == {
        "file": {"name": "f.bin", "size": 10, "sha256": DIGEST},
        "seconds": 1.235,
        "exit": 1,
        "hosts": [
            {"host": "lab2", "state": "delivered", "path": "/d/f.bin", "cause": None},
            {"host": "lab3", "state": "already-there", "path": "/d/f.bin", "cause": None},
            {"host": "lab10", "state": "failed", "path": "/d/f.bin",
             "cause": "ssh: connect to host lab10 port 22: Connection refused"},
        ],
    }


def test_conclude_prints_the_table_and_writes_the_json(tmp_path):
    source = tmp_path / "f.bin"
    source.write_bytes(CONTENT)
    out = io.StringIO()
    code = push.conclude(OUTCOMES[:2], None, source, DIGEST, 2.0, str(tmp_path / "result.json"), out)
    assert code == 0
    assert "2 of 2 hosts have the file" in out.getvalue() and "push ended in 2.0 s; exit 0" in out.getvalue()
    assert json.loads((tmp_path / "result.json").read_text())["hosts"][1]["state"] == "already-there"
    out = io.StringIO()
    assert push.conclude(OUTCOMES[1:2], None, source, DIGEST, 0.5, None, out) == 0
    assert "nothing to send: every host holds the file already" in out.getvalue()
    assert push.conclude(OUTCOMES, 130, source, DIGEST, 0.5, None, io.StringIO()) == 130


def test_a_json_file_that_cannot_be_written_is_one_line_and_not_a_success(tmp_path, capsys):
    source = tmp_path / "f.bin"
    source.write_bytes(CONTENT)
    code = push.conclude(OUTCOMES[:2], None, source, DIGEST, 1.0, str(tmp_path / "no" / "such" / "r.json"),
                         io.StringIO())
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("p2p-swarm push: --json: cannot write ")


# -- a swarm that drops a failed peer ------------------------------------------------


def fake_peer(peer_id: int, script: str, tmp_path: Path, seed: bool = False) -> Launch:
    """A process that stands for a remote peer: ``script`` in sh, its stdout read as the
    peer's event lines, its stdin the lifeline (``cat`` ends when it is closed)."""
    peer = PeerInfo(peer_id, f"host{peer_id}", 6000 + peer_id, seed)
    return Launch(peer, ["sh", "-c", script], tmp_path, tmp_path / f"out_{peer_id}.log", None, over_ssh=False)


def complete(peer_id: int) -> str:
    return f"echo '{format_time(time.time())}: Peer {peer_id} has downloaded the complete file.'"


def swarm_of(launches: list[Launch], keep_going: bool) -> PeerProcesses:
    from twisted.internet import reactor

    start = reactor.seconds()
    progress = {launch.peer.peer_id: PeerProgress(launch.peer.peer_id, launch.peer.host, 10, launch.peer.has_file,
                                                  start) for launch in launches}
    return PeerProcesses(reactor, launches, progress, Display(io.StringIO(), 1, tty=False), grace=3.0,
                 keep_going=keep_going)


@pytest_twisted.inlineCallbacks
def test_keep_going_drops_a_failed_peer_and_ends_when_the_rest_are_complete(tmp_path):
    launches = [
        fake_peer(1001, "cat >/dev/null", tmp_path, seed=True),
        fake_peer(1002, f"sleep 0.3; {complete(1002)}; cat >/dev/null", tmp_path),
        fake_peer(1003, "echo 'p2ppeer 1003: port 7003 is in use' >&2; exit 1", tmp_path),
        fake_peer(1004, f"sleep 0.6; {complete(1004)}; cat >/dev/null", tmp_path),
    ]
    swarm = swarm_of(launches, keep_going=True)
    began = time.monotonic()
    outcome = yield swarm.run(0.0, 20)
    assert outcome == "finished"
    assert time.monotonic() - began < 2.5  # ended by closing their stdin, not by the grace time's signals
    assert swarm.dropped == {1003: "its peer ended with exit 1: p2ppeer 1003: port 7003 is in use"}
    assert {p.launch.peer.peer_id: p.status for p in swarm.processes} == {1001: 0, 1002: 0, 1003: 1, 1004: 0}


@pytest_twisted.inlineCallbacks
def test_keep_going_waits_for_a_live_peer_that_is_not_complete(tmp_path):
    launches = [
        fake_peer(1001, "cat >/dev/null", tmp_path, seed=True),
        fake_peer(1002, "exit 3", tmp_path),
        fake_peer(1003, "cat >/dev/null", tmp_path),  # alive, never complete
    ]
    swarm = swarm_of(launches, keep_going=True)
    outcome = yield swarm.run(0.0, 1.5)
    assert outcome == "timeout" and swarm.why == "timeout after 1.5 s"
    assert swarm.progress[1003].completed_at is None and 1002 in swarm.dropped


@pytest_twisted.inlineCallbacks
def test_without_keep_going_one_failed_peer_stops_them_all(tmp_path):
    launches = [
        fake_peer(1001, "cat >/dev/null", tmp_path, seed=True),
        fake_peer(1002, "exit 3", tmp_path),
        fake_peer(1003, f"{complete(1003)}; cat >/dev/null", tmp_path),
    ]
    swarm = swarm_of(launches, keep_going=False)
    outcome = yield swarm.run(0.0, 20)
    assert outcome == "failed" and swarm.dropped == {}


@pytest_twisted.inlineCallbacks
def test_a_seed_that_fails_stops_the_swarm_even_with_keep_going(tmp_path):
    launches = [
        fake_peer(1001, "exit 1", tmp_path, seed=True),
        fake_peer(1002, "cat >/dev/null", tmp_path),
    ]
    swarm = swarm_of(launches, keep_going=True)
    outcome = yield swarm.run(0.0, 20)
    assert outcome == "failed" and swarm.why == "peer 1001 on host1001 ended with exit 1"


NOISY_SHELL = """echo "pyenv: cannot rehash: /root/.pyenv/shims isn't writable" >&2; """  # a host's rc file


def over_ssh(peer_id: int, peer: str, tmp_path: Path, directory: Path | None = None) -> Launch:
    """A remote peer as ssh runs it: the remote shell's start-up noise on stderr, then the
    launcher's own command line, whose "twistd" here is the sh script ``peer``."""
    command = peer_command(["sh", "-c", peer], peer_id, str(directory or tmp_path))
    info = PeerInfo(peer_id, f"host{peer_id}", 6000 + peer_id, False)
    return Launch(info, ["sh", "-c", NOISY_SHELL + command], tmp_path, tmp_path / f"out_{peer_id}.log", None,
                  over_ssh=True)


@pytest_twisted.inlineCallbacks
def test_what_the_remote_shell_said_before_the_peer_started_is_not_why_the_peer_ended(tmp_path):
    launches = [
        fake_peer(1001, "cat >/dev/null", tmp_path, seed=True),
        fake_peer(1002, f"sleep 0.3; {complete(1002)}; cat >/dev/null", tmp_path),
        over_ssh(1003, "exit 255", tmp_path),  # as ssh ends when its peer is killed
        over_ssh(1004, "echo 'p2ppeer 1004: port 7004 is in use' >&2; exit 1", tmp_path),
    ]
    swarm = swarm_of(launches, keep_going=True)
    outcome = yield swarm.run(0.0, 20)
    assert outcome == "finished"
    assert swarm.dropped == {
        1003: "its peer ended with exit 255 (its ssh session ended: the peer was killed, or the connection lost)",
        1004: "its peer ended with exit 1: p2ppeer 1004: port 7004 is in use"}


@pytest_twisted.inlineCallbacks
def test_a_peer_that_never_started_is_explained_by_what_its_remote_shell_said(tmp_path):
    launches = [
        fake_peer(1001, "cat >/dev/null", tmp_path, seed=True),
        over_ssh(1002, "cat >/dev/null", tmp_path, directory=tmp_path / "gone"),
    ]
    swarm = swarm_of(launches, keep_going=False)
    outcome = yield swarm.run(0.0, 20)
    assert outcome == "failed"
    assert swarm.why.startswith("peer 1002 on host1002 ended with exit 2: ") and "gone" in swarm.why, swarm.why


# -- which hosts take part: Push.run over a stand-in for ssh -------------------------


def stand_in_ssh(calls: list[list[str]], answers: dict[str, str], refused: set[str]):
    """A ``subprocess.run`` for :class:`Hosts` that answers as ssh would: opening a host
    in ``refused`` fails as a refused connection; a command gets ``answers[host]``."""
    def run(argv: list[str], input: bytes | None = None, capture_output: bool = True,
            timeout: float | None = None) -> subprocess.CompletedProcess:
        calls.append(argv)
        if "-N" in argv:  # opening the host's connection
            host = argv[-1]
            if host in refused:
                return subprocess.CompletedProcess(argv, 255, b"", f"ssh: connect to host {host} port 22: "
                                                                   "Connection refused\n".encode())
        elif "-T" in argv:
            return subprocess.CompletedProcess(argv, 0, answers[argv[-2]].encode(), b"")
        return subprocess.CompletedProcess(argv, 0, b"", b"")

    return run


def test_hosts_that_hold_the_file_or_cannot_be_reached_are_settled_before_any_swarm(tmp_path):
    from twisted_p2p.launcher.pushrun import Push
    from twisted_p2p.launcher.remote import Host, Hosts, Ssh

    source = tmp_path / "f.bin"
    source.write_bytes(CONTENT)
    names = ["lab2", "lab3", "127.0.0.1"]
    calls: list[list[str]] = []
    answers = {"lab2": f"size {len(CONTENT)}\n{DIGEST}  -\n", "127.0.0.1": "absent\n"}
    remote = Hosts(Ssh(tmp_path), [Host(name, f"/d/.p2p-push-{name}") for name in names],
                   run=stand_in_ssh(calls, answers, refused={"lab3"}))
    out = io.StringIO()

    def configure(needed: list[str]):
        raise AssertionError(f"no swarm was needed, yet one was configured for {needed}")

    job = Push(source, names, "/d", "/d/.p2p-push-{host}", configure, None, None, out)
    outcomes, code = job.run(remote)
    assert code is None and job.sha256 == DIGEST
    assert outcomes == [
        HostOutcome("lab2", ALREADY_THERE, "/d/f.bin"),
        HostOutcome("lab3", FAILED, "/d/f.bin", "ssh: connect to host lab3 port 22: Connection refused"),
        HostOutcome("127.0.0.1", FAILED, "/d/f.bin", "it is this machine, the seed: push sends to other hosts"),
    ]
    commands = [argv[-1] for argv in calls if "-T" in argv]
    assert len(commands) == 2 and all(command.startswith("if [ -f /d/f.bin ]") for command in commands)
    assert remote.hosts == {}  # every host settled, its connection closed
    assert sorted(argv[-1] for argv in calls if "-O" in argv) == ["127.0.0.1", "lab2"]
    said = out.getvalue()
    assert "lab2: /d/f.bin is already there (same size and SHA-256); left out" in said
    assert "lab3: cannot be used: ssh: connect to host lab3 port 22: Connection refused; left out" in said
