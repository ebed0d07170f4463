"""PeerSettings and the command line built from it."""
from __future__ import annotations

import dataclasses

import pytest

from twisted_p2p.requests import RequestTimeouts
from twisted_p2p.settings import PeerSettings, option_fields
from twisted_p2p.tap import Options


def parsed(*argv: str) -> Options:
    options = Options()
    options.parseOptions(["--id", "1001", *argv])
    return options


def test_a_bare_command_line_gives_the_defaults():
    assert parsed().settings == PeerSettings()


def test_every_option_reaches_its_setting():
    options = parsed("--interface", "10.0.0.5", "--handshake-timeout", "12.5", "--request-timeout", "7",
                     "--random-seed", "42", "--upload-rate", "1000", "--pipeline", "8", "--echo-events",
                     "--exit-on-stdin-close", "--refill-slots", "--split-seed", "--new-swarm",
                     "--neighbours", "1002, 1007", "--echo-summary", "2.5", "--split-among", "1002")
    assert options.settings == PeerSettings(
        interface="10.0.0.5", handshake_timeout=12.5, request_timeout=7.0, random_seed=42, upload_rate=1000,
        pipeline=8, echo_events=True, exit_on_stdin_close=True, refill_slots=True, split_seed=True,
        new_swarm=True, neighbours=frozenset({1002, 1007}), echo_summary=2.5,
        split_among=frozenset({1002}))
    assert {field.name for field in option_fields()} == {
        "interface", "handshake_timeout", "request_timeout", "random_seed", "upload_rate", "pipeline",
        "echo_events", "exit_on_stdin_close", "refill_slots", "split_seed", "new_swarm", "neighbours",
        "echo_summary", "split_among"}


def test_help_shows_the_defaults_of_the_settings():
    text = " ".join(str(Options()).split())  # --help's text, its lines joined
    defaults = PeerSettings()
    assert f"handshake [default: {defaults.handshake_timeout}]" in text
    assert f"(or this, if longer) [default: {defaults.request_timeout}]" in text
    assert f"(0: no cap) [default: {defaults.upload_rate}]" in text
    assert "address to listen on [default: all IPv4 addresses]" in text


@pytest.mark.parametrize("argv, message", [
    (["--pipeline", "-1"], "--pipeline must be 0 (off) up to"),
    (["--upload-rate", "-5"], "--upload-rate must be 0"),
    (["--request-timeout", "0"], "--request-timeout must be a positive number of seconds"),
    (["--neighbours", "1002,x"], "Parameter type enforcement failed: --neighbours takes peer IDs separated by commas"),
    (["--echo-summary", "-1"], "--echo-summary must be 0 (off) or a positive number of seconds"),
    (["--split-among", "a"], "Parameter type enforcement failed: --split-among takes peer IDs"),
    (["--neighbours", ""], "Parameter type enforcement failed: --neighbours takes peer IDs"),
])
def test_values_out_of_range_are_refused(argv, message):
    with pytest.raises(SystemExit, match="p2ppeer: " + message.replace("(", r"\(").replace(")", r"\)")):
        parsed(*argv)


def test_a_longer_first_request_timeout_raises_the_ceiling_with_it():
    default = RequestTimeouts(initial=5.0, minimum=1.0, maximum=30.0, factor=4.0, smoothing=0.25)
    assert PeerSettings().request_timeouts() == default
    assert PeerSettings(request_timeout=60.0).request_timeouts() == dataclasses.replace(
        default, initial=60.0, maximum=60.0)


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PeerSettings().upload_rate = 5  # type: ignore[misc]
