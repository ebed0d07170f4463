"""PeerNode: one whole peer as a MultiService.

It owns the files (data, resume state and event log), the PeerService, the listening
port for later peers and one Dialler per earlier peer (SPEC §3), and closes it all in
order when stopped.

Tests: tests/test_node_dial.py, tests/test_swarm.py and tests/test_resume.py.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from twisted.application.service import MultiService
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP4ServerEndpoint, TCP6ClientEndpoint
from twisted.internet.interfaces import IListeningPort, IStreamClientEndpoint
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from twisted_p2p import policy
from twisted_p2p.auth import AllowedHosts
from twisted_p2p.bitfield import PieceSet
from twisted_p2p.config import SwarmConfig
from twisted_p2p.dialler import Dialler
from twisted_p2p.eventlog import EventLog, TextSink
from twisted_p2p.factory import AllowedHostsOnly, PeerClientFactory, PeerServerFactory
from twisted_p2p.layout import data_path, event_log_path
from twisted_p2p.manifest import piece_is_intact
from twisted_p2p.resume import Restored, Resume, current_boot_id
from twisted_p2p.service import PeerService
from twisted_p2p.settings import PeerSettings
from twisted_p2p.storage import PieceStore, StorageError, resume_report
from twisted_p2p.summary import SummaryEcho


def client_endpoint(reactor: Any, host: str, port: int, timeout: float) -> IStreamClientEndpoint:
    """The endpoint to dial an earlier peer. An address is dialled directly: a
    HostnameEndpoint reports a refused connection only when its next attempt would be
    due (0.3 s later, even with one address), which held back every retry to a peer
    still starting. A host name still goes through HostnameEndpoint (resolution, and
    both address families)."""
    if isIPAddress(host):
        return TCP4ClientEndpoint(reactor, host, port, timeout=timeout)
    if isIPv6Address(host):
        return TCP6ClientEndpoint(reactor, host, port, timeout=timeout)
    return HostnameEndpoint(reactor, host, port, timeout=timeout)


class PeerNode(MultiService):
    log = Logger()

    def __init__(
        self,
        config: SwarmConfig,
        peer_id: int,
        work_dir: str | Path,
        reactor: Any,
        settings: PeerSettings = PeerSettings(),
        *,
        echo: TextSink | None = None,
        piece_hashes: Sequence[bytes] | None = None,
        boot_id: str | None = None,
        secret: bytes | None = None,
        allowed: AllowedHosts | None = None,
        tls: Any = None,
    ) -> None:
        """``echo``: where ``settings.echo_events`` sends the events too (or
        ``settings.echo_summary`` its progress lines and the completion); ``secret``,
        ``allowed`` and ``tls``: a push's (see :mod:`twisted_p2p.auth`, :mod:`twisted_p2p.tls`)."""
        super().__init__()
        self.config = config
        self.info = config.peer(peer_id)
        self.reactor = reactor
        self.settings = settings
        rng = random.Random(settings.random_seed)
        path = data_path(work_dir, peer_id, config.common.file_name)
        self.resume: Resume | None = None
        restored: Restored | None = None
        if not self.info.has_file:
            self.resume = Resume(path, config.common, current_boot_id() if boot_id is None else boot_id)
            restored = self.resume.restore()
            if settings.new_swarm:  # a new swarm: the IDs its journal learned were another swarm's
                restored.complete_peers, restored.told_peers = set(), set()
        self.store = PieceStore(path, config.common, self.info.has_file, restored.held if restored else None)
        if self.resume is not None and restored is not None:
            self._resume(self.resume, restored, piece_hashes)
        summary = echo if settings.echo_summary > 0 else None
        self.events = self._open_event_log(work_dir, echo, summary is not None)
        self.peer = PeerService(
            config, peer_id, self.store, self.events, reactor, rng, settings, piece_hashes=piece_hashes,
            run_in_thread=lambda function, *args: deferToThreadPool(reactor, reactor.getThreadPool(), function, *args),
            resume=self.resume, restored=restored, secret=secret,
        )
        if settings.split_seed:  # a seed sends each piece about once (policy.seed_share)
            among = settings.split_among
            leechers = [peer.peer_id for peer in config.peers
                        if not peer.has_file and (among is None or peer.peer_id in among)]
            self.peer.pieces.set_share(policy.seed_share(leechers, peer_id, config.common.num_pieces))
        self.peer.setServiceParent(self)
        if summary is not None:
            SummaryEcho(self.peer, summary, settings.echo_summary, reactor).setServiceParent(self)
        #: A push's: only its hosts may connect; with ``tls`` (a tls.PushTLS), over TLS.
        self.allowed = allowed
        self.tls = tls
        self._dial_earlier_peers(rng)
        self.port: IListeningPort | None = None

    def _open_event_log(self, work_dir: str | Path, echo: TextSink | None, summary: bool) -> EventLog:
        """The event log, echoed whole to ``echo`` or, in summary mode, only its completion."""
        peer_id = self.info.peer_id
        log_path = event_log_path(work_dir, peer_id)
        try:
            self._event_file = open(log_path, "a", encoding="utf-8")
        except OSError as exc:
            self.store.close()
            raise StorageError(f"cannot write the event log {log_path}: {exc.strerror or exc}") from None
        return EventLog(peer_id, self._event_file, self.reactor, echo=echo,
                        echoed=frozenset({"complete"}) if summary else None)

    def _dial_earlier_peers(self, rng: random.Random) -> None:
        """One Dialler per peer listed before us (SPEC §3) that is one of our neighbours
        (all of them, but with our bounded neighbour set)."""
        for earlier in self.config.peers_before(self.info.peer_id):
            if earlier.peer_id not in self.peer.circle:
                continue
            endpoint = client_endpoint(self.reactor, earlier.host, earlier.port, self.settings.connect_timeout)
            if self.tls is not None:
                from twisted.internet.endpoints import wrapClientTLS

                endpoint = wrapClientTLS(self.tls.client, endpoint)
            dialler = Dialler(earlier.peer_id, endpoint, PeerClientFactory(self.peer, earlier.peer_id), self.reactor,
                              rng, connect_delays=self.settings.retry_delays, should_dial=self.peer.should_dial,
                              unreachable=self.peer.unreachable)
            dialler.setServiceParent(self)

    def _resume(self, resume: Resume, restored: Restored, piece_hashes: Sequence[bytes] | None) -> None:
        """Start the resume journal from what may be trusted; with a manifest, trust the
        bytes too, not only the records."""
        if piece_hashes is not None and restored.held.count:
            dropped = self.store.keep_verified(lambda index, data: piece_is_intact(piece_hashes, index, data))
            if dropped:
                self.log.warn("{count} resumed pieces failed the manifest and will be fetched again", count=dropped)
                restored.held = self.store.held
                restored.durable = PieceSet(restored.durable.total, (i for i in restored.durable if i in restored.held))
        if restored.held.count:
            self.log.info("{report}", report=resume_report(self.info.peer_id, restored.held.count,
                                                           restored.held.total))
        try:
            resume.start(restored)
        except OSError as exc:
            self.store.close()
            raise StorageError(f"cannot write the resume state beside {self.store.path}: "
                               f"{exc.strerror or exc}") from None
        neighbours = policy.neighbourhood(self.config.peer_ids, self.info.peer_id, self.settings.neighbours)
        if policy.swarm_complete(restored.held, restored.complete_peers, restored.told_peers, neighbours):
            self.log.info("peer {me}: the swarm finished before this start (every {whom} has the file); "
                          "nothing to do", me=self.info.peer_id,
                          whom="peer of PeerInfo.cfg" if self.settings.neighbours is None else "neighbour")

    def startService(self) -> None:
        endpoint = TCP4ServerEndpoint(self.reactor, self.info.port, interface=self.settings.interface)
        factory: Any = PeerServerFactory(self.peer)
        if self.tls is not None:
            from twisted.protocols.tls import TLSMemoryBIOFactory

            factory = TLSMemoryBIOFactory(self.tls.server, False, factory)
        if self.allowed is not None:
            factory = AllowedHostsOnly(factory, self.allowed)
        listening = endpoint.listen(factory)
        listening.addCallbacks(self._listening, self._cannot_listen)
        super().startService()

    def _listening(self, port: IListeningPort) -> None:
        self.port = port
        address = cast(IPv4Address, port.getHost())  # the port of a TCP4ServerEndpoint
        self.log.info("peer {me} listening on port {port}", me=self.info.peer_id, port=address.port)

    def _cannot_listen(self, failure: Any) -> None:
        self.peer.fail(f"cannot listen on port {self.info.port}: {failure.getErrorMessage()}")

    def stopService(self) -> Deferred[object]:
        held = self.store.held
        self.log.info(
            "peer {me} stopping with {count} of {total} pieces; closing connections and saving state",
            me=self.info.peer_id, count=held.count, total=held.total,
        )
        port, self.port = self.port, None
        stopped: Deferred[object] = (maybeDeferred(port.stopListening) if port is not None
                                     else maybeDeferred(lambda: None))
        stopped.addCallback(lambda _: MultiService.stopService(self))
        stopped.addBoth(self._close_files)
        return stopped

    def _close_files(self, result: object) -> object:
        self.store.close()
        if self.resume is not None:
            self.resume.close()
        self.events.flush()
        self._event_file.close()
        return result
