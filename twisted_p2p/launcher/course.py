"""The course's own words: the only ground for calling another implementation wrong.

SPEC.md keeps three kinds of rule apart: what the course text requires (here), what we
choose to send where it is silent, and what we accept from others. The audit and the
conformance kit quote a sentence of this table in every *required* check; a check with
no sentence here is advice, and never makes the exit status fail (SPEC §6).

Quotes are from the course's project description, cut only where "..." says so, with
straight apostrophes.
"""
from __future__ import annotations

#: Sentence keys, each quoted by the checks that rest on it.
QUOTES: dict[str, str] = {
    "handshake-before-messages": (
        "Whenever a connection is established between two peers, each of the peers of the "
        "connection sends to the other one the handshake message before sending other messages."
    ),
    "handshake-dialler": (
        "Suppose that peer A tries to make a TCP connection to peer B. ... After the TCP connection "
        "is established, peer A sends a handshake message to peer B."
    ),
    "handshake-format": (
        "The handshake header is 18-byte string 'P2PFILESHARINGPROJ', which is followed by "
        "10-byte zero bits, which is followed by 4-byte peer ID which is the integer "
        "representation of the peer ID."
    ),
    "message-format": (
        "An actual message consists of 4-byte message length field, 1-byte message type field, "
        "and a message payload with variable size. The 4-byte message length specifies the "
        "message length in bytes. It does not include the length of the message length field itself."
    ),
    "bitfield": (
        "'bitfield' messages is only sent as the first message right after handshaking ... The "
        "first byte of the bitfield corresponds to piece indices 0 - 7 from high bit to low bit ... "
        "Spare bits at the end are set to zero. Peers which don't have anything yet may skip a "
        "'bitfield' message."
    ),
    "interest": (
        "Whenever a peer receives a 'bitfield' or 'have' message from a neighbor, it determines "
        "whether it should send an 'interested' message to the neighbor. ... If a neighbor does "
        "not have any interesting pieces, then the peer sends a 'not interested' message to the neighbor."
    ),
    "preferred": (
        "Each peer determines preferred neighbors every p seconds. ... At a moment, each peer "
        "uploads its pieces to at most k preferred neighbors and 1 optimistically unchoked neighbor."
    ),
    "optimistic": (
        "Each peer determines an optimistically unchoked neighbor every m seconds. ... Every m "
        "seconds, peer A reselects an optimistically unchoked neighbor randomly among neighbors "
        "that are choked at that moment but are interested in its data."
    ),
    "request": (
        "Peer A selects a piece randomly among the pieces that peer B has, and peer A does not "
        "have, and peer A has not requested yet."
    ),
    "request-when-unchoked": (
        "When a connection is unchoked by a neighbor, a peer sends a 'request' message for "
        "requesting a piece that it does not have and has not requested from other neighbors."
    ),
    "request-until-choked": (
        "When a connection is unchoked by a neighbor, a peer sends a 'request' message ... The "
        "exchange of request/piece messages continues until peer A is choked by peer B or peer B "
        "does not have any more interesting pieces."
    ),
    "one-request": (
        "The next 'request' message should be sent after the peer receives the piece message "
        "for the previous 'request' message."
    ),
    "interest-kept": (
        "Whenever a peer receives a 'bitfield' or 'have' message from a neighbor, it determines "
        "whether it should send an 'interested' message to the neighbor. ... If a neighbor does not "
        "have any interesting pieces, then the peer sends a 'not interested' message to the neighbor. "
        "Whenever a peer receives a piece completely, it checks the bitfields of its neighbors and "
        "decides whether it should send 'not interested' messages to some neighbors."
    ),
    "have": (
        "Each peer maintains bitfields for all neighbors and updates them whenever it receives "
        "'have' messages from its neighbors."
    ),
    "serve": (
        "Each peer uploads its pieces only to preferred neighbors and an optimistically unchoked "
        "neighbor. ... On receiving peer A's 'request' message, peer B sends a 'piece' message "
        "that contains the actual piece."
    ),
    "listens": (
        "Whenever a peer starts, it should read the file Common.cfg and set up the corresponding "
        "variables. ... The third column is the port number at which the peer listens."
    ),
    "start-order": (
        "You need to start the peer processes in the order specified in the file PeerInfo.cfg ... "
        "The peer that has just started should make TCP connections to all peers that started before it."
    ),
    "layout": (
        "All the executables and configuration files needed for running the peer processes should "
        "be in this directory. ... each peer should use the corresponding subdirectory "
        "'peer_[peerID]' to contain the complete files or partial files."
    ),
    "terminate": (
        "A peer terminates when it finds out that all the peers, not just itself, have downloaded "
        "the complete file."
    ),
    "no-runaway": (
        "Please make sure that there are no run-away processes ... Your peer processes must "
        "terminate after all peers have downloaded the file."
    ),
    "log": (
        "Each peer should write its log into the log file 'log_peer_[peerID].log' at the working "
        "directory. ... Each peer process should generate logs for a peer as follows."
    ),
    "log-writer": (
        "[peer_ID 1] is the ID of peer who generates the log, [peer_ID 2] is the peer connected from [peer_ID 1]."
    ),
    "peers": (
        "Each line in file PeerInfo.cfg represents a peer. ... When all processes have started, all "
        "peers are connected with all other peers."
    ),
    "pieces": (
        "FileSize specifies the size of the file in bytes. PieceSize specifies the size of a piece in "
        "bytes. In the above example, the file size is 10,000,232 bytes and the piece size is 32,768 "
        "bytes. Then the number of pieces of this file is 306."
    ),
    "log-time": (
        "The [Time] field represents the current time, which contains the date, hour, minute, "
        "and second. The format of [Time] is up to you."
    ),
    "log-connections": (
        "Whenever a peer makes a TCP connection to other peer, it generates the following log: "
        "[Time]: Peer [peer_ID 1] makes a connection to Peer [peer_ID 2]. ... Whenever a peer is "
        "connected from another peer, it generates the following log: [Time]: Peer [peer_ID 1] "
        "is connected from Peer [peer_ID 2]."
    ),
    "log-downloads": (
        "Whenever a peer finishes downloading a piece, it generates the following log: ... "
        "[number of pieces] represents the number of pieces the peer currently has. ... Whenever "
        "a peer downloads the complete file, it generates the following log."
    ),
}


def quote(key: str) -> str:
    """The course sentence ``key``, in double quotes, for a check's description."""
    return f'"{QUOTES[key]}"'
