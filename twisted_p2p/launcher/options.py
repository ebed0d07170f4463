"""What one run of a swarm is asked to do: :class:`RunOptions`, the launcher's public input.

``p2p-swarm run`` parses its command line into one (:mod:`twisted_p2p.launcher.run`),
``push`` builds its own, and :func:`twisted_p2p.launcher.launch.run_swarm` takes it: a new
option is a new field with a default, and nobody else has to change.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: The most requests in flight per neighbour with our pipelining extension (``push``'s
#: default; ``run`` speaks the course's protocol unless asked); each peer keeps what the
#: round trip needs below that (:mod:`twisted_p2p.pipeline`).
DEFAULT_PIPELINE = 256


@dataclass(frozen=True)
class RunOptions:
    """Everything one run needs; the defaults are ``p2p-swarm run``'s."""

    config_dir: Path = Path("conf")  # holds Common.cfg and PeerInfo.cfg
    work_dir: Path = Path("swarm-work")  # where peer_ID/ and the logs go
    demo_file: bool = False  # create each seed's missing file, and pace the swarm (``pace``)
    pace: str = "auto"  # "auto": with demo_file and no upload_rate, cap uploads to last about a minute; "off"
    stagger: float = 0.2  # seconds between peer starts
    timeout: float | None = None  # stop everything after this many seconds
    pipeline: int = 0  # most requests outstanding per neighbour (our extension); 0: the course's one
    refill_slots: bool = False  # give a slot freed between rounds to a waiting neighbour at once
    upload_rate: int = 0  # each peer's upload cap in bytes per second; 0: none
    web: tuple[str, int] | None = None  # the live dashboard's (host, port)
    web_linger: float | None = None  # seconds the dashboard stays after the run; None: until Ctrl-C
    remote_dir: str | None = None  # the work dir on other hosts ({host}: its name); None: work_dir's path
    remote_twistd: str | None = None  # twistd on other hosts; None: the same path as here
    ssh_config: str | None = None  # ssh -F
    connect_timeout: float = 10.0  # seconds ssh may take to connect to a host
    dry_run: bool = False  # print what would run on each host, and run nothing
    remote_shell: str | None = None  # the user's own command for a peer on another host


def peer_options(options: RunOptions, all_ours: bool) -> list[str]:
    """The options every peer we start gets: the upload cap, refilling free slots if asked,
    and our pipelining extension only when every peer of the swarm is one we start (a
    plain peer may drop a handshake whose reserved bytes are not zero)."""
    argv = ["--upload-rate", str(options.upload_rate)] if options.upload_rate else []
    if options.refill_slots:
        argv.append("--refill-slots")
    if options.pipeline > 1 and all_ours:
        argv += ["--pipeline", str(options.pipeline)]
    return argv
