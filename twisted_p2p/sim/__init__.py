"""A deterministic simulator of whole swarms that runs the real peer code.

Every peer is a real :class:`~twisted_p2p.node.PeerNode` on its own simulated host;
the hosts share one :class:`~twisted_p2p.sim.clock.SimClock` and talk through the
in-memory links of :mod:`twisted_p2p.sim.net`. :func:`twisted_p2p.sim.swarm.simulate`
runs a whole swarm and measures it.
"""
