"""``p2p-swarm check -- COMMAND ... {id}``: the command line, the runs, the scorecard."""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks

from . import exchangechecks, runchecks, wirechecks  # noqa: F401  (they register the checks)
from .observed import Observed, transcript
from .processes import Child
from .runner import Limits, ScenarioRun, run_scenario
from .scenarios import SCENARIOS, Scenario, prepare
from .scorecard import CHECKS, ITEMS, as_json, evaluate, ok, render

MARK = ".p2p-swarm-check"  # a work dir the kit made, and may clear
WIRE_HEADER = ("# seconds since the scenario began, sender -> receiver, frame. A peer under test's frames\n"
               "# are timed when the relay got them from it, the others' when the relay handed them to it.\n")
EPILOG = """\
The command starts one peer of the implementation under test; {id} is replaced by its
peer ID. It runs in a scratch directory in the course layout: Common.cfg, PeerInfo.cfg
and peer_ID/ (holding the file for a seed) are there, and log_peer_ID.log is expected
there. Examples:

  p2p-swarm check -- java -cp /path/to/classes peerProcess {id}
  p2p-swarm check --quick -- python3 /path/to/peerProcess.py {id}

Every byte to and from its peers passes a recording relay; the scorecard groups the
checks by the four rubric items, each pass / FAIL / n/a with its evidence and, for a
FAIL, the usual cause. The scenarios, their directories and logs stay in --work-dir.

exit status: 0 every required check passes, 1 one fails or nothing could be judged,
2 usage error, 130 interrupted"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="p2p-swarm check", usage="p2p-swarm check [options] -- COMMAND [ARG...]",
        description="Run another implementation's peer in small swarms with ours and tell, item by item "
        "of the course rubric, what it gets wrong.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="three scenarios (their seed, their leecher, bad input) instead of "
                        f"{len(SCENARIOS)}: about half a minute")
    parser.add_argument("--only", choices=list(ITEMS), metavar="ITEM",
                        help=f"check one rubric item: {', '.join(ITEMS)}")
    parser.add_argument("--work-dir", default="check-work", metavar="DIR",
                        help="where the scenarios run, cleared first [default: ./check-work]")
    parser.add_argument("--json", metavar="FILE",
                        help="also write the report here [always: WORK_DIR/check-report.json]")
    parser.add_argument("--verbose", action="store_true", help="print every piece of evidence, not the first three")
    parser.add_argument("--deadline", type=float, default=Limits.deadline, metavar="S",
                        help=f"seconds one scenario may take at most [default: {Limits.deadline:.0f}]")
    return parser


def chosen(quick: bool, only: str | None) -> list[Scenario]:
    """The scenarios a run needs: robustness needs only the bad-input one, the unsolicited
    piece check (file exchange) needs it too, the retry scenario serves start-up alone,
    the rest need the swarms."""
    pool = [s for s in SCENARIOS if s.quick or not quick]
    if only == "robustness":
        return [s for s in pool if s.robust]
    if only == "startup":
        return [s for s in pool if not s.robust]
    if only in ("connection", "stop"):
        return [s for s in pool if not s.robust and not s.only]
    return pool


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" in argv:
        at = argv.index("--")
        return argv[:at], argv[at + 1:]
    return argv, []


def prepare_work_dir(path: Path) -> str | None:
    """Clear a work dir the kit made before; refuse one it did not make (None: ready)."""
    if path.exists() and any(path.iterdir()) and not (path / MARK).exists():
        return f"{path} exists and was not made by p2p-swarm check; give another --work-dir"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    (path / MARK).write_text("made by p2p-swarm check; cleared by its next run\n")
    return None


@inlineCallbacks
def _check(reactor: Any, scenarios: list[Scenario], command: list[str], work_dir: Path,
           limits: Limits) -> Generator[Deferred[Any], Any, list[ScenarioRun]]:
    runs = []
    for scenario in scenarios:
        print(f"scenario {scenario.name}: {scenario.about} ...", flush=True)
        began = time.monotonic()
        run = yield run_scenario(reactor, prepare(scenario, work_dir / scenario.name), command, limits)
        runs.append(run)
        statuses = ", ".join(
            f"{p.peer_id} {'stopped by the kit' if p.child.stopped_by_kit else f'exit {p.child.status}'}"
            for p in run.theirs())
        print(f"  {time.monotonic() - began:.1f} s, ended: {run.ended_why}; theirs: {statuses}", flush=True)
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    options, command = _split(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    try:
        args = parser.parse_args(options)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    if not command:
        print("p2p-swarm check: give the command that starts one peer after '--', with {id} for its ID "
              "(p2p-swarm check --help)", file=sys.stderr)
        return 2
    if not any("{id}" in word for word in command):
        print(f"p2p-swarm check: the command has no {{id}}: {' '.join(command)}", file=sys.stderr)
        return 2
    if shutil.which(command[0]) is None:
        print(f"p2p-swarm check: {command[0]}: no such program (not a file, not on PATH)", file=sys.stderr)
        return 2
    if args.deadline <= 0:
        print("p2p-swarm check: --deadline must be positive", file=sys.stderr)
        return 2
    work_dir = Path(args.work_dir).resolve()
    problem = prepare_work_dir(work_dir)
    if problem:
        print(f"p2p-swarm check: {problem}", file=sys.stderr)
        return 2
    scenarios = chosen(args.quick, args.only)
    limits = Limits(deadline=args.deadline)
    from twisted.internet import reactor

    outcome: dict[str, Any] = {}

    def go() -> None:
        done = _check(reactor, scenarios, command, work_dir, limits)
        done.addCallback(lambda runs: outcome.__setitem__("runs", runs))
        done.addErrback(lambda failure: outcome.__setitem__("error", failure))
        done.addBoth(lambda _: reactor.stop())

    reactor.addSystemEventTrigger("before", "shutdown", _stop_children)
    reactor.callWhenRunning(go)
    began = time.monotonic()
    reactor.run()
    if "error" in outcome:
        print(f"p2p-swarm check: the kit failed: {outcome['error'].getErrorMessage()}", file=sys.stderr)
        return 2
    if "runs" not in outcome:
        print("p2p-swarm check: interrupted; every process it started is stopped", file=sys.stderr)
        return 130
    observed = Observed(outcome["runs"])
    for run in observed.every_run:
        lines = "".join(f"{line}\n" for line in transcript(observed, run))
        (run.layout.root / "wire.txt").write_text(WIRE_HEADER + lines)
    results = evaluate(observed, {args.only} if args.only else None)
    closes = our_closes(observed)
    print(f"\np2p-swarm check: {' '.join(command)}")
    print(f"{len(scenarios)} scenarios in {time.monotonic() - began:.0f} s; work dir {work_dir}")
    for line in render(results, args.verbose, closes):
        print(line)
    report = as_json(results, {"command": command, "scenarios": [s.name for s in scenarios], "our_closes": closes})
    (work_dir / "check-report.json").write_text(report)
    if args.json:
        Path(args.json).write_text(report)
    return 0 if ok(results) else 1


def our_closes(observed: Observed) -> list[str]:
    """Each connection to a peer under test that one of our peers closed, and why: said
    on the scorecard, so that what followed is not taken for a fault of theirs."""
    return [f"[{run.layout.scenario.name}] {line}" for run in observed.every_run for line in observed.closes(run)]


def _stop_children() -> Deferred[Any]:
    """Before the reactor stops (the end, or Ctrl-C): stop every process still running."""
    return DeferredList([child.stop() for child in list(Child.running_ones)])


__all__ = ["main", "build_parser", "CHECKS"]
