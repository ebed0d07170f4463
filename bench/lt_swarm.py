"""The libtorrent side of the comparison, run by the SYSTEM Python (Debian's
python3-libtorrent): one session per peer in this one process, TCP only on 127.0.0.1
(no DHT, LSD, UPnP, NAT-PMP, uTP or encryption), peers connected directly.

Usage: lt_swarm.py JSON -- JSON has file, piece_size, leechers, timeout and optional
upload_rate / seed_upload_rate (bytes/s). With ``ports`` (one listening port per session)
and ``connect_ports`` (where the others reach each session: a relay's ports), sessions
connect through those ports, and run without the default plugins (peer exchange could
tell them each other's real ports). Prints one JSON line. Uses only the standard
library and libtorrent; it downloads nothing from anywhere.

Set up as libtorrent's users set it up: the seed's file checked when its torrent is added
(not seed_mode), the leechers held in upload_mode until every pair is connected, then
released. Timed like bench/swarm.py: start-up from just before the first session is
created to the first poll (every 2 ms) by which every session has been seen with all the
others as peers; the transfer phase from then (the release) to the last leecher seen
seeding. CPU (user + system, the whole process: every session's threads) over the
sessions' lives and over the transfer phase, from getrusage.
"""
import json
import os
import resource
import shutil
import sys
import tempfile
import time

import libtorrent as lt


def _session(port, upload_rate, plugins=True):
    settings = {
        "listen_interfaces": f"127.0.0.1:{port}",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_tcp": True,
        "enable_incoming_tcp": True,
        "out_enc_policy": lt.enc_policy.disabled,
        "in_enc_policy": lt.enc_policy.disabled,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": 0,
        "rate_limit_ip_overhead": False,
        # held leechers are upload-only; by default two upload-only peers hang up on each
        # other, so the pairs could never all connect. Left off for the run: turned back on
        # at the release it races the leechers' news that they download now and drops pairs
        # (after the release it would only close connections between finished peers).
        "close_redundant_connections": False,
    }
    if upload_rate:
        settings["upload_rate_limit"] = int(upload_rate)
    session = lt.session(settings, lt.session_flags_t.add_default_plugins if plugins else 0)
    if upload_rate:
        # loopback peers are in the unlimited local class by default: rate-limit them
        loopback = lt.ip_filter()
        loopback.add_rule("127.0.0.0", "127.255.255.255", 1 << lt.session.global_peer_class_id)
        session.set_peer_class_filter(loopback)
    return session


def _torrent(path, piece_size):
    storage = lt.file_storage()
    lt.add_files(storage, path)
    creator = lt.create_torrent(storage, piece_size)
    lt.set_piece_hashes(creator, os.path.dirname(path))
    return lt.torrent_info(lt.bencode(creator.generate()))


def _start_sessions(args, info, path, work):
    """One session per peer, the seed first, each with the torrent added as its users add
    it: the seed's file checked when added (not seed_mode, which would hash each piece on
    its first upload, inside the timed transfer), the leechers in upload_mode (they download
    nothing until released). Leechers connect to each other now, like PeerInfo.cfg's order,
    and to the seed once its check is done (see _follow)."""
    count = args["leechers"] + 1
    chosen = args.get("ports") or [0] * count
    sessions, handles, ports = [], [], []
    for index in range(count):
        seeding = index == 0 and args.get("seed_upload_rate")
        rate = args.get("seed_upload_rate") if seeding else args.get("upload_rate")
        session = _session(chosen[index], rate, plugins="connect_ports" not in args)
        sessions.append(session)
        ports.append(session.listen_port())
        params = lt.add_torrent_params()
        params.ti = info
        params.flags = params.flags & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused
        if index == 0:
            params.save_path = os.path.dirname(path)
        else:
            params.save_path = os.path.join(work, f"peer_{index}")
            params.flags |= lt.torrent_flags.upload_mode
        handles.append(session.add_torrent(params))
    reach = args.get("connect_ports") or ports
    for index in range(2, count):
        for other in range(1, index):
            handles[index].connect_peer(("127.0.0.1", reach[other]))
    return sessions, handles, reach


def _connect_to_seed(handles, reach):
    """Every leecher dials the seed (called once its file is checked)."""
    for handle in handles[1:]:
        handle.connect_peer(("127.0.0.1", reach[0]))


def _release(handles):
    """Every pair is connected: the leechers may download."""
    for handle in handles[1:]:
        handle.unset_flags(lt.torrent_flags.upload_mode)


def _cpu_s():
    """This process's user + system CPU seconds, every thread (all the sessions)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _wait_connected(handles, reach, deadline):
    """Poll (every 2 ms) until every session has been seen with all the others as peers:
    when, or None by the deadline. Sticky per session, as "every pair connected" is for
    our peers. Leechers dial the seed once it is seeding (its check done)."""
    count = len(handles)
    met_all: set[int] = set()
    seed_dialled = False
    while time.time() < deadline:
        statuses = [handle.status() for handle in handles]
        if not seed_dialled and statuses[0].is_seeding:
            _connect_to_seed(handles, reach)
            seed_dialled = True
        met_all.update(index for index, status in enumerate(statuses) if status.num_peers >= count - 1)
        if len(met_all) == count:
            return time.time()
        time.sleep(0.002)
    return None


def _follow(handles, deadline):
    """Poll (every 2 ms) the leechers still downloading until each seeds or the deadline:
    when each was seen seeding."""
    done: dict[int, float] = {}  # leecher -> when it was seen seeding
    while len(done) < len(handles) - 1 and time.time() < deadline:
        for index in range(1, len(handles)):
            if index not in done and handles[index].status().is_seeding:
                done[index] = time.time()
        time.sleep(0.002)
    return done


def _share_done(handles, info):
    """The share of the leechers' bytes already downloaded."""
    done = sum(handle.status().total_wanted_done for handle in handles[1:])
    return done / ((len(handles) - 1) * info.total_size())


def _run(args, info, path, work):
    """The timed run: its times, and the CPU of the sessions' lives and of the transfer."""
    count = args["leechers"] + 1
    cpu_before, start = _cpu_s(), time.time()
    sessions, handles, reach = _start_sessions(args, info, path, work)
    deadline = start + args["timeout"]
    connected = _wait_connected(handles, reach, deadline)
    share_before, cpu_connected = None, _cpu_s()
    if connected is not None:
        share_before = _share_done(handles, info)
        _release(handles)
        done = _follow(handles, deadline)
    else:
        done = {}
    last = max(done.values()) if len(done) == count - 1 else None
    cpu_last = _cpu_s()
    for session in sessions:
        session.pause()
    del handles, sessions  # the sessions end here, inside the CPU counted
    return {
        "ok": last is not None and connected is not None,
        "failure": ("never was every session seen with all the others as peers" if connected is None else
                    None if last else f"{count - 1 - len(done)} leecher(s) not seeding by the timeout"),
        "time_to_last_complete_s": (last - start) if last else None,
        "startup_s": (connected - start) if connected else None,
        "transfer_s": (last - connected) if last and connected else None,
        # share of the leechers' bytes already downloaded when all were connected (held: 0)
        "share_before_all_connected": share_before,
        # user + system, every thread: from the first session created to the last ended
        # (the torrent's creation before it left out), and from all connected to the last seeding
        "cpu_s_total": _cpu_s() - cpu_before,
        "cpu_s_transfer": cpu_last - cpu_connected if last else None,
        "delivered_bytes": (count - 1) * info.total_size(),
        "version": lt.__version__,
    }


def main(args):
    work = tempfile.mkdtemp(prefix="p2pbench-lt-")
    try:
        info = _torrent(args["file"], args["piece_size"])
        print(json.dumps(_run(args, info, args["file"], work)), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
