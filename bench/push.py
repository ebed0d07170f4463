"""``python -m bench --only push``: ``p2p-swarm push`` against parallel scp and the bound.

N hosts, each a network namespace with a real sshd (``tests/sshhosts.py``), each host's
link capped with ``tbf`` both ways at the rate, and this machine (the seed, in the root
namespace) capped in aggregate too: a ``tbf`` on the egress of the hosts' bridge device,
which is the way out of the root namespace to every host (traffic between hosts is
forwarded by the bridge and never passes that qdisc). Before anything is timed, both caps
are measured with plain TCP streams. Then, in one run: parallel scp of the file to every
host, ``push`` of it, and the textbook bound max(F/u, N·F/((N+1)·u)).

Push's phases are read from its own output, each line stamped as it arrives; where push
prints its own phase times (a ``time:`` line) those are kept too. The transfer (the
first piece any host downloaded to the last host complete, by the peers' own log
stamps) is read from the report push keeps (``--report``, written after its table).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import MiB, fmt, log
from twisted_p2p.launcher.runreport import REPORT_JSON

TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
SUBNET = "10.213.40"
CHECK_SECONDS = 1.5  # how long each cap is measured for
MB = 1_000_000

METHOD = ("push: N namespace hosts with sshd, every host's link capped with tbf both ways at the rate and the "
          "seed (this machine) capped in aggregate by a tbf on the bridge's egress; end to end = the launch of "
          "'p2p-swarm push' (or of all scp processes at once) to its exit; bound = max(F/u, N*F/((N+1)*u)); "
          "push's phases from its output lines, stamped as they arrive")


@dataclass
class PushSpec:
    hosts: int = 8
    size_mb: int = 200  # MB = 10**6 bytes, as the rate is in bits per second
    rate_mbit: float = 200.0
    repeats: int = 1
    scp: bool = True
    queue_ms: float = 50.0  # a cap's queue: a packet that would wait longer is dropped


def bound_s(size: int, hosts: int, rate_bytes: float) -> float:
    """Minimum distribution time with every upload (the seed's too) at ``rate_bytes``."""
    return max(size / rate_bytes, hosts * size / ((hosts + 1) * rate_bytes))


# -- the caps, measured ----------------------------------------------------------

_SINK = """import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); print("ready", flush=True)
c, _ = s.accept(); n = 0; first = None; buf = bytearray(1 << 20)
while True:
    k = c.recv_into(buf)
    if not k: break
    first = first or time.time(); n += k
print(n, first, time.time(), flush=True)"""

_SOURCE = """import socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2]))); chunk = bytes(1 << 16)
end = time.time() + float(sys.argv[3])
while time.time() < end: c.sendall(chunk)
c.close()"""


def _stream(sinks: list[tuple[list[str], str]], sources: list[list[str]], seconds: float) -> float:
    """Bytes per second through all the sinks together: each sink ``(prefix, address)``
    listens on port 5999 of its host, each source (a command prefix) sends to the sink of
    the same position for ``seconds``."""
    listening = []
    for prefix, address in sinks:
        child = subprocess.Popen([*prefix, sys.executable, "-c", _SINK, address, "5999"],
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        child.stdout.readline()
        listening.append(child)
    senders = [subprocess.Popen([*prefix, sys.executable, "-c", _SOURCE, address, "5999", str(seconds)])
               for prefix, (_, address) in zip(sources, sinks)]
    for sender in senders:
        sender.wait(seconds + 30)
    figures = []
    for child in listening:
        out, _ = child.communicate(timeout=30)
        count, first, last = out.split()
        figures.append((int(count), float(first), float(last)))
    return sum(n for n, _, _ in figures) / (max(last for _, _, last in figures) - min(first for _, first, _ in figures))


def link_counters(hosts) -> dict[str, int]:
    """What the caps dropped and TCP sent again, summed over every host and this machine:
    packets each ``tbf`` dropped (both ends of every host's link, and the bridge's), and
    TCP's segments sent and retransmitted (each namespace's /proc/net/snmp)."""
    totals = {"tbf_dropped": 0, "tcp_segments_out": 0, "tcp_retransmitted": 0}

    def add(prefix: list[str], devices: list[str]) -> None:
        for device in devices:
            shown = subprocess.run(["tc", *prefix, "-s", "-j", "qdisc", "show", "dev", device], capture_output=True,
                                   text=True, timeout=20)
            for qdisc in json.loads(shown.stdout or "[]"):
                if qdisc.get("kind") == "tbf":
                    totals["tbf_dropped"] += int(qdisc.get("drops", 0))
        run_in = ["ip", "netns", "exec", prefix[1]] if prefix else []
        snmp = subprocess.run([*run_in, "cat", "/proc/net/snmp"], capture_output=True, text=True, timeout=20).stdout
        tcp = [line.split()[1:] for line in snmp.splitlines() if line.startswith("Tcp:")]
        if len(tcp) == 2:
            values = dict(zip(tcp[0], tcp[1], strict=False))
            totals["tcp_segments_out"] += int(values.get("OutSegs", 0))
            totals["tcp_retransmitted"] += int(values.get("RetransSegs", 0))

    add([], [hosts.netns.bridge] + [hosts.netns.link(address) for address in hosts.addresses])
    for address in hosts.addresses:
        add(["-n", hosts.namespace(address)], [hosts.netns.inside(address)])
    return totals


def check_caps(hosts) -> dict:
    """The seed's aggregate to two hosts at once, and one host's upload to another, in
    bytes per second (each should be the rate, not twice it)."""
    a, b, c = hosts.addresses[:3]
    seed = _stream([(hosts.run_in(a), a), (hosts.run_in(b), b)], [[], []], CHECK_SECONDS)
    host = _stream([(hosts.run_in(b), b)], [hosts.run_in(c)], CHECK_SECONDS)
    return {"seed_to_two_hosts_bytes_per_s": seed, "host_to_host_bytes_per_s": host}


# -- scp and push ----------------------------------------------------------------

def run_scp(hosts, source: Path, dest: str) -> dict:
    """The file to every host at once, one scp each; seconds until the last one ends."""
    for address in hosts.addresses:
        hosts.ssh(address, f"mkdir -p {dest}")
    began = time.monotonic()
    children = [subprocess.Popen(["scp", "-q", "-F", str(hosts.ssh_config), str(source), f"{address}:{dest}/"],
                                 stdin=subprocess.DEVNULL, stderr=subprocess.PIPE) for address in hosts.addresses]
    codes = [child.wait() for child in children]
    seconds = time.monotonic() - began
    sizes = [hosts.path(address, f"{dest}/{source.name}").stat().st_size
             if hosts.path(address, f"{dest}/{source.name}").exists() else 0 for address in hosts.addresses]
    ok = all(code == 0 for code in codes) and all(size == source.stat().st_size for size in sizes)
    return {"ok": ok, "seconds": seconds}


#: Push's output lines that mark where a phase begins or ends (the first line that matches).
MARKS = {
    "asking": re.compile(r"^asking \d+ hosts? over ssh"),
    "pushing": re.compile(r"^pushing "),
    "preparing": re.compile(r"^preparing \d+ hosts? over ssh"),
    "first_started": re.compile(r"^started peer "),
    "checked": re.compile(r"^checked over ssh"),
    "table": re.compile(r"^host\s+result"),
}
DONE = re.compile(r"\bdone (\d+\.\d)s\b")
TIME_LINE = re.compile(r"^time: (.*)$")


def phases_from(lines: list[tuple[float, str]], end: float) -> dict[str, float | None]:
    """Push's phases in seconds from its stamped output (seconds since launch, line)."""
    marks: dict[str, float] = {}
    done = 0.0
    for when, line in lines:
        if line.startswith("[") and "checked" not in marks:
            marks["peers_ended"] = when  # the progress block drawn last, once every peer has ended
        for name, pattern in MARKS.items():
            if name not in marks and pattern.search(line):
                marks[name] = when
        done = max([done] + [float(found) for found in DONE.findall(line)])

    def between(a: str, b: str) -> float | None:
        return marks[b] - marks[a] if a in marks and b in marks else None

    last_done = marks["first_started"] + done if "first_started" in marks and done else None
    return {
        "start_of_launcher": marks.get("asking"),
        "survey": between("asking", "pushing"),
        "prepare": between("pushing", "first_started"),
        "peers_until_last_complete": done or None,
        "peers_exit": marks["peers_ended"] - last_done if last_done and "peers_ended" in marks else None,
        "stop_check": between("peers_ended", "checked"),
        "deliver": between("checked", "table"),
        "after_table": end - marks["table"] if "table" in marks else None,
    }


def transfer_from(report: dict) -> float | None:
    """The first piece any leecher downloaded to the last leecher complete, in seconds,
    from a swarm report (``swarm-report.json``: each peer's timeline of pieces held and
    its time to complete, both by its own log's stamps); None if a leecher never completed."""
    leechers = [peer for peer in report.get("peers", []) if not peer.get("seed")]
    done = [peer["seconds_to_complete"] for peer in leechers if peer.get("seconds_to_complete") is not None]
    timelines = report.get("timeline", {})
    firsts = [next((when for when, held in timelines.get(str(peer["id"]), []) if held > 0), None) for peer in leechers]
    known = [when for when in firsts if when is not None]
    if not leechers or len(done) < len(leechers) or not known:
        return None
    return max(done) - min(known)


def run_push(hosts, source: Path, dest: str, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="p2pbench-push-") as scratch:
        report = Path(scratch) / "push.json"
        swarm_report = Path(scratch) / "report"
        argv = [sys.executable, "-m", "twisted_p2p.launcher.cli", "push", str(source), *hosts.addresses,
                "--dest", dest, "--ssh-config", str(hosts.ssh_config), "--timeout", "600", "--json", str(report),
                "--report", str(swarm_report), *extra]
        lines: list[tuple[float, str]] = []
        began = time.monotonic()
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 stdin=subprocess.DEVNULL, cwd=scratch)
        assert child.stdout is not None
        for line in child.stdout:
            lines.append((time.monotonic() - began, line.rstrip("\n")))
        code = child.wait()
        seconds = time.monotonic() - began
        result = json.loads(report.read_text()) if report.exists() else {}
        report_json = swarm_report / REPORT_JSON
        kept = json.loads(report_json.read_text()) if report_json.exists() else {}
        transfer = transfer_from(kept)
    own = next((found.group(1) for _, line in lines if (found := TIME_LINE.search(line))), None)
    ok = code == 0 and all(host.get("state") == "delivered" for host in result.get("hosts", [{}]))
    if not ok:
        log("push failed; its output:\n" + "\n".join(line for _, line in lines[-40:]))
    phases = phases_from(lines, seconds) | {"first_piece_to_last_complete": transfer}
    return {"ok": ok, "exit": code, "seconds": seconds, "phases": phases, "push_says": own,
            "pieces": kept.get("file", {}).get("pieces"),  # push chose the piece size: by the round trip it timed
            "output_tail": [line for _, line in lines if not line.startswith("[")][-30:]}


def case_push(spec: PushSpec, extra: list[str] | None = None) -> dict:
    """One run of the case: the caps measured, scp, push ``spec.repeats`` times, the bound."""
    if TESTS not in sys.path:
        sys.path.insert(0, TESTS)
    from sshhosts import ssh_hosts

    log(METHOD)
    size = spec.size_mb * MB
    rate = spec.rate_mbit * 1e6 / 8
    work = Path(f"/tmp/p2pbench-push-{os.getpid()}")  # private (a tmpfs) on every host
    files = Path(tempfile.mkdtemp(prefix="p2pbench-pushfile-"))
    row: dict = {"hosts": spec.hosts, "size_mb": spec.size_mb, "rate_mbit": spec.rate_mbit, "queue_ms": spec.queue_ms,
                 "bound_s": bound_s(size, spec.hosts, rate)}
    try:
        source = files / "payload.bin"
        with open(source, "wb") as out:
            for _ in range(size // MiB):
                out.write(os.urandom(MiB))
            out.write(os.urandom(size % MiB))
        cap = f"{spec.rate_mbit:g}mbit"
        with ssh_hosts(spec.hosts, subnet=SUBNET, tag=f"p2pb{os.getpid()}", rate=cap, private_dirs=[work],
                       queue_ms=spec.queue_ms) as hosts:
            subprocess.run(["tc", "qdisc", "replace", "dev", hosts.netns.bridge, "root", *hosts.tbf(cap)], check=True,
                           capture_output=True, timeout=20)
            caps = check_caps(hosts)
            row["caps"] = caps
            log(f"push: caps measured: seed to two hosts at once {caps['seed_to_two_hosts_bytes_per_s'] / MB:.1f} "
                f"MB/s, one host to another {caps['host_to_host_bytes_per_s'] / MB:.1f} MB/s "
                f"(the rate is {rate / MB:.1f} MB/s)")
            if spec.scp:
                log(f"push: parallel scp of {spec.size_mb} MB to {spec.hosts} hosts")
                row["scp"] = run_scp(hosts, source, str(work / "scp"))
                log(f"push: scp {'ok' if row['scp']['ok'] else 'FAILED'} in {row['scp']['seconds']:.1f} s")
                for address in hosts.addresses:
                    shutil.rmtree(hosts.path(address, work / "scp"), ignore_errors=True)
            runs = []
            before = link_counters(hosts)
            for attempt in range(spec.repeats):
                for address in hosts.addresses:
                    shutil.rmtree(hosts.path(address, work / "push"), ignore_errors=True)
                run = run_push(hosts, source, str(work / "push"), extra or [])
                log(f"push run {attempt + 1}/{spec.repeats}: {'ok' if run['ok'] else 'FAILED'} in "
                    f"{run['seconds']:.1f} s; phases " + ", ".join(
                        f"{name} {value:.1f}" for name, value in run["phases"].items() if value is not None)
                    + (f"; push says: {run['push_says']}" if run["push_says"] else ""))
                runs.append(run)
            row["runs"] = runs
            after = link_counters(hosts)
            row["links"] = {name: after[name] - before[name] for name in after}  # over all the push runs
            log("push: over the runs, " + ", ".join(f"{name} {value:,}" for name, value in row["links"].items()))
    except BaseException as exc:  # pytest's skip (no root, no sshd) is a BaseException
        if type(exc).__name__ != "Skipped":
            raise
        row["skipped"] = str(exc)
        log(f"push: SKIPPED: {exc}")
        return row
    finally:
        shutil.rmtree(files, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    good = sorted(run["seconds"] for run in row["runs"] if run["ok"])
    row["push_s"] = statistics.median(good) if good else None
    row["ratio_to_bound"] = row["push_s"] / row["bound_s"] if row["push_s"] else None
    scp = row.get("scp", {})
    row["scp_s"] = scp.get("seconds") if scp.get("ok") else None
    row["scp_over_push"] = row["scp_s"] / row["push_s"] if row["scp_s"] and row["push_s"] else None
    return row


def table_rows(case: dict) -> list[list[str]]:
    """Rows for bench/run.py's table."""
    name = f"push to {case['hosts']} hosts, {case['size_mb']} MB, {case['rate_mbit']:g} Mbit/s caps"
    if "skipped" in case:
        return [[name, "skipped: " + case["skipped"], "—", "—", "—", "—", "—", ""]]
    runs = case["runs"]
    good = [run for run in runs if run["ok"]]
    statistic = f"median of {len(good)}" if len(good) != 1 else "1 run"
    middle = min(good, key=lambda run: abs(run["seconds"] - case["push_s"])) if good else None
    startup = "—"
    if middle is not None:
        p = middle["phases"]
        startup = (f"launch {fmt(p['start_of_launcher'])} s, survey {fmt(p['survey'])} s, "
                   f"prepare {fmt(p['prepare'])} s")
    figure = f"{fmt(case['push_s'], 1)} s end to end"
    if middle is not None:
        p = middle["phases"]
        wrap_up = sum(v or 0 for k, v in p.items() if k in ("peers_exit", "stop_check", "deliver", "after_table"))
        figure += (f" (peers until the last complete {fmt(p['peers_until_last_complete'], 1)} s, "
                   f"then {fmt(wrap_up, 1)} s wrap-up)")
    ratio = f"{fmt(case['ratio_to_bound'])}x bound; scp {fmt(case['scp_over_push'], 1)}x slower"
    met_bound = case["ratio_to_bound"] is not None and case["ratio_to_bound"] <= 1.3
    met_scp = case["scp_over_push"] is not None and case["scp_over_push"] >= 6
    target = (f"≤ 1.3x bound {'met' if met_bound else 'missed'}, ≥ 6x scp "
              f"{'met' if met_scp else 'missed' if case['scp_over_push'] else 'n/a'}")
    reference = f"bound {case['bound_s']:.1f} s; parallel scp {fmt(case['scp_s'], 1)} s"
    return [[f"{name} ({statistic})", figure, startup, reference, ratio, "—", "—", target]]
