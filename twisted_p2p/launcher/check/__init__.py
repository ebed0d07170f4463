"""``p2p-swarm check``: a conformance kit for other implementations of the protocol.

It runs the implementation's peer (any command with ``{id}``) in small swarms with ours
(:mod:`.scenarios`), passes every byte through a recording relay (:mod:`.relay`),
probes it with misbehaving neighbours (:mod:`.robust`), and judges what it saw
(:mod:`.frames` and :mod:`.observed` read the recordings back; the checks are in
:mod:`.wirechecks`, :mod:`.exchangechecks` and :mod:`.runchecks`) into a scorecard by
rubric item (:mod:`.scorecard`).
"""
from .command import main

__all__ = ["main"]
