"""The libtorrent side of the comparison, run by the SYSTEM Python (Debian's
python3-libtorrent): one session per peer in this one process, TCP only on 127.0.0.1
(no DHT, LSD, UPnP, NAT-PMP, uTP or encryption), peers connected directly.

Usage: lt_swarm.py JSON -- JSON has file, piece_size, leechers, timeout and optional
upload_rate / seed_upload_rate (bytes/s). With ``ports`` (one listening port per session)
and ``connect_ports`` (where the others reach each session: a relay's ports), sessions
connect through those ports, and run without the default plugins (peer exchange could
tell them each other's real ports). Prints one JSON line. Uses only the standard
library and libtorrent; it downloads nothing from anywhere.

Timed like bench/swarm.py: start-up from just before the first session is created to the
first poll (every 2 ms) by which every session has been seen with all the others as peers; the transfer
phase from then to the last leecher seeding.
"""
import json
import os
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
    """One session per peer, the seed first, each with the torrent added; every pair
    connected once, like PeerInfo.cfg's order."""
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
        if index == 0:
            params.save_path = os.path.dirname(path)
            params.flags = ((params.flags | lt.torrent_flags.seed_mode)
                            & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused)
        else:
            params.save_path = os.path.join(work, f"peer_{index}")
            params.flags = params.flags & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused
        handles.append(session.add_torrent(params))
    reach = args.get("connect_ports") or ports
    for index, handle in enumerate(handles):
        for other in range(index):
            handle.connect_peer(("127.0.0.1", reach[other]))
    return sessions, handles


def _follow(handles, info, deadline):
    """Poll until every leecher seeds or the deadline: when each was seen seeding, when
    every pair was connected, and the leechers' share done by then."""
    count = len(handles)
    done: dict[int, float] = {}  # leecher -> when it was seen seeding
    connected, share_before = None, None
    # Sessions seen with every other session as a peer. Sticky, as "every pair connected"
    # is for our peers: two seeds drop their connection, so a leecher that finished before
    # the last pair connected would otherwise keep the swarm from ever counting as connected.
    met_all: set[int] = set()
    while len(done) < count - 1 and time.time() < deadline:
        if connected is None:  # after that, status() only for leechers still downloading: each waits on libtorrent
            statuses = [handle.status() for handle in handles]
            met_all.update(index for index, status in enumerate(statuses) if status.num_peers >= count - 1)
            if len(met_all) == count:
                connected = time.time()
                done_before = sum(status.total_wanted_done for status in statuses[1:])
                share_before = done_before / ((count - 1) * info.total_size())
        for index in range(1, count):
            if index not in done and handles[index].status().is_seeding:
                done[index] = time.time()
        time.sleep(0.002)
    return done, connected, share_before


def main(args):
    path = args["file"]
    work = tempfile.mkdtemp(prefix="p2pbench-lt-")
    try:
        info = _torrent(path, args["piece_size"])
        count = args["leechers"] + 1
        start = time.time()
        sessions, handles = _start_sessions(args, info, path, work)
        done, connected, share_before = _follow(handles, info, start + args["timeout"])
        last = max(done.values()) if len(done) == count - 1 else None
        result = {
            "ok": last is not None and connected is not None,
            "failure": ("never was every session seen with all the others as peers" if connected is None else
                        None if last else f"{count - 1 - len(done)} leecher(s) not seeding by the timeout"),
            "time_to_last_complete_s": (last - start) if last else None,
            "startup_s": (connected - start) if connected else None,
            "transfer_s": (last - connected) if last and connected else None,
            # share of the leechers' bytes already downloaded when all were connected
            "share_before_all_connected": share_before,
            "version": lt.__version__,
        }
        for session in sessions:
            session.pause()
        del handles, sessions
        print(json.dumps(result), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
