"""``p2p-swarm audit WORK_DIR``: check a finished swarm's event logs against the protocol.

The event logs (SPEC §5) are all that a grader can see of a swarm, so this reads every
``log_peer_*.log`` together with Common.cfg and PeerInfo.cfg and checks what the spec
makes observable there. :mod:`.reading` turns lines into records (leniently for other
implementations, whose time stamps :mod:`.stamps` reads), :mod:`.sessions` splits a log
into the runs of a peer that was started again (it appends to its log), :mod:`.rules`
holds the registry of rules -- each one pure function over one log and the swarm that
returns its findings --, :mod:`.required` says which rules rest on the course's text
(violations) and which are our advice, :func:`audit` runs them all and :func:`main` prints
the result, restarts as notes that are no violation.
"""
from __future__ import annotations

from .command import RULES_HELP, build_parser, choose_config_dir, main
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
    LenientLine,
    Note,
    PeerLog,
    Record,
    missing_log,
    own_records,
    parse_lenient,
    read_log,
)
from .required import (
    COMPLETION_TWICE,
    CONNECTION_TWICE,
    COUNT_NOT_RISING,
    COUNT_TOO_HIGH,
    DOWNLOAD_AFTER_COMPLETION,
    DOWNLOADED_TWICE,
    EARLY_COMPLETION,
    HAVE_NOT_DOWNLOADED,
    MISSING_CONNECTION,
    NO_COMPLETION,
    OPTIMISTIC_TOO_SOON,
    PIECE_OUT_OF_RANGE,
    REQUIRED_BY,
    SEED_DOWNLOADED,
    SEED_SENT_HAVE,
    SOURCE_LACKED_PIECE,
    TOO_MANY_PREFERRED,
    UNKNOWN_PEER,
    WRONG_DIRECTION,
    WRONG_WRITER,
    course_sentence,
    is_required,
)
from .result import AuditResult, audit, find_logs, report, restart_note, verdict
from .rules import RULES, AuditedSwarm, Rule, default_slack, rule
from .sessions import AT_ONCE, Session, split_sessions
from .stamps import Stamp, read_stamp

__all__ = [
    "RULES_HELP",
    "build_parser",
    "choose_config_dir",
    "main",
    "LIST_ORDER",
    "MISSING_LOG",
    "NO_DATE",
    "NO_TIME",
    "NOT_A_SENTENCE",
    "SPACING",
    "STRAY_LOG",
    "UNREAD_TIME",
    "UNREADABLE_LOG",
    "Finding",
    "LenientLine",
    "Note",
    "PeerLog",
    "Record",
    "missing_log",
    "own_records",
    "parse_lenient",
    "read_log",
    "AuditResult",
    "audit",
    "find_logs",
    "report",
    "restart_note",
    "verdict",
    "COMPLETION_TWICE",
    "CONNECTION_TWICE",
    "COUNT_NOT_RISING",
    "COUNT_TOO_HIGH",
    "DOWNLOAD_AFTER_COMPLETION",
    "DOWNLOADED_TWICE",
    "EARLY_COMPLETION",
    "HAVE_NOT_DOWNLOADED",
    "MISSING_CONNECTION",
    "NO_COMPLETION",
    "OPTIMISTIC_TOO_SOON",
    "PIECE_OUT_OF_RANGE",
    "REQUIRED_BY",
    "RULES",
    "SEED_DOWNLOADED",
    "SEED_SENT_HAVE",
    "SOURCE_LACKED_PIECE",
    "TOO_MANY_PREFERRED",
    "UNKNOWN_PEER",
    "WRONG_DIRECTION",
    "WRONG_WRITER",
    "AuditedSwarm",
    "Rule",
    "course_sentence",
    "default_slack",
    "is_required",
    "rule",
    "AT_ONCE",
    "Session",
    "split_sessions",
    "Stamp",
    "read_stamp",
]
