"""``p2p-swarm simulate``: a config's swarm on simulated hosts, with the reports and logs
run writes (the audit reads them) and the simulated time beside the textbook bound."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from twisted_p2p.config import load
from twisted_p2p.launcher import cli
from twisted_p2p.launcher.audit.result import audit
from twisted_p2p.launcher.simulate import main, textbook_bound


def _config(tmp_path: Path, peers: int = 5, size: int = 64 * 1024, piece: int = 1024) -> Path:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "Common.cfg").write_text(
        f"NumberOfPreferredNeighbors 2\nUnchokingInterval 1\nOptimisticUnchokingInterval 2\n"
        f"FileName TheFile.dat\nFileSize {size}\nPieceSize {piece}\n")
    (conf / "PeerInfo.cfg").write_text(
        "".join(f"{1001 + n} localhost {6008 + n} {int(n == 0)}\n" for n in range(peers)))
    return conf


def _simulate(conf: Path, work: Path, *more: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main([str(conf), "--work-dir", str(work), *more], out)
    return code, out.getvalue()


def test_a_capped_swarm_completes_near_the_bound_and_audits_clean(tmp_path: Path) -> None:
    conf = _config(tmp_path)
    work = tmp_path / "work"
    code, out = _simulate(conf, work, "--upload-rate", "20000", "--seed", "7")
    assert code == 0, out
    last = out.strip().splitlines()[-1]
    assert last.startswith("swarm complete after ") and "textbook bound at 20,000 bytes/s" in last, last
    completion = float(last.split("after ")[1].split()[0])
    bound = textbook_bound(load(conf), 20000)
    assert bound <= completion < 4 * bound, (completion, bound)
    report = json.loads((work / "swarm-report.json").read_text())
    assert report["outcome"] == "finished" and all(peer["sha256_ok"] for peer in report["peers"])
    assert report["simulated"]["seed"] == 7 and report["simulated"]["messages"]["piece"] >= 4 * 64
    assert (work / "swarm-report.html").is_file()
    checked = audit(work, load(work))  # the sim writes the config it ran beside the logs
    assert checked.findings == [], checked.findings[:3]


def test_one_seed_one_run_and_another_seed_another(tmp_path: Path) -> None:
    conf = _config(tmp_path, peers=4, size=32 * 1024)
    runs = {}
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        code, out = _simulate(conf, tmp_path / name, "--seed", seed, "--upload-rate", "50000")
        assert code == 0, out
        runs[name] = [(tmp_path / name / f"log_peer_{n}.log").read_text() for n in (1001, 1002, 1003, 1004)]
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]


def test_the_command_line_names_the_command_and_refuses_bad_numbers(tmp_path: Path, capsys) -> None:
    conf = _config(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main([str(conf), "--upload-rate", "-5"])
    assert exited.value.code == 2 and "--upload-rate must be 0" in capsys.readouterr().err
    code = cli.main(["simulate", str(tmp_path / "missing")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("p2p-swarm simulate: ") and len(err.strip().splitlines()) == 1


def test_a_swarm_that_cannot_finish_in_the_limit_says_who_is_unfinished(tmp_path: Path) -> None:
    conf = _config(tmp_path, peers=3)
    code, out = _simulate(conf, tmp_path / "work", "--upload-rate", "1000", "--limit", "5")
    assert code == 1
    assert "not every peer completed within 5 simulated seconds (unfinished: " in out.strip().splitlines()[-1]


def _completion(out: str) -> float:
    last = out.strip().splitlines()[-1]
    assert last.startswith("swarm complete after "), last
    return float(last.split("after ")[1].split()[0])


def test_peers_that_share_one_machine_finish_later_the_fewer_its_cores(tmp_path: Path) -> None:
    conf = _config(tmp_path, peers=8, size=256 * 1024, piece=1024)
    eager = ("--pipeline", "8", "--refill-slots", "--stagger", "0")
    times = {}
    for name, more in (("own", ()), ("eight", ("--cores", "8")), ("one", ("--cores", "1"))):
        code, out = _simulate(conf, tmp_path / name, *eager, *more)
        assert code == 0, out
        times[name] = _completion(out)
    assert "on one machine of 1 core..." in out
    assert times["own"] < times["eight"] < times["one"], times
    checked = audit(tmp_path / "one", load(tmp_path / "one"))
    assert checked.findings == [], checked.findings[:3]
