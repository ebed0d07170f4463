"""The audit reads any time stamp with the date, hour, minute and second.

The course: [Time] "contains the date, hour, minute, and second. The format of [Time]
is up to you." So every layout below must read as the instant it names (with its
precision, for the timing rules); a time without a date is the one thing wrong, and is
told once per log.
"""
from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_audit import L1, clean_logs, write_swarm

from twisted_p2p.config import load
from twisted_p2p.launcher import audit as A
from twisted_p2p.launcher.audit.rules import AuditedSwarm, optimistic_changes_every_m_seconds

LOCAL = datetime(2026, 12, 3, 19, 20, 33)  # naive: a stamp without a zone is local time
AT_UTC = datetime(2026, 12, 3, 19, 20, 33, tzinfo=UTC)  # the same wall-clock time in UTC


@pytest.fixture(autouse=True)
def far_from_utc(monkeypatch):
    """Run in a zone with an offset, so that a stamp read in the wrong zone shows."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


DATED = [  # stamp, the instant it names, its precision in seconds
    ("2026-12-03 19:20:33", LOCAL, 1.0),
    ("[2026-12-03 19:20:33]", LOCAL, 1.0),
    ("2026-12-03T19:20:33", LOCAL, 1.0),
    ("2026-12-03 19:20:33.5", LOCAL, 0.1),
    ("2026-12-03 19:20:33,000", LOCAL, 0.001),
    ("2026-12-03T19:20:33.000000000", LOCAL, 1e-9),
    ("2026-12-03T19:20:33Z", AT_UTC, 1.0),
    ("2026-12-03T19:20:33.000Z", AT_UTC, 0.001),
    ("2026-12-03T20:20:33+01:00", AT_UTC, 1.0),
    ("2026-12-03 20:20:33 +0100", AT_UTC, 1.0),
    ("2026-12-03T14:20:33.000-05:00[America/New_York]", AT_UTC, 0.001),
    ("2026-12-03 19:20:33 UTC", AT_UTC, 1.0),
    ("Thu Dec 03 19:20:33 UTC 2026", AT_UTC, 1.0),  # java.util.Date.toString()
    ("Thu Dec 03 19:20:33 GMT+01:00 2026", datetime(2026, 12, 3, 18, 20, 33, tzinfo=UTC), 1.0),
    ("Thu Dec 03 19:20:33 EST 2026", LOCAL, 1.0),  # a zone name: read as local time
    ("Thu Dec 03 19:20:33 2026", LOCAL, 1.0),
    ("[Thu Dec 03 19:20:33 2026]", LOCAL, 1.0),
    ("Thu Dec  3 19:20:33 2026", LOCAL, 1.0),  # ctime / asctime
    ("(Thu Dec  3 19:20:33 2026)", LOCAL, 1.0),
    ("2026/12/03 19:20:33", LOCAL, 1.0),
    ("2026/12/03 19:20:33.0", LOCAL, 0.1),
    ("2026.12.03.19.20.33", LOCAL, 1.0),  # SimpleDateFormat("yyyy.MM.dd.HH.mm.ss")
    ("12/03/2026 19:20:33", LOCAL, 1.0),
    ("12/03/2026 07:20:33 PM", LOCAL, 1.0),
    ("Dec 3, 2026 7:20:33 PM", LOCAL, 1.0),  # Java's DateFormat default
    ("Thu, 03 Dec 2026 19:20:33 GMT", AT_UTC, 1.0),  # RFC 1123
    ("03-Dec-2026 19:20:33", LOCAL, 1.0),
    ("19:20:33 2026-12-03", LOCAL, 1.0),
]


@pytest.mark.parametrize("stamp, instant, resolution", DATED, ids=[s for s, _, _ in DATED])
def test_a_dated_stamp_reads_as_the_instant_it_names(stamp, instant, resolution):
    read = A.read_stamp(stamp)
    assert read.readable and read.dated
    assert read.seconds == pytest.approx(instant.timestamp() + (0.5 if stamp.endswith(".5") else 0), abs=1e-6)
    assert read.resolution == pytest.approx(resolution)


def test_fractions_count_to_the_digit():
    assert A.read_stamp("2026-12-03 19:20:33.042").seconds - LOCAL.timestamp() == pytest.approx(0.042, abs=1e-6)
    assert A.read_stamp("2026-12-03T19:20:33,25Z").seconds - AT_UTC.timestamp() == pytest.approx(0.25, abs=1e-6)
    assert A.read_stamp("19:20:33.123456789").seconds == pytest.approx(69633.123456789, abs=1e-9)


@pytest.mark.parametrize("stamp, month, day", [
    ("12/03/2026 19:20:33", 12, 3),  # month first, as in the US
    ("03-12-2026 19:20:33", 3, 12),  # the same rule whatever the separator
    ("13/12/2026 19:20:33", 12, 13),  # 13 cannot be a month: day first
    ("12/03/26 19:20:33", 12, 3),  # a two-digit year is this century's
])
def test_a_date_with_the_year_last_is_month_first_unless_it_cannot_be(stamp, month, day):
    assert A.read_stamp(stamp).seconds == datetime(2026, month, day, 19, 20, 33).timestamp()


@pytest.mark.parametrize("stamp, seconds, resolution", [
    ("12:00:01.234", 43201.234, 0.001),
    ("[10:15:02]", 36902.0, 1.0),
    ("7:20:33 PM", 69633.0, 1.0),
    ("19:20:33 UTC", 69633.0, 1.0),
])
def test_a_time_of_day_alone_is_read_but_has_no_date(stamp, seconds, resolution):
    read = A.read_stamp(stamp)
    assert read.readable and not read.dated
    assert read.seconds == pytest.approx(seconds)
    assert read.resolution == resolution


@pytest.mark.parametrize("stamp", ["", "INFO", "1796325633123", "2026-13-03 19:20:33", "2026-12-03 24:00:00",
                                   "13:00:00 PM", "Thu Dec 03 2026"])
def test_what_is_not_a_time_with_its_date_and_clock_is_unreadable(stamp):
    assert A.read_stamp(stamp) == A.stamps.UNREADABLE


# -- logs -------------------------------------------------------------------------------------


def _log(tmp_path: Path, lines: list[str]) -> A.PeerLog:
    path = tmp_path / L1
    path.write_text("".join(line + "\n" for line in lines))
    return A.read_log(path, 1001)


def test_a_log_without_dates_is_one_violation_at_its_first_undated_line(tmp_path):
    log = _log(tmp_path, [
        "2026-12-03 19:20:33.000: Peer 1001 is connected from Peer 1002.",
        "19:20:34.000: Peer 1001 is connected from Peer 1003.",
        "19:20:35.000: Peer 1001 received the 'interested' message from 1002.",
        "19:20:36.500: Peer 1001 has the preferred neighbors 1002.",
    ])
    assert [(f.line, f.rule) for f in log.findings] == [(2, A.NO_DATE)]
    assert log.findings[0].detail == ("the time '19:20:34.000' has the hour, minute and second but no date "
                                      "(3 lines of this log are like it; all still checked)")
    assert [record.time for record in log.records[1:]] == [69634.0, 69635.0, 69636.5]
    assert A.is_required(log.findings[0])


def test_lines_without_any_time_are_one_violation_per_log(tmp_path):
    log = _log(tmp_path, [
        "Peer 1001 is connected from Peer 1002.",
        "INFO: Peer 1001 is connected from Peer 1003.",
        "Peer 1001 has the preferred neighbors 1002.",
    ])
    assert [(f.line, f.rule, f.detail) for f in log.findings] == [
        (1, A.NO_TIME, "no time before the sentence (3 lines of this log are like it; all still checked)")]
    assert len(log.records) == 3 and all(record.time is None for record in log.records)


def test_a_stamp_the_audit_cannot_read_is_advice_once(tmp_path):
    log = _log(tmp_path, [
        "1796325633123: Peer 1001 is connected from Peer 1002.",
        "1796325633150: Peer 1001 is connected from Peer 1003.",
    ])
    assert [(f.line, f.rule) for f in log.findings] == [(1, A.UNREAD_TIME)]
    assert "cannot read the time '1796325633123'" in log.findings[0].detail
    assert not A.is_required(log.findings[0])


def test_whole_second_stamps_are_timed_to_the_second(tmp_path):
    """m is 5 s and the slack 0.5 s; two stamps good to a second each may hide 2 s."""
    write_swarm(tmp_path, clean_logs())
    log = _log(tmp_path, [
        "[Wed May 01 10:00:00 2024]: Peer 1001 is connected from Peer 1002.",
        "[Wed May 01 10:00:00 2024]: Peer 1001 is connected from Peer 1003.",
        "[Wed May 01 10:00:01 2024]: Peer 1001 has the optimistically unchoked neighbor 1002.",
        "[Wed May 01 10:00:04 2024]: Peer 1001 has the optimistically unchoked neighbor 1003.",  # 3 s: may be 5
        "[Wed May 01 10:00:06 2024]: Peer 1001 has the optimistically unchoked neighbor 1002.",  # 2 s: at most 4
    ])
    assert log.findings == []
    assert {record.resolution for record in log.records} == {1.0}
    swarm = AuditedSwarm.of(load(tmp_path), {1001: log})
    assert [f.line for f in optimistic_changes_every_m_seconds(log, swarm)] == [5]


def test_a_whole_swarm_in_java_dates_is_clean_and_its_rubric_reads(tmp_path, capsys):
    logs = clean_logs()
    for lines in logs.values():
        lines[:] = [datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f").strftime("[%a %b %d %H:%M:%S %Y]")
                    + line[23:] for line in lines]
    write_swarm(tmp_path, logs)
    assert A.main(["--rubric", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "[time as in the log]: Peer 1002 has downloaded the complete file." in out
    assert out.splitlines()[-1] == "audit: clean: 3 peers followed the protocol"
    assert os.environ["TZ"] == "America/New_York"  # the fixture held
