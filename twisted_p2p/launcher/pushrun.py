"""The steps of ``p2p-swarm push`` over the hosts' ssh connections.

Each step works on every host at once and never lets one host's failure stop the
others: :func:`survey` asks whether a host holds the file already, :func:`prepare`
readies the work dirs of the rest, :func:`send_config` hands them the PeerInfo.cfg of
the hosts that are ready (a peer exits only once every listed peer has the file, so a
host that failed must not be listed), :func:`~twisted_p2p.launcher.reactorrun.run_peers`
runs the peers with a failed one dropped, and :func:`deliver` verifies and moves each
finished copy.
"""
from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from twisted_p2p.config import SwarmConfig
from twisted_p2p.config import write as write_config
from twisted_p2p.launcher import closed
from twisted_p2p.launcher.options import RunOptions, peer_options
from twisted_p2p.launcher.plan import Launch, is_local_host, local_identity, plan, twistd_command
from twisted_p2p.launcher.pushinput import with_addresses
from twisted_p2p.launcher.pushmesh import degree_for, echo_for, neighbour_options, pipeline_for
from twisted_p2p.launcher.pushresult import (
    ALREADY_THERE,
    DELIVERED,
    FAILED,
    HostOutcome,
    check_script,
    deliver_script,
    holds_file,
    unfinished_cause,
)
from twisted_p2p.launcher.pushresume import (
    RECORD_NAME,
    Probe,
    Record,
    lacks_room,
    piece_size_to_resume,
    probe_script,
    resume_from,
    split_answer,
)
from twisted_p2p.launcher.reactorrun import run_peers
from twisted_p2p.launcher.remote import Hosts, RemoteError, remote_dir_for
from twisted_p2p.launcher.runpage import write_html_report
from twisted_p2p.launcher.runreport import PeerResult, build_report, sha256_file, write_report
from twisted_p2p.launcher.supervise import PeerProcesses
from twisted_p2p.layout import COMMON_CFG, PEER_INFO_CFG, data_path, peer_dir_name


def push_peer_options(degree: int) -> list[str]:
    """What every peer of a push of this degree (0: the full mesh) is started with.
    Every peer is ours, so our extensions: pipelining (:func:`pushmesh.pipeline_for`'s
    depth), ``--refill-slots``, and ``--split-seed`` (the seed sends each piece about once)."""
    return peer_options(RunOptions(pipeline=pipeline_for(degree), refill_slots=True), all_ours=True) + [
        "--new-swarm", "--split-seed"]


EXIT_CODES = {"interrupted": 130, "terminated": 143}


@dataclass(frozen=True)
class Target:
    """Where the file goes on one host, and the push's work dir there (a per-host
    directory beside it, kept when the copy is unfinished)."""

    host: str
    path: str
    work: str


def cause_of(error: RemoteError, host: str) -> str:
    """The error's one line without the host's name, for the host's row of the table."""
    return str(error).removeprefix(f"host {host}: ")


def survey(remote: Hosts, targets: Sequence[Target], size: int, sha256: Callable[[], str | None],
           say: Callable[[str], None], probes: dict[str, Probe] | None = None) -> dict[str, HostOutcome]:
    """Connect to every host at once and ask, in one command each, whether it holds the
    file, what an earlier push left in its work dir and how much room its disk has
    (``probes`` gets that, by host); the hosts that are settled already (holding it,
    unreachable, or without room) and what each said. ``sha256`` gives the local
    file's (hashed meanwhile)."""
    paths = {target.host: target.path for target in targets}
    works = {target.host: target.work for target in targets}

    def ask(host: str) -> str:
        remote.connect(host)
        return remote.execute(host, check_script(paths[host], size) + "\n"
                              + probe_script(works[host], os.path.dirname(paths[host])))

    answers = remote.each([target.host for target in targets], ask)
    expected = sha256()
    settled = {}
    for target in targets:
        answer = answers[target.host]
        if isinstance(answer, RemoteError):
            settled[target.host] = HostOutcome(target.host, FAILED, target.path, cause_of(answer, target.host))
            say(f"{target.host}: cannot be used: {cause_of(answer, target.host)}; left out")
            continue
        answer, probe = split_answer(answer)
        there, what = holds_file(answer, size, expected or "")
        if probes is not None:
            probes[target.host] = probe
        full = None if there else lacks_room(probe, size, os.path.dirname(target.path))
        if there:
            settled[target.host] = HostOutcome(target.host, ALREADY_THERE, target.path)
            say(f"{target.host}: {target.path} is already there ({what}); left out")
        elif full is not None:
            settled[target.host] = HostOutcome(target.host, FAILED, target.path, full)
            say(f"{target.host}: {full}; left out")
        else:
            say(f"{target.host}: {what}")
    return settled


def prepare(remote: Hosts, config: SwarmConfig, twistd: Sequence[str]) -> dict[str, str]:
    """Ready the work dir on every host left in ``remote``; the hosts that failed and why."""
    done = remote.each(list(remote.hosts), lambda host: remote.clear(config, remote.hosts[host], twistd,
                                                                     lambda peer_id: None))
    return {host: cause_of(result, host) for host, result in done.items() if isinstance(result, RemoteError)}


def send_config(remote: Hosts, files: dict[str, Path], own: dict[str, dict[str, Path]] | None = None
                ) -> dict[str, str]:
    """``files`` (Common.cfg, PeerInfo.cfg, ...) and each host's ``own`` to every host
    left in ``remote``; those that failed."""
    own = own or {}
    done = remote.each(list(remote.hosts), lambda host: remote.put(remote.hosts[host], {**files, **own.get(host, {})}))
    return {host: cause_of(result, host) for host, result in done.items() if isinstance(result, RemoteError)}


def deliver(remote: Hosts, swarm: PeerProcesses, targets: dict[str, Target], file_name: str, sha256: str,
            left: dict[str, list[int]]) -> dict[str, HostOutcome]:
    """For every host of the swarm: its copy checked (by the SHA-256 its peer reported,
    else hashed there) and moved to its place, or why not. ``left``: hosts where a peer
    could not be stopped. Hosts are done at once; a failed one keeps its work dir."""
    statuses = {process.launch.peer.peer_id: process for process in swarm.processes}
    peers = {launch.peer.host: launch.peer for launch in swarm.launches if launch.over_ssh}

    def one(host: str) -> HostOutcome:
        target = targets[host]
        peer = peers[host]
        progress = swarm.progress[peer.peer_id]
        if host in left:
            return HostOutcome(host, FAILED, target.path, "its peer could not be stopped there; stop it by hand")
        if progress.completed_at is None:
            cause = unfinished_cause(progress.held, progress.total, peer.peer_id in statuses,
                                     swarm.dropped.get(peer.peer_id), swarm.outcome or "failed", swarm.why)
            return HostOutcome(host, FAILED, target.path, f"{cause} (kept in {target.work})")
        reported = progress.reported_sha256
        if reported is not None and reported != sha256:
            return HostOutcome(host, FAILED, target.path,
                               f"its peer's copy has another SHA-256 (kept in {target.work})")
        source = f"{target.work}/{peer_dir_name(peer.peer_id)}/{file_name}"
        remote.execute(host, deliver_script(target.work, source, target.path, None if reported else sha256))
        return HostOutcome(host, DELIVERED, target.path)

    done = remote.each(sorted(peers), one)
    return {host: result if isinstance(result, HostOutcome)
            else HostOutcome(host, FAILED, targets[host].path, cause_of(result, host))
            for host, result in done.items()}


def write_push_report(directory: Path, config: SwarmConfig, swarm: PeerProcesses, outcomes: dict[str, HostOutcome],
                      code: int | None, duration: float) -> Path:
    """The swarm's report, as ``run`` writes it (JSON and the HTML page), kept in
    ``directory``: a push writes none unless asked, as it costs time at the end."""
    statuses = {process.launch.peer.peer_id: process.status for process in swarm.processes}
    results = []
    for peer in config.peers:
        outcome = outcomes.get(peer.host)
        ok = True if peer.has_file else (outcome.state == DELIVERED if outcome is not None else None)
        results.append(PeerResult(swarm.progress[peer.peer_id], statuses.get(peer.peer_id), ok))
    exit_code = code if code is not None else (0 if all(result.ok for result in results) else 1)
    file_info = {"name": config.common.file_name, "size": config.common.file_size,
                 "pieces": config.common.num_pieces, "sha256": None}
    report = build_report(results, swarm.outcome or "finished", exit_code, duration, file_info)
    directory.mkdir(parents=True, exist_ok=True)
    write_report(report, directory)
    return write_html_report(directory, report, swarm.progress, config)


def dropped_before_start(config: SwarmConfig, failed: dict[str, str]) -> tuple[SwarmConfig, dict[int, str]]:
    """``config`` without the peers of hosts that failed, and those peers' causes."""
    gone = {peer.peer_id: failed[peer.host] for peer in config.peers if peer.host in failed}
    return SwarmConfig(config.common, tuple(peer for peer in config.peers if peer.peer_id not in gone)), gone


def say_to(stdout: TextIO) -> Callable[[str], None]:
    def say(text: str) -> None:
        print(text, file=stdout, flush=True)

    return say


@dataclass
class Push:
    """One push, step by step; ``configure`` builds the swarm's config for the hosts
    that need the file and says why its piece size (``push``'s choice)."""

    file: Path
    hosts: list[str]
    dest: str
    work: str  # the work dir on each host; ``{host}`` is the host's name
    configure: Callable[[list[str], int | None], tuple[SwarmConfig, str]]  # (hosts, piece size to resume)
    remote_twistd: str | None
    timeout: float | None
    stdout: TextIO
    sha256: str | None = None
    tls: bool = False  # peers talk over TLS with a certificate made for this push
    addresses: dict[str, str] = field(default_factory=dict)  # host -> the address ssh reaches (PeerInfo.cfg's)
    peer_options: list[str] = field(default_factory=list)  # every peer's too (--upload-rate)
    probes: dict[str, Probe] = field(default_factory=dict)  # host -> its work dir and disk, as surveyed
    report_dir: Path | None = None  # where to keep the swarm's report (JSON and HTML), if anywhere
    degree: int | None = None  # neighbours per peer (0: the full mesh); None: pushmesh.degree_for's choice
    rng: random.Random = field(default_factory=random.Random)  # draws the neighbour sets

    def run(self, remote: Hosts) -> tuple[list[HostOutcome], int | None]:
        """Every host's outcome, in the order given, and the exit status if it is not
        the table's (an interrupted push)."""
        say = say_to(self.stdout)
        size = self.file.stat().st_size
        targets = {host: Target(host, os.path.join(remote_dir_for(self.dest, host), self.file.name),
                                remote_dir_for(self.work, host)) for host in self.hosts}
        say(f"asking {len(self.hosts)} host{'s' if len(self.hosts) != 1 else ''} over ssh whether "
            f"{self.file.name} is there already ...")
        with ThreadPoolExecutor(max_workers=1) as pool:  # the local file is hashed meanwhile
            hashing = pool.submit(sha256_file, self.file)
            outcomes = survey(remote, list(targets.values()), size, hashing.result, say, self.probes)
        self.sha256 = hashing.result()
        if self.sha256 is None:
            raise OSError(f"cannot read {self.file}")
        names, addresses = local_identity()
        for host in self.hosts:  # its peer would run here, in a staging dir that is then removed
            if host not in outcomes and is_local_host(self.addresses.get(host, host), names, addresses):
                outcomes[host] = HostOutcome(host, FAILED, targets[host].path,
                                             "it is this machine, the seed: push sends to other hosts")
        for host in outcomes:
            remote.forget(host)
        needed = [host for host in self.hosts if host not in outcomes]
        code = None
        if needed:
            swarmed, code = self._swarm(remote, needed, targets, say)
            outcomes.update(swarmed)
        return [outcomes[host] for host in self.hosts], code

    def _swarm(self, remote: Hosts, needed: list[str], targets: dict[str, Target],
               say: Callable[[str], None]) -> tuple[dict[str, HostOutcome], int | None]:
        assert self.sha256 is not None  # hashed in run()
        resumable = piece_size_to_resume([self.probes[host] for host in needed if host in self.probes],
                                         self.file.name, self.file.stat().st_size, self.sha256)
        config, why = self.configure(needed, resumable)
        common = config.common
        say(f"pushing {self.file.name} ({common.file_size} bytes, {common.num_pieces} pieces of {common.piece_size}) "
            f"from {config.peers[0].host} to {len(needed)} host{'s' if len(needed) != 1 else ''}, into {self.dest}")
        say(f"piece size {common.piece_size}: {why}")
        twistd = [self.remote_twistd] if self.remote_twistd else twistd_command()
        records = self._resume_records(remote, config, say)
        say(f"preparing {len(needed)} host{'s' if len(needed) != 1 else ''} over ssh ...")
        outcomes = self._drop(remote, prepare(remote, config, twistd), targets, "cannot be prepared", say)
        config, _ = dropped_before_start(config, {host: "" for host in outcomes})
        if len(config.peers) == 1:
            return outcomes, None
        staging = Path(tempfile.mkdtemp(prefix="p2p-push-"))
        try:
            sealed, files, own = self._stage(staging, config, records)
            unsent = self._drop(remote, send_config(remote, files, own), targets, "cannot be prepared", say)
            outcomes.update(unsent)
            _, dropped = dropped_before_start(config, {host: outcome.cause or "" for host, outcome in unsent.items()})
            degree = degree_for(self.degree, len(config.peers) - 1 - len(dropped))
            echo = echo_for(degree)
            launches, _ = plan(config, staging, staging, remote.ssh, self.work, twistd, echo=echo)
            launches = [launch for launch in launches if launch.peer.peer_id not in dropped]
            sets = self._neighbours(launches, degree, say)
            common_options = push_peer_options(degree) + self.peer_options + sealed.options
            for launch in launches:
                launch.argv += common_options + sets[launch.peer.peer_id]
            code = self._run_and_deliver(remote, config, launches, dropped, targets, outcomes, say)
            return outcomes, code
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _neighbours(self, launches: list[Launch], degree: int, say: Callable[[str], None]) -> dict[int, list[str]]:
        """Each peer's ``--neighbours`` option for ``degree`` (and ``--split-among`` for the
        seed's neighbours), drawn among the peers that start (so that nobody waits for a
        host dropped before), and what was chosen, said."""
        peer_ids = [launch.peer.peer_id for launch in launches]
        seed = next((launch.peer.peer_id for launch in launches if launch.peer.has_file), None)
        options = neighbour_options(peer_ids, degree, self.rng, seed=seed)
        if any(options.values()):
            say(f"neighbours: each peer connects with {degree} or so of the {len(peer_ids)} peers (--neighbours)")
        return options

    def _resume_records(self, remote: Hosts, config: SwarmConfig, say: Callable[[str], None]) -> dict[str, Record]:
        """Give each host its leecher and what of an unfinished copy it resumes from (said
        when there is one); the record each host keeps of this push, by host."""
        assert self.sha256 is not None  # hashed in run()
        common = config.common
        records = {}
        for peer in config.peers[1:]:
            remote.hosts[peer.host].peers = [peer]
            kept, what = resume_from(self.probes.get(peer.host, Probe()), common.file_name, common.file_size,
                                     self.sha256, common.piece_size)
            remote.hosts[peer.host].resume_from = kept
            records[peer.host] = Record(common.file_name, common.file_size, self.sha256, common.piece_size,
                                        peer.peer_id)
            if what:
                say(f"{peer.host}: {what}")
        return records

    def _stage(self, staging: Path, config: SwarmConfig, records: dict[str, Record]
               ) -> tuple[closed.ClosedSwarm, dict[str, Path], dict[str, dict[str, Path]]]:
        """In ``staging``: the config, the seed's file (a link where it can be), the closed
        swarm's files and each host's record; (the closed swarm, the files every host
        gets, each host's own)."""
        write_config(staging, with_addresses(config, self.addresses))  # the peers dial addresses
        seed = data_path(staging, config.peers[0].peer_id, config.common.file_name)
        seed.parent.mkdir()
        try:
            os.link(self.file, seed)
        except OSError:
            shutil.copyfile(self.file, seed)
        # A closed swarm: a fresh secret, the piece hashes (and the push's certificate).
        sealed = closed.prepare(staging, seed, config.common, self.tls)
        files = {COMMON_CFG: staging / COMMON_CFG, PEER_INFO_CFG: staging / PEER_INFO_CFG, **sealed.files}
        own = {}
        for host, record in records.items():
            (staging / f"{record.peer_id}.{RECORD_NAME}").write_text(record.encode())
            own[host] = {RECORD_NAME: staging / f"{record.peer_id}.{RECORD_NAME}"}
        return sealed, files, own

    def _run_and_deliver(self, remote: Hosts, config: SwarmConfig, launches: list[Launch], dropped: dict[int, str],
                         targets: dict[str, Target], outcomes: dict[str, HostOutcome],
                         say: Callable[[str], None]) -> int | None:
        """Run the swarm, make sure no peer is left on the hosts, and deliver each copy
        (into ``outcomes``); the exit status if it is not the table's."""
        began = time.monotonic()
        swarm = run_peers(RunOptions(stagger=0.0, timeout=self.timeout), config, launches, self.stdout,
                          dropped=dropped, push=True).swarm
        duration = time.monotonic() - began
        left = remote.make_sure_stopped()
        if left:
            for host, peer_ids in left.items():
                say(f"still running on {host}: peer {', '.join(map(str, peer_ids))}; stop it by hand")
        else:
            say(f"checked over ssh: none of the {len(remote.hosts)} peers started on other hosts is running")
        assert self.sha256 is not None  # hashed in run()
        outcomes.update(deliver(remote, swarm, targets, self.file.name, self.sha256, left))
        code = EXIT_CODES.get(swarm.outcome or "")
        if self.report_dir is not None:
            say(f"report: {write_push_report(self.report_dir, config, swarm, outcomes, code, duration)}")
        return code

    @staticmethod
    def _drop(remote: Hosts, failed: dict[str, str], targets: dict[str, Target], what: str,
              say: Callable[[str], None]) -> dict[str, HostOutcome]:
        """Hosts that failed a step, left out from now on, each said in one line."""
        outcomes = {}
        for host, cause in failed.items():
            say(f"{host}: {what}: {cause}; left out")
            remote.forget(host)
            outcomes[host] = HostOutcome(host, FAILED, targets[host].path, cause)
        return outcomes
