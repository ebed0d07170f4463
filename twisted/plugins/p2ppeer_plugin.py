"""The ``p2ppeer`` twistd plugin; the real code lives in :mod:`twisted_p2p.tap`."""
from twisted.application.service import ServiceMaker

p2ppeer = ServiceMaker(
    "P2P file-sharing peer",
    "twisted_p2p.tap",
    "A P2PFILESHARINGPROJ peer: shares one file with the swarm of PeerInfo.cfg",
    "p2ppeer",
)
