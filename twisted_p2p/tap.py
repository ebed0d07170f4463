"""``twistd p2ppeer``: command-line options and makeService for the plugin.

Mistakes in the options, the config files or the seed's file end the process with one
line on standard error and a non-zero status, never a traceback.
"""
from __future__ import annotations

import ctypes
import os
import random
import sys
import threading
from pathlib import Path
from typing import Any, Optional

from twisted.logger import Logger
from twisted.python import usage

from twisted_p2p.config import ConfigError, load
from twisted_p2p.pipeline import MAX_DEPTH

class Options(usage.Options):
    synopsis = "--id PEER_ID [--config-dir DIR] [--work-dir DIR] [options]"
    longdesc = (
        "Runs one peer of a P2PFILESHARINGPROJ swarm. The peer reads Common.cfg and "
        "PeerInfo.cfg, listens on its port, dials every peer listed before it, keeps its "
        "file in WORK_DIR/peer_ID/ and its event log in WORK_DIR/log_peer_ID.log, and exits "
        "with status 0 once every peer of PeerInfo.cfg has the whole file. "
        "Run it as: twistd -n --pidfile= p2ppeer --id 1001"
    )
    optParameters = [
        ["id", None, None, "this peer's ID, as listed in PeerInfo.cfg (required)"],
        ["config-dir", None, None, "directory with Common.cfg and PeerInfo.cfg [default: ./conf if it exists, else .]"],
        ["work-dir", None, ".", "directory for peer_ID/ and log_peer_ID.log"],
        ["interface", None, None, "address to listen on [default: all IPv4 addresses]"],
        ["handshake-timeout", None, 30.0, "seconds a new connection may take to send its handshake", float],
        ["request-timeout", None, 5.0, "seconds a neighbour may take to answer its first request; after "
         "that, 4 times its average answer time, from 1 s up to 30 s (or this, if longer)", float],
        ["random-seed", None, None, "seed for the peer's random choices, to make a run reproducible", int],
        ["upload-rate", None, 0, "cap on this peer's total upload, in bytes per second (0: no cap)", int],
        ["pipeline", None, 0, "announce our pipelining extension and keep up to N requests outstanding to "
         "a neighbour that announces it too (the depth in use follows the round trip, from 16 up to N); "
         "others get the plain protocol, but a strict peer may drop a handshake whose reserved bytes are "
         "not zero, so use it only among our own peers (0: off)", int],
        ["secret-file", None, None, "our authentication extension: FILE holds a secret (readable by its owner "
         "only); every neighbour must prove it holds it too before it is sent anything, and only the hosts "
         "of PeerInfo.cfg (or --allow-hosts) may connect. p2p-swarm push makes one per push"],
        ["allow-hosts", None, None, "comma-separated names, addresses or networks (10.0.0.0/24) that may "
         "connect to this peer; others are refused [with --secret-file: the hosts of PeerInfo.cfg; "
         "else anyone]"],
        ["tls-cert", None, None, "TLS between peers: FILE holds the swarm's certificate and key (PEM); every "
         "neighbour must present a certificate signed by it (needs the tls extra, pyOpenSSL)"],
    ]
    optFlags = [
        ["echo-events", None, "also write every event-log line to standard output, and the file's "
         "SHA-256 when done (for a launcher that follows a peer on another host)"],
        ["exit-on-stdin-close", None, "stop cleanly (state saved, exit 0) when standard input closes: "
         "a lifeline for a launcher that runs the peer over ssh, so the peer never outlives it"],
        ["refill-slots", None, "our extension: give a preferred or optimistic slot freed between rounds "
         "to a waiting neighbour at once (the course's protocol, the default, chooses only every p and "
         "m seconds)"],
        ["split-seed", None, "our extension: ask a peer that holds the whole file only for our share of "
         "the pieces (every n-th, n the peers without the file) until we hold it, and the rest from the "
         "others, so that a seed sends each piece about once (p2p-swarm push uses it)"],
        ["write-hashes", None, "write CONFIG_DIR/FileName.hashes (SHA-256 per piece) from this peer's "
         "complete file, then exit; with that file present every peer checks each piece it receives"],
        ["new-swarm", None, "resume only our own pieces from the journal, nothing it learned of other peers "
         "(a launcher's new swarm, whose IDs may name other hosts than the last one's)"],
    ]

    def parseOptions(self, options: Optional[list[str]] = None) -> None:
        try:
            super().parseOptions(options)
        except usage.UsageError as exc:
            raise SystemExit(f"p2ppeer: {exc} (try: twistd p2ppeer --help)") from None

    def postOptions(self) -> None:
        if self["id"] is None:
            raise usage.UsageError("--id is required")
        try:
            self["id"] = int(self["id"])
        except ValueError:
            raise usage.UsageError(f"--id must be a peer ID (a whole number), not {self['id']!r}") from None
        if self["config-dir"] is None:
            self["config-dir"] = "conf" if Path("conf").is_dir() else "."
        if not 0 <= self["pipeline"] <= MAX_DEPTH:
            raise usage.UsageError(f"--pipeline must be 0 (off) up to {MAX_DEPTH} requests")
        if self["upload-rate"] < 0:
            raise usage.UsageError("--upload-rate must be 0 (no cap) or a positive number of bytes per second")
        for name in ("handshake-timeout", "request-timeout"):
            if self[name] <= 0:
                raise usage.UsageError(f"--{name} must be a positive number of seconds")


def _keep_piece_buffers() -> None:
    """glibc hands freed blocks over 128 KiB back to the kernel, so with large pieces
    every piece buffer is page-faulted in afresh (measured: half the throughput at
    256 KiB pieces). Keep such blocks in the heap for reuse; elsewhere, do nothing."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 8 << 20)  # M_MMAP_THRESHOLD: blocks up to 8 MiB from the heap
        libc.mallopt(-1, 128 << 20)  # M_TRIM_THRESHOLD: keep up to 128 MiB of free heap
    except (OSError, AttributeError):
        pass


def _stop_when_stdin_closes(reactor: Any) -> None:
    """Read standard input in a thread until it ends, then stop the reactor: whatever
    holds the other end (ssh, a launcher) going away is the signal to stop."""

    def watch() -> None:
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        reactor.callFromThread(stop)

    def stop() -> None:
        if reactor.running:
            Logger().info("standard input closed (the launcher is gone): stopping")
            reactor.stop()

    threading.Thread(target=watch, name="lifeline", daemon=True).start()


def _exit_after_shutdown(reactor: Any, status: int) -> None:
    """twistd always exits 0 after the reactor stops; a failed peer must not."""

    def leave() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)

    reactor.addSystemEventTrigger("after", "shutdown", leave)


def makeService(options: Options) -> Any:
    """The peer's MultiService; the imports wait until here so ``twistd --help`` is quick."""
    from twisted.internet import reactor

    from twisted_p2p import tls as push_tls
    from twisted_p2p.auth import AllowedHosts, AuthError, load_secret
    from twisted_p2p.manifest import load_manifest, manifest_path, write_manifest_from
    from twisted_p2p.node import PeerNode
    from twisted_p2p.outlet import Outlet
    from twisted_p2p.requests import RequestTimeouts
    from twisted_p2p.storage import StorageError, data_path

    _keep_piece_buffers()
    peer_id = options["id"]
    config_dir = options["config-dir"]
    try:
        config = load(config_dir)
        if peer_id not in config.peer_ids:
            raise ConfigError(Path(config_dir) / "PeerInfo.cfg", None, f"peer {peer_id} is not listed")
        hashes_path = manifest_path(config_dir, config.common)
        if options["write-hashes"]:
            source = data_path(options["work-dir"], peer_id, config.common)
            write_manifest_from(source, config_dir, config.common)
            print(f"wrote {hashes_path} ({config.common.num_pieces} pieces of {source})")
            raise SystemExit(0)
        secret = load_secret(options["secret-file"]) if options["secret-file"] else None
        allowed = None
        if options["allow-hosts"] is not None:
            allowed = AllowedHosts(options["allow-hosts"].split(","))
        elif secret is not None:
            allowed = AllowedHosts((peer.host for peer in config.peers), strict=False)
            for host in allowed.unresolved:
                Logger().warn("host {host} of PeerInfo.cfg does not resolve: its connections are refused", host=host)
        tls = None
        if options["tls-cert"]:
            tls = push_tls.load(options["tls-cert"])
        echo = None
        if options["echo-events"]:
            # twistd's own log goes to standard output too, once this returns: through
            # the outlet as well, so that a stalled reader blocks neither.
            echo = sys.stdout = Outlet(sys.stdout)
            reactor.addSystemEventTrigger("after", "shutdown", echo.drain, 5.0)
        node = PeerNode(
            config,
            peer_id,
            options["work-dir"],
            reactor,
            rng=random.Random(options["random-seed"]),
            interface=options["interface"] or "",
            echo=echo,
            handshake_timeout=options["handshake-timeout"],
            upload_rate=options["upload-rate"],
            pipeline=options["pipeline"],
            refill_slots=bool(options["refill-slots"]),
            piece_hashes=load_manifest(hashes_path, config.common),
            request_timeouts=RequestTimeouts(initial=options["request-timeout"],
                                             maximum=max(RequestTimeouts.maximum, options["request-timeout"])),
            secret=secret,
            allowed=allowed,
            tls=tls,
            forget_peers=bool(options["new-swarm"]),
            split_seed=bool(options["split-seed"]),
        )
    except (ConfigError, StorageError, AuthError, push_tls.TLSError) as exc:
        raise SystemExit(f"p2ppeer {peer_id}: {exc}") from None
    except OSError as exc:
        raise SystemExit(f"p2ppeer {peer_id}: {exc.filename or ''}: {exc.strerror or exc}") from None
    if node.peer.piece_hashes is not None:
        Logger().info("checking every piece against {path}", path=hashes_path)
    if secret is not None:
        Logger().info("every neighbour must prove it holds the secret of {path}", path=options["secret-file"])
    if allowed is not None:
        Logger().info("accepting connections only from {hosts}", hosts=allowed.describe())

    def stop(_: object) -> None:
        # The peer may fail before the reactor runs (its port is taken: twistd starts
        # the services first); stopping must wait for the reactor then, or never happen.
        if reactor.running:
            reactor.stop()
        else:
            reactor.callWhenRunning(reactor.stop)

    def failed(failure: Any) -> None:
        _exit_after_shutdown(reactor, 1)
        stop(None)

    def signal_is_a_clean_stop() -> None:
        # twistd re-raises SIGTERM/SIGINT once the reactor has stopped, so the process
        # would die "killed by signal". For a peer that is a clean stop (state saved,
        # connections closed): exit 0 instead.
        if getattr(reactor, "_exitSignal", None) is not None:
            reactor._exitSignal = None

    reactor.addSystemEventTrigger("after", "shutdown", signal_is_a_clean_stop)
    if options["exit-on-stdin-close"]:
        reactor.callWhenRunning(_stop_when_stdin_closes, reactor)
    node.peer.done.addCallbacks(stop, failed)
    return node
