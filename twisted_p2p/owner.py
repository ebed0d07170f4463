"""The contract between a connection and the peer that owns it.

A :class:`~twisted_p2p.protocol.PeerProtocol` frames bytes, times the handshake, and
paces what it sends; everything the swarm's state decides is its owner's. These two
declarations say what each side may use of the other, so that neither module imports
the other: :class:`ConnectionOwner` (a :class:`~twisted_p2p.service.PeerService`) and
:class:`Connection` (a PeerProtocol).

Tests: tests/test_protocol.py (both sides of the contract); mypy checks that each side keeps it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from twisted.internet.interfaces import IReactorTime

from twisted_p2p.messages import Message
from twisted_p2p.ratelimit import TokenBucket
from twisted_p2p.wire import Decoder

if TYPE_CHECKING:
    from twisted_p2p.neighbour import Neighbour


class Connection(Protocol):
    """What the owner uses of one connection."""

    #: Set on connections we dialled: the handshake must carry this ID.
    expected_peer_id: int | None
    #: The owner's record of this neighbour once it is accepted; the connection only holds it.
    neighbour: Neighbour | None

    @property
    def outgoing(self) -> bool: ...

    @property
    def closing(self) -> bool: ...

    def quiet_for(self) -> float:
        """Seconds since the neighbour last sent us a byte."""

    def send(self, data: bytes) -> None: ...

    def send_have(self, have: bytes) -> None:
        """A have, which may wait a moment to go out with the next ones."""

    def queue_upload(self, index: int) -> None: ...

    def cancel_uploads(self) -> None: ...

    def drop(self, why: str) -> None:
        """Close it because of what the neighbour did."""

    def close(self, timeout: float) -> None:
        """Close it quietly, aborting after ``timeout`` seconds."""


class ConnectionOwner(Protocol):
    """What a connection uses of its owner: settings and shared parts to read, and the
    events of its life to report."""

    peer_id: int
    clock: IReactorTime
    #: Shared by every connection: it knows the swarm's geometry.
    decoder: Decoder
    handshake_timeout: float
    #: A connection we drop is aborted if it has not closed after this many seconds.
    drop_grace: float
    #: Our pipelining depth; above 1 our handshake announces the extension.
    pipeline: int
    #: With a secret every neighbour must prove it holds it; None: the plain protocol.
    secret: bytes | None
    new_nonce: Callable[[], bytes]
    #: Caps our total upload; None: no cap.
    upload_limiter: TokenBucket | None

    def connection_made(self, connection: Connection) -> None: ...

    def check_handshake(self, connection: Connection, peer_id: int) -> None:
        """Raise ProtocolViolation if ``peer_id`` may not be this connection's neighbour."""

    def handshake_received(self, connection: Connection, peer_id: int, pipelining: bool = False) -> None:
        """Take the neighbour in, or raise ProtocolViolation."""

    def message_received(self, connection: Connection, message: Message) -> None:
        """Judge and act on one message; raise ProtocolViolation to have it dropped."""

    def read_piece(self, index: int) -> bytes: ...

    def connection_closing(self, connection: Connection) -> None:
        """We are closing it: forget the neighbour now."""

    def connection_lost(self, connection: Connection, closed_by_them: bool = False) -> None: ...
