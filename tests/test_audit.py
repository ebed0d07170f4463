"""``p2p-swarm audit``: clean on a real swarm's logs, and names the broken rule on bad ones.

The crafted cases start from a small hand-written swarm that the audit finds clean
(checked by the first synthetic test) and change one thing each, then compare the
complete set of findings, so a test fails both when a rule misses its violation and
when a change sets off rules it should not.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from support import free_ports, seed_bytes, start_peer, swarm_config, wait_for_peers, write_config, write_seed_files

from twisted_p2p.config import load
from twisted_p2p.eventlog import SENTENCES
from twisted_p2p.launcher import audit as A
from twisted_p2p.launcher.audit.rules import AuditedSwarm, optimistic_changes_every_m_seconds
from twisted_p2p.launcher.cli import main as cli_main
from twisted_p2p.launcher.course import quote

IDS = [1001, 1002, 1003, 1004, 1005, 1006]


# -- a real swarm --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_swarm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the config and the logs of six real peers that finished."""
    work = tmp_path_factory.mktemp("swarm")
    config = swarm_config(IDS, [1001], 1_048_576, 16384, k=2, p=1, m=2, ports=free_ports(6))
    write_config(work, config)
    write_seed_files(work, config, seed_bytes(config.common.file_size))
    processes = {
        peer_id: start_peer(work, peer_id, "--config-dir", str(work), "--work-dir", str(work)) for peer_id in IDS
    }
    outputs = wait_for_peers(processes)
    for peer_id, process in processes.items():
        assert process.returncode == 0, outputs[peer_id]
    return work


@pytest.fixture
def real_copy(real_swarm: Path, tmp_path: Path) -> Path:
    """A copy of the real swarm's config and logs that a test may edit."""
    for path in real_swarm.iterdir():
        if path.is_file():
            shutil.copy(path, tmp_path / path.name)
    return tmp_path


def test_a_real_six_peer_swarm_is_clean(real_swarm, capsys):
    assert A.main([str(real_swarm)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"auditing {real_swarm} with the config in {real_swarm} (WORK_DIR holds Common.cfg)")
    assert out[1:] == [
        "peer 1001: OK (seed, 64 pieces)",
        *(f"peer {peer_id}: OK (64 pieces, complete)" for peer_id in IDS[1:]),
        "audit: clean: 6 peers followed the protocol",
    ]


def test_the_console_command_runs_the_audit(real_swarm):
    done = subprocess.run([sys.executable, "-m", "twisted_p2p.launcher.cli", "audit", str(real_swarm)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "audit: clean: 6 peers followed the protocol"


def test_a_real_log_without_a_connection_and_a_completion(real_copy, capsys):
    path = real_copy / "log_peer_1004.log"
    lines = path.read_text().splitlines()
    kept = [line for line in lines if "makes a connection to Peer 1002." not in line
            and "has downloaded the complete file." not in line]
    assert len(kept) == len(lines) - 2
    path.write_text("\n".join(kept) + "\n")
    assert A.main([str(real_copy)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert "log_peer_1004.log: missing connection: no 'Peer 1004 makes a connection to Peer 1002.'" in out
    assert "log_peer_1004.log: no completion line: peer 1004 has hasFile 0 and ends with 64 of 64 pieces" in out
    assert "peer 1004: 2 violations (64 of 64 pieces, incomplete)" in out
    assert out[-1] == "audit: 2 violations (1 of 6 peers)"


STAMPS = {  # the course: [Time] "contains the date, hour, minute, and second. The format of [Time] is up to you."
    "ours without milliseconds": lambda t: t.strftime("%Y-%m-%d %H:%M:%S"),
    "bracketed": lambda t: t.strftime("[%Y-%m-%d %H:%M:%S]"),
    "java.util.Date, bracketed": lambda t: t.strftime("[%a %b %d %H:%M:%S %Y]"),
    "java.util.Date with its zone": lambda t: t.astimezone(UTC).strftime("%a %b %d %H:%M:%S UTC %Y"),
    "ctime": lambda t: t.strftime(f"%a %b {t.day:2d} %H:%M:%S %Y"),
    "ISO T with an offset": lambda t: t.astimezone(timezone(timedelta(hours=-5))).isoformat(timespec="microseconds"),
    "ISO T, comma, Z": lambda t: t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S,%fZ"),
    "US date, 12-hour clock": lambda t: t.strftime("%m/%d/%Y %I:%M:%S %p"),
    "yyyy.MM.dd.HH.mm.ss": lambda t: t.strftime("%Y.%m.%d.%H.%M.%S"),
}


def _restamp(path: Path, stamp) -> list[str]:
    """Rewrite every stamp of a real log of ours (the same instant) with ``stamp``."""
    lines = path.read_text().splitlines()
    path.write_text("".join(f"{stamp(datetime.strptime(line[:23], '%Y-%m-%d %H:%M:%S.%f').astimezone())}: "
                            f"{line[25:]}\n" for line in lines))
    return lines


@pytest.mark.parametrize("stamp", STAMPS.values(), ids=STAMPS.keys())
def test_real_logs_in_any_dated_format_are_clean(real_copy, capsys, stamp):
    for peer_id in IDS:
        _restamp(real_copy / f"log_peer_{peer_id}.log", stamp)
    result = A.audit(real_copy, load(real_copy))
    assert (result.findings, result.advice) == ([], [])
    assert all(record.time is not None for log in result.logs.values() for record in log.records)
    assert A.main([str(real_copy)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "audit: clean: 6 peers followed the protocol"


def test_a_real_log_without_dates_is_one_violation_and_still_checked(real_copy, capsys):
    path = real_copy / "log_peer_1003.log"
    lines = path.read_text().splitlines()
    # "2026-01-02 10:15:02.123: Peer ..." -> "[10:15:02] Peer ...", as some Java peers write
    path.write_text("".join(f"[{line[11:19]}] {line[25:]}\n" for line in lines) + "INFO peer 1003 exiting\n")
    result = A.audit(real_copy, load(real_copy))
    assert [(f.file, f.line, f.rule) for f in result.findings] == [
        ("log_peer_1003.log", 1, A.NO_DATE), ("log_peer_1003.log", len(lines) + 1, A.NOT_A_SENTENCE)]
    assert len(A.own_records(result.logs[1003])) == len(lines)  # every sentence still read
    assert A.main([str(real_copy)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert (f"log_peer_1003.log:1: time without a date: the time '[{lines[0][11:19]}]' has the hour, minute and "
            f"second but no date ({len(lines)} lines of this log are like it; all still checked)") in out
    assert f"log_peer_1003.log:{len(lines) + 1}: not a SPEC §5 sentence: 'INFO peer 1003 exiting' (skipped)" in out
    assert "peer 1003: 2 violations (64 pieces, complete)" in out
    assert out[-1] == "audit: 2 violations (1 of 6 peers)"


# -- a small hand-written swarm ----------------------------------------------------------------

COMMON = """NumberOfPreferredNeighbors 1
UnchokingInterval 1
OptimisticUnchokingInterval 5
FileName TheFile.dat
FileSize 32768
PieceSize 16384
"""
PEERS = "1001 localhost 6001 1\n1002 localhost 6002 0\n1003 localhost 6003 0\n"


def say(seconds: float, kind: str, me: int, **fields: object) -> str:
    """One SPEC §5 line, ``seconds`` after 10:00 on a fixed day."""
    whole, millis = divmod(round(seconds * 1000), 1000)
    return f"2024-05-01 10:{whole // 60:02d}:{whole % 60:02d}.{millis:03d}: {SENTENCES[kind].format(me=me, **fields)}"


def clean_logs() -> dict[int, list[str]]:
    """Two pieces, one seed: 1002 gets piece 0 from the seed and piece 1 from 1003, which
    got piece 1 from the seed (its optimistic neighbour) and piece 0 from 1002."""
    return {
        1001: [
            say(0.0, "connect_from", 1001, other=1002),
            say(0.1, "connect_from", 1001, other=1003),
            say(0.2, "interested", 1001, other=1002),
            say(0.2, "preferred", 1001, others="1002"),
            say(0.3, "interested", 1001, other=1003),
            say(0.3, "optimistic", 1001, other=1003),
            say(0.5, "have", 1001, other=1002, index=0),  # line 7
            say(0.6, "have", 1001, other=1003, index=1),
            say(0.7, "have", 1001, other=1003, index=0),
            say(0.8, "have", 1001, other=1002, index=1),
            say(0.9, "not_interested", 1001, other=1002),
            say(0.9, "not_interested", 1001, other=1003),
        ],
        1002: [
            say(0.0, "connect_to", 1002, other=1001),
            say(0.1, "connect_from", 1002, other=1003),
            say(0.2, "unchoked", 1002, other=1001),
            say(0.4, "downloaded", 1002, index=0, other=1001, count=1),  # line 4
            say(0.5, "interested", 1002, other=1003),
            say(0.55, "preferred", 1002, others="1003"),
            say(0.6, "have", 1002, other=1003, index=1),
            say(0.65, "unchoked", 1002, other=1003),
            say(0.7, "have", 1002, other=1003, index=0),
            say(0.8, "downloaded", 1002, index=1, other=1003, count=2),  # line 10
            say(0.8, "complete", 1002),
        ],
        1003: [
            say(0.1, "connect_to", 1003, other=1001),
            say(0.1, "connect_to", 1003, other=1002),
            say(0.3, "unchoked", 1003, other=1001),
            say(0.45, "have", 1003, other=1002, index=0),  # line 4
            say(0.55, "unchoked", 1003, other=1002),
            say(0.6, "downloaded", 1003, index=1, other=1001, count=1),
            say(0.62, "interested", 1003, other=1002),
            say(0.63, "preferred", 1003, others="1002"),
            say(0.7, "downloaded", 1003, index=0, other=1002, count=2),  # line 9
            say(0.7, "complete", 1003),
            say(0.8, "have", 1003, other=1002, index=1),
        ],
    }


def write_swarm(work: Path, logs: dict[int, list[str]]) -> Path:
    (work / "Common.cfg").write_text(COMMON)
    (work / "PeerInfo.cfg").write_text(PEERS)
    for peer_id, lines in logs.items():
        (work / f"log_peer_{peer_id}.log").write_text("".join(line + "\n" for line in lines))
    return work


def findings(work: Path) -> set[tuple[str, int | None, str]]:
    """Every finding, violation or advice, as (file, line, rule)."""
    result = A.audit(work, load(work))
    return {(f.file, f.line, f.rule) for f in result.findings + result.advice}


def test_the_hand_written_swarm_is_clean(tmp_path, capsys):
    write_swarm(tmp_path, clean_logs())
    assert findings(tmp_path) == set()
    assert A.main([str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "peer 1001: OK (seed, 2 pieces)",
        "peer 1002: OK (2 pieces, complete)",
        "peer 1003: OK (2 pieces, complete)",
        "audit: clean: 3 peers followed the protocol",
    ]


def _replace(peer: int, line: int, text: str):
    def edit(logs: dict[int, list[str]]) -> None:
        logs[peer][line - 1] = text
    return edit


def _insert(peer: int, line: int, text: str):
    def edit(logs: dict[int, list[str]]) -> None:
        logs[peer].insert(line - 1, text)
    return edit


def _delete(peer: int, line: int):
    def edit(logs: dict[int, list[str]]) -> None:
        del logs[peer][line - 1]
    return edit


def _move(peer: int, line: int, to: int):
    def edit(logs: dict[int, list[str]]) -> None:
        logs[peer].insert(to - 1, logs[peer].pop(line - 1))
    return edit


L1, L2, L3 = "log_peer_1001.log", "log_peer_1002.log", "log_peer_1003.log"

CRAFTED = {  # each breaks a rule of the course: the audit exits 1
    "a time without a date": (
        _replace(1002, 3, "10:00:00.200: Peer 1002 is unchoked by 1001."),
        {(L2, 3, A.NO_DATE)},
    ),
    "garbage line": (
        _insert(1002, 3, "2024-05-01 10:00:00.300: Peer 1002 sent a request to 1001."),
        {(L2, 3, A.NOT_A_SENTENCE)},
    ),
    "a spaced preferred list": (
        _replace(1001, 4, "2024-05-01 10:00:00.200: Peer 1001 has the preferred neighbors 1002, 1003."),
        {(L1, 4, A.SPACING), (L1, 4, A.TOO_MANY_PREFERRED)},
    ),
    "preferred list out of order": (
        _replace(1001, 4, say(0.2, "preferred", 1001, others="1003,1002")),
        {(L1, 4, A.LIST_ORDER), (L1, 4, A.TOO_MANY_PREFERRED)},
    ),
    "another peer's sentence": (
        _insert(1002, 3, say(0.2, "unchoked", 1003, other=1001)),
        {(L2, 3, A.WRONG_WRITER)},
    ),
    "unknown neighbour": (
        _insert(1001, 3, say(0.2, "interested", 1001, other=1009)),
        {(L1, 3, A.UNKNOWN_PEER)},
    ),
    "neighbour is itself": (
        _insert(1001, 3, say(0.2, "choked", 1001, other=1001)),
        {(L1, 3, A.UNKNOWN_PEER)},
    ),
    "piece index out of range": (
        _replace(1001, 7, say(0.5, "have", 1001, other=1002, index=2)),
        {(L1, 7, A.PIECE_OUT_OF_RANGE), (L1, 7, A.HAVE_NOT_DOWNLOADED)},
    ),
    "a connection is missing": (
        _delete(1003, 2),
        {(L3, None, A.MISSING_CONNECTION)},
    ),
    "a connection in the wrong direction": (
        _replace(1002, 2, say(0.1, "connect_to", 1002, other=1003)),
        {(L2, 2, A.WRONG_DIRECTION)},
    ),
    "accepted from an earlier peer": (
        _replace(1003, 1, say(0.1, "connect_from", 1003, other=1001)),
        {(L3, 1, A.WRONG_DIRECTION)},
    ),
    "a connection logged twice": (
        _insert(1003, 3, say(0.2, "connect_to", 1003, other=1001)),
        {(L3, 3, A.CONNECTION_TWICE)},
    ),
    "more than k preferred": (
        _replace(1001, 4, say(0.2, "preferred", 1001, others="1002,1003")),
        {(L1, 4, A.TOO_MANY_PREFERRED)},
    ),
    "optimistic changed too soon": (
        _insert(1001, 7, say(4.7, "optimistic", 1001, other=1002)),  # m 5, slack 0.5: 4.4 s < 4.498 s
        {(L1, 7, A.OPTIMISTIC_TOO_SOON)},
    ),
    "count skips one": (
        _replace(1002, 10, say(0.8, "downloaded", 1002, index=1, other=1003, count=3)),
        {(L2, 10, A.COUNT_NOT_RISING), (L2, 10, A.COUNT_TOO_HIGH)},
    ),
    "count repeats": (
        _replace(1002, 10, say(0.8, "downloaded", 1002, index=1, other=1003, count=1)),
        {(L2, 10, A.COUNT_NOT_RISING)},
    ),
    "a piece downloaded twice": (
        _insert(1003, 10, say(0.7, "downloaded", 1003, index=1, other=1002, count=3)),
        {(L3, 10, A.DOWNLOADED_TWICE), (L3, 10, A.COUNT_TOO_HIGH)},
    ),
    "a seed downloads": (
        _insert(1001, 8, say(0.55, "downloaded", 1001, index=0, other=1002, count=2)),
        {(L1, 8, A.SEED_DOWNLOADED)},
    ),
    "a seed completes": (
        _insert(1001, 1, say(0.0, "complete", 1001)),
        {(L1, 1, A.SEED_DOWNLOADED)},
    ),
    "no completion line": (
        _delete(1002, 11),
        {(L2, None, A.NO_COMPLETION)},
    ),
    "completion line twice": (
        _insert(1002, 12, say(0.9, "complete", 1002)),
        {(L2, 12, A.COMPLETION_TWICE)},
    ),
    "completion before the last piece": (
        _move(1002, 11, 10),
        {(L2, 10, A.EARLY_COMPLETION), (L2, 11, A.DOWNLOAD_AFTER_COMPLETION)},
    ),
    # 1002's log loses its first download: its count and completion are wrong, and the
    # 'have' for piece 0 that 1001 and 1003 received from 1002, and the piece 0 that
    # 1003 downloaded from 1002, no longer match anything 1002 logged.
    "the sender never downloaded the piece": (
        _delete(1002, 4),
        {(L2, 9, A.COUNT_NOT_RISING), (L2, 10, A.EARLY_COMPLETION), (L1, 7, A.HAVE_NOT_DOWNLOADED),
         (L3, 4, A.HAVE_NOT_DOWNLOADED), (L3, 9, A.SOURCE_LACKED_PIECE)},
    ),
}


ADVISED = {  # what the course allows (or does not forbid): at most advice, and the audit exits 0
    "the course's typographic apostrophes": (
        _replace(1002, 5, say(0.5, "interested", 1002, other=1003).replace("'", "\u2018", 1).replace("'", "\u2019", 1)),
        set(),
    ),
    "an empty line": (
        _insert(1002, 3, ""),
        {(L2, 3, A.SPACING)},
    ),
    "time without milliseconds": (
        _replace(1002, 3, "2024-05-01 10:00:00: Peer 1002 is unchoked by 1001."),
        set(),
    ),
    "a year the platform cannot place": (
        _replace(1002, 3, "0001-01-01 00:00:00: Peer 1002 is unchoked by 1001."),
        set(),
    ),
    "a leading space": (
        _replace(1002, 3, " " + say(0.2, "unchoked", 1002, other=1001)),
        {(L2, 3, A.SPACING)},
    ),
    "extra spaces": (
        _replace(1002, 3, "2024-05-01 10:00:00.200: Peer 1002 is  unchoked by 1001. "),
        {(L2, 3, A.SPACING)},
    ),
    "have from a seed": (
        _insert(1002, 4, say(0.3, "have", 1002, other=1001, index=1)),
        {(L2, 4, A.SEED_SENT_HAVE)},
    ),
}


@pytest.mark.parametrize("edit, expected", CRAFTED.values(), ids=CRAFTED.keys())
def test_a_crafted_violation_is_named_at_its_line(tmp_path, edit, expected):
    logs = clean_logs()
    edit(logs)
    write_swarm(tmp_path, logs)
    assert findings(tmp_path) == expected
    assert A.main([str(tmp_path)]) == 1


@pytest.mark.parametrize("edit, expected", ADVISED.values(), ids=ADVISED.keys())
def test_what_the_course_allows_is_at_most_advice(tmp_path, edit, expected):
    logs = clean_logs()
    edit(logs)
    write_swarm(tmp_path, logs)
    assert findings(tmp_path) == expected
    assert A.main([str(tmp_path)]) == 0


def test_the_optimistic_interval_allows_the_slack(tmp_path):
    logs = clean_logs()
    logs[1001].insert(6, say(4.9, "optimistic", 1001, other=1002))  # 4.6 s after line 6; m 5, slack 0.5
    write_swarm(tmp_path, logs)
    assert findings(tmp_path) == set()
    config = load(tmp_path)
    log = A.read_log(tmp_path / L1, 1001)
    swarm = AuditedSwarm.of(config, {1001: log}, slack=0.2)
    assert [f.line for f in optimistic_changes_every_m_seconds(log, swarm)] == [7]


def test_a_finding_is_printed_as_file_line_rule_detail(tmp_path, capsys):
    logs = clean_logs()
    logs[1001][3] = say(0.2, "preferred", 1001, others="1002,1003")
    write_swarm(tmp_path, logs)
    assert A.main([str(tmp_path)]) == 1
    assert capsys.readouterr().out.splitlines()[1:] == [
        "log_peer_1001.log:4: more than k preferred neighbors: 2 preferred neighbors (1002,1003); k is 1",
        f"more than k preferred neighbors: required by the course: {quote('preferred')}",
        "peer 1001: 1 violation (seed, 2 pieces)",
        "peer 1002: OK (2 pieces, complete)",
        "peer 1003: OK (2 pieces, complete)",
        "audit: 1 violation (1 of 3 peers)",
    ]


def test_a_restart_is_told_and_what_does_not_fit_it_is_still_reported(tmp_path, capsys):
    logs = clean_logs()
    logs[1002] += [  # a second run: it dials again and starts counting from one
        say(5.0, "connect_to", 1002, other=1001),
        say(5.2, "downloaded", 1002, index=0, other=1001, count=1),
    ]
    write_swarm(tmp_path, logs)
    # 1001's log shows no second connection with 1002, and the second run never completes
    assert findings(tmp_path) == {(L2, 12, A.CONNECTION_TWICE), (L2, None, A.NO_COMPLETION)}
    assert A.main([str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[1:4] == [
        "log_peer_1002.log:12: peer 1002 restarted (new session) with 0 pieces (count 1 after 2)",
        "log_peer_1002.log:12: connection logged twice: with 1001, first on line 1; "
        "log_peer_1001.log shows 1 connection with 1002, this log 2",
        "log_peer_1002.log: no completion line: peer 1002 has hasFile 0 and ends with 1 of 2 pieces",
    ]
    assert "peer 1002: 2 violations (1 of 2 pieces, incomplete; restarted once)" in out


def test_a_have_from_a_peer_without_a_log_is_not_judged(tmp_path, capsys):
    logs = clean_logs()
    del logs[1003]
    write_swarm(tmp_path, logs)
    assert findings(tmp_path) == {(L3, None, A.MISSING_LOG)}
    assert A.main([str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert "log_peer_1003.log: missing log: peer 1003 is in PeerInfo.cfg but wrote no log" in out
    assert "peer 1003: 1 violation (0 of 2 pieces, incomplete)" in out


def test_logs_of_peers_not_in_peerinfo_are_advice(tmp_path, capsys):
    write_swarm(tmp_path, clean_logs())
    (tmp_path / "log_peer_1009.log").write_text(say(0, "complete", 1009) + "\n")
    (tmp_path / "log_peer_old.log").write_text("")
    assert findings(tmp_path) == {("log_peer_1009.log", None, A.STRAY_LOG), ("log_peer_old.log", None, A.STRAY_LOG)}
    assert A.main([str(tmp_path)]) == 0  # no peer of this swarm broke a rule: advice
    out = capsys.readouterr().out.splitlines()
    assert "log_peer_1009.log: advice: log for a peer not in PeerInfo.cfg: the audit does not read it" in out
    assert out[-1] == "audit: clean: 3 peers followed the protocol; 2 advice (our choices, not the course's: " \
        "they do not fail the audit)"


def test_an_unreadable_or_binary_log_is_a_finding_not_a_crash(tmp_path):
    write_swarm(tmp_path, clean_logs())
    (tmp_path / L2).unlink()
    (tmp_path / L2).mkdir()  # reading it fails whoever runs the test
    (tmp_path / L3).write_bytes(b"\x00\xff\xfe garbage\r\n" + (tmp_path / L1).read_bytes()[:40])
    found = findings(tmp_path)
    assert (L2, None, A.UNREADABLE_LOG) in found
    assert (L3, 1, A.NOT_A_SENTENCE) in found and (L3, 2, A.NOT_A_SENTENCE) in found
    assert A.main([str(tmp_path)]) == 1


def test_a_lenient_log_wraps_at_midnight_and_its_timing_is_still_checked(tmp_path):
    write_swarm(tmp_path, clean_logs())
    (tmp_path / L1).write_text(
        "[23:59:58] Peer 1001 is connected from Peer 1002.\n"
        "[23:59:59] Peer 1001 is connected from Peer 1003.\n"
        "[23:59:59] Peer 1001 has the optimistically unchoked neighbor 1002.\n"
        "[00:00:03] Peer 1001 has the optimistically unchoked neighbor 1003.\n"  # 4 s later: fine with 1 s stamps
        "[00:00:04] Peer 1001 has the optimistically unchoked neighbor 1002.\n"  # 1 s later: too soon
    )
    log = A.read_log(tmp_path / L1, 1001)
    swarm = AuditedSwarm.of(load(tmp_path), {1001: log})
    assert [f.line for f in optimistic_changes_every_m_seconds(log, swarm)] == [5]


# -- the command line --------------------------------------------------------------------------


def test_help_lists_the_rules(capsys):
    assert A.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: p2p-swarm audit" in out
    for words in ("SPEC §5 sentence", "makes a connection", "k (NumberOfPreferredNeighbors)",
                  "m\n    (OptimisticUnchokingInterval)", "rise by one", "one completion line",
                  "peer N restarted (new\nsession)", "'have' from X", "java.util.Date, ctime",
                  "A\n    time without a date is a violation, told once per log",
                  "exit status: 0 clean (advice alone too), 1 violations of the course found, 2"):
        assert words in out


def test_the_dispatcher_runs_the_audit(tmp_path, capsys):
    write_swarm(tmp_path, clean_logs())
    assert cli_main(["audit", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "audit: clean: 3 peers followed the protocol"


def test_usage_errors_exit_2(tmp_path, capsys):
    assert A.main([]) == 2
    assert A.main([str(tmp_path), "--bogus"]) == 2
    assert A.main([str(tmp_path / "nowhere")]) == 2
    assert "nowhere: not a directory" in capsys.readouterr().err


def test_a_config_error_is_one_line_and_exit_2(tmp_path, capsys):
    write_swarm(tmp_path, clean_logs())
    (tmp_path / "Common.cfg").write_text(COMMON.replace("PieceSize 16384", "PieceSize big"))
    assert A.main([str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"p2p-swarm audit: {tmp_path / 'Common.cfg'}:6: PieceSize must be a whole number, not 'big'"
    ]


def test_the_config_dir_defaults_to_work_dir_then_conf_then_here(tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    write_swarm(work, clean_logs())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert A.main([str(work)]) == 0
    assert f"with the config in {work} (WORK_DIR holds Common.cfg)" in capsys.readouterr().out

    for name in ("Common.cfg", "PeerInfo.cfg"):
        os.replace(work / name, elsewhere / name)
    assert A.main([str(work)]) == 0
    assert "with the config in . (the current directory)" in capsys.readouterr().out

    (elsewhere / "conf").mkdir()
    for name in ("Common.cfg", "PeerInfo.cfg"):
        os.replace(elsewhere / name, elsewhere / "conf" / name)
    assert A.main([str(work)]) == 0
    assert "with the config in conf (./conf exists)" in capsys.readouterr().out

    assert A.main([str(work), "--config-dir", str(elsewhere)]) == 2  # given, and empty
    assert capsys.readouterr().err.startswith(f"p2p-swarm audit: {elsewhere / 'Common.cfg'}: file not found")
