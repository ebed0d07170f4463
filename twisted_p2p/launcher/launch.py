"""One swarm from its :class:`~twisted_p2p.launcher.options.RunOptions` to its exit status:
:func:`run_swarm`, the launcher's public entry, which ``p2p-swarm run`` calls.

Planning is :mod:`twisted_p2p.launcher.plan`'s, the other hosts are
:mod:`twisted_p2p.launcher.remote`'s, running the peers is
:mod:`twisted_p2p.launcher.reactorrun`'s and the end :mod:`twisted_p2p.launcher.runend`'s;
this module puts them in order.
"""
from __future__ import annotations

import shlex
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from twisted_p2p.config import ConfigError, PeerInfo, SwarmConfig, load
from twisted_p2p.launcher.options import RunOptions, peer_options
from twisted_p2p.launcher.pace import demo_pace
from twisted_p2p.launcher.plan import Launch, plan, prepare_work_dir, twistd_command
from twisted_p2p.launcher.reactorrun import run_peers
from twisted_p2p.launcher.remote import Host, Hosts, RemoteError, Ssh, prepare_script
from twisted_p2p.launcher.runend import conclude
from twisted_p2p.layout import data_path

USAGE_ERROR = 2  # the exit status when the config, the files or a host cannot be used


def run_swarm(options: RunOptions, stdout: TextIO = sys.stdout) -> int:
    """Plan, prepare, run and check one swarm, as ``p2p-swarm run`` does; the exit
    status (problems are said on stderr)."""
    options = replace(options, config_dir=Path(options.config_dir).resolve(),
                      work_dir=Path(options.work_dir).resolve())
    control_dir = Path(tempfile.mkdtemp(prefix="p2p-swarm-ssh-"))
    try:
        return _run_swarm(options, Ssh(control_dir, options.ssh_config, options.connect_timeout), stdout)
    finally:
        shutil.rmtree(control_dir, ignore_errors=True)


def _run_swarm(options: RunOptions, ssh: Ssh, stdout: TextIO) -> int:
    remote_twistd = [options.remote_twistd] if options.remote_twistd else twistd_command()
    try:
        config = load(options.config_dir)
        options = paced(options, config, stdout)
        launches, hosts = plan_peers(options, config, ssh, remote_twistd)
        if options.dry_run:
            print_plan(launches, hosts, config, remote_twistd, stdout)
            return 0
        options.work_dir.mkdir(parents=True, exist_ok=True)
        for message in prepare_work_dir(config, options.work_dir, options.demo_file):
            print(message, file=stdout)
    except (ConfigError, OSError) as exc:
        print(f"p2p-swarm run: {exc}", file=sys.stderr)
        return USAGE_ERROR
    missing = missing_seeds(launches, config, options.work_dir)
    if missing:
        path = data_path(options.work_dir, missing[0].peer_id, config.common.file_name)
        print(f"p2p-swarm run: seed {missing[0].peer_id} has no file {path} (add --demo-file to create one)",
              file=sys.stderr)
        return USAGE_ERROR
    return run_on_hosts(options, config, launches, Hosts(ssh, hosts), remote_twistd, stdout)


def paced(options: RunOptions, config: SwarmConfig, stdout: TextIO) -> RunOptions:
    """``options`` with the demo's upload cap (and why, printed) when a demo is to be
    paced: a demo file, ``pace`` auto and no cap of the user's."""
    if not (options.demo_file and options.pace == "auto" and not options.upload_rate):
        return options
    pace = demo_pace(config.common, len(config.peers), sum(peer.has_file for peer in config.peers))
    print(pace.why, file=stdout)
    return replace(options, upload_rate=pace.rate)


def plan_peers(options: RunOptions, config: SwarmConfig, ssh: Ssh,
               remote_twistd: list[str]) -> tuple[list[Launch], list[Host]]:
    """Each peer's launch, with the options of those we start, and the other hosts."""
    launches, hosts = plan(config, options.config_dir, options.work_dir, ssh,
                           options.remote_dir or str(options.work_dir), remote_twistd, options.remote_shell)
    ours = [launch for launch in launches if launch.tail or launch.over_ssh]  # --remote-shell: the user's own
    for launch in ours:
        launch.argv += peer_options(options, all_ours=len(ours) == len(launches))
    return launches, hosts


def missing_seeds(launches: list[Launch], config: SwarmConfig, work_dir: Path) -> list[PeerInfo]:
    """The seeds started here whose file is not in the work dir."""
    return [launch.peer for launch in launches if launch.tail and launch.peer.has_file
            and not data_path(work_dir, launch.peer.peer_id, config.common.file_name).is_file()]


def run_on_hosts(options: RunOptions, config: SwarmConfig, launches: list[Launch], remote: Hosts,
                 remote_twistd: list[str], stdout: TextIO) -> int:
    """Prepare the other hosts, run every peer and conclude; the exit status. The hosts'
    connections are closed at the end, whatever happened."""
    try:
        if remote.hosts:
            count = len(remote.hosts)
            print(f"preparing {count} host{'s' if count != 1 else ''} over ssh ...", file=stdout)
            for message in remote.prepare(config, remote_twistd, options.config_dir,
                                          lambda peer_id: local_seed(config, options.work_dir, peer_id)):
                print(message, file=stdout)
        run = run_peers(options, config, launches, stdout,
                        conclude=lambda run: conclude(config, options.work_dir, run, remote, stdout))
    except RemoteError as exc:
        print(f"p2p-swarm run: {exc}", file=sys.stderr)
        return USAGE_ERROR
    finally:
        remote.close()
    assert run.code is not None  # concluded, or the dashboard could not listen
    return run.code


def local_seed(config: SwarmConfig, work_dir: Path, peer_id: int) -> Path | None:
    """The file to send to a remote seed that lacks it: its own here, else any seed's."""
    name = config.common.file_name
    paths = [data_path(work_dir, peer_id, name)]
    paths += [data_path(work_dir, peer.peer_id, name) for peer in config.peers if peer.has_file]
    return next((path for path in paths if path.is_file() and path.stat().st_size == config.common.file_size), None)


def print_plan(launches: list[Launch], hosts: list[Host], config: SwarmConfig, twistd: list[str],
               stdout: TextIO) -> None:
    """What would run, host by host, without running anything (``--dry-run``)."""
    for launch in launches:
        if launch.tail:
            print(f"here: peer {launch.peer.peer_id}: {shlex.join(launch.argv)}", file=stdout)
    for host in hosts:
        print(f"{host.name}: one ssh connection; in {host.directory}: clear the earlier run's files, "
              f"put Common.cfg and PeerInfo.cfg (and each seed's file if missing there):", file=stdout)
        for line in prepare_script(config, host, twistd).splitlines():
            print(f"    {line}", file=stdout)
    for launch in launches:
        if not launch.tail:
            print(f"{launch.peer.host}: peer {launch.peer.peer_id}: {shlex.join(launch.argv)}", file=stdout)
