"""Running and checking whole swarms: the ``p2p-swarm`` command."""
