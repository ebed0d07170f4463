"""The launcher's pure parts: progress from event lines, host decision, commands, work dir, report."""
from __future__ import annotations

import io
import ipaddress
import json
import socket
import struct
import sys

import pytest
from support import swarm_config, write_config

from twisted_p2p.config import ConfigError, PeerInfo, load
from twisted_p2p.eventlog import SENTENCES, format_time
from twisted_p2p.launcher import plan
from twisted_p2p.launcher.display import Display
from twisted_p2p.launcher.progress import RATE_WINDOW, LineBuffer, PeerProgress, render_line
from twisted_p2p.launcher.remote import Ssh
from twisted_p2p.launcher.runend import check_files
from twisted_p2p.launcher.runreport import PeerResult, build_report, summary_table, write_report


def load_written(tmp_path, config, hosts):
    """``config`` with its peers on ``hosts``, written to tmp_path/conf and loaded back."""
    import dataclasses

    peers = tuple(dataclasses.replace(peer, host=host) for peer, host in zip(config.peers, hosts))
    write_config(tmp_path / "conf", dataclasses.replace(config, peers=peers))
    return load(tmp_path / "conf")

START = 1_700_000_000.0


def line(seconds: float, kind: str, **fields: object) -> str:
    """A SPEC §5 log line ``seconds`` after START."""
    return f"{format_time(START + seconds)}: {SENTENCES[kind].format(**fields)}"


def test_line_buffer_keeps_a_partial_line_until_its_newline():
    buffer = LineBuffer()
    assert buffer.feed(b"one\ntw") == ["one"]
    assert buffer.feed(b"o\nthree") == ["two"]
    assert buffer.flush() == ["three"]
    assert buffer.flush() == []


def test_progress_follows_downloads_chokes_and_completion():
    peer = PeerProgress(1002, "localhost", total=3, seed=False, start=START)
    lines = [
        line(0.5, "connect_to", me=1002, other=1001),
        line(0.6, "connect_from", me=1002, other=1003),
        line(0.7, "unchoked", me=1002, other=1001),
        line(1.0, "downloaded", me=1002, index=2, other=1001, count=1),
        line(1.1, "choked", me=1002, other=1001),
        line(1.2, "unchoked", me=1002, other=1003),
        line(1.5, "downloaded", me=1002, index=0, other=1003, count=2),
        line(2.0, "downloaded", me=1002, index=1, other=1001, count=3),
        line(2.0, "complete", me=1002),
        line(2.1, "downloaded", me=1005, index=1, other=1001, count=3),  # another peer's line
        "twistd says something",
    ]
    kinds = [event.kind if event else None for event in map(peer.feed_line, lines)]
    assert kinds[-2:] == [None, None]
    assert peer.held == 3
    assert dict(peer.received_from) == {1001: 2, 1003: 1}
    assert (peer.unchoked_count, len(peer.unchoked_by)) == (1, 2)
    assert peer.completed_at == pytest.approx(2.0, abs=0.002)
    assert [held for _, held in peer.timeline] == [0, 1, 2, 3]
    assert [count for _, count in peer.unchoke_timeline] == [0, 1, 0, 1]
    assert peer.sources(now=2.0) == [1001, 1003]
    assert peer.rate(now=2.0) == pytest.approx(3 / RATE_WINDOW)
    later = 1.6 + RATE_WINDOW
    assert peer.sources(now=later) == [1001]  # the downloads at 1.0 and 1.5 left the window
    assert peer.rate(now=later) == pytest.approx(1 / RATE_WINDOW)
    assert peer.pieces == {2: 1001, 0: 1003, 1: 1001}
    assert [text for _, text in peer.lines] == [text for text in lines[:9]]
    assert peer.lines[0][0] == pytest.approx(0.5, abs=0.002)


def test_received_messages_are_skipped_unread():
    peer = PeerProgress(1002, "localhost", total=3, seed=False, start=START)
    for kind in ("have", "interested", "not_interested"):
        assert peer.feed_line(line(0.5, kind, me=1002, other=1001, index=1)) is None
    assert peer.lines_seen == 0 and not peer.lines
    assert peer.feed_line(line(0.6, "choked", me=1002, other=1001)) is not None
    assert peer.lines_seen == 1


def test_progress_follows_its_own_choice_of_neighbours():
    peer = PeerProgress(1001, "localhost", total=3, seed=True, start=START)
    peer.feed_line(line(1.0, "preferred", me=1001, others="1002,1004"))
    peer.feed_line(line(1.5, "optimistic", me=1001, other=1003))
    peer.feed_line(line(2.0, "preferred", me=1003, others="1001"))  # another peer's choice
    assert (peer.preferred, peer.optimistic) == ((1002, 1004), 1003)
    peer.feed_line(line(3.0, "preferred", me=1001, others="1003"))
    assert peer.preferred == (1003,)


def test_a_display_line_shows_progress_rate_chokes_state_and_sources():
    peer = PeerProgress(1002, "localhost", total=100, seed=False, start=START)
    peer.state = "running"
    for text in [line(0.1, "connect_to", me=1002, other=1001), line(0.2, "connect_from", me=1002, other=1003),
                 line(0.3, "unchoked", me=1002, other=1003),
                 *(line(1.0, "downloaded", me=1002, index=i, other=1003, count=i + 1) for i in range(50))]:
        peer.feed_line(text)
    megabytes = 50 / RATE_WINDOW * 16384 / 1e6
    assert render_line(peer, 1.0, 16384) == (
        f"  1002 [########........]  50/100 {megabytes:5.1f} MB/s  unchoked 1/2  running  from 1003"
    )


def test_a_seed_holds_everything_from_the_start():
    seed = PeerProgress(1001, "localhost", total=5, seed=True, start=START)
    assert (seed.held, seed.completed_at, seed.timeline) == (5, 0.0, [(0.0, 5)])


@pytest.mark.parametrize(
    "host, local",
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("127.0.0.1", True),
        ("127.3.4.5", True),
        ("::1", True),
        ("[::1]", True),
        ("box", True),
        ("box.example.org", True),
        ("192.0.2.7", True),
        ("10.213.1.2", False),
        ("other.example.org", False),
        ("::2", False),
    ],
)
def test_which_hosts_are_this_machine(host, local):
    names = {"localhost", "box", "box.example.org"}
    assert plan.is_local_host(host, names, {"192.0.2.7"}) is local


def test_local_identity_is_this_machines_names_and_only_their_addresses(monkeypatch):
    asked = []

    def getaddrinfo(name, port):
        asked.append(name)
        if name == "box.example.org":
            raise socket.gaierror("no such name")  # one name that does not resolve is skipped
        return [(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, 0))
                for address in {"localhost": ["127.0.0.1", "::1"], "box": ["192.0.2.7", "fe80::1%eth0"]}[name]]

    monkeypatch.setattr(plan.socket, "gethostname", lambda: "Box")
    monkeypatch.setattr(plan.socket, "getfqdn", lambda: "Box.Example.ORG")
    monkeypatch.setattr(plan.socket, "getaddrinfo", getaddrinfo)
    names, addresses = plan.local_identity()
    assert names == {"localhost", "box", "box.example.org"}
    assert sorted(asked) == sorted(names)  # no other lookups
    assert addresses == {"127.0.0.1", "::1", "192.0.2.7", "fe80::1"}  # without the zone
    local = ["BOX", "box.example.org", "[::1]", "192.0.2.7", "fe80::1", "127.0.0.9"]
    assert [plan.is_local_host(host, names, addresses) for host in local] == [True] * len(local)
    foreign = ["192.0.2.8", "box.example.com", "fe80::2", "10.0.0.7"]
    assert [plan.is_local_host(host, names, addresses) for host in foreign] == [False] * len(foreign)


def test_local_identity_on_this_machine_has_its_host_name_and_loopback():
    names, addresses = plan.local_identity()
    assert {"localhost", socket.gethostname().lower(), socket.getfqdn().lower()} == names
    assert "127.0.0.1" in addresses or "::1" in addresses  # what localhost resolves to
    assert all(ipaddress.ip_address(address) for address in addresses)  # plain addresses, no zone


def test_local_command_runs_twistd_without_a_pidfile(tmp_path):
    argv = plan.local_command(["twistd"], 1003, tmp_path / "conf", tmp_path)
    assert argv == ["twistd", "-n", "--pidfile=", "p2ppeer", "--id", "1003",
                    "--config-dir", str(tmp_path / "conf"), "--work-dir", str(tmp_path), "--exit-on-stdin-close"]


def test_a_remote_peer_runs_over_its_hosts_ssh_connection_with_a_lifeline(tmp_path):
    config = load_written(tmp_path, swarm_config([1, 2, 3], seeds=[1], file_size=10, piece_size=4),
                          hosts=["localhost", "10.0.0.4", "10.0.0.4"])
    ssh = Ssh(tmp_path / "control", "ssh.cfg", connect_timeout=7)
    launches, hosts = plan.plan(config, tmp_path / "conf", tmp_path, ssh, "/srv/p2p/{host}", ["/opt/venv/bin/twistd"])
    assert launches[0].tail == tmp_path / "log_peer_1.log"  # this machine's peer
    assert [(h.name, h.directory, [p.peer_id for p in h.peers]) for h in hosts] == [
        ("10.0.0.4", "/srv/p2p/10.0.0.4", [2, 3])]
    argv = launches[1].argv
    assert argv[:3] == ["ssh", "-F", "ssh.cfg"] and "ConnectTimeout=7" in argv and "ControlMaster=no" in argv
    assert f"ControlPath={tmp_path / 'control'}/%C" in argv
    assert argv[-2:] == ["10.0.0.4", (
        "cd /srv/p2p/10.0.0.4 && echo 'p2p-swarm: the peer starts' >&2 && exec /opt/venv/bin/twistd -n --pidfile= "
        "p2ppeer --id 2 --config-dir /srv/p2p/10.0.0.4 --work-dir /srv/p2p/10.0.0.4 --echo-events "
        "--exit-on-stdin-close")]


def test_twistd_placeholder_alone_becomes_its_words_and_inside_a_word_is_quoted():
    peer = PeerInfo(1002, "ns1", 6009, False)
    twistd = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
    template = "ip netns exec {host} {twistd} -n p2ppeer --id {id} --config-dir {config_dir}"
    argv = plan.remote_command(template, twistd, peer, "/w", "/c")
    assert argv == ["ip", "netns", "exec", "ns1", *twistd, "-n", "p2ppeer", "--id", "1002", "--config-dir", "/c"]
    argv = plan.remote_command("ssh {host} '{twistd} --id {id}'", twistd, peer, "/w", "/c")
    assert argv[-1] == f"{sys.executable} -c 'from twisted.scripts.twistd import run; run()' --id 1002"


def test_a_host_that_could_inject_shell_words_or_a_bad_placeholder_is_refused():
    with pytest.raises(ConfigError, match="not a plain host name"):
        plan.remote_command("ssh {host}", ["twistd"], PeerInfo(1, "a;rm", 1, False), "/w", "/c")
    with pytest.raises(ConfigError, match="bad placeholder"):
        plan.remote_command("ssh {hots}", ["twistd"], PeerInfo(1, "a", 1, False), "/w", "/c")


def test_prepare_makes_one_demo_file_for_all_seeds_and_clears_an_earlier_run(tmp_path):
    config = swarm_config([1, 2, 3], seeds=[1, 3], file_size=1000, piece_size=100)
    stale_log = tmp_path / "log_peer_2.log"
    stale_leecher = tmp_path / "peer_2" / "TheFile.dat"
    stale_leecher.parent.mkdir()
    stale_leecher.write_bytes(b"old")
    stale_log.write_text("old run\n")
    messages = plan.prepare_work_dir(config, tmp_path, demo_file=True)
    assert len(messages) == 2
    first, third = (tmp_path / f"peer_{i}" / "TheFile.dat" for i in (1, 3))
    assert first.read_bytes() == third.read_bytes() == plan.demo_bytes(1000)
    assert not stale_log.exists() and not stale_leecher.exists() and stale_leecher.parent.is_dir()


def test_prepare_copies_an_existing_seed_file_to_the_seeds_without_one(tmp_path):
    config = swarm_config([1, 2, 3], seeds=[1, 3], file_size=10, piece_size=4)
    (tmp_path / "peer_3").mkdir()
    (tmp_path / "peer_3" / "TheFile.dat").write_bytes(b"0123456789")
    plan.prepare_work_dir(config, tmp_path, demo_file=True)
    assert (tmp_path / "peer_1" / "TheFile.dat").read_bytes() == b"0123456789"


def test_without_demo_file_no_seed_file_is_made(tmp_path):
    config = swarm_config([1, 2], seeds=[1], file_size=10, piece_size=4)
    assert plan.prepare_work_dir(config, tmp_path, demo_file=False) == []
    assert not (tmp_path / "peer_1" / "TheFile.dat").exists()


def test_check_files_finds_a_wrong_file_and_leaves_a_remote_one_unchecked(tmp_path):
    config = swarm_config([1, 2, 3, 4], seeds=[1], file_size=10, piece_size=4)
    for peer_id, content in [(1, b"0123456789"), (2, b"0123456789"), (3, b"0123456780")]:
        (tmp_path / f"peer_{peer_id}").mkdir()
        (tmp_path / f"peer_{peer_id}" / "TheFile.dat").write_bytes(content)
    progress = {p.peer_id: PeerProgress(p.peer_id, p.host, 3, p.has_file, START) for p in config.peers}
    results, expected = check_files(config, tmp_path, {1, 2, 3}, {1: 0, 2: 0, 3: 0, 4: 0}, progress)
    assert [result.sha256_ok for result in results] == [True, True, False, None]
    assert expected is not None


def test_check_files_trusts_the_digest_a_remote_peer_printed(tmp_path):
    import hashlib

    from twisted_p2p.storage import digest_report

    config = swarm_config([1, 2, 3], seeds=[1], file_size=10, piece_size=4)
    (tmp_path / "peer_1").mkdir()
    (tmp_path / "peer_1" / "TheFile.dat").write_bytes(b"0123456789")
    progress = {p.peer_id: PeerProgress(p.peer_id, p.host, 3, p.has_file, START) for p in config.peers}
    good, bad = hashlib.sha256(b"0123456789").hexdigest(), hashlib.sha256(b"x").hexdigest()
    progress[2].feed_line("2026-11-24T10:00:00+0000 [twisted_p2p.service.PeerService#info] " + digest_report(2, good))
    progress[3].feed_line(digest_report(3, bad))
    progress[3].feed_line(digest_report(2, good))  # another peer's line is not its own
    results, _ = check_files(config, tmp_path, {1}, {1: 0, 2: 0, 3: 0}, progress)
    assert [result.sha256_ok for result in results] == [True, True, False]


def test_a_peer_is_ok_only_with_status_0_a_completed_file_and_no_wrong_check():
    done = PeerProgress(2, "h", 3, False, START)
    done.completed_at = 1.0
    assert PeerResult(done, 0, True).ok and PeerResult(done, 0, None).ok
    assert not PeerResult(done, 1, True).ok and not PeerResult(done, 0, False).ok
    assert not PeerResult(PeerProgress(3, "h", 3, False, START), 0, True).ok
    assert not PeerResult(done, None, True).ok


def test_summary_and_report_say_what_each_peer_did(tmp_path):
    seed = PeerProgress(1001, "localhost", 2, True, START)
    leecher = PeerProgress(1002, "localhost", 2, False, START)
    for text in [line(0.5, "downloaded", me=1002, index=0, other=1001, count=1),
                 line(0.5, "unchoked", me=1002, other=1001),
                 line(0.9, "downloaded", me=1002, index=1, other=1001, count=2),
                 line(1.0, "complete", me=1002)]:
        leecher.feed_line(text)
    results = [PeerResult(seed, 0, True), PeerResult(leecher, -9, False)]
    table = summary_table(results)
    assert table[0].split() == ["peer", "host", "exit", "complete", "file", "pieces", "received", "from"]
    assert table[1].split() == ["1001", "localhost", "0", "seed", "ok", "-"]
    assert table[2].split() == ["1002", "localhost", "signal", "9", "1.00", "s", "WRONG", "1001:2"]
    report = build_report(results, "failed", 1, 2.5, {"name": "TheFile.dat", "size": 2, "pieces": 2, "sha256": "x"})
    path = write_report(report, tmp_path)
    loaded = json.loads(path.read_text())
    assert loaded["peers"][1] == {"id": 1002, "host": "localhost", "seed": False, "exit_status": -9,
                                  "seconds_to_complete": 1.0, "received_from": {"1001": 2}, "sha256_ok": False}
    assert loaded["timeline"] == {"1001": [[0.0, 2]], "1002": [[0.0, 0], [0.5, 1], [0.9, 2]]}
    assert loaded["unchoked_timeline"]["1002"] == [[0.0, 0], [0.5, 1]]


def test_a_file_left_unfinished_by_a_stopped_run_is_incomplete_not_wrong():
    stopped = PeerProgress(1003, "localhost", 2, False, START)
    stopped.feed_line(line(0.5, "downloaded", me=1003, index=0, other=1001, count=1))
    table = summary_table([PeerResult(stopped, 130, False)])
    assert table[1].split() == ["1003", "localhost", "130", "no", "incomplete", "1001:1"]


def test_plain_display_prints_a_block_every_few_seconds_and_at_the_end():
    out = io.StringIO()
    display = Display(out, piece_size=16384, tty=False)
    peers = [PeerProgress(1, "h", 4, True, START), PeerProgress(2, "h", 4, False, START)]
    for now in (0.2, 0.4, 2.3, 2.5):
        display.update(peers, now)
    display.update(peers, 2.6, final=True)
    stamps = [text.split("]")[0] for text in out.getvalue().splitlines()]
    assert stamps == ["[   0.2s"] * 2 + ["[   2.3s"] * 2 + ["[   2.6s"] * 2
    assert "\x1b" not in out.getvalue()


def test_terminal_display_redraws_its_lines_in_place():
    out = io.StringIO()
    display = Display(out, piece_size=16384, tty=True)
    peers = [PeerProgress(1, "h", 4, True, START), PeerProgress(2, "h", 4, False, START)]
    display.update(peers, 0.2)
    display.update(peers, 0.4)
    display.say("started peer 3")
    text = out.getvalue()
    assert text.count("\x1b[2K") == 4
    assert text.count("\x1b[2F") == 2  # once to redraw, once to clear for the message
    assert text.endswith("\x1b[2F\x1b[Jstarted peer 3\n")


def test_loaded_conf_directory_plans_local_peers(tmp_path):
    config = swarm_config([1, 2], seeds=[1], file_size=10, piece_size=4)
    write_config(tmp_path / "conf", config)
    loaded = load(tmp_path / "conf")
    launches, hosts = plan.plan(loaded, tmp_path / "conf", tmp_path, Ssh(tmp_path), str(tmp_path))
    assert hosts == []
    assert [launch.tail for launch in launches] == [tmp_path / "log_peer_1.log", tmp_path / "log_peer_2.log"]
    assert all("--pidfile=" in launch.argv and "p2ppeer" in launch.argv for launch in launches)


def test_the_plot_has_one_line_per_peer_in_each_panel_when_matplotlib_is_installed(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="the 'plot' extra (matplotlib) is not installed")
    from twisted_p2p.launcher import runreport as report_module

    seed = PeerProgress(1, "h", 2, True, START)
    leecher = PeerProgress(2, "h", 2, False, START)
    for text in [line(0.25, "unchoked", me=2, other=1), line(0.5, "downloaded", me=2, index=0, other=1, count=1),
                 line(0.75, "choked", me=2, other=1)]:
        leecher.feed_line(text)
    stalled = PeerProgress(3, "h", 2, False, START)
    results = [PeerResult(seed, 0, True), PeerResult(leecher, 0, True), PeerResult(stalled, 0, True)]
    report = build_report(results, "finished", 0, 1.0, {"name": "TheFile.dat", "size": 2, "pieces": 2, "sha256": "x"})
    drawn = []
    plot_figure = report_module.plot_figure

    def recorded(report):
        drawn.append(plot_figure(report))
        return drawn[-1]

    monkeypatch.setattr(report_module, "plot_figure", recorded)
    path = report_module.write_plot(report, tmp_path)
    assert path == tmp_path / "swarm-report.png"
    png = path.read_bytes()
    (figure,) = drawn  # the figure written is the one looked at below
    assert png.startswith(b"\x89PNG") and struct.unpack(">II", png[16:24]) == tuple(figure.bbox.size.astype(int))
    pieces, unchoked = figure.axes
    # Each peer's held pieces and its unchoke count, as steps held until the run's end (1.0 s).
    expected_pieces = {"peer 1": ([0.0, 1.0], [2, 2]), "peer 2": ([0.0, 0.5, 1.0], [0, 1, 1]),
                       "peer 3": ([0.0, 1.0], [0, 0])}
    expected_unchoked = [([0.0, 1.0], [0, 0]), ([0.0, 0.25, 0.75, 1.0], [0, 1, 0, 0]), ([0.0, 1.0], [0, 0])]
    assert [plotted.get_label() for plotted in pieces.lines] == list(expected_pieces)
    assert [(list(plotted.get_xdata()), list(plotted.get_ydata())) for plotted in pieces.lines] == list(
        expected_pieces.values()
    )
    assert [(list(plotted.get_xdata()), list(plotted.get_ydata())) for plotted in unchoked.lines] == expected_unchoked
    assert all(plotted.get_drawstyle() == "steps-post" for plotted in pieces.lines + unchoked.lines)
    # A peer has one colour in both panels, and no two peers share one.
    colours = [plotted.get_color() for plotted in pieces.lines]
    assert [plotted.get_color() for plotted in unchoked.lines] == colours and len(set(colours)) == 3
    assert [text.get_text() for text in pieces.get_legend().get_texts()] == list(expected_pieces)


def test_dry_run_prints_what_would_run_on_each_host_and_runs_nothing(tmp_path, capsys):
    import io

    from twisted_p2p.launcher import run

    load_written(tmp_path, swarm_config([1, 2, 3], seeds=[1], file_size=10, piece_size=4),
                 hosts=["localhost", "10.0.0.4", "10.0.0.4"])
    out = io.StringIO()
    code = run.main([str(tmp_path / "conf"), "--work-dir", str(tmp_path / "work"), "--dry-run",
                     "--remote-dir", "/srv/{host}"], stdout=out)
    text = out.getvalue()
    assert code == 0
    assert "here: peer 1: " in text
    assert "10.0.0.4: one ssh connection; in /srv/10.0.0.4: clear the earlier run's files" in text
    assert "rm -f peer_2/TheFile.dat" in text and "rm -f peer_3/TheFile.dat" in text
    assert [line.split(":")[0] for line in text.splitlines() if ": peer " in line] == ["here", "10.0.0.4", "10.0.0.4"]
    assert not (tmp_path / "work").exists()  # nothing made, nothing started


def test_the_report_audits_the_logs_only_when_all_are_here_and_not_too_big(tmp_path, monkeypatch):
    from twisted_p2p.launcher import runend

    config = swarm_config([1001, 1002], seeds=[1001], file_size=1000, piece_size=100)
    for peer_id in (1001, 1002):
        (tmp_path / f"log_peer_{peer_id}.log").write_text("x" * 600)
    assert runend.auditable(tmp_path, config)
    monkeypatch.setattr(runend, "AUDIT_LIMIT", 1000)
    assert not runend.auditable(tmp_path, config)
    (tmp_path / "log_peer_1002.log").unlink()  # it ran on another host, and could not be fetched
    monkeypatch.setattr(runend, "AUDIT_LIMIT", 10_000)
    assert not runend.auditable(tmp_path, config)


def test_the_launcher_speaks_the_course_protocol_unless_an_extension_is_asked_for():
    from twisted_p2p.launcher import run
    from twisted_p2p.launcher.options import peer_options

    args = run.parse_args(["conf"])
    assert args.pipeline == 0 and not args.refill_slots
    assert peer_options(args, all_ours=True) == []  # one request at a time, rounds only
    extended = run.parse_args(["conf", "--pipeline", str(run.DEFAULT_PIPELINE), "--refill-slots"])
    assert peer_options(extended, all_ours=True) == ["--refill-slots", "--pipeline", str(run.DEFAULT_PIPELINE)]
    assert peer_options(extended, all_ours=False) == ["--refill-slots"]  # a peer it does not start may be anyone's
    shell = run.parse_args(["conf", "--pipeline", "64", "--remote-shell", "ssh {host} run-peer {id}"])
    assert shell.pipeline == 0 and peer_options(shell, all_ours=True) == []
    capped = run.parse_args(["conf", "--upload-rate", "5000"])
    assert peer_options(capped, all_ours=True) == ["--upload-rate", "5000"]
    with pytest.raises(SystemExit):
        run.parse_args(["conf", "--pipeline", "1025"])
