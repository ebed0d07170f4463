"""The dashboard's web server: the page, and its updates pushed as Server-Sent Events.

It runs in the launcher's own reactor (``twisted.web``, nothing else). ``/`` is the
page (hand-written HTML, CSS and JavaScript from ``static/``), ``/events`` an event
stream that starts with a snapshot and then carries a delta at most every
``interval`` seconds, and only when something changed; ``/snapshot.json`` is the
snapshot for anything that does not speak SSE.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twisted.internet.task import LoopingCall
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from twisted.web.static import File

from .feed import Feed

STATIC = Path(__file__).with_name("static")
INTERVAL = 0.5  # seconds between deltas: at most two a second


def sse(event: str, data: Any) -> bytes:
    """One Server-Sent Event; JSON has no raw newlines, so one data line."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class EventStream(Resource):
    """``/events``: each GET stays open and gets the snapshot, then every delta."""

    isLeaf = True

    def __init__(self, feed: Feed) -> None:
        super().__init__()
        self.feed = feed
        self.listeners: list[Request] = []

    def render_GET(self, request: Request) -> Any:
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"x-accel-buffering", b"no")
        request.write(b"retry: 2000\n\n" + sse("snapshot", self.feed.snapshot()))
        self.listeners.append(request)
        request.notifyFinish().addBoth(lambda _: self._gone(request))
        return NOT_DONE_YET

    def _gone(self, request: Request) -> None:
        if request in self.listeners:
            self.listeners.remove(request)

    def push(self) -> None:
        """Send the delta, if anything changed, to every open page."""
        delta = self.feed.delta()
        if delta is not None and self.listeners:
            message = sse("delta", delta)
            for request in list(self.listeners):
                request.write(message)

    def close(self) -> None:
        for request in list(self.listeners):
            request.finish()
        self.listeners.clear()


class Snapshot(Resource):
    isLeaf = True

    def __init__(self, feed: Feed) -> None:
        super().__init__()
        self.feed = feed

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-cache")
        return json.dumps(self.feed.snapshot()).encode()


def site(feed: Feed) -> tuple[Site, EventStream]:
    root = File(str(STATIC))
    root.indexNames = ["index.html"]
    stream = EventStream(feed)
    root.putChild(b"events", stream)
    root.putChild(b"snapshot.json", Snapshot(feed))
    return Site(root), stream


class Dashboard:
    """The listening site and the clock that pushes deltas."""

    def __init__(self, reactor: Any, feed: Feed, host: str, port: int, interval: float = INTERVAL) -> None:
        self.feed = feed
        factory, self.stream = site(feed)
        factory.noisy = False
        self.port = reactor.listenTCP(port, factory, interface=host)
        self.pusher = LoopingCall(self.stream.push)
        self.pusher.clock = reactor
        self.pusher.start(interval, now=False)

    @property
    def url(self) -> str:
        address = self.port.getHost()
        host = f"[{address.host}]" if ":" in address.host else address.host
        return f"http://{host}:{address.port}/"

    def finish(self, outcome: str) -> None:
        """The run is over: say so on the page; it stays up until :meth:`stop`."""
        self.feed.finished = outcome
        self.stream.push()

    def stop(self) -> Any | None:
        if self.pusher.running:
            self.pusher.stop()
        self.stream.close()
        return self.port.stopListening()


def parse_address(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` -> (host, port); the host defaults to 127.0.0.1 (this machine only)."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: expected [HOST:]PORT with a port from 0 to 65535")
    return host, int(port)
