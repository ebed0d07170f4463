"""The audit's rules by name, and which of them the course requires.

SPEC §6: a verdict of FAIL on another implementation rests on a sentence of the course
(twisted_p2p.launcher.course); our own choices are advice and never fail. So each rule
that is required names the course sentence it rests on, and every other is advice.
"""
from __future__ import annotations

from twisted_p2p.launcher import course

from .reading import (
    LIST_ORDER,
    MISSING_LOG,
    NO_DATE,
    NO_TIME,
    NOT_A_SENTENCE,
    SPACING,
    STRAY_LOG,
    UNREAD_TIME,
    UNREADABLE_LOG,
    Finding,
)

# The rules, as printed after ``file:line:`` -- each names what was broken.
WRONG_WRITER = "ID1 is not the peer writing the log"
UNKNOWN_PEER = "unknown peer"
PIECE_OUT_OF_RANGE = "piece index out of range"
MISSING_CONNECTION = "missing connection"
WRONG_DIRECTION = "connection in the wrong direction"
CONNECTION_TWICE = "connection logged twice"
TOO_MANY_PREFERRED = "more than k preferred neighbors"
OPTIMISTIC_TOO_SOON = "optimistic neighbor changed sooner than m seconds"
COUNT_NOT_RISING = "download count does not rise by one"
COUNT_TOO_HIGH = "download count above the number of pieces"
DOWNLOADED_TWICE = "piece downloaded twice"
SEED_DOWNLOADED = "a seed downloaded"
NO_COMPLETION = "no completion line"
COMPLETION_TWICE = "completion line twice"
EARLY_COMPLETION = "completion before the last piece"
DOWNLOAD_AFTER_COMPLETION = "download after the completion line"
HAVE_NOT_DOWNLOADED = "'have' for a piece the sender never downloaded"
SOURCE_LACKED_PIECE = "piece from a peer that never had it"
SEED_SENT_HAVE = "'have' from a seed"

#: Rule -> the key in course.QUOTES of the sentence it rests on. A rule not here is
#: advice: SPACING, LIST_ORDER, UNREAD_TIME (the audit cannot tell, so it does not
#: blame), STRAY_LOG and SEED_SENT_HAVE (a seed has every piece it announces).
REQUIRED_BY: dict[str, str] = {
    MISSING_LOG: "log",
    UNREADABLE_LOG: "log",
    NOT_A_SENTENCE: "log",
    NO_DATE: "log-time",
    NO_TIME: "log-time",
    WRONG_WRITER: "log-writer",
    UNKNOWN_PEER: "peers",
    PIECE_OUT_OF_RANGE: "pieces",
    MISSING_CONNECTION: "start-order",
    WRONG_DIRECTION: "start-order",
    CONNECTION_TWICE: "log-connections",
    TOO_MANY_PREFERRED: "preferred",
    OPTIMISTIC_TOO_SOON: "optimistic",
    COUNT_NOT_RISING: "log-downloads",
    COUNT_TOO_HIGH: "log-downloads",
    NO_COMPLETION: "log-downloads",
    COMPLETION_TWICE: "log-downloads",
    EARLY_COMPLETION: "log-downloads",
    DOWNLOADED_TWICE: "request",
    SEED_DOWNLOADED: "request",
    DOWNLOAD_AFTER_COMPLETION: "request",
    SOURCE_LACKED_PIECE: "request",
    HAVE_NOT_DOWNLOADED: "have",
}
ADVICE = (SPACING, LIST_ORDER, UNREAD_TIME, STRAY_LOG, SEED_SENT_HAVE)


def is_required(finding: Finding) -> bool:
    """Whether ``finding`` breaks a rule of the course (a violation) rather than advice."""
    return finding.rule in REQUIRED_BY


def course_sentence(rule_name: str) -> str | None:
    """The course's words a required rule rests on, in double quotes; None for advice."""
    key = REQUIRED_BY.get(rule_name)
    return None if key is None else course.quote(key)
