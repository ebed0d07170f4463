"""What ``push`` reads and decides before any ssh: hosts from arguments, files and
standard input, ``user@host:port``, rates, the resume record and the room on a host's
disk, the work dir's preparation for a resumed copy, and the per-host progress lines."""
from __future__ import annotations

import io
import subprocess

import pytest

from twisted_p2p.config import Common, PeerInfo, SwarmConfig
from twisted_p2p.launcher import push
from twisted_p2p.launcher.progress import COMPACT_OVER, PeerProgress, render_hosts
from twisted_p2p.launcher.pushinput import (
    HostSpec,
    endpoint_of,
    parse_host,
    parse_rate,
    read_hosts,
    with_addresses,
)
from twisted_p2p.launcher.pushresume import (
    MARGIN,
    Probe,
    Record,
    lacks_room,
    piece_size_to_resume,
    probe_script,
    resume_from,
    split_answer,
)
from twisted_p2p.launcher.remote import Host, Ssh, prepare_script
from twisted_p2p.storage import parse_resume_report, resume_report

SHA = "ab" * 32


def test_hosts_are_user_at_host_colon_port_or_a_name():
    assert parse_host("lab2") == HostSpec("lab2", "lab2", None)
    assert parse_host("me@lab2:2222") == HostSpec("me@lab2:2222", "me@lab2", 2222)
    assert parse_host("me@lab2:2222").ssh_args() == ["-p", "2222", "me@lab2"]
    assert parse_host("10.0.0.7").ssh_args() == ["10.0.0.7"]
    assert parse_host("fe80::1").ssh_args() == ["fe80::1"]  # IPv6 whole: its port goes in ssh's config
    for wrong, said in [("lab2:0", "port"), ("lab2:ssh", "port"), ("-oProxyCommand=x", "not a host"),
                        ("a b@lab2", "user"), ("lab2/x", "not a host"), ("", "not a host")]:
        with pytest.raises(ValueError, match=said):
            parse_host(wrong)


def test_host_files_have_one_host_a_line_and_comments():
    text = "# the lab\nlab2\n\n  me@lab3:2222   # the new one\nlab4\n"
    assert read_hosts(io.StringIO(text), "hosts.txt") == ["lab2", "me@lab3:2222", "lab4"]
    with pytest.raises(ValueError, match=r"^hosts.txt line 2: one host per line, not 'lab2 lab3'$"):
        read_hosts(io.StringIO("lab1\nlab2 lab3\n"), "hosts.txt")


def test_hosts_come_from_arguments_files_and_standard_input_each_once(tmp_path, monkeypatch):
    listed = tmp_path / "hosts.txt"
    listed.write_text("lab2\nlab3 # again below\n")
    monkeypatch.setattr("sys.stdin", io.StringIO("lab3\nme@lab4:22\n"))
    args = push.parse_args(["f.bin", "lab1", "-f", str(listed), "-f", "-"])
    assert [spec.name for spec in args.specs] == ["lab1", "lab2", "lab3", "me@lab4:22"]


@pytest.mark.parametrize("argv, said", [
    (["f.bin"], "no hosts: give HOST arguments or -f FILE"),
    (["f.bin", "-f", "/nonexistent/hosts"], "-f /nonexistent/hosts: No such file or directory"),
    (["f.bin", "lab2:99999"], "port after : must be a number"),
    (["f.bin", "lab2", "--upload-rate", "fast"], "'fast' is not a rate"),
])
def test_wrong_hosts_or_rates_are_one_line_errors(argv, said, capsys):
    with pytest.raises(SystemExit) as exited:
        push.parse_args(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err


def test_rates_are_bytes_or_bits_per_second():
    assert parse_rate("25000000") == 25_000_000
    assert parse_rate("25M") == 25_000_000
    assert parse_rate("200Mbit") == 25_000_000
    assert parse_rate("1.5kbit/s") == 187
    assert push.peer_options(parse_rate("8Mbit")) == ["--upload-rate", "1000000"]
    assert push.peer_options(None) == []
    for wrong in ("0", "x", "-5M", "0bit"):
        with pytest.raises(ValueError):
            parse_rate(wrong)


def test_ssh_config_names_resolve_to_the_address_ssh_reaches(tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text("Host lab7\n    HostName 127.0.0.1\n    Port 2299\n")
    point = endpoint_of(parse_host("lab7"), str(config))
    assert (point.address, point.port) == ("127.0.0.1", 2299)
    assert endpoint_of(parse_host("me@lab7:2300"), str(config)).port == 2300  # -p wins over the config
    assert push.ssh_endpoint("lab7", str(config)) == ("127.0.0.1", 2299)


def test_peers_are_listed_by_address_and_ssh_is_given_its_own_arguments(tmp_path):
    common = Common(1, 1, 1, "f.bin", 1000, 100)
    config = SwarmConfig(common, (PeerInfo(1001, "10.0.0.1", 6000, True), PeerInfo(1002, "lab7", 6001, False)))
    assert [peer.host for peer in with_addresses(config, {"lab7": "10.0.0.7"}).peers] == ["10.0.0.1", "10.0.0.7"]
    ssh = Ssh(tmp_path, destinations={"me@lab7:2222": ["-p", "2222", "me@lab7"]})
    assert ssh.command("me@lab7:2222", "true")[-4:] == ["-p", "2222", "me@lab7", "true"]
    assert ssh.open("me@lab7:2222")[-3:] == ["-p", "2222", "me@lab7"]
    assert ssh.command("lab2", "true")[-2:] == ["lab2", "true"]


# -- resuming, and the room on the disk --------------------------------------------------


def record(**changes: object) -> Record:
    fields: dict = {"file_name": "f.bin", "file_size": 10_000_000, "sha256": SHA, "piece_size": 65536,
                    "peer_id": 1003}
    fields.update(changes)
    return Record(**fields)


def test_the_survey_answer_carries_the_record_the_work_dir_and_the_free_space():
    answer = f"size 4\nrecord {record().encode().strip()}\nwork 5000\nfree 123456\n"
    check, probe = split_answer(answer)
    assert check == "size 4"
    assert probe == Probe(record(), False, 5000, 123456)
    assert split_answer("absent\nrecord {\"format\": \"p2p-swarm push 1\", \"file_na\nfree \n") == (
        "absent", Probe(None, True, 0, None))
    assert split_answer("absent\n")[1] == Probe()


def test_the_probe_script_runs_in_a_shell_where_nothing_is_made_yet(tmp_path):
    work = tmp_path / "dest" / ".p2p-push-lab2"
    output = subprocess.run(["sh", "-c", probe_script(str(work), str(tmp_path / "dest"))],
                            capture_output=True, text=True, check=True).stdout
    _, probe = split_answer(output)
    assert probe.record is None and probe.work_kib == 0 and probe.free_kib and probe.free_kib > 0
    work.mkdir(parents=True)
    (work / "push.json").write_text(record().encode())
    (work / "data").write_bytes(b"x" * 100_000)
    _, probe = split_answer(subprocess.run(["sh", "-c", probe_script(str(work), str(tmp_path / "dest"))],
                                           capture_output=True, text=True, check=True).stdout)
    assert probe.record == record() and probe.work_kib >= 97


def test_the_piece_size_of_unfinished_copies_of_this_file_is_chosen_again():
    probes = [Probe(record(piece_size=1 << 20)), Probe(record(piece_size=1 << 20)), Probe(record()),
              Probe(record(sha256="cd" * 32, piece_size=1 << 16)), Probe(None, True), Probe()]
    assert piece_size_to_resume(probes, "f.bin", 10_000_000, SHA) == 1 << 20
    assert piece_size_to_resume(probes, "f.bin", 10_000_000, "ef" * 32) is None
    assert piece_size_to_resume([], "f.bin", 10_000_000, SHA) is None


def test_only_a_copy_of_this_file_in_these_pieces_is_resumed_anything_else_is_cleared():
    same = ("f.bin", 10_000_000, SHA, 65536)
    assert resume_from(Probe(record()), *same) == (1003, "an unfinished copy there: its verified pieces are kept")
    assert resume_from(Probe(), *same) == (0, "")
    assert resume_from(Probe(None, True), *same)[0] == 0
    assert "torn record there, cleared" in resume_from(Probe(None, True), *same)[1]
    assert resume_from(Probe(record(sha256="cd" * 32)), *same) == (
        0, "an unfinished copy of another file there, cleared")
    assert resume_from(Probe(record(file_size=5)), *same)[0] == 0
    assert resume_from(Probe(record(piece_size=1 << 20)), *same) == (
        0, "an unfinished copy in pieces of 1048576 there (not 65536), cleared")


def test_a_disk_without_room_for_the_file_is_said_in_one_line():
    size = 12_000_000
    assert lacks_room(Probe(free_kib=None), size, "/d") is None  # df could not say: try
    assert lacks_room(Probe(free_kib=(size + MARGIN) // 1024 + 1), size, "/d") is None
    assert lacks_room(Probe(free_kib=1000, work_kib=(size + MARGIN) // 1024), size, "/d") is None  # reused
    assert lacks_room(Probe(free_kib=4096), size, "/scratch") == (
        "not enough disk space: /scratch has 4.2 MB free, the file needs 14.1 MB")


def test_a_resumed_host_keeps_its_partial_copy_under_its_new_id_and_nothing_else(tmp_path):
    common = Common(1, 1, 1, "f.bin", 1000, 100)
    peer = PeerInfo(1002, "lab2", 6001, False)
    config = SwarmConfig(common, (PeerInfo(1001, "10.0.0.1", 6000, True), peer))
    work = tmp_path / "w"
    for old in ("peer_1003", "peer_1005"):
        (work / old).mkdir(parents=True)
        for name in ("f.bin", "f.bin.journal", "f.bin.state", "f.bin.journal.tmp"):
            (work / old / name).write_text(old)

    def prepared(resume: int) -> set[str]:
        host = Host("lab2", str(work), [peer], resume_from=resume)
        subprocess.run(["sh", "-c", prepare_script(config, host, ["sh"])], check=True, capture_output=True)
        return {str(path.relative_to(work)) for path in work.rglob("*")}

    assert prepared(1003) == {"peer_1002", "peer_1002/f.bin", "peer_1002/f.bin.journal", "peer_1002/f.bin.state"}
    assert (work / "peer_1002" / "f.bin").read_text() == "peer_1003"
    assert prepared(1002) == {"peer_1002", "peer_1002/f.bin", "peer_1002/f.bin.journal", "peer_1002/f.bin.state"}
    assert prepared(0) == {"peer_1002"}  # nothing that matches: nothing kept


# -- what the launcher shows ----------------------------------------------------------


def test_a_resumed_peer_says_how_many_pieces_it_kept_and_the_host_line_shows_it():
    line = f"2025-01-01 [-] {resume_report(1002, 955, 1832)}"
    assert parse_resume_report(line) == (1002, 955)
    progress = PeerProgress(1002, "lab2", 1832, False, 0.0)
    progress.feed_line(line)
    progress.feed_line(f"x {resume_report(1003, 5, 1832)}")  # another peer's: not ours
    assert (progress.resumed, progress.held) == (955, 955)
    seed = PeerProgress(1001, "10.0.0.1", 1832, True, 0.0)
    lines = render_hosts([seed, progress], 1.0, 65536)
    assert len(lines) == 1 and lines[0].startswith("lab2 [########........]  955/1832")
    assert lines[0].endswith("(955 resumed)")


def test_many_hosts_are_shown_compactly_with_a_total():
    hosts = [PeerProgress(1002 + i, f"lab{i}", 100, False, 0.0) for i in range(COMPACT_OVER + 8)]
    hosts[0].completed_at = 3.0
    lines = render_hosts(hosts, 1.0, 65536, width=80)
    assert len(lines) < len(hosts) / 2
    assert all(len(line) <= 80 for line in lines)
    assert "lab0 done 3.0s" in lines[0] and "lab1 0% 0MB/s" in lines[0]
    assert lines[-1] == f"1 of {len(hosts)} hosts done, 0 MB/s received in all"
