"""The piece-hash manifest: its file, the commands that write it, and a lying seed caught."""
from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
import pytest_twisted
from support import free_ports, peer_settings, seed_bytes, swarm_config, write_config, write_seed_files
from test_processes import run_twistd
from test_protocol import CONTENT, PIECE, Peer, warning_texts
from test_swarm import _run_swarm
from twisted.internet import reactor
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import formatEvent, globalLogPublisher
from wirebytes import encode

from twisted_p2p import wire
from twisted_p2p.config import ConfigError
from twisted_p2p.layout import data_path
from twisted_p2p.manifest import load_manifest, manifest_path, piece_hashes, write_manifest
from twisted_p2p.node import PeerNode

COMMON = swarm_config([1001, 1002], [1001], 1050, 100).common


def test_manifest_round_trip(tmp_path):
    source = tmp_path / "file"
    source.write_bytes(CONTENT)
    digests = piece_hashes(source, COMMON)
    assert digests[10] == hashlib.sha256(CONTENT[1000:]).digest()
    path = manifest_path(tmp_path, COMMON)
    write_manifest(path, COMMON, digests)
    assert path.name == "TheFile.dat.hashes"
    assert load_manifest(path, COMMON) == digests
    assert load_manifest(tmp_path / "absent.hashes", COMMON) is None


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda lines: lines[:-1], "has 10 hashes; 11 pieces expected"),
        (lambda lines: lines[:3] + ["zz" * 32] + lines[4:], ":4: expected a SHA-256 in hex"),
        (lambda lines: [lines[0].replace("FileSize 1050", "FileSize 1051")] + lines[1:],
         ":1: is for TheFile.dat of 1051"),
    ],
)
def test_a_manifest_that_does_not_fit_is_a_config_error(tmp_path, change, message):
    path = manifest_path(tmp_path, COMMON)
    write_manifest(path, COMMON, [bytes(32)] * 11)
    path.write_text("\n".join(change(path.read_text().splitlines())) + "\n")
    with pytest.raises(ConfigError, match=message):
        load_manifest(path, COMMON)


def test_a_piece_that_fails_the_manifest_is_dropped_and_fetched_elsewhere(tmp_path, warnings):
    peer = Peer(tmp_path, 1003, seeds=(1001, 1002))
    peer.service.piece_hashes = [hashlib.sha256(CONTENT[i * PIECE : (i + 1) * PIECE]).digest() for i in range(11)]
    liar, liar_transport = peer.neighbour(1001, pieces=range(11), dialled=True)
    honest, honest_transport = peer.neighbour(1002, pieces=range(11), dialled=True)
    liar.dataReceived(wire.UNCHOKE)
    (request,) = [m for m in peer.sent(liar_transport) if isinstance(m, wire.Request)]
    liar.dataReceived(encode(wire.Piece(request.index, b"\xff" * peer.common.piece_length(request.index))))
    assert request.index not in peer.store.held
    assert peer.sent(liar_transport) == []  # no further request
    assert liar_transport.disconnecting  # the liar is dropped ...
    assert 1001 not in peer.service.neighbours
    (line,) = [t for t in warning_texts(warnings) if "does not match the manifest" in t]
    assert f"peer 1001 sent piece {request.index} whose SHA-256" in line  # ... saying which piece
    honest.dataReceived(wire.UNCHOKE)
    asked = []
    while requests := [m.index for m in peer.sent(honest_transport) if isinstance(m, wire.Request)]:
        asked += requests
        for index in requests:
            honest.dataReceived(encode(wire.Piece(index, CONTENT[index * PIECE : (index + 1) * PIECE])))
    assert request.index in asked  # the piece is fetched from the other
    assert peer.store.held.complete and peer.path.read_bytes() == CONTENT


@pytest_twisted.inlineCallbacks
def test_a_seed_with_a_corrupt_file_is_caught_by_the_manifest(tmp_path):
    ids = [1001, 1002, 1003, 1004]
    config = swarm_config(ids, [1001, 1002], 400_000, 16384, k=3, p=1, m=2, ports=free_ports(4))
    content = seed_bytes(config.common.file_size)
    write_seed_files(tmp_path, config, content)
    corrupt = bytearray(content)
    for offset in range(0, len(corrupt), 997):
        corrupt[offset] ^= 0xFF
    data_path(tmp_path, 1002, config.common.file_name).write_bytes(bytes(corrupt))  # 1002 lies
    digests = piece_hashes(data_path(tmp_path, 1001, config.common.file_name), config.common)
    nodes = [
        PeerNode(config, peer_id, tmp_path, reactor, peer_settings(random_seed=peer_id), piece_hashes=digests)
        for peer_id in ids
    ]
    observer = EventLoggingObserver()
    globalLogPublisher.addObserver(observer)
    try:
        yield _run_swarm(nodes)
    finally:
        globalLogPublisher.removeObserver(observer)
    caught_lines = [formatEvent(e) for e in observer if "does not match the manifest" in formatEvent(e)]
    assert caught_lines and all("peer 1002 sent piece" in line for line in caught_lines)
    for peer_id in (1003, 1004):
        assert data_path(tmp_path, peer_id, config.common.file_name).read_bytes() == content
    log = (tmp_path / "log_peer_1003.log").read_text() + (tmp_path / "log_peer_1004.log").read_text()
    assert " from 1002. Now" not in log  # nothing from the liar was ever kept


def test_both_commands_write_the_manifest(tmp_path):
    config = swarm_config([1001, 1002], [1001], 1050, 100, ports=free_ports(2))
    write_config(tmp_path / "conf", config)
    write_seed_files(tmp_path, config, CONTENT)
    result = run_twistd(["-n", "--pidfile=", "p2ppeer", "--id", "1001", "--write-hashes"], tmp_path)
    assert result.returncode == 0, result.stderr
    path = tmp_path / "conf" / "TheFile.dat.hashes"
    first = path.read_text()
    path.unlink()
    result = subprocess.run(
        [sys.executable, "-m", "twisted_p2p.launcher.cli", "hashes", "conf", "--work-dir", "."],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert path.read_text() == first
    assert len(load_manifest(path, config.common)) == 11


def test_resumed_pieces_are_checked_against_the_manifest(tmp_path):
    from twisted_p2p.resume import Resume
    from twisted_p2p.storage import PieceStore

    config = swarm_config([1001, 1002], [1001], 1050, 100, ports=free_ports(2))
    common = config.common
    path = data_path(tmp_path, 1002, common.file_name)
    resume = Resume(path, common, boot_id="this-boot")
    restored = resume.restore()
    store = PieceStore(path, common, has_file=False)
    resume.start(restored)
    for index in range(6):
        store.write(index, CONTENT[index * 100 : (index + 1) * 100])
        resume.piece_written(index)
    store.close()
    resume.close()
    with open(store.path, "r+b") as data:  # piece 3 rots on disk; the journal still claims it
        data.seek(300)
        data.write(b"rot")
    digests = [hashlib.sha256(CONTENT[i * 100 : (i + 1) * 100]).digest() for i in range(11)]
    node = PeerNode(config, 1002, tmp_path, reactor, piece_hashes=digests, boot_id="this-boot")
    try:
        assert sorted(node.store.held) == [0, 1, 2, 4, 5]
        assert 3 in node.peer.pieces.missing
    finally:
        node.store.close()
        node.resume.close()
        node._event_file.close()
    without = PeerNode(config, 1002, tmp_path, reactor, boot_id="this-boot")  # no manifest: the records are all
    try:
        assert sorted(without.store.held) == [0, 1, 2, 4, 5]  # the forgotten piece stays forgotten
    finally:
        without.store.close()
        without.resume.close()
        without._event_file.close()
