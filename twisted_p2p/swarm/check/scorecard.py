"""The checks' registry, their verdicts, and the scorecard printed and saved as JSON.

Each check belongs to one rubric item, says in one line what the grader wants, and
carries the usual cause of failing it. A check whose evidence depends on another
(nothing after a broken handshake can be observed) is ``n/a`` when that one failed
and the swarms did not complete, so that one bug is blamed once; where our peers let
it pass and the swarms completed, the rest is judged as usual.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional

from .observed import Observed

ITEMS = {
    "startup": "1. Start-up (35%)",
    "connection": "2. After connection (30%)",
    "exchange": "3. File exchange (30%)",
    "stop": "4. Stop (5%)",
    "robustness": "Robustness (not graded; SPEC §4)",
}
PASS, FAIL, NA = "pass", "FAIL", "n/a"
SHOWN = 3  # evidence lines printed per check (all are in the JSON report)


@dataclass(frozen=True)
class Verdict:
    status: str
    evidence: list[str] = field(default_factory=list)
    count: int = 0  # how many times it was broken, for a FAIL


def passed(*evidence: str) -> Verdict:
    return Verdict(PASS, list(evidence))


def failed(evidence: list[str]) -> Verdict:
    return Verdict(FAIL, evidence, len(evidence))


def not_seen(why: str) -> Verdict:
    return Verdict(NA, [why])


def judged(bad: list[str], good: str, unseen: Optional[str] = None) -> Verdict:
    """FAIL with ``bad``, else pass with ``good`` -- or n/a with ``unseen`` when given."""
    if bad:
        return failed(bad)
    return not_seen(unseen) if unseen else passed(good)


Judge = Callable[[Observed], Verdict]


@dataclass(frozen=True)
class Check:
    key: str
    item: str
    title: str
    hint: str
    judge: Judge
    required: bool = True
    needs: tuple[str, ...] = ()
    scenarios: tuple[str, ...] = ()  # runs it needs; () means any


CHECKS: list[Check] = []


def check(key: str, item: str, title: str, hint: str, required: bool = True,
          needs: tuple[str, ...] = (), scenarios: tuple[str, ...] = ()) -> Callable[[Judge], Judge]:
    def register(judge: Judge) -> Judge:
        CHECKS.append(Check(key, item, title, hint, judge, required, needs, scenarios))
        return judge
    return register


@dataclass
class Result:
    check: Check
    verdict: Verdict


def evaluate(observed: Observed, items: Optional[set[str]] = None) -> list[Result]:
    """Every check of ``items`` (all by default) in registry order, dependencies first."""
    verdicts: dict[str, Verdict] = {}
    results = []
    ran = {run.layout.scenario.name for run in observed.runs}
    for each in CHECKS:
        failed_need = next((need for need in each.needs if verdicts.get(need, passed()).status == FAIL), None)
        if failed_need is not None and not observed.completed:
            verdict = not_seen(f"not observable: {failed_need} failed, and the swarms did not complete")
        elif each.scenarios and not ran.intersection(each.scenarios):
            verdict = not_seen(f"needs the {' or '.join(each.scenarios)} scenario (not run)")
        else:
            try:
                verdict = each.judge(observed)
            except Exception as exc:  # a bug of the kit must not hide the other checks
                verdict = not_seen(f"the kit could not judge this: {type(exc).__name__}: {exc}")
        verdicts[each.key] = verdict
        if items is None or each.item in items:
            results.append(Result(each, verdict))
    return results


def ok(results: list[Result]) -> bool:
    return all(result.verdict.status != FAIL for result in results if result.check.required)


def render(results: list[Result], verbose: bool = False) -> list[str]:
    lines: list[str] = []
    for item, heading in ITEMS.items():
        mine = [result for result in results if result.check.item == item]
        if not mine:
            continue
        lines += ["", heading]
        for result in mine:
            verdict, each = result.verdict, result.check
            advisory = "" if each.required else " (advisory)"
            lines.append(f"  {verdict.status:<4}  {each.key:<24} {each.title}{advisory}")
            shown = verdict.evidence if verbose else verdict.evidence[:SHOWN]
            lines += [f"        {line}" for line in shown]
            if len(verdict.evidence) > len(shown):
                lines.append(f"        ... and {len(verdict.evidence) - len(shown)} more (see the JSON report)")
            if verdict.status == FAIL:
                lines.append(f"        usual cause: {each.hint}")
    counts = {status: sum(1 for r in results if r.verdict.status == status) for status in (PASS, FAIL, NA)}
    lines += ["", f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[NA]} not applicable: "
              + ("every required check passes" if ok(results) else "required checks FAIL")]
    return lines


def as_json(results: list[Result], about: dict[str, Any]) -> str:
    return json.dumps({
        **about,
        "ok": ok(results),
        "checks": [{"key": r.check.key, "item": r.check.item, "rubric": ITEMS[r.check.item],
                    "title": r.check.title, "required": r.check.required, **asdict(r.verdict),
                    "hint": r.check.hint} for r in results],
    }, indent=2)
