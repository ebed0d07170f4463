"""``p2p-swarm audit --rubric``: for each rubric item, the log lines that show it and why.

The logs are a small hand-written swarm that the audit finds clean and that holds every
kind of line, so each item has its evidence; the tests then take evidence away and
check that the rubric says so, and that a log that is missing or unreadable is one line,
not a crash.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from twisted_p2p.config import load
from twisted_p2p.eventlog import SENTENCES
from twisted_p2p.launcher import audit as A
from twisted_p2p.launcher.audit import rubric as rubric_module
from twisted_p2p.launcher.audit.rubric import rubric
from twisted_p2p.launcher.cli import main as cli_main

COMMON = """NumberOfPreferredNeighbors 1
UnchokingInterval 1
OptimisticUnchokingInterval 2
FileName TheFile.dat
FileSize 32768
PieceSize 16384
"""
PEERS = "1001 localhost 6001 1\n1002 localhost 6002 0\n1003 localhost 6003 0\n"
L1, L2, L3 = "log_peer_1001.log", "log_peer_1002.log", "log_peer_1003.log"


def say(seconds: float, kind: str, me: int, **fields: object) -> str:
    """One SPEC §5 line, ``seconds`` after 10:00 on a fixed day."""
    whole, millis = divmod(round(seconds * 1000), 1000)
    return f"2024-05-01 10:00:{whole:02d}.{millis:03d}: {SENTENCES[kind].format(me=me, **fields)}"


def swarm_logs() -> dict[int, list[str]]:
    """Two pieces, seed 1001, k = 1, p = 1 s, m = 2 s. 1001 prefers 1002 then 1003 one
    second later, and picks 1003 then 1002 optimistically two seconds apart; 1002 gets
    piece 0 from the seed and piece 1 from 1003, which gets piece 0 from 1002."""
    return {
        1001: [
            say(0.00, "connect_from", 1001, other=1002),
            say(0.05, "connect_from", 1001, other=1003),
            say(0.10, "interested", 1001, other=1002),  # line 3: the first 'interested'
            say(0.10, "preferred", 1001, others="1002"),
            say(0.20, "interested", 1001, other=1003),
            say(0.20, "optimistic", 1001, other=1003),  # line 6
            say(0.55, "have", 1001, other=1002, index=0),  # line 7: the first 'have'
            say(1.10, "preferred", 1001, others="1003"),  # line 8: 1.000 s after line 4
            say(2.20, "optimistic", 1001, other=1002),  # line 9: 2.000 s after line 6
            say(2.50, "have", 1001, other=1003, index=1),
            say(2.75, "have", 1001, other=1002, index=1),
            say(2.80, "not_interested", 1001, other=1002),  # line 12: 1002 is done
            say(2.90, "have", 1001, other=1003, index=0),
            say(2.95, "not_interested", 1001, other=1003),  # line 14: the last line of the swarm
        ],
        1002: [
            say(0.00, "connect_to", 1002, other=1001),
            say(0.05, "connect_from", 1002, other=1003),
            say(0.10, "not_interested", 1002, other=1001),  # line 3: the first 'not interested'
            say(0.15, "unchoked", 1002, other=1001),  # line 4
            say(0.50, "downloaded", 1002, index=0, other=1001, count=1),  # line 5
            say(0.60, "interested", 1002, other=1003),
            say(0.60, "preferred", 1002, others="1003"),
            say(1.10, "choked", 1002, other=1001),  # line 8
            say(2.50, "have", 1002, other=1003, index=1),
            say(2.55, "unchoked", 1002, other=1003),
            say(2.70, "downloaded", 1002, index=1, other=1003, count=2),  # line 11
            say(2.70, "complete", 1002),  # line 12
            say(2.90, "have", 1002, other=1003, index=0),
        ],
        1003: [
            say(0.05, "connect_to", 1003, other=1001),
            say(0.05, "connect_to", 1003, other=1002),
            say(0.10, "not_interested", 1003, other=1001),
            say(0.10, "not_interested", 1003, other=1002),
            say(0.20, "unchoked", 1003, other=1001),
            say(0.55, "have", 1003, other=1002, index=0),
            say(0.60, "unchoked", 1003, other=1002),
            say(2.45, "downloaded", 1003, index=1, other=1001, count=1),
            say(2.50, "interested", 1003, other=1002),
            say(2.50, "preferred", 1003, others="1002"),
            say(2.75, "have", 1003, other=1002, index=1),
            say(2.80, "not_interested", 1003, other=1002),
            say(2.85, "downloaded", 1003, index=0, other=1002, count=2),
            say(2.85, "complete", 1003),  # line 14: the last completion
        ],
    }


def write_swarm(work: Path, logs: dict[int, list[str]]) -> Path:
    work.mkdir(exist_ok=True)
    (work / "Common.cfg").write_text(COMMON)
    (work / "PeerInfo.cfg").write_text(PEERS)
    for peer_id, lines in logs.items():
        (work / f"log_peer_{peer_id}.log").write_text("".join(line + "\n" for line in lines))
    return work


def rubric_of(work: Path) -> list[str]:
    return rubric(A.audit(work, load(work)))


def items(lines: list[str]) -> dict[int, list[str]]:
    """The rubric's lines under each numbered item heading."""
    found: dict[int, list[str]] = {}
    for line in lines:
        heading = re.match(r"(\d)\. ", line)
        if heading:
            found[int(heading[1])] = [line]
        elif found and line:
            found[max(found)].append(line)
    return found


def shown(section: list[str]) -> list[str]:
    """The log lines an item shows, as 'file:line', in order."""
    return [m[1] for line in section if (m := re.match(r"   (log_peer_\d+\.log:\d+)  ", line))]


def explained(section: list[str], where: str) -> str:
    """The explanation under the log line ``where``, its wrapped lines joined."""
    at = next(n for n, line in enumerate(section) if line.startswith(f"   {where}  "))
    text = []
    for line in section[at + 1:]:
        if not line.startswith(" " * 7):
            break
        text.append(line.strip())
    return " ".join(text)


def not_shown(section: list[str]) -> list[str]:
    """Each 'not shown:' line of an item, its wrapped lines joined."""
    said, joined = [], "\n".join(section)
    for match in re.finditer(r"^   not shown: (.*(?:\n {7}.*)*)", joined, re.MULTILINE):
        said.append(" ".join(part.strip() for part in match[1].split("\n")))
    return said


@pytest.fixture
def swarm(tmp_path: Path) -> Path:
    return write_swarm(tmp_path, swarm_logs())


def test_the_swarm_is_clean_and_every_item_has_its_evidence(swarm):
    assert A.audit(swarm, load(swarm)).clean
    sections = items(rubric_of(swarm))
    assert [sections[n][0].split(":")[0] for n in (1, 2, 3, 4)] == [
        "1. start-up (35%)", "2. after connection (30%)", "3. file exchange (30%)", "4. stop (5%)"]
    assert {n: shown(section) for n, section in sections.items()} == {
        1: [f"{L1}:1", f"{L2}:1", f"{L3}:1", f"{L3}:2", f"{L3}:14"],
        2: [f"{L1}:3", f"{L2}:3", f"{L1}:4", f"{L2}:4", f"{L1}:8", f"{L2}:8", f"{L1}:6", f"{L3}:5", f"{L1}:9"],
        3: [f"{L1}:7", f"{L2}:5", f"{L2}:11", f"{L2}:12", f"{L1}:12"],
        4: [f"{L2}:12", f"{L3}:14"],
    }
    assert all(not not_shown(section) for section in sections.values())


def test_each_line_is_shown_as_the_log_has_it(swarm):
    files = {name: (swarm / name).read_text().splitlines() for name in (L1, L2, L3)}
    printed = [line for line in rubric_of(swarm) if re.match(r"   log_peer_", line)]
    assert len(printed) == 21
    for line in printed:
        where, text = line.strip().split("  ", 1)
        name, number = where.split(":")
        assert files[name][int(number) - 1] == text


def test_each_line_says_what_it_shows(swarm):
    sections = items(rubric_of(swarm))
    one, two, three, four = (sections[n] for n in (1, 2, 3, 4))
    assert "k = 1, p = 1 s, m = 2 s, TheFile.dat of 32768 bytes = 2 pieces of 16384; PeerInfo.cfg: 3 peers, " \
           "seed 1001" in " ".join(line.strip() for line in one)
    assert explained(one, f"{L1}:1") == ("1001 is listed first: it dials no one; the later peers connect to it "
                                         "(is connected from 1002, 1003 on lines 1, 2)")
    assert explained(one, f"{L2}:1") == ("1002 makes a TCP connection to every peer listed before it (1001); "
                                         f"the other side logs 'is connected from' on {L1}:1")
    assert explained(one, f"{L3}:1") == ""  # the explanation follows the peer's last connection line
    assert explained(one, f"{L3}:2") == ("1003 makes a TCP connection to every peer listed before it (1001, 1002); "
                                         f"the other side logs 'is connected from' on {L1}:2, {L2}:2")
    assert explained(one, f"{L3}:14") == ("the last completion in the swarm (at +2.850 s); the other logs go on to "
                                          "it or later (their last lines: 1001 at +2.950 s, 1002 at +2.900 s), so "
                                          "they stopped only when every peer was done")
    assert explained(two, f"{L1}:3") == "1002 wants a piece 1001 has (seen in its bitfield or a 'have')"
    assert explained(two, f"{L2}:3") == "1001 needs none of 1002's pieces (a seed)"
    assert explained(two, f"{L1}:4") == ("1001 chooses its preferred neighbors (1; k = 1); 1001 logs 2 such lines, "
                                         "1 of 1 gaps a whole number of p = 1 s (within 0.1 s)")
    assert explained(two, f"{L2}:4") == "1001 unchoked 1002: newly preferred"
    assert explained(two, f"{L1}:8") == "1.000 s after its previous choice (line 4): p = 1 s"
    assert explained(two, f"{L2}:8") == "1001 choked 1002: no longer preferred, nor optimistic 1003 unchoked " \
                                        "already: no 'unchoke' is sent again"
    assert explained(two, f"{L1}:6") == ("1001 chooses its optimistically unchoked neighbor; 1001 logs 2 such lines, "
                                         "1 of 1 gaps a whole number of m = 2 s (within 0.1 s)")
    assert explained(two, f"{L3}:5") == "1001 unchoked 1003: the optimistically unchoked neighbor"
    assert explained(two, f"{L1}:9") == ("2.000 s after its previous choice (line 6): m = 2 s no 'is unchoked by "
                                         "1001' line near this time in the log of 1002")  # as these logs have it
    assert explained(three, f"{L1}:7") == f"1002 tells its neighbors it now has piece 0 (downloaded on {L2}:5)"
    assert explained(three, f"{L2}:5") == "1002's first piece: piece 0 from 1001, count 1"
    assert explained(three, f"{L2}:11") == ("its last piece: count 2 of 2, one more per piece, 2 pieces from "
                                            "1001 (1), 1003 (1)")
    assert explained(three, f"{L2}:12") == "1002 has all 2 pieces: the complete file"
    assert explained(three, f"{L1}:12") == "1002 needs nothing more from 1001 now that it has every piece"
    assert explained(four, f"{L2}:12") == "peer 1002 complete at +2.700 s"
    assert explained(four, f"{L3}:14") == ("peer 1003 complete at +2.850 s: "
                                           "the last in the swarm, now every peer has the file")


def test_what_the_event_log_never_holds_is_said_with_how_to_show_it(swarm):
    sections = items(rubric_of(swarm))
    two = " ".join(line.strip() for line in sections[2])
    assert "note: the handshake and the bitfield are not in the event log. The 'makes a connection' / " \
           "'is connected from' lines of item 1 are written once the handshake checked out" in two
    assert "diagnostic log" in two and "sudo tcpdump -A -i any tcp port 6001" in two
    assert "note: 'request' is not in the event log" in " ".join(line.strip() for line in sections[3])
    assert "note: peer 1001 is a seed (hasFile 1)" in sections[4][1]
    assert sections[4][-1].startswith("   note: exiting is not in the event log")


def _drop(**lines: tuple[int, ...]) -> Callable[[dict[int, list[str]]], None]:
    """Remove lines by number: ``_drop(p1001=(6, 9))``."""
    def edit(logs: dict[int, list[str]]) -> None:
        for peer, numbers in lines.items():
            peer_id = int(peer[1:])
            logs[peer_id] = [text for n, text in enumerate(logs[peer_id], 1) if n not in numbers]
    return edit


@pytest.mark.parametrize(
    "edit, said",
    [
        (_drop(p1003=(2,)), {1: [f"{L3} has no 'Peer 1003 makes a connection to Peer N.' for N = 1002"]}),
        (_drop(p1001=(1, 2)), {1: ["1001 is listed first and no peer connects to it"]}),
        (_drop(p1002=(13,)), {1: [f"{L2} ends 0.150 s before it (line 12): the log does not show peer 1002 "
                                  "waiting for every peer"]}),
        (_drop(p1001=(3, 5), p1002=(6,), p1003=(9,)), {2: ["no 'interested' line in any log"]}),
        (_drop(p1001=(6, 9)), {2: ["no 'optimistically unchoked neighbor' line with a readable time in any log (one "
                                   "is written when the choice changes; the swarm may have ended before one was "
                                   "needed: a larger file, a smaller k or 'p2p-swarm run --demo-file', which paces "
                                   "the swarm, shows it)"]}),
        (_drop(p1001=(9,)), {2: ["no log has two 'optimistically unchoked neighbor' lines in one run, so there is "
                                 "no interval to compare with m"]}),
        (_drop(p1001=(12,), p1003=(12,)), {3: ["no log has a 'not interested' from 1002 after it completed"]}),
        (_drop(p1002=(12,)), {3: [f"{L2} has no completion line"],
                              4: ["peer 1002 has no completion line (it ends with 2 of 2 pieces)"]}),
        (_drop(p1003=(14,)), {4: ["peer 1003 has no completion line (it ends with 2 of 2 pieces)"]}),
    ],
)
def test_missing_evidence_is_said_in_its_item(tmp_path, edit, said):
    logs = swarm_logs()
    edit(logs)
    sections = items(rubric_of(write_swarm(tmp_path, logs)))
    assert {n: not_shown(section) for n, section in sections.items()} == {n: said.get(n, []) for n in (1, 2, 3, 4)}


def test_no_completion_anywhere_is_said_for_start_up_and_stop(tmp_path):
    logs = swarm_logs()
    _drop(p1002=(12,), p1003=(14,))(logs)
    sections = items(rubric_of(write_swarm(tmp_path, logs)))
    assert "no completion line with a readable time in any log" in not_shown(sections[1])[0]
    assert not_shown(sections[4]) == ["peer 1002 has no completion line (it ends with 2 of 2 pieces)",
                                      "peer 1003 has no completion line (it ends with 2 of 2 pieces)"]


def test_the_choices_shown_are_those_of_the_peer_with_most_and_a_choice_between_rounds_is_said(tmp_path):
    logs = swarm_logs()
    logs[1003].append(say(3.50, "preferred", 1003, others="1001"))  # 1.000 s after its line 10
    logs[1003].append(say(4.50, "preferred", 1003, others="1002"))
    sections = items(rubric_of(write_swarm(tmp_path / "a", logs)))
    assert shown(sections[2])[2:6] == [f"{L3}:10", f"{L2}:10", f"{L3}:15", f"{L3}:16"]  # 3: more than 1001's 2
    assert explained(sections[2], f"{L2}:10") == "1003 unchoked 1002: newly preferred"
    assert explained(sections[2], f"{L3}:15") == ("1.000 s after its previous choice (line 10): p = 1 s no 'is "
                                                  "unchoked by 1003' line near this time in the log of 1001")
    assert not_shown(sections[2]) == []
    logs[1003][-1] = say(3.80, "preferred", 1003, others="1002")  # 0.300 s after the one before: off the rounds
    sections = items(rubric_of(write_swarm(tmp_path / "b", logs)))
    assert explained(sections[2], f"{L3}:16") == (
        "0.300 s after its previous choice (line 15): not a whole number of p = 1 s rounds: a choice made "
        "between rounds no 'is unchoked by 1003' line near this time in the log of 1002")
    assert not_shown(sections[2]) == ["1 of 1003's 2 gaps are not whole rounds (e.g. 0.300 s): the log shows "
                                      "choices between the p-second rounds"]


def test_a_gap_of_several_rounds_is_a_round_with_no_change(tmp_path):
    logs = swarm_logs()
    logs[1001][7] = say(3.10, "preferred", 1001, others="1003")  # 3.000 s after line 4
    logs[1001] = sorted(logs[1001], key=lambda line: line[:23])
    sections = items(rubric_of(write_swarm(tmp_path, logs)))
    line = next(n for n, text in enumerate(logs[1001], 1) if "preferred neighbors 1003" in text)
    assert explained(sections[2], f"{L1}:{line}") == (
        "3.000 s after its previous choice (line 4): 3 rounds of p = 1 s (no change at the rounds between) no 'is "
        "unchoked by 1001' line near this time in the log of 1003")  # 1002 had replaced it as optimistic


def test_the_downloads_shown_are_of_the_leecher_with_the_most_sources(tmp_path):
    logs = swarm_logs()
    logs[1002][10] = say(2.70, "downloaded", 1002, index=1, other=1001, count=2)  # both pieces from the seed
    three = items(rubric_of(write_swarm(tmp_path, logs)))[3]
    assert shown(three) == [f"{L1}:7", f"{L3}:8", f"{L3}:13", f"{L3}:14", f"{L1}:14"]
    assert explained(three, f"{L3}:13") == ("its last piece: count 2 of 2, one more per piece, 2 pieces from "
                                            "1001 (1), 1002 (1)")


def test_a_peer_that_dials_many_shows_the_first_lines_and_the_rest_by_number(swarm, monkeypatch):
    monkeypatch.setattr(rubric_module, "SHOWN_PER_PEER", 1)
    one = items(rubric_of(swarm))[1]
    assert shown(one) == [f"{L1}:1", f"{L2}:1", f"{L3}:1", f"{L3}:14"]
    assert explained(one, f"{L3}:1") == ("1003 makes a TCP connection to every peer listed before it (1001, 1002), "
                                         f"the rest on lines 2; the other side logs 'is connected from' on {L1}:2, "
                                         f"{L2}:2")


def test_missing_unreadable_and_garbage_logs_are_one_line_each(tmp_path, capsys):
    write_swarm(tmp_path, swarm_logs())
    (tmp_path / L2).unlink()
    (tmp_path / L3).unlink()
    (tmp_path / L3).mkdir()  # reading it fails whoever runs the test
    (tmp_path / L1).write_bytes(b"\x00\xff\xfe garbage\r\nnot a sentence\n")
    assert A.main(["--rubric", str(tmp_path)]) == 1
    sections = items(capsys.readouterr().out.splitlines())
    assert not_shown(sections[1]) == [
        f"{L1}: no line is a sentence of its peer: nothing of peer 1001 can be shown",
        f"{L2}: missing log: nothing of peer 1002 can be shown",
        f"{L3}: unreadable log: nothing of peer 1003 can be shown",
        "no completion line with a readable time in any log, so the logs cannot show the peers staying until "
        "every peer is done",
    ]
    assert not_shown(sections[3])[-1] == "no log has a 'has downloaded the piece' line"
    assert not_shown(sections[4]) == [f"{L2}: missing log: nothing of peer 1002 can be shown",
                                      f"{L3}: unreadable log: nothing of peer 1003 can be shown"]
    assert all(not shown(section) for section in sections.values())


def test_a_line_in_another_time_format_is_shown_without_inventing_its_time(tmp_path):
    logs = swarm_logs()
    logs[1002] = [f"[{line[11:19]}] {line[25:]}" for line in logs[1002]]  # as some Java peers write
    sections = items(rubric_of(write_swarm(tmp_path, logs)))
    assert f"   {L2}:1  [time as in the log]: Peer 1002 makes a connection to Peer 1001." in sections[1]


def test_rubric_then_the_usual_audit_through_the_command_line(swarm, capsys):
    assert A.main([str(swarm)]) == 0
    plain = capsys.readouterr().out.splitlines()
    assert not any(line.startswith("rubric:") for line in plain)
    assert cli_main(["audit", "--rubric", str(swarm)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == plain[0] and out[1].startswith("rubric: each item with the log lines that show it")
    assert out[-len(plain) + 1:] == plain[1:]  # the verdicts follow the rubric unchanged
    assert out[-len(plain)] == ""
    assert [line for line in out if re.match(r"\d\. ", line)] == [line for line in rubric_of(swarm)
                                                                   if re.match(r"\d\. ", line)]


def test_rubric_keeps_the_exit_status_of_the_audit(tmp_path, capsys):
    logs = swarm_logs()
    _drop(p1003=(2,))(logs)
    write_swarm(tmp_path, logs)
    assert A.main(["--rubric", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "4. stop (5%)" in out
    assert out.splitlines()[-1] == "audit: 1 violation (1 of 3 peers)"
    assert A.main(["--rubric", str(tmp_path / "nowhere")]) == 2


def test_help_explains_rubric(capsys):
    assert A.main(["--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--rubric first print, for each item a grader scores (start-up, after connection, file exchange, " \
           "stop), a few log lines that show it as FILE:LINE and the line" in help_text


def test_the_rubric_as_a_page_holds_the_same_lines(swarm, tmp_path, capsys):
    page = tmp_path / "rubric.html"
    assert cli_main(["audit", "--rubric", "--html", str(page), str(swarm)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == f"rubric page: {page}"
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html
    assert html.count('<span class="item">1. start-up (35%)') == 1
    assert f'<span class="ref">{L1}:4</span>' in html
    text = re.sub(r"<[^>]+>", "", html.split("<pre>", 1)[1].split("</pre>", 1)[0])
    import html as html_module
    lines = html_module.unescape(text).splitlines()
    assert [line for line in lines if line.strip()] == [line for line in printed[1:-1] if line.strip()]


def test_html_without_rubric_is_a_usage_error(swarm, tmp_path, capsys):
    assert cli_main(["audit", "--html", str(tmp_path / "x.html"), str(swarm)]) == 2
    assert "give --rubric too" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()
