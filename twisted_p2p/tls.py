"""TLS between the peers of a push (``--tls-cert``): Twisted's TLS over pyOpenSSL.

The launcher makes one self-signed certificate and key for the push and hands it, like
the secret, to every host over ssh. Every peer presents it and requires the other side
to present a certificate signed by it, so only holders of the key get in; the bytes are
encrypted. The peer protocol runs unchanged inside. pyOpenSSL is optional (the ``tls``
extra): nothing here is imported unless TLS is asked for.

Tests: tests/test_auth_processes.py (peers over TLS).
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The name the certificate carries and every peer checks (the hosts' own names may be
#: anything; holding the push's key is what counts).
NAME = "p2p-push"


class TLSError(Exception):
    """TLS cannot be set up; ``str()`` says why, in one line."""


def _require() -> None:
    try:
        import cryptography  # noqa: F401
        import OpenSSL  # noqa: F401
    except ImportError:
        raise TLSError("TLS needs pyOpenSSL: pip install 'twisted_p2p[tls]' (or 'twisted[tls]')") from None


def make_certificate(path: Path, days: int = 2) -> None:
    """Write a fresh self-signed certificate and its key, as one PEM readable by its
    owner only. Elliptic-curve P-256: quick to make and to handshake."""
    _require()
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pem += certificate.public_bytes(serialization.Encoding.PEM)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
        os.write(descriptor, pem)
    finally:
        os.close(descriptor)


@dataclass(frozen=True)
class PushTLS:
    """What a peer's endpoints need: server options, and a client connection creator."""

    server: Any  # twisted.internet.ssl.CertificateOptions
    client: Any  # an IOpenSSLClientConnectionCreator


def load(path: str | os.PathLike[str]) -> PushTLS:
    """The push's certificate and key from ``path``, as options for both sides; TLSError
    if pyOpenSSL is missing or the file is not a certificate with its key."""
    _require()
    from twisted.internet import ssl

    try:
        pem = Path(path).read_bytes()
        private = ssl.PrivateCertificate.loadPEM(pem)
    except OSError as exc:
        raise TLSError(f"--tls-cert {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # pyOpenSSL's errors are many and undocumented
        raise TLSError(f"--tls-cert {path}: not a PEM certificate with its key ({exc})") from None
    authority = ssl.Certificate(private.original)
    return PushTLS(server=private.options(authority),
                   client=ssl.optionsForClientTLS(NAME, trustRoot=authority, clientCertificate=private))
