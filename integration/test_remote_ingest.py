"""The remote event source against a real HTTP server (serve's app on uvicorn, a real socket)
fed with a recorded event stream through serve's own observer: the snapshot and the stream
rebuild the server's records in the viewer's index; after the server restarts (a stream the
viewer cannot resume) the viewer reconnects, reports a gap like a broker gap, and catches up
from a fresh snapshot."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the serve extra")
pytest.importorskip("httpx")

from celery import Celery

from conftest import free_port, wait_for
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest_remote import RemoteIngestor
from lazycelery.core.ingest_status import CONNECTED, RECONNECTING, IngestStatus
from lazycelery.serve.app import build_app
from lazycelery.serve.auth import AuthConfig, Guard
from lazycelery.serve.runtime import Observer
from lazycelery.serve.server import HttpServer, listen
from lazycelery.serve.service import Service
from tests.replay import load_events

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


class Served:
    """serve's app for ``index`` on a real socket; ``feed`` plays the ingest thread."""

    def __init__(self, index: TaskIndex, port: int) -> None:
        self.index = index
        self.service = Service(app=Celery("t", broker="memory://", set_as_current=False),
                               index=index, environment="test")
        self.observer = Observer(self.service)
        self.http = HttpServer(build_app(self.service, Guard(AuthConfig({}))),
                               listen("127.0.0.1", port))
        self.http.start()

    def feed(self, events: list[dict[str, Any]]) -> None:
        for start in range(0, len(events), 50):
            chunk = events[start:start + 50]
            self.observer.on_batch(chunk, self.index.apply_batch(chunk))

    def stop(self) -> None:
        self.service.hub.close()
        self.http.stop()


def states(index: TaskIndex) -> dict[str, str]:
    return {r.uuid: r.state for r in index.records()}


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def statuses() -> list[IngestStatus]:
    return []


@pytest.fixture
def viewer(port: int, statuses: list[IngestStatus]) -> Iterator[tuple[RemoteIngestor, TaskIndex]]:
    index = TaskIndex()
    lock = threading.Lock()

    def on_status(status: IngestStatus) -> None:
        with lock:
            statuses.append(status)

    ingestor = RemoteIngestor(f"http://127.0.0.1:{port}", index, on_status=on_status,
                              heartbeat=0.5)
    yield ingestor, index
    ingestor.stop(timeout=5)


def test_snapshot_stream_restart_and_gap(port: int, viewer: tuple[RemoteIngestor, TaskIndex],
                                         statuses: list[IngestStatus]) -> None:
    events = load_events("redis")
    half = len(events) // 2
    server = Served(TaskIndex(), port)
    try:
        server.feed(events[:half])  # before the viewer: it learns them from the snapshot
        ingestor, local = viewer
        ingestor.start()
        wait_for(lambda: states(local) == states(server.index), timeout=60,
                 what="the snapshot in the viewer")
        wait_for(lambda: ingestor.status.state == CONNECTED, what="the stream connected")
        assert ingestor.status.gap is None
        server.feed(events[half:-200])  # live: through the stream
        wait_for(lambda: states(local) == states(server.index), timeout=60,
                 what="the stream's events in the viewer")
    finally:
        server.stop()
    # serve restarts (a new stream: the viewer's Last-Event-ID cannot resume), having seen
    # more events meanwhile; the viewer reconnects, reports the gap and takes a new snapshot
    restarted = Served(server.index, port)
    try:
        restarted.feed(events[-200:])
        wait_for(lambda: ingestor.status.gap is not None, timeout=60,
                 what="the gap reported after the restart")
        assert "restarted" in ingestor.status.gap.reason  # type: ignore[union-attr]
        assert any(s.state == RECONNECTING for s in statuses)
        wait_for(lambda: states(local) == states(restarted.index), timeout=60,
                 what="the viewer caught up from the new snapshot")
    finally:
        ingestor.stop(timeout=5)
        restarted.stop()
