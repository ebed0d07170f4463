"""``twistd p2ppeer``: command-line options and makeService for the plugin.

makeService reads the options and the files and composes the peer; the process around
it (exit status, signals, standard output) is :mod:`twisted_p2p.process`'s. Mistakes in
the options, the config files or the seed's file end the process with one line on
standard error and status 1, never a traceback.

Tests: tests/test_settings.py (the options) and tests/test_processes.py (twistd p2ppeer itself).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from twisted.logger import Logger
from twisted.python import usage

from twisted_p2p.config import ConfigError, SwarmConfig, load
from twisted_p2p.pipeline import MAX_DEPTH
from twisted_p2p.settings import PeerSettings, option_name, option_table

_SETTINGS_PARAMETERS, _SETTINGS_FLAGS = option_table()


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
        ["secret-file", None, None, "our authentication extension: FILE holds a secret (readable by its owner "
         "only); every neighbour must prove it holds it too before it is sent anything, and only the hosts "
         "of PeerInfo.cfg (or --allow-hosts) may connect. p2p-swarm push makes one per push"],
        ["allow-hosts", None, None, "comma-separated names, addresses or networks (10.0.0.0/24) that may "
         "connect to this peer; others are refused [with --secret-file: the hosts of PeerInfo.cfg; "
         "else anyone]"],
        ["tls-cert", None, None, "TLS between peers: FILE holds the swarm's certificate and key (PEM); every "
         "neighbour must present a certificate signed by it (needs the tls extra, pyOpenSSL)"],
        *_SETTINGS_PARAMETERS,
    ]
    optFlags = [
        ["write-hashes", None, "write CONFIG_DIR/FileName.hashes (SHA-256 per piece) from this peer's "
         "complete file, then exit; with that file present every peer checks each piece it receives"],
        *_SETTINGS_FLAGS,
    ]

    def parseOptions(self, options: list[str] | None = None) -> None:
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
        settings = self.settings = PeerSettings.from_options(self)
        if not 0 <= settings.pipeline <= MAX_DEPTH:
            raise usage.UsageError(f"--pipeline must be 0 (off) up to {MAX_DEPTH} requests")
        if settings.upload_rate < 0:
            raise usage.UsageError("--upload-rate must be 0 (no cap) or a positive number of bytes per second")
        if settings.echo_summary < 0:
            raise usage.UsageError("--echo-summary must be 0 (off) or a positive number of seconds")
        for name in ("handshake_timeout", "request_timeout"):
            if getattr(settings, name) <= 0:
                raise usage.UsageError(f"--{option_name(name)} must be a positive number of seconds")
        if self["tls-cert"] is None:
            from twisted_p2p import process

            process.without_pyopenssl()


class Access(NamedTuple):
    """Whom the peer trusts, as --secret-file, --allow-hosts and --tls-cert say."""

    secret: bytes | None
    allowed: Any  # an auth.AllowedHosts, or None: anyone may connect
    tls: Any  # a tls.PushTLS, or None: plain TCP


def makeService(options: Options) -> Any:
    """The peer, a MultiService; the imports wait until here so ``twistd --help`` is quick."""
    from twisted.internet import reactor

    from twisted_p2p import process
    from twisted_p2p.manifest import load_manifest, manifest_path
    from twisted_p2p.node import PeerNode

    settings: PeerSettings = options.settings
    peer_id = options["id"]
    process.keep_piece_buffers()
    with _one_line_errors(peer_id):
        config = _load_config(options["config-dir"], peer_id, settings.neighbours)
        hashes_path = manifest_path(options["config-dir"], config.common)
        if options["write-hashes"]:
            _write_hashes(options, config, hashes_path)
        access = _access(options, config)
        echo = process.echo_to_stdout(reactor) if settings.echo_events or settings.echo_summary else None
        node = PeerNode(config, peer_id, options["work-dir"], reactor, settings, echo=echo,
                        piece_hashes=load_manifest(hashes_path, config.common),
                        secret=access.secret, allowed=access.allowed, tls=access.tls)
    if node.peer.piece_hashes is not None:
        Logger().info("checking every piece against {path}", path=hashes_path)
    if access.secret is not None:
        Logger().info("every neighbour must prove it holds the secret of {path}", path=options["secret-file"])
    if access.allowed is not None:
        Logger().info("accepting connections only from {hosts}", hosts=access.allowed.describe())
    process.end_with(reactor, node.peer.done, lifeline=settings.exit_on_stdin_close)
    return node


@contextlib.contextmanager
def _one_line_errors(peer_id: int) -> Iterator[None]:
    """A mistake in the files ends the process with one line naming it, status 1."""
    from twisted_p2p.auth import AuthError
    from twisted_p2p.storage import StorageError

    try:
        yield
    except (ConfigError, StorageError, AuthError) as exc:
        raise SystemExit(f"p2ppeer {peer_id}: {exc}") from None
    except OSError as exc:
        raise SystemExit(f"p2ppeer {peer_id}: {exc.filename or ''}: {exc.strerror or exc}") from None


def _load_config(config_dir: str, peer_id: int, neighbours: frozenset[int] | None = None) -> SwarmConfig:
    config = load(config_dir)
    if peer_id not in config.peer_ids:
        raise ConfigError(Path(config_dir) / "PeerInfo.cfg", None, f"peer {peer_id} is not listed")
    if neighbours is not None:
        unknown = sorted(neighbours - config.peer_ids) + ([peer_id] if peer_id in neighbours else [])
        if unknown:
            raise ConfigError(Path(config_dir) / "PeerInfo.cfg", None, "--neighbours must name other peers of "
                              f"PeerInfo.cfg, not {', '.join(map(str, unknown))}")
    return config


def _write_hashes(options: Options, config: SwarmConfig, hashes_path: Path) -> None:
    """--write-hashes: the manifest from this peer's complete file, then exit 0."""
    from twisted_p2p.layout import data_path
    from twisted_p2p.manifest import write_manifest_from

    source = data_path(options["work-dir"], options["id"], config.common.file_name)
    write_manifest_from(source, options["config-dir"], config.common)
    print(f"wrote {hashes_path} ({config.common.num_pieces} pieces of {source})")
    raise SystemExit(0)


def _access(options: Options, config: SwarmConfig) -> Access:
    from twisted_p2p.auth import AllowedHosts, load_secret

    secret = load_secret(options["secret-file"]) if options["secret-file"] else None
    allowed = None
    if options["allow-hosts"] is not None:
        allowed = AllowedHosts(options["allow-hosts"].split(","))
    elif secret is not None:
        allowed = AllowedHosts((peer.host for peer in config.peers), strict=False)
        for host in allowed.unresolved:
            Logger().warn("host {host} of PeerInfo.cfg does not resolve: its connections are refused", host=host)
    return Access(secret, allowed, _tls(options) if options["tls-cert"] else None)


def _tls(options: Options) -> Any:
    """--tls-cert's tls.PushTLS. Only --tls-cert imports tls (its dataclass and datetime
    cost a plain start 0.4% of its instructions), so its one-line errors are caught here."""
    from twisted_p2p import tls

    try:
        return tls.load(options["tls-cert"])
    except tls.TLSError as exc:
        raise SystemExit(f"p2ppeer {options['id']}: {exc}") from None
