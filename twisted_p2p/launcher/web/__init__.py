"""``p2p-swarm run --web``: a live dashboard of the swarm, served by the launcher.

:mod:`.feed` turns the launcher's view of every peer into a JSON snapshot and deltas;
:mod:`.server` serves the page from ``static/`` and pushes the deltas as Server-Sent
Events.
"""
