"""``p2p-swarm check``'s command line: usage errors in one line, the scenarios an option
chooses, and one short real run (``--only robustness``) of our own peer."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from twisted_p2p.launcher.check.command import MARK, chosen, main, prepare_work_dir
from twisted_p2p.launcher.cli import main as cli_main
from twisted_p2p.launcher.plan import twistd_command


def test_help_explains_the_command_and_the_layout(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "{id}" in text and "Common.cfg" in text and "--quick" in text and "--only" in text
    assert "exit status" in text


def test_the_command_is_required_and_must_carry_the_id(capsys, tmp_path):
    assert main(["--work-dir", str(tmp_path / "w")]) == 2
    assert "after '--'" in capsys.readouterr().err
    assert main(["--work-dir", str(tmp_path / "w"), "--", "java", "peerProcess"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no {id}" in err
    assert not (tmp_path / "w").exists()


def test_a_program_that_does_not_exist_is_a_usage_error(capsys, tmp_path):
    assert main(["--work-dir", str(tmp_path / "w"), "--", "no-such-peer-program", "{id}"]) == 2
    assert "no-such-peer-program: no such program" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_an_unknown_rubric_item_is_a_usage_error(capsys):
    assert main(["--only", "speed", "--", "x", "{id}"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_the_cli_routes_check(capsys):
    assert cli_main(["check", "--", "x"]) == 2
    assert "has no {id}" in capsys.readouterr().err
    cli_main(["--help"])
    assert "check -- COMMAND" in capsys.readouterr().out


def test_a_work_dir_it_did_not_make_is_never_cleared(tmp_path, capsys):
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    assert main(["--work-dir", str(precious), "--", sys.executable, "{id}"]) == 2
    assert "was not made by p2p-swarm check" in capsys.readouterr().err
    assert (precious / "thesis.tex").read_text() == "years of work"
    made = tmp_path / "made"
    assert prepare_work_dir(made) is None and (made / MARK).exists()
    (made / "old-run").mkdir()
    assert prepare_work_dir(made) is None and not (made / "old-run").exists()


def test_the_scenarios_each_option_runs():
    names = lambda scenarios: [s.name for s in scenarios]  # noqa: E731
    assert names(chosen(True, None)) == ["seed", "leecher", "retry", "robust"]
    assert names(chosen(False, None)) == ["seed", "leecher", "retry", "robust", "two-theirs", "late", "two-seeds"]
    assert names(chosen(False, "robustness")) == ["robust"]
    assert names(chosen(True, "startup")) == ["seed", "leecher", "retry"]  # retries-earlier is a start-up check
    assert names(chosen(True, "connection")) == ["seed", "leecher"]
    assert "robust" in names(chosen(True, "exchange"))  # the unsolicited piece is a file-exchange check


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="the kit sees listening ports in /proc")
def test_only_robustness_runs_the_bad_input_probes_against_our_peer(tmp_path):
    report = tmp_path / "report.json"
    command = [*twistd_command(), "-n", "--pidfile=", "p2ppeer", "--id", "{id}"]
    done = subprocess.run([sys.executable, "-m", "twisted_p2p.launcher.cli", "check", "--only", "robustness",
                           "--work-dir", str(tmp_path / "w"), "--json", str(report), "--", *command],
                          capture_output=True, text=True, timeout=120)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    data = json.loads(report.read_text())
    assert data["scenarios"] == ["robust"]
    assert {check["item"] for check in data["checks"]} == {"robustness"}
    assert [check["status"] for check in data["checks"]] == ["pass"] * 4
    assert "Robustness" in out and "1. Start-up" not in out
    assert (tmp_path / "w" / "check-report.json").exists()
    probe = next(check for check in data["checks"] if check["key"] == "huge-length")
    assert "closed it after" in probe["evidence"][0] and "still serving" in probe["evidence"][0]


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="the kit sees listening ports in /proc")
def test_a_listening_port_is_seen_without_connecting_to_it():
    from twisted_p2p.launcher.check.runner import listening_ports

    with socket.socket() as server, socket.socket() as idle:
        server.bind(("127.0.0.1", 0))
        server.listen()
        idle.bind(("127.0.0.1", 0))  # bound, not listening
        ports = {server.getsockname()[1], idle.getsockname()[1]}
        assert listening_ports(ports) == {server.getsockname()[1]}
        server.setblocking(False)
        with pytest.raises(BlockingIOError):  # nobody knocked: a peer counting connections is not fooled
            server.accept()
