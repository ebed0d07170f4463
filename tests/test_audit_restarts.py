"""``p2p-swarm audit`` on logs of peers that restarted and appended a new session.

The logs are written by :class:`Script`, which plays a small swarm event by event and
writes every peer's SPEC §5 lines as our peer would: a starting peer dials every earlier
peer at once and the later ones dial it again, each piece is followed by a 'have' in
every connected neighbour's log, a kill drops the peer's connections (and may lose its
last lines), a restart resumes with the pieces given. Each test compares the complete
set of findings and of restart notes.
"""
from __future__ import annotations

import signal
import time
from collections.abc import Iterable
from pathlib import Path

import pytest
from support import free_ports, seed_bytes, start_peer, swarm_config, wait_for_peers, write_config, write_seed_files

from twisted_p2p.config import load
from twisted_p2p.eventlog import SENTENCES
from twisted_p2p.launcher import audit as A

SEED = 1001
IDS = (1001, 1002, 1003, 1004)
PIECES = 8
COMMON = f"""NumberOfPreferredNeighbors 2
UnchokingInterval 1
OptimisticUnchokingInterval 5
FileName TheFile.dat
FileSize {PIECES * 16384}
PieceSize 16384
"""
L3 = "log_peer_1003.log"


class Script:
    """A four-peer swarm (1001 the seed) played step by step into SPEC §5 logs."""

    def __init__(self, started: tuple[int, ...] = IDS) -> None:
        self.time = 0.0
        self.logs: dict[int, list[str]] = {peer: [] for peer in IDS}
        self.held = {peer: set(range(PIECES)) if peer == SEED else set() for peer in IDS}
        self.links: set[frozenset[int]] = set()
        self.unchoked: set[tuple[int, int]] = set()
        self.extra = {peer: 0 for peer in IDS}  # pieces counted twice
        for number, peer in enumerate(started):  # in the order of PeerInfo.cfg
            self.start(peer, started[:number])

    def say(self, me: int, kind: str, **fields: object) -> None:
        whole, millis = divmod(round(self.time * 1000), 1000)
        stamp = f"2024-05-01 10:{whole // 60:02d}:{whole % 60:02d}.{millis:03d}"
        self.logs[me].append(f"{stamp}: {SENTENCES[kind].format(me=me, **fields)}")
        self.time += 0.01

    def neighbours(self, me: int) -> list[int]:
        return sorted(other for link in self.links if me in link for other in link if other != me)

    def connect(self, dialler: int, listener: int) -> None:
        self.say(dialler, "connect_to", other=listener)
        self.say(listener, "connect_from", other=dialler)
        self.links.add(frozenset((dialler, listener)))

    def start(self, me: int, alive: Iterable[int] = IDS) -> None:
        """Dial every earlier peer of ``alive`` at once; the later ones (redialling) follow."""
        for other in alive:
            if other != me:
                self.connect(*((me, other) if other < me else (other, me)))

    def get(self, me: int, index: int, source: int) -> None:
        """``me`` downloads ``index`` from ``source`` and tells every neighbour."""
        assert index in self.held[source] and index not in self.held[me]
        if (me, source) not in self.unchoked:
            self.say(me, "unchoked", other=source)
            self.unchoked.add((me, source))
        self.held[me].add(index)
        self.say(me, "downloaded", index=index, other=source, count=len(self.held[me]) + self.extra[me])
        for other in self.neighbours(me):
            self.say(other, "have", other=me, index=index)
        if len(self.held[me]) == PIECES:
            self.say(me, "complete")

    def get_again(self, me: int, index: int, source: int) -> None:
        """``me`` takes ``index`` although it holds it, and counts it as one more piece."""
        self.held[me].discard(index)
        self.extra[me] += 1
        self.get(me, index, source)

    def rounds(self, count: int, peers: Iterable[int] = (1002, 1003, 1004)) -> None:
        """Each of ``peers`` in turn takes its lowest missing piece from the first neighbour that has it."""
        for _ in range(count):
            for me in peers:
                missing = [i for i in range(PIECES) if i not in self.held[me]]
                for index in missing:
                    source = next((o for o in self.neighbours(me) if index in self.held[o]), None)
                    if source is not None:
                        self.get(me, index, source)
                        break
            self.time += 0.2

    def kill(self, me: int, lost_lines: int = 0) -> None:
        """kill -9: connections drop without a line; the last ``lost_lines`` lines were never flushed."""
        del self.logs[me][len(self.logs[me]) - lost_lines:]
        self.links = {link for link in self.links if me not in link}
        self.unchoked = {pair for pair in self.unchoked if me not in pair}
        self.time += 1.0

    def restart(self, me: int, resumed: Iterable[int], alive: Iterable[int] = IDS) -> int:
        """Start ``me`` again holding ``resumed``; the line number its new session starts at."""
        self.held[me] = set(resumed)
        line = len(self.logs[me]) + 1
        self.start(me, alive)
        return line

    def finish(self) -> None:
        self.rounds(PIECES)

    def write(self, work: Path) -> Path:
        (work / "Common.cfg").write_text(COMMON)
        (work / "PeerInfo.cfg").write_text("".join(f"{p} localhost {6000 + p} {int(p == SEED)}\n" for p in IDS))
        for peer, lines in self.logs.items():
            (work / f"log_peer_{peer}.log").write_text("".join(line + "\n" for line in lines))
        return work


def audited(script: Script, work: Path) -> tuple[set[tuple[str, int | None, str]], list[str]]:
    """(findings as (file, line, rule), restart notes as printed)."""
    result = A.audit(script.write(work), load(work))
    return {(f.file, f.line, f.rule) for f in result.findings}, [str(note) for note in result.notes]


def test_the_script_without_restarts_is_clean(tmp_path):
    script = Script()
    script.finish()
    assert audited(script, tmp_path) == (set(), [])


def test_a_clean_restart_mid_download_is_reported_as_a_restart(tmp_path, capsys):
    script = Script()
    script.rounds(3)
    script.kill(1003)
    script.rounds(1, peers=(1002, 1004))
    line = script.restart(1003, script.held[1003])  # resumed all 3 pieces
    script.finish()
    assert audited(script, tmp_path) == (set(), [
        f"{L3}:{line}: peer 1003 restarted (new session) with 3 pieces (1001,1002,1004 connected at once)"
    ])
    assert A.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == [
        f"{L3}:{line}: peer 1003 restarted (new session) with 3 pieces (1001,1002,1004 connected at once)",
        "peer 1001: OK (seed, 8 pieces)",
        "peer 1002: OK (8 pieces, complete)",
        "peer 1003: OK (8 pieces, complete; restarted once)",
        "peer 1004: OK (8 pieces, complete)",
        "audit: clean: 4 peers followed the protocol",
    ]


def test_a_restart_whose_last_lines_were_lost_counts_on_from_more(tmp_path):
    script = Script()
    script.rounds(2)
    script.get(1003, 5, 1001)  # its 'have' reaches the neighbours, but 1003's own line is lost:
    script.kill(1003, lost_lines=1)
    assert "has downloaded the piece 5" not in "\n".join(script.logs[1003])
    line = script.restart(1003, {0, 1, 5})  # the journal holds piece 5
    script.get(1002, 5, 1003)  # and a neighbour takes piece 5 from it
    script.finish()
    assert audited(script, tmp_path) == (set(), [
        f"{L3}:{line}: peer 1003 restarted (new session) with 3 pieces (1001,1002,1004 connected at once; "
        "count 4 after 2)"
    ])


@pytest.mark.parametrize(
    "rounds, victim, resumed, told",
    [
        (5, 1003, {0, 1}, "with 2 pieces (1001,1002,1004 connected at once; count 3 after 5)"),
        (4, 1003, set(), "with 0 pieces (1001,1002,1004 connected at once; count 1 after 4)"),
        (PIECES, 1004, set(), "with 0 pieces (1001,1002,1003 connected at once; count 1 after 8)"),
    ],
    ids=["a crash kept two pieces", "another implementation starts from zero", "from zero after completing"],
)
def test_a_restart_with_fewer_pieces_downloads_them_again(tmp_path, rounds, victim, resumed, told):
    script = Script()
    script.rounds(rounds)
    script.kill(victim)
    line = script.restart(victim, resumed)
    script.finish()
    again = [text for text in script.logs[victim][line:] if "has downloaded the piece" in text]
    assert len(again) == PIECES - len(resumed)
    assert audited(script, tmp_path) == (set(), [
        f"log_peer_{victim}.log:{line}: peer {victim} restarted (new session) {told}"
    ])


def test_a_neighbour_that_restarts_or_reconnects_is_not_a_restart_of_ours(tmp_path):
    script = Script()
    script.rounds(2)
    script.kill(1004)  # the neighbour restarts: 1003 is dialled again by it
    line = script.restart(1004, script.held[1004])
    script.rounds(1)
    script.links.discard(frozenset((1002, 1003)))  # a dropped connection, dialled again
    script.connect(1003, 1002)
    script.finish()
    log = "\n".join(script.logs[1003])
    assert log.count("is connected from Peer 1004.") == 2 and log.count("makes a connection to Peer 1002.") == 2
    assert audited(script, tmp_path) == (set(), [
        f"log_peer_1004.log:{line}: peer 1004 restarted (new session) with 2 pieces (1001,1002,1003 connected at once)"
    ])


def test_a_new_session_begins_at_its_first_connection_even_one_the_old_run_never_made(tmp_path):
    script = Script(started=(1001, 1003, 1004))
    script.rounds(2, peers=(1003, 1004))
    script.kill(1003)
    script.start(1002, (1001, 1004))  # 1002 starts while 1003 is down
    line = script.restart(1003, script.held[1003], alive=(1002, 1001, 1004))  # 1002 answers first
    assert script.logs[1003][line - 1].endswith("Peer 1003 makes a connection to Peer 1002.")
    script.finish()
    assert audited(script, tmp_path) == (set(), [
        f"{L3}:{line}: peer 1003 restarted (new session) with 2 pieces (1001,1002,1004 connected at once)"
    ])


# -- genuine violations are still found ----------------------------------------------------------


def _line_of(script: Script, peer: int, text: str) -> int:
    (number,) = [n for n, line in enumerate(script.logs[peer], start=1) if line.endswith(text)]
    return number


def _count_becomes(script: Script, peer: int, old: int, new: int) -> int:
    """Change the count ``old`` in ``peer``'s log to ``new``; the line it is on."""
    at = _line_of(script, peer, f"Now the number of pieces it has is {old}.")
    script.logs[peer][at - 1] = script.logs[peer][at - 1].replace(f"is {old}.", f"is {new}.")
    return at


def test_a_count_that_jumps_without_a_restart_is_a_violation(tmp_path):
    script = Script()
    script.finish()
    at = _count_becomes(script, 1003, 3, 5)
    after = _line_of(script, 1003, "Now the number of pieces it has is 4.")
    assert audited(script, tmp_path) == ({(L3, at, A.COUNT_NOT_RISING), (L3, after, A.COUNT_NOT_RISING)}, [])


def test_a_count_jump_after_a_neighbours_reconnection_is_still_a_violation(tmp_path):
    script = Script()
    script.rounds(2)
    script.links.discard(frozenset((1001, 1003)))
    script.connect(1003, 1001)  # 1003 dials the seed again; 1002 and 1004 go on as before
    script.finish()
    at = _count_becomes(script, 1003, 3, 6)
    after = _line_of(script, 1003, "Now the number of pieces it has is 4.")
    assert audited(script, tmp_path) == ({(L3, at, A.COUNT_NOT_RISING), (L3, after, A.COUNT_NOT_RISING)}, [])


def _twice_in_the_new_session(script: Script) -> str:
    script.get(1003, 3, 1001)
    script.get_again(1003, 3, 1001)  # a late answer accepted although the piece was there
    return "piece 3 from 1001. Now the number of pieces it has is 5."


def _again_from_before_the_restart(script: Script) -> str:
    script.get_again(1003, 0, 1001)  # piece 0 came in the first session, and the count does not go down
    return "piece 0 from 1001. Now the number of pieces it has is 4."


@pytest.mark.parametrize("download_twice", [_twice_in_the_new_session, _again_from_before_the_restart],
                         ids=["within the new session", "across a restart without a loss"])
def test_a_piece_downloaded_twice_after_a_restart_is_a_violation(tmp_path, download_twice):
    script = Script()
    script.rounds(3)
    script.kill(1003)
    line = script.restart(1003, script.held[1003])
    twice = download_twice(script)
    script.finish()
    found, notes = audited(script, tmp_path)
    assert notes == [f"{L3}:{line}: peer 1003 restarted (new session) with 3 pieces (1001,1002,1004 connected at once)"]
    assert found == {
        (L3, _line_of(script, 1003, twice), A.DOWNLOADED_TWICE),
        (L3, _line_of(script, 1003, "Now the number of pieces it has is 9."), A.COUNT_TOO_HIGH),  # counted twice
    }


def test_a_reconnection_the_neighbours_log_does_not_show_is_a_violation(tmp_path):
    script = Script()
    script.rounds(3)
    script.kill(1003)
    line = script.restart(1003, script.held[1003])
    script.finish()
    second = [n for n, text in enumerate(script.logs[1001]) if text.endswith("is connected from Peer 1003.")][1]
    del script.logs[1001][second]
    found, notes = audited(script, tmp_path)
    assert len(notes) == 1
    assert found == {(L3, line, A.CONNECTION_TWICE)}


def test_the_optimistic_interval_is_checked_within_a_session_not_across_it(tmp_path):
    script = Script()
    script.rounds(1)
    script.say(1003, "optimistic", other=1004)
    script.kill(1003)
    script.restart(1003, script.held[1003])
    script.say(1003, "optimistic", other=1002)  # about 1 s after the last one, but in a new session
    script.time += 1.0
    script.say(1003, "optimistic", other=1004)  # 1 s later in the same session: too soon
    too_soon = len(script.logs[1003])
    script.finish()
    found, notes = audited(script, tmp_path)
    assert len(notes) == 1
    assert found == {(L3, too_soon, A.OPTIMISTIC_TOO_SOON)}


# -- a real peer killed and restarted ------------------------------------------------------------


def _wait_for_log(log: Path, sentences: list[str], downloads: int, limit: float = 30) -> None:
    """Until ``log`` holds every sentence and ``downloads`` download lines."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        if all(sentence in text for sentence in sentences) and text.count("has downloaded the piece") >= downloads:
            return
        time.sleep(0.02)
    raise AssertionError(f"{log.name} never showed {sentences} and {downloads} downloads")


def test_a_real_leecher_killed_mid_download_and_restarted_is_reported_as_a_restart(tmp_path, capsys):
    ids = [1001, 1002, 1003, 1004]
    config = swarm_config(ids, [1001], 1_200_000, 16384, k=3, p=1, m=2, ports=free_ports(4))
    write_config(tmp_path, config)
    write_seed_files(tmp_path, config, seed_bytes(config.common.file_size))
    processes = {1001: start_peer(tmp_path, 1001, "--upload-rate", "400000")}  # a download of seconds
    try:
        for peer_id in ids[1:]:
            processes[peer_id] = start_peer(tmp_path, peer_id)
        log = tmp_path / L3
        _wait_for_log(log, ["Peer 1003 makes a connection to Peer 1001.", "Peer 1003 makes a connection to Peer 1002."],
                      downloads=8)
        processes[1003].send_signal(signal.SIGKILL)
        processes[1003].wait(timeout=10)
        first_new_line = len(log.read_text().splitlines()) + 1
        processes[1003] = start_peer(tmp_path, 1003)
        outputs = wait_for_peers(processes, limit=30)
    finally:
        for process in processes.values():  # each by its own pid, if a step above failed
            if process.poll() is None:
                process.kill()
                process.wait()
    for peer_id, process in processes.items():
        assert process.returncode == 0, outputs[peer_id]
    assert A.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    (note,) = [line for line in out if "restarted" in line and line.startswith("log_peer_")]
    assert note.startswith(f"{L3}:{first_new_line}: peer 1003 restarted (new session) with ")
    assert "peer 1003: OK (74 pieces, complete; restarted once)" in out, "\n".join(out)
