"""The small swarms the kit runs, and their directories in the course layout.

Each scenario mixes peers under test ("theirs") with ours. Every peer under test gets
a directory of its own, as the course has it: Common.cfg, PeerInfo.cfg, ``peer_ID/``
(with the file for a seed) and its ``log_peer_ID.log``. In its PeerInfo.cfg every
other peer has its public port, where the recording relay listens; ours run together
in ``ours/`` and reach a peer under test through its public port too.
"""
from __future__ import annotations

import random
import socket
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from twisted_p2p.config import Common, PeerInfo, SwarmConfig, write
from twisted_p2p.launcher.plan import demo_bytes
from twisted_p2p.layout import data_path

FILE_NAME = "TheFile.dat"
FIRST_ID = 1001


@dataclass(frozen=True)
class Role:
    theirs: bool
    seed: bool


THEIR_SEED, THEIR_LEECHER = Role(True, True), Role(True, False)
OUR_SEED, OUR_LEECHER = Role(False, True), Role(False, False)


@dataclass(frozen=True)
class Scenario:
    """One swarm: the peers in PeerInfo.cfg order, the file and Common.cfg's intervals.

    Peers start in PeerInfo.cfg order, each once the peers before it listen; ``late``
    delays the start of the peers under test further. ``theirs_first`` turns the order
    round: the peers under test start first, ours that many seconds after they listen (a
    scenario of its own, read only by the check named in ``only``). ``last_after`` holds
    the last of ours back until that many seconds after every peer under test has the
    whole file (or exited): the swarm then lasts on, so that the 'not interested' a peer
    owes once complete is on the wire while its connections stay open. ``their_rate`` and
    ``their_download`` pace what they upload and download (bytes/s per connection, at
    the relay) and ``our_rate`` what ours upload, so that the swarm lasts several
    choking rounds and the neighbours of a slow peer under test have news for it. ``robust`` swarms are not run but
    probed by scripted misbehaving neighbours.
    """

    name: str
    about: str
    roles: tuple[Role, ...]
    file_size: int
    piece_size: int = 16384
    k: int = 2
    p: int = 1
    m: int = 2
    late: float = 0.0
    their_rate: float | None = None
    their_download: float | None = None
    our_rate: int | None = None
    quick: bool = False
    robust: bool = False
    theirs_first: float | None = None
    last_after: float | None = None
    only: str = ""  # the one check that reads this scenario ("": every check)

    @property
    def common(self) -> Common:
        return Common(self.k, self.p, self.m, FILE_NAME, self.file_size, self.piece_size)

    @property
    def ids(self) -> list[int]:
        return [FIRST_ID + position for position in range(len(self.roles))]

    def role(self, peer_id: int) -> Role:
        return self.roles[peer_id - FIRST_ID]

    @property
    def theirs(self) -> list[int]:
        return [peer_id for peer_id in self.ids if self.role(peer_id).theirs]

    @property
    def ours(self) -> list[int]:
        return [peer_id for peer_id in self.ids if not self.role(peer_id).theirs]


# Piece counts are not multiples of 8 (a bitfield's spare bits show) and every file
# ends with a short piece.
SCENARIOS = (
    Scenario("seed", "their peer is the only seed, started first; three of ours download from it",
             (THEIR_SEED, OUR_LEECHER, OUR_LEECHER, OUR_LEECHER), file_size=600_000, k=1, p=1, m=2,
             their_rate=60_000, our_rate=30_000, quick=True),
    Scenario("leecher", "their peer downloads from our seed, between two of ours; one more of ours "
             "starts 2 s after theirs completes; 32 KiB pieces",
             (OUR_SEED, THEIR_LEECHER, OUR_LEECHER, OUR_LEECHER), file_size=700_001, piece_size=32768,
             our_rate=200_000, their_download=100_000, quick=True, last_after=2.0),
    Scenario("retry", "their peer started 1 s before our earlier one listens: does it try again?",
             (OUR_SEED, THEIR_LEECHER), file_size=100_000, quick=True, theirs_first=1.0, only="retries-earlier"),
    Scenario("robust", "their seed, probed by misbehaving neighbours",
             (THEIR_SEED,) + (OUR_LEECHER,) * 12, file_size=300_000, quick=True, robust=True),
    Scenario("two-theirs", "two of their peers among ours, theirs started last",
             (OUR_SEED, THEIR_LEECHER, OUR_LEECHER, THEIR_LEECHER), file_size=500_000, our_rate=150_000),
    Scenario("late", "their peer started 3 s after the earlier ones; 32 KiB pieces",
             (OUR_SEED, OUR_LEECHER, THEIR_LEECHER, OUR_LEECHER), file_size=450_000, piece_size=32768, late=3.0),
    Scenario("two-seeds", "two seeds, one of them theirs",
             (OUR_SEED, THEIR_SEED, OUR_LEECHER, OUR_LEECHER), file_size=450_000, k=1,
             our_rate=60_000, their_rate=60_000),
)


BLOCK = 32  # ports a scenario takes, in one block below the usual ephemeral range (32768 up)


def reserve_ports(count: int, chance: random.Random | None = None) -> tuple[list[int], socket.socket | None]:
    """``count`` free ports from one block no other kit on this machine holds, and the
    claim on that block (an abstract Unix socket, gone with the process; close it to
    let go). Below the ephemeral range, no outgoing connection takes one of them
    before its peer or relay listens there."""
    chance = chance or random.Random()
    while True:
        base = chance.randrange(20000, 32768 - BLOCK, BLOCK)
        claim: socket.socket | None = None
        if hasattr(socket, "AF_UNIX") and sys.platform.startswith("linux"):
            claim = socket.socket(socket.AF_UNIX)
            try:
                claim.bind(f"\0p2p-swarm-check-ports-{base}")
            except OSError:
                claim.close()
                continue
        with ExitStack() as stack:
            ports: list[int] = []
            for port in range(base, base + BLOCK):
                sock = stack.enter_context(socket.socket())
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
                ports.append(port)
        if len(ports) >= count:
            return ports[:count], claim
        if claim is not None:
            claim.close()


@dataclass(frozen=True)
class Layout:
    """Where one scenario runs: ports and directories, and the file's bytes."""

    scenario: Scenario
    root: Path
    real: dict[int, int]  # where each peer listens
    public: dict[int, int]  # where the relay listens for it
    content: bytes
    claim: socket.socket | None = None  # the ports' block, held while the scenario runs

    def release(self) -> None:
        if self.claim is not None:
            self.claim.close()

    @property
    def ours_dir(self) -> Path:
        return self.root / "ours"

    def their_dir(self, peer_id: int) -> Path:
        return self.root / f"theirs-{peer_id}"

    def config_for(self, peer_id: int | None) -> SwarmConfig:
        """The swarm as ``peer_id`` under test sees it (None: as ours see it)."""
        peers = []
        for other in self.scenario.ids:
            role = self.scenario.role(other)
            direct = other == peer_id or (peer_id is None and not role.theirs)
            port = self.real[other] if direct else self.public[other]
            peers.append(PeerInfo(other, "127.0.0.1", port, role.seed))
        return SwarmConfig(self.scenario.common, tuple(peers))


def prepare(scenario: Scenario, root: Path) -> Layout:
    """Make the directories, both files for everyone, and each seed's file."""
    ids = scenario.ids
    ports, claim = reserve_ports(2 * len(ids))
    layout = Layout(scenario, root, dict(zip(ids, ports[: len(ids)])), dict(zip(ids, ports[len(ids):])),
                    demo_bytes(scenario.file_size), claim)
    write(layout.ours_dir, layout.config_for(None))
    for peer_id in ids:
        home = layout.their_dir(peer_id) if scenario.role(peer_id).theirs else layout.ours_dir
        if scenario.role(peer_id).theirs:
            write(home, layout.config_for(peer_id))
        data = data_path(home, peer_id, FILE_NAME)
        data.parent.mkdir(parents=True, exist_ok=True)
        if scenario.role(peer_id).seed:
            data.write_bytes(layout.content)
    return layout
