"""The closed swarm with real peer processes on 127.0.0.1: a stranger that knows the
seed's port and every ID gets nothing, while the members of the push finish with an
exact file; the same over TLS. Every wait is bounded."""
from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from support import free_ports, listening, seed_bytes, start_peer, swarm_config, wait_for_peers, write_config

from twisted_p2p import auth
from twisted_p2p.launcher import closed
from twisted_p2p.layout import data_path

FILE_SIZE = 3_000_000
LIMIT = 60


def until(condition, limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def push_dir(root: Path, config, content: bytes, use_tls: bool = False) -> tuple[Path, list[str]]:
    """A directory as push prepares it on a host: config, secret, manifest (, certificate)."""
    root.mkdir()
    write_config(root, config)
    seed = data_path(root, 1001, config.common.file_name)
    seed.parent.mkdir()
    seed.write_bytes(content)
    prepared = closed.prepare(root, seed, config.common, use_tls)
    return root, prepared.options


def raw_stranger(port: int, handshake: bytes, limit: float = 10.0) -> bytes:
    """Everything the peer sends to a stranger before it closes the connection."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as sock:
        sock.sendall(handshake)
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:  # closed with our handshake unread
            pass
    return received


def stop(process) -> str:
    process.terminate()
    return wait_for_peers({0: process}, limit=15)[0]


@pytest.mark.parametrize("use_tls", [False, True], ids=["auth", "auth+tls"])
def test_a_stranger_that_knows_the_port_and_every_id_gets_nothing(tmp_path, use_tls):
    if use_tls:
        pytest.importorskip("OpenSSL")
    config = swarm_config([1001, 1002], [1001], FILE_SIZE, 16384, k=1, p=1, m=1, ports=free_ports(2))
    content = seed_bytes(FILE_SIZE)
    home, options = push_dir(tmp_path / "push", config, content, use_tls)
    # The stranger: every ID and the seed's port (its own port differs: on one machine
    # the member 1002 listens on 1002's), another secret.
    ports = [config.peers[0].port, free_ports(3)[-1]]
    elsewhere, _ = push_dir(tmp_path / "stranger", swarm_config(
        [1001, 1002], [1001], FILE_SIZE, 16384, k=1, p=1, m=1, ports=ports), b"\0" * FILE_SIZE)
    auth.write_secret(elsewhere / closed.SECRET_NAME, auth.new_secret())
    if use_tls:
        closed.prepare(elsewhere, data_path(elsewhere, 1001, config.common.file_name), config.common, use_tls=True)
    common = ["--config-dir", ".", "--work-dir", "."]
    seed = start_peer(home, 1001, *common, *options)
    stranger = None
    try:
        until(lambda: listening(config.peers[0].port))
        # A raw one that speaks the plain protocol, claiming to be 1002 ...
        got = raw_stranger(config.peers[0].port, (b"P2PFILESHARINGPROJ" + bytes(10) + (1002).to_bytes(4, "big")))
        assert len(got) <= 32 if not use_tls else b"P2PFILESHARINGPROJ" not in got
        # ... and a peer process as 1002 with a secret of its own, dialling the seed.
        stranger = start_peer(elsewhere / "..", 1002, "--config-dir", str(elsewhere), "--work-dir", str(elsewhere),
                              "--secret-file", str(elsewhere / closed.SECRET_NAME),
                              *(["--tls-cert", str(elsewhere / closed.CERTIFICATE_NAME)] if use_tls else []))
        time.sleep(2.0)  # it dials, is dropped, dials again
        assert seed.poll() is None
        member = start_peer(home, 1002, *common, *options)
        outputs = wait_for_peers({1001: seed, 1002: member}, limit=LIMIT)
    finally:
        stranger_output = stop(stranger) if stranger is not None else ""
        if seed.poll() is None:
            stop(seed)
    assert seed.returncode == 0 and member.returncode == 0, outputs
    assert data_path(home, 1002, config.common.file_name).read_bytes() == content
    stranger_log = (elsewhere / "log_peer_1002.log").read_text()
    assert "has downloaded" not in stranger_log and "makes a connection" not in stranger_log, stranger_log
    stranger_file = data_path(elsewhere, 1002, config.common.file_name)
    assert not stranger_file.exists() or stranger_file.read_bytes().count(0) == stranger_file.stat().st_size
    seed_says = outputs[1001]
    if use_tls:
        # Without the push's certificate the TLS handshake fails: no peer byte is read.
        assert "makes a connection" not in stranger_output and "connected from Peer 1002" in (
            home / "log_peer_1001.log").read_text()
    else:
        assert "peer 1002 sent a handshake without our authentication bit" in seed_says, seed_says
        assert "peer 1002 sent a wrong authentication proof" in seed_says, seed_says
    assert (home / "log_peer_1001.log").read_text().count("is connected from Peer 1002") == 1


def test_a_peer_with_a_secret_refuses_addresses_that_are_not_the_pushs_hosts(tmp_path):
    config = swarm_config([1001, 1002], [1001], 100_000, 16384, ports=free_ports(2))
    home, options = push_dir(tmp_path / "push", config, seed_bytes(100_000))
    seed = start_peer(home, 1001, "--config-dir", ".", "--work-dir", ".", *options, "--allow-hosts", "10.77.0.0/16")
    try:
        until(lambda: listening(config.peers[0].port))
        got = raw_stranger(config.peers[0].port, b"P2PFILESHARINGPROJ" + bytes(10) + (1002).to_bytes(4, "big"))
        assert got == b""  # closed before a byte, ours included
    finally:
        output = stop(seed)
    assert "refused a connection from 127.0.0.1: not one of this push's hosts (10.77.0.0/16)" in output, output


def test_a_secret_others_may_read_stops_the_peer_with_one_line(tmp_path):
    config = swarm_config([1001, 1002], [1001], 100_000, 16384, ports=free_ports(2))
    home, options = push_dir(tmp_path / "push", config, seed_bytes(100_000))
    (home / closed.SECRET_NAME).chmod(0o644)
    process = start_peer(home, 1001, "--config-dir", ".", "--work-dir", ".", *options)
    output = wait_for_peers({1001: process}, limit=30)[1001]
    assert process.returncode != 0
    assert "p2ppeer 1001: --secret-file push.secret: others may read it (mode 644); chmod 600 it" in output
    assert "Traceback" not in output
