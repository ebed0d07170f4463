"""Our authentication extension, in memory: peers of a push that hold its secret talk;
a stranger that knows the port and every ID, but not the secret, gets nothing of the
file and is dropped; wrong, replayed and reflected proofs fail; plain peers are as
before; a member that lies about a piece is dropped and the file still ends exact.

PeerServices on StringTransports (the test plays the stranger byte by byte) or joined
by twisted.test.iosim, each with its own Clock, seeded Random and seeded nonces.
"""
from __future__ import annotations

import hashlib
import random
import struct

import pytest
from test_protocol import CONTENT, PIECE, Peer, warning_texts
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.test import iosim

from twisted_p2p import auth, wire
from twisted_p2p.factory import AllowedHostsOnly
from twisted_p2p.protocol import PeerProtocol, State

SECRET = b"0123456789abcdef0123456789abcdef"


def nonces(seed: int):
    """Nonces from a seeded Random: deterministic, and distinct per connection."""
    rng = random.Random(seed)
    return lambda: rng.randbytes(wire.NONCE_LENGTH)


def member(tmp_path, me: int, seeds=(1001,), secret: bytes = SECRET, **options) -> Peer:
    directory = tmp_path / f"host{me}"
    directory.mkdir()
    return Peer(directory, me, seeds=seeds, secret=secret, new_nonce=nonces(me), **options)


def handshake_and_rest(data: bytes) -> tuple[wire.Handshake, bytes]:
    framer = wire.Framer(wire.Decoder(Peer.__init__.__globals__["swarm_config"](
        [1001], [1001], len(CONTENT), PIECE).common))
    framer.feed(data[:32])
    handshake = framer.next()
    assert isinstance(handshake, wire.Handshake)
    return handshake, data[32:]


def split_proof(data: bytes) -> bytes:
    """The MAC of the one proof frame ``data`` holds (and nothing else)."""
    assert len(data) == 4 + 1 + wire.PROOF_LENGTH, data
    assert struct.unpack(">IB", data[:5]) == (wire.PROOF_LENGTH + 1, wire.AUTH_TYPE)
    return data[5:]


def link(acceptor: Peer, dialler: Peer, heard: list[bytes] | None = None
         ) -> tuple[PeerProtocol, PeerProtocol, iosim.IOPump]:
    """``dialler`` dials ``acceptor`` over an in-memory connection; what the acceptor
    reads is also appended to ``heard``, if given (an eavesdropper)."""
    server = PeerProtocol(acceptor.service)
    client = PeerProtocol(dialler.service, expected_peer_id=acceptor.me)
    if heard is not None:
        original = server.dataReceived

        def record(data: bytes) -> None:
            heard.append(data)
            original(data)

        server.dataReceived = record  # type: ignore[method-assign]
    pump = iosim.connect(server, iosim.FakeTransport(server, isServer=True),
                         client, iosim.FakeTransport(client, isServer=False), greet=True)
    return server, client, pump


def run(peers: list[Peer], pumps: list[iosim.IOPump], rounds: int = 400) -> None:
    for _ in range(rounds):
        for pump in pumps:
            pump.pump()
        for peer in peers:
            peer.clock.advance(0.1)


# -- the MAC -------------------------------------------------------------------------


def test_the_proof_changes_with_every_input():
    base = dict(secret=SECRET, prover_dialled=True, prover_id=1002, verifier_id=1001,
                prover_nonce=b"a" * 9, verifier_nonce=b"b" * 9)
    reference = auth.proof(**base)
    assert len(reference) == 32 and auth.proof(**base) == reference
    for name, other in [("secret", b"x" * 32), ("prover_dialled", False), ("prover_id", 1003),
                        ("verifier_id", 1003), ("prover_nonce", b"c" * 9), ("verifier_nonce", b"c" * 9)]:
        assert auth.proof(**{**base, name: other}) != reference, name
    swapped = dict(base, prover_id=1001, verifier_id=1002, prover_nonce=b"b" * 9, verifier_nonce=b"a" * 9)
    assert auth.proof(**swapped) != reference  # the other side's answer, with its own role, differs too


def test_the_handshake_carries_the_bit_and_the_nonce_beside_pipelining():
    data = wire.encode_handshake(1002, pipelining=True, nonce=b"\x01" * 9)
    assert data[:18] == b"P2PFILESHARINGPROJ" and data[18:27] == b"\x01" * 9
    assert data[27] == wire.PIPELINING_BIT | wire.AUTH_BIT and data[28:] == struct.pack(">I", 1002)
    framer = wire.Framer(wire.Decoder(Peer.__init__.__globals__["swarm_config"]([1], [1], 10, 5).common))
    framer.feed(data)
    assert framer.next() == wire.Handshake(1002, True, b"\x01" * 9)
    assert wire.announced_nonce(wire.encode_handshake(1002, pipelining=True)) is None
    assert wire.encode_handshake(1002) == b"P2PFILESHARINGPROJ" + bytes(10) + struct.pack(">I", 1002)


# -- members talk ---------------------------------------------------------------------


def test_two_members_authenticate_and_the_file_goes_across(tmp_path):
    seed, leecher = member(tmp_path, 1001), member(tmp_path, 1002)
    server, client, pump = link(seed, leecher)
    run([seed, leecher], [pump])
    assert server.state is State.OPEN and client.state is State.OPEN
    assert 1002 in seed.service.neighbours and 1001 in leecher.service.neighbours
    assert leecher.store.held.complete and leecher.path.read_bytes() == CONTENT


# -- strangers get nothing --------------------------------------------------------------


def stranger_dials(peer: Peer, handshake: bytes, then: bytes = b""):
    """A stranger that knows the port and the IDs dials ``peer``; what ``peer`` wrote back."""
    protocol, transport = peer.connect()
    protocol.dataReceived(handshake + then)
    return protocol, transport


@pytest.mark.parametrize("claimed", [1002, 1003, 1005])
def test_a_stranger_without_the_bit_gets_only_our_handshake_and_is_dropped(tmp_path, warnings, claimed):
    seed = member(tmp_path, 1001)
    protocol, transport = stranger_dials(seed, wire.encode_handshake(claimed),
                                         wire.INTERESTED + wire.encode_request(0))
    handshake, rest = handshake_and_rest(transport.value())
    assert handshake.peer_id == 1001 and handshake.nonce is not None
    assert rest == b""  # no bitfield, no proof, no piece
    assert transport.disconnecting and not seed.service.neighbours
    assert seed.events() == []  # not a connection of the swarm
    (line,) = [t for t in warning_texts(warnings) if "closing the connection" in t]
    assert f"peer {claimed} sent a handshake without our authentication bit" in line
    assert "--secret-file" in line


def test_a_stranger_with_the_bit_and_a_wrong_proof_gets_nothing_of_the_file(tmp_path, warnings):
    seed = member(tmp_path, 1001)
    guess = auth.proof(b"not the secret, but long enough", True, 1002, 1001, b"s" * 9, b"?" * 9)
    protocol, transport = stranger_dials(seed, wire.encode_handshake(1002, nonce=b"s" * 9),
                                         wire.encode_proof(guess) + wire.INTERESTED + wire.encode_request(0))
    handshake, rest = handshake_and_rest(transport.value())
    split_proof(rest)  # its own proof went out, and nothing else
    assert transport.disconnecting and not seed.service.neighbours
    assert any("peer 1002 sent a wrong authentication proof" in t for t in warning_texts(warnings))


def test_a_stranger_that_skips_the_proof_is_dropped(tmp_path, warnings):
    seed = member(tmp_path, 1001)
    protocol, transport = stranger_dials(seed, wire.encode_handshake(1002, nonce=b"s" * 9),
                                         wire.encode_bitfield(seed.store.held) + wire.INTERESTED)
    split_proof(handshake_and_rest(transport.value())[1])
    assert transport.disconnecting and not seed.service.neighbours
    assert any("sent a 'bitfield' (length 3) where its authentication proof was due" in t
               for t in warning_texts(warnings))


def test_a_stranger_that_waits_is_dropped_after_the_handshake_timeout(tmp_path, warnings):
    seed = member(tmp_path, 1001, handshake_timeout=10)
    protocol, transport = stranger_dials(seed, wire.encode_handshake(1002, nonce=b"s" * 9))
    seed.clock.advance(11)
    assert transport.disconnecting
    assert any("sent no authentication proof within 10" in t for t in warning_texts(warnings))


def test_a_replayed_proof_fails(tmp_path, warnings):
    """A stranger records a member's proof on one connection and replays it, with the
    member's nonce and ID, on a connection of its own: the seed's fresh nonce differs."""
    seed, leecher = member(tmp_path, 1001), member(tmp_path, 1002)
    recorded: list[bytes] = []
    server, client, pump = link(seed, leecher, recorded)
    run([seed, leecher], [pump], rounds=3)
    heard = b"".join(recorded)
    their_handshake, rest = heard[:32], heard[32:32 + 37]
    assert 1002 in seed.service.neighbours  # the real one is in
    client.transport.loseConnection()
    pump.pump()
    assert 1002 not in seed.service.neighbours
    protocol, transport = stranger_dials(seed, their_handshake, rest)
    assert transport.disconnecting and 1002 not in seed.service.neighbours
    split_proof(handshake_and_rest(transport.value())[1])
    assert any("peer 1002 sent a wrong authentication proof" in t for t in warning_texts(warnings))


def test_a_reflected_challenge_fails(tmp_path, warnings):
    """A stranger sends the seed's own nonce back, or the seed's own proof, or the proof
    the seed gave on a second connection whose nonce was the first one's: all fail."""
    seed = member(tmp_path, 1001)
    # The seed's nonce of this connection, in the stranger's handshake.
    protocol, transport = seed.connect()
    their_nonce = wire.announced_nonce(transport.value()[:32])
    protocol.dataReceived(wire.encode_handshake(1002, nonce=their_nonce))
    assert transport.disconnecting
    assert any("our own nonce back in its handshake (a reflected challenge)" in t for t in warning_texts(warnings))
    # The seed's own proof sent back on the same connection.
    protocol, transport = seed.connect()
    protocol.dataReceived(wire.encode_handshake(1002, nonce=b"s" * 9))
    seeds_proof = split_proof(handshake_and_rest(transport.value())[1])
    protocol.dataReceived(wire.encode_proof(seeds_proof))
    assert transport.disconnecting and not seed.service.neighbours
    # Two connections: the second's challenge is the first's nonce, and what the seed
    # answers on the second is offered on the first.
    first, first_transport = seed.connect()
    first_nonce = wire.announced_nonce(first_transport.value()[:32])
    first.dataReceived(wire.encode_handshake(1002, nonce=b"t" * 9))
    second, second_transport = seed.connect()
    second.dataReceived(wire.encode_handshake(1003, nonce=first_nonce))
    answer = split_proof(handshake_and_rest(second_transport.value())[1])
    first.dataReceived(wire.encode_proof(answer))
    assert first_transport.disconnecting and not seed.service.neighbours
    assert sum("sent a wrong authentication proof" in t for t in warning_texts(warnings)) == 2


def test_the_seed_answers_and_is_checked_in_turn_when_it_dials(tmp_path, warnings):
    """On a connection we dialled the roles swap: a proof made as the acceptor passes, one
    made as the dialler (a reflection of ours) fails."""
    for role_dialled, passes in ((False, True), (True, False)):
        leecher = member(tmp_path / str(role_dialled), 1002) if (tmp_path / str(role_dialled)).mkdir() is None else None
        protocol, transport = leecher.connect(dialled=1001)
        ours = wire.announced_nonce(transport.value()[:32])
        protocol.dataReceived(wire.encode_handshake(1001, nonce=b"n" * 9))
        mac = auth.proof(SECRET, role_dialled, 1001, 1002, b"n" * 9, ours)
        protocol.dataReceived(wire.encode_proof(mac))
        assert (1001 in leecher.service.neighbours) is passes
        assert transport.disconnecting is not passes


# -- plain peers --------------------------------------------------------------------------


def test_a_plain_peer_is_unaffected(tmp_path):
    seed = Peer(tmp_path, 1001)
    protocol, transport = seed.connect()
    assert transport.value() == wire.encode_handshake(1001)  # ten zero reserved bytes
    protocol.dataReceived(wire.encode_handshake(1002, nonce=b"s" * 9))  # the bit means nothing to it
    assert isinstance(seed.sent(transport, handshake=True)[0], wire.Bitfield)
    assert 1002 in seed.service.neighbours


def test_a_member_refuses_a_plain_peer_and_a_plain_peer_gets_nothing(tmp_path, warnings):
    seed, plain = member(tmp_path, 1001), Peer(tmp_path, 1002)
    server, client, pump = link(seed, plain)
    run([seed, plain], [pump], rounds=20)
    assert not seed.service.neighbours and plain.store.held.count == 0
    assert server.state is State.CLOSED
    assert any("peer 1002 sent a handshake without our authentication bit" in t for t in warning_texts(warnings))


def test_members_with_different_secrets_refuse_each_other(tmp_path, warnings):
    seed, other = member(tmp_path, 1001), member(tmp_path, 1002, secret=b"another push's secret, 32 bytes")
    server, client, pump = link(seed, other)
    run([seed, other], [pump], rounds=20)
    assert not seed.service.neighbours and not other.service.neighbours
    assert other.store.held.count == 0


# -- only the push's hosts ----------------------------------------------------------------


class Built(Factory):
    def buildProtocol(self, addr):
        return Protocol()


def test_only_the_pushs_hosts_may_connect(warnings):
    allowed = AllowedHostsOnly(Built(), auth.AllowedHosts(["10.1.2.3", "192.168.7.0/24", "localhost"]))
    assert allowed.buildProtocol(IPv4Address("TCP", "10.1.2.3", 4000)) is not None
    assert allowed.buildProtocol(IPv4Address("TCP", "192.168.7.200", 4000)) is not None
    assert allowed.buildProtocol(IPv4Address("TCP", "127.0.0.1", 4000)) is not None  # listed: localhost
    assert allowed.buildProtocol(IPv4Address("TCP", "10.1.2.4", 4000)) is None
    (line,) = [t for t in warning_texts(warnings) if "refused" in t]
    assert "refused a connection from 10.1.2.4: not one of this push's hosts" in line
    assert not auth.AllowedHosts(["10.1.2.3"]).allows("127.0.0.1")  # loopback only when listed
    assert auth.AllowedHosts(["10.1.2.3"]).allows("::ffff:10.1.2.3")
    with pytest.raises(auth.AuthError, match="does not resolve"):
        auth.AllowedHosts(["no-such-host.invalid"])


# -- the secret file -------------------------------------------------------------------------


def test_the_secret_file_must_be_the_owners_alone(tmp_path):
    path = tmp_path / "push.secret"
    auth.write_secret(path, auth.new_secret())
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(auth.load_secret(path)) == 64
    path.chmod(0o640)
    with pytest.raises(auth.AuthError, match=r"others may read it \(mode 640\); chmod 600 it"):
        auth.load_secret(path)
    path.chmod(0o600)
    path.write_bytes(b"short\n")
    with pytest.raises(auth.AuthError, match="5 bytes; a secret needs at least 16"):
        auth.load_secret(path)
    with pytest.raises(auth.AuthError, match="No such file"):
        auth.load_secret(tmp_path / "absent")


# -- a lying member ---------------------------------------------------------------------------


def test_a_lying_member_is_dropped_and_the_file_ends_exact(tmp_path, warnings):
    """1003 has the secret and the manifest; 1001 (honest) and 1002 (holds a corrupt
    copy) are both seeds of the push. Whatever 1002 sends fails the manifest: it is
    dropped, each time it comes back, and every piece comes from 1001."""
    digests = [hashlib.sha256(CONTENT[i * PIECE : (i + 1) * PIECE]).digest() for i in range(11)]
    honest = member(tmp_path, 1001, seeds=(1001, 1002))
    liar = member(tmp_path, 1002, seeds=(1001, 1002))
    liar.path.write_bytes(bytes(b ^ 0x5A for b in CONTENT))  # same size, every byte wrong
    leecher = member(tmp_path, 1003, seeds=(1001, 1002), piece_hashes=digests)
    pumps = []
    # The liar comes first (and, dropped, dials again, twice), then the honest seed.
    for attempt in range(1, 4):
        _, to_liar, liar_pump = link(liar, leecher)
        pumps.append(liar_pump)
        run([honest, liar, leecher], pumps, rounds=10)
        assert to_liar.state is State.CLOSED and 1002 not in leecher.service.neighbours
        caught = [t for t in warning_texts(warnings) if "does not match the manifest" in t]
        assert len(caught) == attempt
    assert leecher.store.held.count == 0
    _, _, honest_pump = link(honest, leecher)
    run([honest, liar, leecher], pumps + [honest_pump])
    assert leecher.store.held.complete and leecher.path.read_bytes() == CONTENT
    assert all(t.startswith("peer 1002 sent piece ") for t in caught)
    assert all("will be fetched from another peer; closing the connection" in t for t in caught)
    assert 1002 not in leecher.service.neighbours
    assert "downloaded the piece" in leecher.log.getvalue()
    assert " from 1002. Now" not in leecher.log.getvalue()  # nothing of the liar's was kept
