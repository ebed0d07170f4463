"""``p2p-swarm run``: start every peer of PeerInfo.cfg, watch it, check it, report.

The pure parts (which host is this machine, the command for each peer, preparing the
work dir) are plain functions; :class:`Swarm` does the process control on the
reactor it is given; only :func:`main` touches the global reactor and the signals.
"""
from __future__ import annotations

import argparse
import ipaddress
import itertools
import os
import random
import re
import shlex
import shutil
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, TextIO

from twisted.internet import protocol
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from twisted_p2p.config import ConfigError, PeerInfo, SwarmConfig, load
from twisted_p2p.node import event_log_path
from twisted_p2p.resume import forget as forget_resume_state
from twisted_p2p.storage import data_path
from twisted_p2p.swarm.display import Display
from twisted_p2p.swarm.progress import LineBuffer, PeerProgress
from twisted_p2p.swarm.report import (
    PeerResult,
    build_report,
    sha256_file,
    summary_table,
    write_plot,
    write_report,
)

DEFAULT_REMOTE_SHELL = (
    "ssh -o BatchMode=yes {host} 'cd {dir} && twistd -n --pidfile= p2ppeer --id {id} --echo-events'"
)
# Runs the command in a session of its own, so one killpg stops it and its children.
_NEW_SESSION = "import os, sys; os.setsid(); os.execvp(sys.argv[1], sys.argv[1:])"
_SAFE_HOST = re.compile(r"[A-Za-z0-9._:%-]+")
DEMO_SEED = 20240101  # every seed's demo file is the same bytes
TICK = 0.2  # seconds between reading the logs and redrawing
GRACE = 3.0  # seconds between SIGTERM and SIGKILL when stopping
EXIT_CODES = {"finished": 0, "failed": 1, "timeout": 124, "interrupted": 130, "terminated": 143}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="p2p-swarm run",
        description="Start every peer of PeerInfo.cfg in order, show their progress, "
        "stop when all have exited, check every file against the seed's SHA-256 and "
        "write swarm-report.json (and swarm-report.png with the 'plot' extra) in the work dir. "
        "Event logs and leechers' files from an earlier run in the work dir are replaced.",
    )
    parser.add_argument("config_dir", nargs="?", default="conf", help="directory with Common.cfg and PeerInfo.cfg")
    parser.add_argument("--work-dir", default="swarm-work", help="where peer_ID/ and the logs go [%(default)s]")
    parser.add_argument("--demo-file", action="store_true", help="create each seed's missing file (pseudo-random)")
    parser.add_argument("--stagger", type=float, default=0.2, help="seconds between peer starts [%(default)s]")
    parser.add_argument("--timeout", type=float, default=None, help="stop everything after this many seconds")
    parser.add_argument(
        "--remote-shell",
        default=DEFAULT_REMOTE_SHELL,
        metavar="TEMPLATE",
        help="command for a peer on another host; placeholders {host} {id} {dir} {config_dir} {twistd}; "
        "the peer must print its events (--echo-events) [%(default)s]",
    )
    parser.add_argument("--remote-dir", default=None, help="{dir} of the template [the work dir's absolute path]")
    args = parser.parse_args(argv)
    if args.stagger < 0:
        parser.error("--stagger must not be negative")
    if args.timeout is not None and args.timeout <= 0:
        parser.error("--timeout must be positive")
    return args


# -- which peers are local ---------------------------------------------------------


def local_identity() -> tuple[set[str], set[str]]:
    """This machine's names and the addresses they resolve to (no other lookups)."""
    names = {"localhost", socket.gethostname().lower(), socket.getfqdn().lower()}
    addresses: set[str] = set()
    for name in list(names):
        try:
            addresses.update(str(info[4][0]).split("%")[0] for info in socket.getaddrinfo(name, None))
        except OSError:
            pass
    return names, addresses


def is_local_host(host: str, names: set[str], addresses: set[str]) -> bool:
    """True when ``host`` is this machine: loopback, or one of its own names or addresses."""
    host = host.lower().strip("[]")
    if host in names or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or str(address) in addresses


# -- commands ----------------------------------------------------------------------


def twistd_command() -> list[str]:
    """twistd next to this Python (its virtualenv), else twistd's entry point through it."""
    found = shutil.which("twistd", path=os.path.dirname(sys.executable))
    if found:
        return [found]
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def local_command(twistd: list[str], peer_id: int, config_dir: Path, work_dir: Path) -> list[str]:
    return [*twistd, "-n", "--pidfile=", "p2ppeer", "--id", str(peer_id),
            "--config-dir", str(config_dir), "--work-dir", str(work_dir)]


def remote_command(template: str, twistd: list[str], peer: PeerInfo, remote_dir: str, config_dir: Path) -> list[str]:
    """The template split into words, each placeholder filled in the word it sits in.

    ``{twistd}`` standing alone becomes the twistd command's own words; inside a longer
    word (a command line for ssh's remote shell) it is filled in shell-quoted.
    The host comes from a config file and may end up in a remote shell, so it must
    be a plain host name or address.
    """
    if not _SAFE_HOST.fullmatch(peer.host):
        raise ConfigError("PeerInfo.cfg", None, f"host {peer.host!r} of peer {peer.peer_id} is not a plain host name")
    values = {"host": peer.host, "id": str(peer.peer_id), "dir": remote_dir,
              "config_dir": str(config_dir), "twistd": shlex.join(twistd)}
    argv: list[str] = []
    for word in shlex.split(template):
        if word == "{twistd}":
            argv.extend(twistd)
        else:
            try:
                argv.append(word.format(**values))
            except (KeyError, IndexError, ValueError) as exc:
                raise ConfigError("--remote-shell", None, f"bad placeholder in {word!r}: {exc}") from None
    return argv


def in_new_session(argv: list[str]) -> list[str]:
    return [sys.executable, "-c", _NEW_SESSION, *argv]


# -- the work dir ------------------------------------------------------------------


def demo_bytes(size: int) -> bytes:
    return random.Random(DEMO_SEED).randbytes(size)


def prepare_work_dir(config: SwarmConfig, work_dir: Path, demo_file: bool) -> list[str]:
    """Make peer_ID/ for every peer and clear what an earlier run left; return messages.

    A seed's missing file is copied from another seed's file (so all seeds agree) or,
    with none, made from a fixed pseudo-random sequence.
    """
    messages = []
    for peer in config.peers:
        path = data_path(work_dir, peer.peer_id, config.common)
        path.parent.mkdir(parents=True, exist_ok=True)
        event_log_path(work_dir, peer.peer_id).unlink(missing_ok=True)
        if not peer.has_file:
            path.unlink(missing_ok=True)
            forget_resume_state(path)  # a fresh run: nothing to resume
    if demo_file:
        seeds = [data_path(work_dir, peer.peer_id, config.common) for peer in config.peers if peer.has_file]
        existing = [path for path in seeds if path.is_file() and path.stat().st_size == config.common.file_size]
        for path in seeds:
            if not path.exists():
                if existing:
                    shutil.copyfile(existing[0], path)
                else:
                    path.write_bytes(demo_bytes(config.common.file_size))
                    existing.append(path)
                messages.append(f"created {path} ({config.common.file_size} bytes)")
    return messages


@dataclass
class Launch:
    """How to start one peer and where its progress comes from.

    A local peer is followed through its event log file; a remote one through the
    event lines it prints. Either way its output is kept in ``output``.
    """

    peer: PeerInfo
    argv: list[str]
    cwd: Path
    output: Path
    tail: Optional[Path]


def plan(config: SwarmConfig, config_dir: Path, work_dir: Path, template: str, remote_dir: str) -> list[Launch]:
    names, addresses = local_identity()
    twistd = twistd_command()
    launches = []
    for peer in config.peers:
        output = work_dir / f"twistd_peer_{peer.peer_id}.log"
        if is_local_host(peer.host, names, addresses):
            argv = local_command(twistd, peer.peer_id, config_dir, work_dir)
            launches.append(Launch(peer, argv, work_dir, output, event_log_path(work_dir, peer.peer_id)))
        else:
            argv = remote_command(template, twistd, peer, remote_dir, config_dir)
            launches.append(Launch(peer, argv, work_dir, output, None))
    return launches


# -- process control ---------------------------------------------------------------


class LogTail:
    """Reads what was added to a growing file since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.lines = LineBuffer()

    def read(self) -> list[str]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        return self.lines.feed(data)


def group_alive(pgid: int) -> bool:
    """Whether a process group has a member that is not a zombie.

    A child left by a peer is reparented to init when the peer dies and stays a
    zombie until init reaps it, which may take a while: it is gone for our purpose.
    Where there is no /proc, any member counts.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # it ended while we looked
            state, _parent, group = stat[stat.rindex(")") + 2:].split()[:3]
            if int(group) == pgid and state != "Z":
                return True
    return False


class PeerProcess(protocol.ProcessProtocol):
    """One child: keeps its output, feeds printed event lines to the progress of a remote peer."""

    def __init__(self, launch: Launch, progress: PeerProgress, ended: Callable[["PeerProcess"], None]) -> None:
        self.launch = launch
        self.progress = progress
        self.ended = ended
        self.status: Optional[int] = None
        self.running = False
        self.pid: Optional[int] = None
        self._output = open(launch.output, "wb")
        self._lines = LineBuffer()
        self._tail = LogTail(launch.tail) if launch.tail else None

    def connectionMade(self) -> None:
        self.running = True
        self.pid = self.transport.pid
        self.transport.closeStdin()

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        self._output.write(data)
        if self._tail is None and childFD == 1:
            for line in self._lines.feed(data):
                self.progress.feed_line(line)

    def poll(self) -> None:
        """Read the new lines of a local peer's event log."""
        if self._tail is not None:
            for line in self._tail.read():
                self.progress.feed_line(line)

    def processEnded(self, reason: Failure) -> None:
        self.poll()
        for line in self._lines.flush():
            self.progress.feed_line(line)
        self._output.close()
        self.running = False
        code, sig = reason.value.exitCode, reason.value.signal
        self.status = -sig if sig is not None else code
        self.progress.state = f"exit {self.status}" if sig is None else f"killed (signal {sig})"
        self.ended(self)

    def group_alive(self) -> bool:
        """Whether anything of its session (the peer or a child it left) still runs."""
        return self.pid is not None and group_alive(self.pid)

    def signal_group(self, signum: int) -> None:
        """Signal its session; right after the spawn, before setsid, only the process exists."""
        if self.pid is None:
            return
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            if self.running:
                try:
                    os.kill(self.pid, signum)
                except ProcessLookupError:
                    pass
        except PermissionError:
            pass


class Swarm:
    """Starts the peers in order, watches them, and stops them all when it must.

    :meth:`run` returns a Deferred that fires with the outcome (a key of EXIT_CODES)
    once every started peer has exited and no process of their sessions is left.
    """

    def __init__(self, reactor: Any, launches: list[Launch], progress: dict[int, PeerProgress], display: Display,
                 grace: float = GRACE) -> None:
        self.reactor = reactor
        self.launches = launches
        self.progress = progress
        self.display = display
        self.grace = grace
        self.processes: list[PeerProcess] = []
        self.outcome: Optional[str] = None
        self.done: Deferred[str] = Deferred()
        self._pending: list[Any] = []
        self._killer: Any = None  # the next step of stopping: SIGKILL, then giving up
        self._gave_up = False
        self._ticker = LoopingCall(self._tick)
        self._ticker.clock = reactor
        self._start = reactor.seconds()

    def run(self, stagger: float, timeout: Optional[float]) -> Deferred[str]:
        for position, launch in enumerate(self.launches):
            self._pending.append(self.reactor.callLater(position * stagger, self._spawn, launch))
        if timeout is not None:
            self._pending.append(self.reactor.callLater(timeout, self.stop, "timeout", f"timeout after {timeout:g} s"))
        self._ticker.start(TICK, now=False)
        return self.done

    def _spawn(self, launch: Launch) -> None:
        progress = self.progress[launch.peer.peer_id]
        process = PeerProcess(launch, progress, self._ended)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        argv = in_new_session(launch.argv)
        try:
            self.reactor.spawnProcess(process, argv[0], argv, env=env, path=str(launch.cwd), usePTY=False)
        except OSError as exc:
            self.stop("failed", f"cannot start peer {launch.peer.peer_id}: {exc}")
            return
        self.processes.append(process)
        progress.state = "running"
        where = "" if launch.tail else f" on {launch.peer.host}"
        self.display.say(f"started peer {launch.peer.peer_id}{where} (pid {process.pid})")

    def _ended(self, process: PeerProcess) -> None:
        if process.status != 0 and self.outcome is None:
            self.stop("failed", f"peer {process.launch.peer.peer_id} ended with {process.progress.state}")
        self._check_done()

    def stop(self, outcome: str, why: str) -> None:
        """Stop every started peer (SIGTERM to its session, SIGKILL after the grace time)."""
        if self.outcome is not None:
            if outcome in ("interrupted", "terminated"):
                self.display.say("asked again: killing every peer now")
                self._kill()
            return
        self.outcome = outcome
        for call in self._pending:
            if call.active():
                call.cancel()
        alive = [process for process in self.processes if process.running or process.group_alive()]
        self.display.say(f"{why}: stopping {len(alive)} peer{'s' if len(alive) != 1 else ''} ...")
        for process in alive:
            process.signal_group(signal.SIGTERM)
        self._killer = self.reactor.callLater(self.grace, self._kill)
        self._check_done()

    def _give_up(self) -> None:
        """Processes that outlive SIGKILL (stuck in the kernel) must not hang the launcher."""
        left = [process.launch.peer.peer_id for process in self.processes if process.group_alive()]
        self.display.say(f"processes of peers {', '.join(map(str, left))} survived SIGKILL; not waiting for them")
        self._gave_up = True
        self._check_done()

    def interrupt(self, signum: int) -> None:
        """SIGINT or SIGTERM to the launcher."""
        name = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
        self.stop("interrupted" if signum == signal.SIGINT else "terminated", name)

    def _kill(self) -> None:
        if self._killer is not None and self._killer.active():
            self._killer.cancel()
        for process in self.processes:
            if process.running or process.group_alive():
                process.signal_group(signal.SIGKILL)
        self._killer = self.reactor.callLater(self.grace, self._give_up)

    def _tick(self) -> None:
        for process in self.processes:
            process.poll()
        self.display.update(self.progress.values(), self.reactor.seconds() - self._start)
        self._check_done()

    def _check_done(self) -> None:
        if self.done.called:
            return
        if self.outcome is None and len(self.processes) < len(self.launches):
            return  # still starting peers
        if not self._gave_up:
            if any(process.running for process in self.processes):
                return
            leftovers = [process for process in self.processes if process.group_alive()]
            if leftovers:
                if self.outcome is None:
                    for process in leftovers:  # the peers finished but left something behind
                        process.signal_group(signal.SIGKILL)
                return  # checked again on the next tick
            if self.outcome is not None:
                self.display.say(f"all {len(self.processes)} started peers are gone")
        if self._killer is not None and self._killer.active():
            self._killer.cancel()
        if self._ticker.running:
            self._ticker.stop()
        self.display.update(self.progress.values(), self.reactor.seconds() - self._start, final=True)
        self.done.callback(self.outcome or "finished")


# -- the command -------------------------------------------------------------------


def check_files(config: SwarmConfig, work_dir: Path, local_ids: set[int], statuses: dict[int, Optional[int]],
                progress: dict[int, PeerProgress]) -> tuple[list[PeerResult], Optional[str]]:
    """Each peer's result, its file compared with the first seed file readable here.

    A remote peer's file is checked when it is in the work dir too (a shared
    filesystem), else by the SHA-256 it printed when it finished; with neither, its
    check is None ("not here"), not a failure.
    """
    seeds = [data_path(work_dir, peer.peer_id, config.common) for peer in config.peers if peer.has_file]
    reported = [progress[peer.peer_id].reported_sha256 for peer in config.peers if peer.has_file]
    expected = next((d for d in itertools.chain(map(sha256_file, seeds), reported) if d is not None), None)
    results = []
    for peer in config.peers:
        digest = sha256_file(data_path(work_dir, peer.peer_id, config.common))
        if digest is None and peer.peer_id not in local_ids:
            digest = progress[peer.peer_id].reported_sha256
        if digest is None:
            ok = False if peer.peer_id in local_ids else None
        else:
            ok = digest == expected
        results.append(PeerResult(progress[peer.peer_id], statuses.get(peer.peer_id), ok))
    return results, expected


def main(argv: list[str], stdout: TextIO = sys.stdout) -> int:
    args = parse_args(argv)
    config_dir = Path(args.config_dir).resolve()
    work_dir = Path(args.work_dir).resolve()
    try:
        config = load(config_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        launches = plan(config, config_dir, work_dir, args.remote_shell, args.remote_dir or str(work_dir))
        for message in prepare_work_dir(config, work_dir, args.demo_file):
            print(message, file=stdout)
    except (ConfigError, OSError) as exc:
        print(f"p2p-swarm run: {exc}", file=sys.stderr)
        return 2
    missing = [launch.peer for launch in launches if launch.tail and launch.peer.has_file
               and not data_path(work_dir, launch.peer.peer_id, config.common).is_file()]
    if missing:
        path = data_path(work_dir, missing[0].peer_id, config.common)
        print(f"p2p-swarm run: seed {missing[0].peer_id} has no file {path} (add --demo-file to create one)",
              file=sys.stderr)
        return 2

    from twisted.internet import reactor

    start = reactor.seconds()
    progress = {
        peer.peer_id: PeerProgress(peer.peer_id, peer.host, config.common.num_pieces, peer.has_file, start)
        for peer in config.peers
    }
    display = Display(stdout, config.common.piece_size, tty=stdout.isatty())
    swarm = Swarm(reactor, launches, progress, display)
    outcome: list[str] = []

    def finished(result: object) -> None:
        if isinstance(result, Failure):
            display.say(f"p2p-swarm run: internal error: {result.getTraceback()}")
            outcome.append("failed")
        else:
            outcome.append(str(result))
        reactor.stop()

    def handle_signals() -> None:
        def handler(signum: int, frame: object) -> None:
            reactor.callFromThread(swarm.interrupt, signum)

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    reactor.callWhenRunning(handle_signals)
    reactor.callWhenRunning(lambda: swarm.run(args.stagger, args.timeout).addBoth(finished))
    reactor.run()
    duration = reactor.seconds() - start

    statuses = {process.launch.peer.peer_id: process.status for process in swarm.processes}
    local_ids = {launch.peer.peer_id for launch in launches if launch.tail}
    results, expected = check_files(config, work_dir, local_ids, statuses, progress)
    result_outcome = outcome[0] if outcome else "failed"
    if result_outcome == "finished" and not all(result.ok for result in results):
        result_outcome = "failed"
    code = EXIT_CODES[result_outcome]
    print("", file=stdout)
    for line in summary_table(results):
        print(line, file=stdout)
    file_info = {"name": config.common.file_name, "size": config.common.file_size,
                 "pieces": config.common.num_pieces, "sha256": expected}
    report = build_report(results, result_outcome, code, duration, file_info)
    print(f"report: {write_report(report, work_dir)}", file=stdout)
    plot = write_plot(report, work_dir)
    if plot is None:
        print("plot skipped: matplotlib is not installed (pip install .[plot])", file=stdout)
    else:
        print(f"plot: {plot}", file=stdout)
    verdict = "every peer has the seed's file" if code == 0 else f"not verified ({result_outcome})"
    print(f"swarm {result_outcome} in {duration:.1f} s: {verdict}; exit {code}", file=stdout)
    return code
