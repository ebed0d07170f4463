"""``p2p-swarm check`` run for real: against our own peer (everything passes) and against
each deliberately broken peer of ``brokenpeers.py`` (exactly the checks of its bug fail).

Every run is a real ``p2p-swarm check --quick`` with real processes on 127.0.0.1; four
run at a time. Each must end on its own well within its timeout and leave no process of
the program under test behind -- the fakes that hang (ignoring SIGTERM), crash at start
or flood garbage included.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import processes_mentioning

from twisted_p2p.launcher.plan import twistd_command

pytestmark = pytest.mark.slow

BROKEN = Path(__file__).with_name("brokenpeers.py")
P2P_SWARM = [sys.executable, "-m", "twisted_p2p.launcher.cli"]
TIMEOUT = 300

# What each fake must fail: nothing more, nothing less.
EXPECTED = {
    "ascii-zeros": {"handshake-bytes"},
    "text-id": {"handshake-bytes"},
    "little-endian": {"message-framing"},
    "length-excludes-type": {"message-framing"},
    "lsb-bitfield": {"bitfield"},
    "short-bitfield": {"bitfield"},
    "read-first": {"handshake-first"},
    "request-while-choked": {"requests-when-unchoked"},
    "several-requests": {"one-request-at-a-time"},
    "no-have": {"have-after-piece"},
    "repeat-interest": {"interest-on-change"},
    "no-optimistic": {"optimistic-every-m"},
    "log-no-date": {"log-format"},
    "log-other-sentences": {"log-sentences"},
    "never-exits": {"exits"},
    "accept-unsolicited": {"unsolicited-piece"},  # advice: the course says nothing of a piece never asked for
    "hang": {"starts"},
    "crash": {"starts"},
    "garbage": {"handshake-bytes", "log-sentences"},
}


@dataclass
class KitRun:
    status: int
    report: dict
    output: str
    seconds: float
    leftovers: list[str]

    def failed(self) -> set[str]:
        return {check["key"] for check in self.report.get("checks", []) if check["status"] == "FAIL"}

    def check(self, key: str) -> dict:
        return next(check for check in self.report["checks"] if check["key"] == key)


def _run_kit(name: str, command: list[str], work: Path) -> KitRun:
    report = work / f"{name}.json"
    began = time.monotonic()
    done = subprocess.run([*P2P_SWARM, "check", "--quick", "--work-dir", str(work / name), "--json", str(report),
                           "--", *command], capture_output=True, text=True, timeout=TIMEOUT, cwd=work)
    seconds = time.monotonic() - began
    leftovers = processes_mentioning(f"brokenpeers.py {name} ") if name in EXPECTED else []
    data = json.loads(report.read_text()) if report.exists() else {}
    return KitRun(done.returncode, data, done.stdout + done.stderr, seconds, leftovers)


@pytest.fixture(scope="module")
def kit_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KitRun]:
    work = tmp_path_factory.mktemp("check")
    commands = {"ours": [*twistd_command(), "-n", "--pidfile=", "p2ppeer", "--id", "{id}"]}
    commands.update({bug: [sys.executable, str(BROKEN), bug, "{id}"] for bug in EXPECTED})
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(_run_kit, name, command, work) for name, command in commands.items()}
        return {name: future.result() for name, future in futures.items()}


def test_our_own_peer_passes_every_check(kit_runs):
    run = kit_runs["ours"]
    assert run.status == 0, run.output
    assert run.failed() == set(), run.output
    assert run.report["ok"] is True
    passed = {check["key"] for check in run.report["checks"] if check["status"] == "pass"}
    assert {"starts", "connects", "handshake-bytes", "bitfield", "preferred-every-p", "optimistic-every-m",
            "requests-when-unchoked", "have-after-piece", "file-exact", "exits", "unsolicited-piece",
            "handshake-first", "retries-earlier", "unchoke-within-p", "have-within-3s", "exits-cleanly"} <= passed
    assert "every required check passes" in run.output


@pytest.mark.parametrize("bug", sorted(EXPECTED))
def test_each_broken_peer_fails_exactly_the_checks_of_its_bug(kit_runs, bug):
    run = kit_runs[bug]
    assert run.failed() == EXPECTED[bug], run.output
    required = any(run.check(key)["required"] for key in EXPECTED[bug])
    assert run.status == (1 if required else 0), run.output
    for key in EXPECTED[bug]:
        check = run.check(key)
        assert check["evidence"] and check["hint"], check
        kind = "required" if check["required"] else "advice"
        assert f"FAIL  {kind:<8}  {key} " in run.output
    assert run.leftovers == [], f"the kit left processes of the program under test: {run.leftovers}"


# What the first piece of evidence of each fake's failure must say.
EVIDENCE = {
    "ascii-zeros": "ASCII '0'", "text-id": "the text b'", "little-endian": "little-endian: lengths must be big-endian",
    "length-excludes-type": "leaves out the type byte", "lsb-bitfield": "LSB-first", "short-bitfield": "a bitfield of",
    "read-first": "on a connection it dialled, it sent its handshake", "request-while-choked": "ever unchoked it",
    "several-requests": "still outstanding", "no-have": "'have' to", "repeat-interest": "twice in a row",
    "no-optimistic": "no optimistic unchoke", "log-no-date": "has the hour, minute and second but no date",
    "log-other-sentences": "not a SPEC §5 sentence", "never-exits": "stopped by the kit",
    "accept-unsolicited": "its file changed", "hang": "not listening", "crash": "deliberate crash",
    "garbage": "expected b'P2PFILESHARINGPROJ'",
}


@pytest.mark.parametrize("bug", sorted(EXPECTED))
def test_the_evidence_names_the_bug(kit_runs, bug):
    evidence = " ".join(kit_runs[bug].check(key)["evidence"][0] for key in sorted(EXPECTED[bug]))
    assert EVIDENCE[bug] in evidence, evidence


def test_a_program_that_hangs_crashes_or_floods_does_not_hold_the_kit(kit_runs):
    for bug in ("hang", "crash", "garbage"):
        run = kit_runs[bug]
        assert run.report, run.output  # it finished and wrote its report
        assert run.seconds < TIMEOUT / 2, (bug, run.seconds)
        assert run.leftovers == []
