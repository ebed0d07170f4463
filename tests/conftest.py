"""Fixtures shared by several test modules (pytest finds them here, so no test module
imports a fixture from another)."""
from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher

from twisted_p2p.launcher.check.scenarios import SCENARIOS, Layout, prepare

LEECHER = next(s for s in SCENARIOS if s.name == "leecher")  # ours 1001 seed, theirs 1002, ours 1003


@pytest.fixture
def warnings():
    """Every event logged while the test runs (read them with test_protocol.warning_texts)."""
    observer = EventLoggingObserver()
    globalLogPublisher.addObserver(observer)
    yield observer
    globalLogPublisher.removeObserver(observer)


@pytest.fixture
def layout(tmp_path: Path):
    """Makes a scenario's Layout (the leecher's unless told) under tmp_path, released after the test."""
    made = {}

    def make(scenario=LEECHER) -> Layout:
        made["layout"] = prepare(scenario, tmp_path / scenario.name)
        return made["layout"]
    yield make
    if "layout" in made:
        made["layout"].release()
