"""``p2p-swarm check`` run for real against the peers of ``deviantpeers.py``: a deviation
the course text allows fails no required check, and the one defect fails exactly its
check, so that the kit judges students' peers by the course and not by our choices.

Every run is a real ``p2p-swarm check --quick`` with real processes on 127.0.0.1, two at
a time; each must end on its own within its timeout and leave no process behind.
"""
from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from deviantpeers import DEFECTS, TOLERABLE
from support import processes_mentioning

pytestmark = pytest.mark.slow

DEVIANT = Path(__file__).with_name("deviantpeers.py")
P2P_SWARM = [sys.executable, "-m", "twisted_p2p.launcher.cli"]
TIMEOUT = 300

#: What each defect must fail: nothing more, nothing less.
DEFECT_FAILS = {"never-not-interested": {"interest"}}


@dataclass
class Verdict:
    status: int
    report: dict
    output: str
    leftovers: list[str]

    def failed(self, required_only: bool = False) -> set[str]:
        return {check["key"] for check in self.report.get("checks", [])
                if check["status"] == "FAIL" and (check["required"] or not required_only)}

    def evidence(self, key: str) -> list[str]:
        return next(check["evidence"] for check in self.report["checks"] if check["key"] == key)


def _check(deviation: str, work: Path) -> Verdict:
    report = work / f"{deviation}.json"
    done = subprocess.run([*P2P_SWARM, "check", "--quick", "--work-dir", str(work / deviation),
                           "--json", str(report), "--", sys.executable, str(DEVIANT), deviation, "{id}"],
                          capture_output=True, text=True, timeout=TIMEOUT, cwd=work)
    data = json.loads(report.read_text()) if report.exists() else {}
    leftovers = processes_mentioning(f"deviantpeers.py {deviation} ")
    return Verdict(done.returncode, data, done.stdout + done.stderr, leftovers)


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Verdict]:
    work = tmp_path_factory.mktemp("deviations")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_check, name, work) for name in [*TOLERABLE, *DEFECTS]}
        found = {name: future.result() for name, future in futures.items()}
    for name, verdict in found.items():
        print(f"\n{name}: exit {verdict.status}; FAIL {sorted(verdict.failed()) or 'none'} "
              f"(required: {sorted(verdict.failed(required_only=True)) or 'none'})")
    return found


@pytest.mark.parametrize("deviation", sorted(TOLERABLE))
def test_a_deviation_the_course_allows_fails_no_required_check(verdicts, deviation):
    verdict = verdicts[deviation]
    assert verdict.report, f"the kit wrote no report: {verdict.output}"
    assert verdict.failed(required_only=True) == set(), verdict.output
    assert verdict.status == 0, verdict.output
    assert verdict.leftovers == [], f"the kit left processes of the peer under test: {verdict.leftovers}"


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_a_defect_fails_exactly_its_check(verdicts, defect):
    verdict = verdicts[defect]
    assert verdict.failed() == DEFECT_FAILS[defect], verdict.output
    assert verdict.status == 1, verdict.output
    assert verdict.leftovers == [], f"the kit left processes of the peer under test: {verdict.leftovers}"


def test_the_defects_evidence_says_it_stayed_interested(verdicts):
    evidence = " ".join(verdicts["never-not-interested"].evidence("interest"))
    assert "stayed 'interested'" in evidence, evidence


def test_a_peer_that_does_not_retry_is_told_so_as_advice_only(verdicts):
    verdict = verdicts["no-retry"]
    assert verdict.failed() == {"retries-earlier"} and verdict.failed(required_only=True) == set(), verdict.output
    evidence = " ".join(verdict.evidence("retries-earlier"))
    assert "exited (status 1)" in evidence and "never reaching it" in evidence, evidence
