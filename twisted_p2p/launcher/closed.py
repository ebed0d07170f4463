"""What makes a push's swarm closed and verified: a fresh secret, the file's piece
hashes and, with ``--tls``, a certificate made for this push.

:func:`prepare` writes them beside the push's Common.cfg and PeerInfo.cfg; the launcher
hands them to every host with the config over its ssh connection (the secret and the
key readable by their owner only, never on a command line) and starts every peer with
:attr:`ClosedSwarm.options`. A peer given the secret requires it of every neighbour and
accepts connections only from the hosts of PeerInfo.cfg (:mod:`twisted_p2p.auth`); the
manifest makes it check every piece (:mod:`twisted_p2p.manifest`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from twisted_p2p import auth, manifest
from twisted_p2p.config import Common

SECRET_NAME = "push.secret"
CERTIFICATE_NAME = "push.pem"


@dataclass(frozen=True)
class ClosedSwarm:
    """Files to put in each peer's work dir (which is its config dir), ``{name there:
    path here}``, and the options every peer of the push is started with (relative
    paths: a peer runs in its work dir)."""

    files: dict[str, Path] = field(default_factory=dict)
    options: list[str] = field(default_factory=list)


def check_tls() -> None:
    """Raise tls.TLSError at once if ``--tls`` cannot work here (no pyOpenSSL)."""
    from twisted_p2p import tls

    tls._require()


def prepare(config_dir: Path, data_file: Path, common: Common, use_tls: bool = False) -> ClosedSwarm:
    """Write a fresh secret, the piece-hash manifest of ``data_file`` and, if asked, a
    certificate for this push into ``config_dir``; what to send and how to start peers."""
    secret = config_dir / SECRET_NAME
    auth.write_secret(secret, auth.new_secret())
    hashes = manifest.write_manifest_from(data_file, config_dir, common)
    files = {hashes.name: hashes, SECRET_NAME: secret}
    options = ["--secret-file", SECRET_NAME]
    if use_tls:
        from twisted_p2p import tls

        certificate = config_dir / CERTIFICATE_NAME
        tls.make_certificate(certificate)
        files[CERTIFICATE_NAME] = certificate
        options += ["--tls-cert", CERTIFICATE_NAME]
    return ClosedSwarm(files, options)
