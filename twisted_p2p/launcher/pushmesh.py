"""Whom each peer of a push connects with, and what it tells the launcher.

The course's full mesh costs each peer N - 1 connections and (N - 1) x pieces have
messages, and the launcher used to read every event line of every host over ssh. A push
involves only our peers, so past :data:`FULL_MESH_UP_TO` hosts each peer gets a bounded
neighbour set (``--neighbours``, :func:`twisted_p2p.graph.neighbour_sets`; the seed is
in the graph like any other peer, and its neighbours split its pieces among them), and
every host echoes a progress line a second (``--echo-summary``) instead of its events.
"""
from __future__ import annotations

import random
from collections.abc import Sequence

from twisted_p2p.graph import neighbour_sets
from twisted_p2p.launcher.options import DEFAULT_PIPELINE
from twisted_p2p.launcher.remote import ECHO_EVENTS

#: Up to this many hosts a push is the course's full mesh: each peer has at most 15
#: connections, every host is one hop from the seed, and the seed's share of the pieces
#: (``--split-seed``) is split over every host.
FULL_MESH_UP_TO = 16
#: Neighbours per peer above that: connections and have messages per peer stay the same
#: however many hosts, a piece crosses the random graph in about log N / log 7 hops, and
#: losing a few hosts does not cut the graph in two.
DEFAULT_DEGREE = 8
#: Requests a peer of a bounded push keeps outstanding to one neighbour. Its download is
#: shared by its neighbours, so each needs only a part of the link's bandwidth-delay
#: product (push's piece size already makes one piece per round trip fill a path), and a
#: neighbour's upload is shared by its own neighbours: with D of them asking 16 deep (the
#: adaptive window's floor), a piece asked of it waits behind 16 x D others that a less
#: busy neighbour could have sent. Simulated, 100 hosts of 8 neighbours, 1,000 pieces:
#: 1.65x the bound at push's full depth, 1.40x at 8, 1.28x at 4, 1.20x at 2
#: (docs/simulator.rst).
BOUNDED_PIPELINE = 4
#: How the hosts' peers of a bounded push echo: a progress line a second, not every event.
SUMMARY_ECHO = ("--echo-summary", "1")


def echo_for(degree: int) -> tuple[str, ...]:
    """How the peers echo for a push of this degree (0: the full mesh): up to
    :data:`FULL_MESH_UP_TO` hosts, every event line, so that the launcher knows each
    piece as it lands (an interrupted push says exactly what each host kept); past
    that, the lines are what costs, and a progress line a second is what it reads."""
    return SUMMARY_ECHO if degree > 0 else ECHO_EVENTS


def pipeline_for(degree: int) -> int:
    """The pipelining depth for a push of this degree (0: the full mesh, where a peer's
    few neighbours are all the hosts and the adaptive window's depth was measured)."""
    return BOUNDED_PIPELINE if degree > 0 else DEFAULT_PIPELINE


def parse_degree(text: str) -> int | None:
    """``--neighbours``' value: ``auto`` (None), ``all`` (0: the full mesh), or the
    neighbours per peer; ValueError says what is wrong."""
    if text == "auto":
        return None
    if text == "all":
        return 0
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"--neighbours takes auto, all or a number of neighbours (1 or more), not {text!r}")
    return int(text)


def degree_for(asked: int | None, hosts: int) -> int:
    """The neighbours per peer for ``hosts`` hosts (0: the full mesh); ``asked``:
    :func:`parse_degree`'s."""
    if asked is not None:
        return asked
    return 0 if hosts <= FULL_MESH_UP_TO else DEFAULT_DEGREE


def neighbour_options(peer_ids: Sequence[int], degree: int, rng: random.Random,
                      seed: int | None = None) -> dict[int, list[str]]:
    """Each peer's ``--neighbours`` option (none for the full mesh, or when the degree
    joins every peer with every other anyway). The ``seed``'s neighbours also get
    ``--split-among`` its neighbours: with ``--split-seed`` they split its pieces among
    them, as the whole swarm does in the full mesh, so that it sends each about once."""
    if degree <= 0 or len(peer_ids) <= degree + 1:
        return {peer: [] for peer in peer_ids}
    sets = neighbour_sets(peer_ids, degree, rng)
    options = {peer: ["--neighbours", ",".join(map(str, sorted(sets[peer])))] for peer in peer_ids}
    if seed is not None:
        among = ["--split-among", ",".join(map(str, sorted(sets[seed])))]
        for peer in sets[seed]:
            options[peer] += among
    return options
