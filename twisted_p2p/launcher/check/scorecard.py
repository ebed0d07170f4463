"""The checks' registry, their verdicts, and the scorecard printed and saved as JSON.

Each check belongs to one rubric item, says in one line what the grader wants, and
carries the usual cause of failing it. A check is *required* exactly when it rests on a
sentence of the course text (``course=``, a key of :data:`twisted_p2p.launcher.course.QUOTES`, quoted on the
scorecard); only those make the exit status 1. Every other check is *advice* (our
choices, robustness) and says why (``advice=``), as SPEC §6 has it.

A check whose evidence depends on another (nothing after a broken handshake can be
observed) is ``n/a`` when that one failed and the swarms did not complete, so that one
bug is blamed once; where our peers let it pass and the swarms completed, the rest is
judged as usual.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from twisted_p2p.launcher import course as course_text

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
    notes: list[str] = field(default_factory=list)  # seen and allowed: told, never counted


def passed(*evidence: str) -> Verdict:
    return Verdict(PASS, list(evidence))


def failed(evidence: list[str]) -> Verdict:
    return Verdict(FAIL, evidence, len(evidence))


def not_seen(why: str) -> Verdict:
    return Verdict(NA, [why])


def judged(bad: list[str], good: str, unseen: str | None = None, notes: list[str] | None = None) -> Verdict:
    """FAIL with ``bad``, else pass with ``good`` -- or n/a with ``unseen`` when given;
    ``notes`` go with any of them."""
    verdict = failed(bad) if bad else not_seen(unseen) if unseen else passed(good)
    return Verdict(verdict.status, verdict.evidence, verdict.count, list(notes or []))


Judge = Callable[[Observed], Verdict]


@dataclass(frozen=True)
class Check:
    key: str
    item: str
    title: str
    hint: str
    judge: Judge
    course: str | None = None  # the course sentence it rests on: required exactly then
    advice: str = ""  # why it is only advice
    needs: tuple[str, ...] = ()
    scenarios: tuple[str, ...] = ()  # runs it needs; () means any

    @property
    def required(self) -> bool:
        return self.course is not None

    @property
    def basis(self) -> str:
        """What the verdict rests on: the course's sentence, or why it is advice."""
        return f"course: {course_text.quote(self.course)}" if self.course is not None else f"advice: {self.advice}"


CHECKS: list[Check] = []


def check(key: str, item: str, title: str, hint: str, *, course: str | None = None, advice: str = "",
          needs: tuple[str, ...] = (), scenarios: tuple[str, ...] = ()) -> Callable[[Judge], Judge]:
    """Register a check: ``course`` (a required check) or ``advice`` (why not), never both."""
    if (course is None) == (not advice):
        raise ValueError(f"check {key}: give course= (a quoted course sentence) or advice= (why it is not one)")
    if course is not None and course not in course_text.QUOTES:
        raise ValueError(f"check {key}: no course sentence {course!r}")

    def register(judge: Judge) -> Judge:
        CHECKS.append(Check(key, item, title, hint, judge, course, advice, needs, scenarios))
        return judge
    return register


@dataclass
class Result:
    check: Check
    verdict: Verdict


def evaluate(observed: Observed, items: set[str] | None = None) -> list[Result]:
    """Every check of ``items`` (all by default) in registry order, dependencies first,
    and any check of another item that failed where one of those needs it: what made
    them n/a is shown and counted (a peer that never started must not pass ``--only``)."""
    verdicts: dict[str, Verdict] = {}
    every = []
    ran = {run.layout.scenario.name for run in observed.every_run}
    for each in CHECKS:
        failed_need = next((need for need in each.needs if verdicts.get(need, passed()).status == FAIL), None)
        if failed_need is not None and not observed.completed:
            verdict = not_seen(f"not observable: {failed_need} failed, and the swarms did not complete"
                               + observed.stalled_by_us())
        elif each.scenarios and not ran.intersection(each.scenarios):
            verdict = not_seen(f"needs the {' or '.join(each.scenarios)} scenario (not run)")
        else:
            try:
                verdict = each.judge(observed)
            except Exception as exc:  # a bug of the kit must not hide the other checks
                verdict = not_seen(f"the kit could not judge this: {type(exc).__name__}: {exc}")
        verdicts[each.key] = verdict
        every.append(Result(each, verdict))
    shown = {r.check.key for r in every if items is None or r.check.item in items}
    needs = {r.check.key: r.check.needs for r in every}
    needed = list(shown)
    while needed:
        for need in needs[needed.pop()]:
            if need not in shown and verdicts.get(need, passed()).status == FAIL:
                shown.add(need)
                needed.append(need)
    return [r for r in every if r.check.key in shown]


def judged_anything(results: list[Result]) -> bool:
    return any(result.verdict.status != NA for result in results)


def ok(results: list[Result]) -> bool:
    """Only a required check (one resting on a course sentence) can fail the run; a run in
    which nothing could be judged passes nothing either."""
    return judged_anything(results) and all(result.verdict.status != FAIL
                                            for result in results if result.check.required)


def render(results: list[Result], verbose: bool = False, closes: list[str] | None = None) -> list[str]:
    """The scorecard; ``closes`` (the connections our own peers closed, and why) come first."""
    lines: list[str] = []
    if closes:
        lines += ["", "Connections our peers closed (what a stall after one hid is n/a, never a FAIL of yours)"]
        lines += _shown(closes, verbose)
    for item, heading in ITEMS.items():
        mine = [result for result in results if result.check.item == item]
        if not mine:
            continue
        lines += ["", heading]
        for result in mine:
            verdict, each = result.verdict, result.check
            kind = "required" if each.required else "advice"
            lines.append(f"  {verdict.status:<4}  {kind:<8}  {each.key:<24} {each.title}")
            lines += _shown(verdict.evidence, verbose)
            lines += _shown([f"note: {note}" for note in verdict.notes], verbose)
            if verdict.status == FAIL:
                lines.append(f"        usual cause: {each.hint}")
            if verdict.status == FAIL or verbose:
                lines.append(f"        {each.basis}")
    failures = [r for r in results if r.verdict.status == FAIL]
    required = sum(1 for r in failures if r.check.required)
    counts = {status: sum(1 for r in results if r.verdict.status == status) for status in (PASS, NA)}
    lines += ["", f"{counts[PASS]} passed, {len(failures)} failed ({required} required, {len(failures) - required} "
              f"advice), {counts[NA]} not applicable: "
              + ("every required check passes" if ok(results) else "required checks FAIL" if failures
                 else "nothing could be judged")]
    return lines


def _shown(evidence: list[str], verbose: bool) -> list[str]:
    shown = evidence if verbose else evidence[:SHOWN]
    lines = [f"        {line}" for line in shown]
    if len(evidence) > len(shown):
        lines.append(f"        ... and {len(evidence) - len(shown)} more (see the JSON report)")
    return lines


def as_json(results: list[Result], about: dict[str, Any]) -> str:
    return json.dumps({
        **about,
        "ok": ok(results),
        "checks": [{"key": r.check.key, "item": r.check.item, "rubric": ITEMS[r.check.item],
                    "title": r.check.title, "required": r.check.required, "course": r.check.course,
                    "basis": r.check.basis, **asdict(r.verdict), "hint": r.check.hint} for r in results],
    }, indent=2)
