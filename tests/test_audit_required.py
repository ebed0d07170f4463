"""Required or advice: only a rule that rests on the course's text fails the audit.

SPEC §6: a verdict against another implementation must rest on a sentence of the
course, quoted; our own choices (spacing, the order of the preferred list, ...) are
printed as advice, counted apart, and leave the exit status 0.
"""
from __future__ import annotations

import pytest
from test_audit import L1, L2, clean_logs, say, write_swarm

from twisted_p2p.launcher import audit as A
from twisted_p2p.launcher.audit import required
from twisted_p2p.launcher.course import QUOTES, quote

ADVISED_TOO = " (our choices, not the course's: they do not fail the audit)"


def test_every_required_rule_quotes_a_sentence_of_the_course():
    assert set(required.REQUIRED_BY.values()) <= set(QUOTES)
    assert not set(required.REQUIRED_BY) & set(required.ADVICE)


@pytest.mark.parametrize("rule, key", [
    (A.NO_DATE, "log-time"), (A.NO_TIME, "log-time"), (A.NOT_A_SENTENCE, "log"), (A.MISSING_LOG, "log"),
    (A.MISSING_CONNECTION, "start-order"), (A.TOO_MANY_PREFERRED, "preferred"), (A.OPTIMISTIC_TOO_SOON, "optimistic"),
    (A.COUNT_NOT_RISING, "log-downloads"), (A.SOURCE_LACKED_PIECE, "request"),
])
def test_rules_the_course_states_are_required(rule, key):
    finding = A.Finding(L1, 1, rule, "", 1001)
    assert A.is_required(finding)
    assert required.REQUIRED_BY[rule] == key
    assert A.course_sentence(rule) == quote(key)


@pytest.mark.parametrize("rule", [A.SPACING, A.LIST_ORDER, A.UNREAD_TIME, A.STRAY_LOG, A.SEED_SENT_HAVE])
def test_our_choices_are_advice(rule):
    assert not A.is_required(A.Finding(L1, 1, rule, "", 1001))
    assert A.course_sentence(rule) is None


def _advice_only(logs: dict[int, list[str]]) -> None:
    """A doubled space and a trailing one: our choices, not the course's."""
    logs[1001][3] = "2024-05-01 10:00:00.200: Peer 1001 has the preferred neighbors  1002."
    logs[1002][5] = "2024-05-01 10:00:00.550: Peer 1002 has the preferred neighbors 1003. "


def test_advice_alone_leaves_the_exit_status_0_and_is_counted_apart(tmp_path, capsys):
    logs = clean_logs()
    _advice_only(logs)
    write_swarm(tmp_path, logs)
    result = A.audit(tmp_path, A.command.load(tmp_path))
    assert result.clean and result.findings == []
    assert [(f.file, f.line, f.rule) for f in result.advice] == [(L1, 4, A.SPACING), (L2, 6, A.SPACING)]
    assert A.main([str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "log_peer_1001.log:4: advice: not a SPEC §5 sentence (spacing): "
        "extra or missing spaces (the line is still checked)",
        "log_peer_1002.log:6: advice: not a SPEC §5 sentence (spacing): "
        "extra or missing spaces (the line is still checked)",
        "peer 1001: OK, 1 advice (seed, 2 pieces)",
        "peer 1002: OK, 1 advice (2 pieces, complete)",
        "peer 1003: OK (2 pieces, complete)",
        "audit: clean: 3 peers followed the protocol; 2 advice" + ADVISED_TOO,
    ]


def test_a_required_rule_fails_and_quotes_the_course_once(tmp_path, capsys):
    logs = clean_logs()
    _advice_only(logs)
    logs[1003] = [line[11:] for line in logs[1003]]  # no date on any of its 11 lines
    logs[1003].insert(4, "DEBUG sending request")
    write_swarm(tmp_path, logs)
    assert A.main([str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[3:] == [
        "log_peer_1003.log:1: time without a date: the time '10:00:00.100' has the hour, minute and second but no "
        "date (11 lines of this log are like it; all still checked)",
        "log_peer_1003.log:5: not a SPEC §5 sentence: 'DEBUG sending request' (skipped)",
        f"time without a date: required by the course: {quote('log-time')}",
        f"not a SPEC §5 sentence: required by the course: {quote('log')}",
        "peer 1001: OK, 1 advice (seed, 2 pieces)",
        "peer 1002: OK, 1 advice (2 pieces, complete)",
        "peer 1003: 2 violations (2 pieces, complete)",
        "audit: 2 violations (1 of 3 peers); 2 advice" + ADVISED_TOO,
    ]


def test_the_limit_says_which_hidden_findings_are_advice(tmp_path, capsys):
    logs = clean_logs()
    logs[1002] = [line.replace(": Peer", ":  Peer") for line in logs[1002]]  # 11 lines, each spaced wrong
    write_swarm(tmp_path, logs)
    assert A.main([str(tmp_path), "--limit", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "log_peer_1002.log: advice: not a SPEC §5 sentence (spacing): 9 more not shown (--limit 0 shows all)" in out
    assert sum(line.startswith("log_peer_1002.log:") for line in out) == 3


def test_a_have_from_a_seed_is_advice_and_a_have_never_downloaded_is_not(tmp_path):
    logs = clean_logs()
    logs[1002].insert(3, say(0.3, "have", 1002, other=1001, index=1))  # the seed has it: advice
    logs[1001][6] = say(0.5, "have", 1001, other=1002, index=1)  # 1002 has not downloaded piece 1 by then
    del logs[1002][10]  # ... nor ever, now
    write_swarm(tmp_path, logs)
    result = A.audit(tmp_path, A.command.load(tmp_path))
    assert [(f.line, f.rule) for f in result.advice] == [(4, A.SEED_SENT_HAVE)]
    assert (L1, 7, A.HAVE_NOT_DOWNLOADED) in {(f.file, f.line, f.rule) for f in result.findings}
