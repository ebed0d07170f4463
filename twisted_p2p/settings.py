"""PeerSettings: every tunable of one peer process, each default written once.

The command line of ``twistd p2ppeer`` (:mod:`twisted_p2p.tap`) is built from these
fields: a field with a help text is an option of the same name (``upload_rate`` is
``--upload-rate``), its default and ``--help``'s ``[default: ...]`` come from here. The
others have no option; they are here so that a timing of the peer has one home.

What a peer is (its ID), where its files are (``--config-dir``, ``--work-dir``) and
whom it trusts (``--secret-file``, ``--allow-hosts``, ``--tls-cert``) are not tunables:
tap loads them and hands the results to the peer.

This module is imported for ``twistd --help``: it imports nothing heavy.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from twisted_p2p.requests import RequestTimeouts


def _option(default: Any, kind: Callable[[str], Any], help: str, shown: str | None = None) -> Any:
    """A field that is also a command-line option: ``kind`` reads its text (bool: a
    flag); ``shown`` is the default as --help tells it, when the value would not say it."""
    return field(default=default, metadata={"kind": kind, "help": help, "shown": shown})


def _peer_ids(option: str) -> Callable[[str], frozenset[int]]:
    """A reader of an option's peer IDs, ``1002,1007,1011``; its ValueError names the option."""
    def parse(text: str) -> frozenset[int]:
        words = [word.strip() for word in text.split(",")]
        if not all(word.isdigit() for word in words):
            raise ValueError(f"{option} takes peer IDs separated by commas (1002,1007,1011), not {text!r}")
        return frozenset(int(word) for word in words)

    return parse


parse_neighbours = _peer_ids("--neighbours")


def _fixed(default: Any, about: str) -> Any:
    """A field with no option: a timing of the peer, given its one home here."""
    return field(default=default, metadata={"about": about})


@dataclass(frozen=True)
class PeerSettings:
    interface: str = _option("", str, "address to listen on", shown="all IPv4 addresses")
    handshake_timeout: float = _option(30.0, float, "seconds a new connection may take to send its handshake")
    request_timeout: float = _option(
        5.0, float, "seconds a neighbour may take to answer its first request; after that, 4 times its average "
        "answer time, from 1 s up to 30 s (or this, if longer)")
    random_seed: int | None = _option(None, int, "seed for the peer's random choices, to make a run reproducible")
    upload_rate: int = _option(0, int, "cap on this peer's total upload, in bytes per second (0: no cap)")
    pipeline: int = _option(
        0, int, "announce our pipelining extension and keep up to N requests outstanding to a neighbour that "
        "announces it too (the depth in use follows the round trip, from 16 or N if less, up to N); others get "
        "the plain protocol, but a strict peer may drop a handshake whose reserved bytes are not zero, so use it only "
        "among our own peers (0: off)")
    echo_events: bool = _option(
        False, bool, "also write every event-log line to standard output, and the file's SHA-256 when done "
        "(for a launcher that follows a peer on another host)")
    exit_on_stdin_close: bool = _option(
        False, bool, "stop cleanly (state saved, exit 0) when standard input closes: a lifeline for a launcher "
        "that runs the peer over ssh, so the peer never outlives it")
    refill_slots: bool = _option(
        False, bool, "our extension: give a preferred or optimistic slot freed between rounds to a waiting "
        "neighbour at once (the course's protocol, the default, chooses only every p and m seconds)")
    split_seed: bool = _option(
        False, bool, "our extension: ask a peer that holds the whole file only for our share of the pieces "
        "(every n-th, n the peers without the file) until we hold it, and the rest from the others, so that a "
        "seed sends each piece about once (p2p-swarm push uses it)")
    neighbours: frozenset[int] | None = _option(
        None, parse_neighbours, "our extension: connect only with these peers (IDs of PeerInfo.cfg, separated by "
        "commas), refuse any other, and leave once they all have the file; every peer's set must name it back "
        "and the sets must join every peer to a seed. Only where every peer is ours (p2p-swarm push)",
        shown="every other peer of PeerInfo.cfg, the course's full mesh")
    echo_summary: float = _option(
        0.0, float, "our extension: echo, instead of the event-log lines, one progress line every SECONDS "
        "(pieces held, neighbours connected and complete) and the completion line, and the file's SHA-256 "
        "when done; the event log still gets every line (0: off)")
    split_among: frozenset[int] | None = _option(
        None, _peer_ids("--split-among"), "with --split-seed: the peers (IDs separated by commas) that split a "
        "seed's pieces among them; a seed's neighbours, when not every peer neighbours it (--neighbours)",
        shown="every peer of PeerInfo.cfg without the file")
    new_swarm: bool = _option(
        False, bool, "resume only our own pieces from the journal, nothing it learned of other peers (a "
        "launcher's new swarm, whose IDs may name other hosts than the last one's)")
    request_timeout_bounds: tuple[float, float] = _fixed(
        (1.0, 30.0), "after its first answer a neighbour may take answer_time_factor times its average answer "
        "time to answer a request, never less than the first bound nor more than the second (seconds; a longer "
        "request_timeout raises the second)")
    answer_time_factor: float = _fixed(4.0, "see request_timeout_bounds")
    answer_time_smoothing: float = _fixed(0.25, "the weight of each new answer time in a neighbour's average")
    connect_timeout: float = _fixed(5.0, "seconds a dial of an earlier peer may take to connect")
    retry_delays: tuple[float, float] = _fixed(
        (0.025, 2.0), "an earlier peer not up yet is dialled again after the first delay, growing up to the second "
        "(seconds)")
    close_timeout: float = _fixed(5.0, "seconds a connection we close may take to close before it is aborted")
    drop_grace: float = _fixed(2.0, "seconds a dropped connection may take to close before it is aborted")
    stale_after: float = _fixed(
        5.0, "a second connection from a connected ID replaces the first when the first has been silent this many "
        "seconds (its host may have crashed and come back)")
    save_interval: float = _fixed(2.0, "seconds between saves of the resume state")

    def request_timeouts(self) -> RequestTimeouts:
        """The request timeouts that start at ``request_timeout`` (a longer start
        raises the ceiling with it)."""
        from twisted_p2p.requests import RequestTimeouts

        minimum, maximum = self.request_timeout_bounds
        return RequestTimeouts(initial=self.request_timeout, minimum=minimum,
                               maximum=max(maximum, self.request_timeout), factor=self.answer_time_factor,
                               smoothing=self.answer_time_smoothing)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> PeerSettings:
        """The settings given on a command line parsed with :func:`option_table`."""
        given: dict[str, Any] = {}
        for each in option_fields():
            value = options[option_name(each.name)]
            if value is not None:
                given[each.name] = bool(value) if each.metadata["kind"] is bool else value
        return cls(**given)


def option_fields() -> list[Any]:
    """The fields of PeerSettings that are command-line options."""
    return [each for each in fields(PeerSettings) if "help" in each.metadata]


def option_name(field_name: str) -> str:
    return field_name.replace("_", "-")


def option_table() -> tuple[list[list[Any]], list[list[Any]]]:
    """``optParameters`` and ``optFlags`` for twisted.python.usage.Options."""
    parameters: list[list[Any]] = []
    flags: list[list[Any]] = []
    for each in option_fields():
        kind, text, shown = each.metadata["kind"], each.metadata["help"], each.metadata["shown"]
        if kind is bool:
            flags.append([option_name(each.name), None, text])
        elif shown is not None:  # usage.Options would print the raw value: say it in words
            parameters.append([option_name(each.name), None, None, f"{text} [default: {shown}]", kind])
        else:
            parameters.append([option_name(each.name), None, each.default, text, kind])
    return parameters, flags
