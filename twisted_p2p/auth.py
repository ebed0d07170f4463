"""Our authentication extension: the peers of one push prove to each other that they
hold the push's secret, and accept connections only from the push's hosts.

A peer given a secret sets bit 0x02 of handshake byte 27 and puts a fresh 9-byte nonce
in bytes 18-26 (:mod:`twisted_p2p.wire`). Once it has the neighbour's handshake it
sends a Proof: HMAC-SHA256 under the secret of :data:`DOMAIN`, the prover's role
(``D`` dialled, ``A`` accepted), the prover's ID, the verifier's ID, the prover's nonce
and the verifier's nonce. The verifier checks it against its own fresh nonce, so a
proof recorded on another connection (replay), or the verifier's own proof sent back
(reflection: wrong role and IDs swapped), never passes. Until the neighbour's proof
has passed, nothing of the file (no bitfield, no piece) goes to it.

Pure functions and a small per-connection state machine; no I/O but reading files.
"""
from __future__ import annotations

import enum
import hashlib
import hmac
import ipaddress
import os
import socket
import stat
import struct
from collections.abc import Iterable
from pathlib import Path

from twisted_p2p import wire

DOMAIN = b"P2PFILESHARINGPROJ auth v1"
#: Shortest secret accepted, in bytes (push writes 32 random bytes as 64 hex digits).
MIN_SECRET = 16
_IDS = struct.Struct(">II")


class AuthError(Exception):
    """A secret file or host list that cannot be used; ``str()`` says why, in one line."""


def proof(secret: bytes, prover_dialled: bool, prover_id: int, verifier_id: int,
          prover_nonce: bytes, verifier_nonce: bytes) -> bytes:
    """The 32-byte proof a peer sends: every input that tells one connection and one
    direction from another goes into the MAC."""
    message = b"".join([DOMAIN, b"D" if prover_dialled else b"A", _IDS.pack(prover_id, verifier_id),
                        prover_nonce, verifier_nonce])
    return hmac.new(secret, message, hashlib.sha256).digest()


class Step(enum.Enum):
    AWAITING_HANDSHAKE = "awaiting handshake"
    AWAITING_PROOF = "awaiting proof"
    AUTHENTICATED = "authenticated"
    FAILED = "failed"


class Authentication:
    """One connection's authentication: our nonce, then their handshake (we answer their
    nonce), then their proof (checked against ours)."""

    def __init__(self, secret: bytes, my_id: int, dialled: bool, nonce: bytes) -> None:
        self.secret = secret
        self.my_id = my_id
        self.dialled = dialled  # we dialled this connection
        self.nonce = nonce
        self.step = Step.AWAITING_HANDSHAKE
        self._their_id: int | None = None
        self._their_nonce = b""

    def handshake(self, their_id: int, their_nonce: bytes | None) -> bytes:
        """Their handshake came: our Proof frame to send, or ProtocolViolation."""
        if self.step is not Step.AWAITING_HANDSHAKE:
            raise wire.ProtocolViolation("a second handshake")
        if their_nonce is None:
            self.step = Step.FAILED
            raise wire.ProtocolViolation(
                f"a handshake without our authentication bit (0x{wire.AUTH_BIT:02x} of byte {wire.PIPELINING_BYTE}): "
                "a plain peer, or one not given this push's secret; this peer requires the secret of every "
                "neighbour (--secret-file)")
        if their_nonce == self.nonce:
            self.step = Step.FAILED
            raise wire.ProtocolViolation("our own nonce back in its handshake (a reflected challenge)")
        self._their_id, self._their_nonce = their_id, their_nonce
        self.step = Step.AWAITING_PROOF
        mine = proof(self.secret, self.dialled, self.my_id, their_id, self.nonce, their_nonce)
        return wire.encode_proof(mine)

    def check(self, mac: bytes) -> None:
        """Their proof came: accept it, or raise ProtocolViolation."""
        if self.step is not Step.AWAITING_PROOF or self._their_id is None:
            raise wire.ProtocolViolation("an authentication proof out of turn")
        expected = proof(self.secret, not self.dialled, self._their_id, self.my_id, self._their_nonce, self.nonce)
        if not hmac.compare_digest(mac, expected):
            self.step = Step.FAILED
            raise wire.ProtocolViolation(
                "a wrong authentication proof: it does not hold this push's secret (or replayed or reflected "
                "another connection's proof)")
        self.step = Step.AUTHENTICATED


def new_nonce() -> bytes:
    return os.urandom(wire.NONCE_LENGTH)


# -- the secret file ---------------------------------------------------------------


def new_secret() -> bytes:
    """A fresh secret for one push, as the file holds it: 64 hex digits."""
    return os.urandom(32).hex().encode("ascii")


def write_secret(path: Path, secret: bytes) -> None:
    """Write ``secret`` readable by its owner only, never briefly by anyone else."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
        os.write(descriptor, secret + b"\n")
    finally:
        os.close(descriptor)


def load_secret(path: str | os.PathLike[str]) -> bytes:
    """The secret in ``path`` (surrounding whitespace stripped). A file others may read,
    or one too short, is an AuthError: a secret that leaked protects nothing."""
    try:
        with open(path, "rb") as stream:
            mode = os.fstat(stream.fileno()).st_mode
            secret = stream.read(4096).strip()
    except OSError as exc:
        raise AuthError(f"--secret-file {path}: {exc.strerror or exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AuthError(f"--secret-file {path}: others may read it (mode {stat.S_IMODE(mode):o}); chmod 600 it")
    if len(secret) < MIN_SECRET:
        raise AuthError(f"--secret-file {path}: {len(secret)} bytes; a secret needs at least {MIN_SECRET}")
    return secret


# -- the hosts allowed to connect --------------------------------------------------


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    address = ipaddress.ip_address(text.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class AllowedHosts:
    """The addresses a push's peer accepts connections from: each entry an address, a
    network (``10.0.0.0/24``) or a name, resolved once, at start. Loopback is allowed
    only when listed (a swarm on one machine, as in tests)."""

    def __init__(self, entries: Iterable[str], strict: bool = True) -> None:
        """``strict``: a name that does not resolve is an AuthError; else it is left
        out and listed in ``unresolved`` (PeerInfo.cfg's hosts: such a peer cannot be
        reached anyway)."""
        self.entries = list(dict.fromkeys(entry.strip() for entry in entries if entry.strip()))
        self.networks: list[Network] = []
        self.unresolved: list[str] = []
        for entry in self.entries:
            try:
                self.networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            try:
                infos = socket.getaddrinfo(entry, None, proto=socket.IPPROTO_TCP)
            except OSError as exc:
                if not strict:
                    self.unresolved.append(entry)
                    continue
                raise AuthError(f"host {entry!r} of the allowed hosts does not resolve: {exc}") from None
            for info in infos:
                address = _address(str(info[4][0]))
                self.networks.append(ipaddress.ip_network(address))
        if not self.networks:
            raise AuthError("no allowed hosts")

    def allows(self, host: str) -> bool:
        try:
            address = _address(host)
        except ValueError:
            return False  # not an IP address (a UNIX socket, say): not one of the hosts
        return any(address in network for network in self.networks)

    def describe(self) -> str:
        return ", ".join(self.entries)
