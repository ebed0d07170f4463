"""A peer not given --tls-cert runs as on an install without pyOpenSSL."""
from __future__ import annotations

import sys

import pytest

from twisted_p2p import process


def test_a_fresh_process_stops_pyopenssl_from_importing():
    modules: dict[str, object] = {"twisted.internet.defer": object()}
    assert process.without_pyopenssl(modules) is True
    assert modules["OpenSSL"] is None


@pytest.mark.parametrize("loaded", ["OpenSSL", "twisted.internet.tcp", "twisted.internet.reactor"])
def test_a_process_that_imported_it_or_the_reactor_is_left_alone(loaded):
    before = object()
    modules = {loaded: before}
    assert process.without_pyopenssl(modules) is False
    assert modules == {loaded: before}


def test_parsing_the_options_here_leaves_this_process_alone():
    """The tests' reactor is imported: Options must not take pyOpenSSL from under it."""
    from twisted_p2p.tap import Options

    had = sys.modules.get("OpenSSL", "absent")
    Options().parseOptions(["--id", "1001"])
    assert sys.modules.get("OpenSSL", "absent") is had
