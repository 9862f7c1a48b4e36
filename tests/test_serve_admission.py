"""Admission control in process: GETs beyond ``max_inflight`` in flight, or while the ingest
is behind, are answered 503 JSON with Retry-After at once and counted in /metrics; the stream,
/metrics and /healthcheck are never shed; actions (POST) are counted but never shed; the
ingest's backlog signal reads the socket reads it is told of."""

from __future__ import annotations

import asyncio
import time
import warnings
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the serve extra")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from lazycelery.core.backlog import Backlog
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest_status import CONNECTED, IngestStatus
from lazycelery.serve.admission import (
    BEHIND_AFTER,
    BEHIND_INFLIGHT,
    Admission,
    AdmissionMiddleware,
)
from lazycelery.serve.app import build_app
from lazycelery.serve.auth import AuthConfig, Guard
from tests.test_serve_v1 import make_service


def _client(admission: Admission) -> TestClient:
    service = make_service(TaskIndex(), admission=admission)
    connected = IngestStatus(state=CONNECTED, path="fast")  # /healthcheck answers OK
    service.ingest_status, service.subscribed_once = lambda: connected, True
    return TestClient(build_app(service, Guard(AuthConfig({}))), raise_server_exceptions=False)


def _shed_total(text: str, reason: str) -> float:
    for line in text.splitlines():
        if line.startswith(f'lazycelery_http_shed_total{{reason="{reason}"}}'):
            return float(line.split()[-1])
    raise AssertionError(f"no shed counter for {reason}")


def test_ingest_behind_sheds_gets_with_json_503_and_counts_them() -> None:
    behind = [0.0]
    admission = Admission(8, behind=lambda: behind[0])
    with _client(admission) as c:
        assert c.get("/api/v1/tasks").status_code == 200
        behind[0] = BEHIND_AFTER + 0.1
        admission.inflight += BEHIND_INFLIGHT  # as if that many were in flight already
        got = c.get("/api/v1/tasks?limit=100")
        assert got.status_code == 503
        assert got.headers["retry-after"] == "1"
        assert got.headers["content-type"] == "application/json"
        body = got.json()
        assert body["reason"] == "ingest_behind" and "ingest" in body["error"]
        assert "Traceback" not in got.text
        assert c.get("/api/workers").status_code == 503  # Flower's paths too
        # what watches the server is never shed, and it shows the count
        assert c.get("/healthcheck").status_code == 200
        metrics = c.get("/metrics")
        assert metrics.status_code == 200
        assert _shed_total(metrics.text, "ingest_behind") == 2
        assert _shed_total(metrics.text, "busy") == 0
        # an action is never shed (here refused for what it is: an unknown task, not busy)
        assert c.post("/api/task/revoke/nope").status_code != 503
        admission.inflight -= BEHIND_INFLIGHT  # fewer in flight: answered, even while behind
        assert c.get("/api/v1/tasks").status_code == 200
        behind[0] = 0.0
        assert c.get("/api/v1/tasks").status_code == 200
    assert admission.inflight == 0


def test_requests_beyond_max_inflight_are_shed_at_once() -> None:
    """Two requests held in the app: the third is answered 503 without reaching it."""
    admission = Admission(2)
    release = asyncio.Event()
    reached: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        reached.append(scope["path"])
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    guarded = AdmissionMiddleware(app, admission)
    sent: list[list[dict[str, Any]]] = []

    async def call(path: str, method: str = "GET") -> None:
        out: list[dict[str, Any]] = []
        sent.append(out)

        async def send(message: dict[str, Any]) -> None:
            out.append(message)

        await guarded({"type": "http", "path": path, "method": method}, None, send)

    async def main() -> None:
        held = [asyncio.create_task(call("/api/v1/tasks")) for _ in range(2)]
        await asyncio.sleep(0)
        assert admission.inflight == 2
        await call("/api/v1/tasks")  # answered at once: it never waits for the held two
        assert sent[-1][0]["status"] == 503
        assert (b"retry-after", b"1") in sent[-1][0]["headers"]
        stream = asyncio.create_task(call("/api/v1/stream"))  # never shed, never counted
        post = asyncio.create_task(call("/api/task/revoke/x", "POST"))  # counted, not shed
        await asyncio.sleep(0)
        assert admission.inflight == 3
        release.set()
        await asyncio.gather(*held, stream, post)

    asyncio.run(main())
    assert admission.shed == {"busy": 1, "ingest_behind": 0}
    assert reached.count("/api/v1/tasks") == 2 and admission.inflight == 0
    assert [m[0]["status"] for m in sent] == [200, 200, 503, 200, 200]


def test_max_inflight_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_inflight"):
        Admission(0)


def test_backlog_full_reads_mean_behind() -> None:
    backlog = Backlog()
    assert backlog.behind() == 0.0  # no session: not behind
    backlog.idle()
    time.sleep(BEHIND_AFTER + 0.05)
    assert backlog.behind() == 0.0  # blocked on a quiet socket: idle, never behind
    backlog.read(1000, 1 << 18)  # a small read: caught up
    assert backlog.behind() == 0.0
    backlog.read(1 << 18, 1 << 18)  # a full read: data was waiting
    time.sleep(BEHIND_AFTER + 0.05)
    backlog.read(200_000, 1 << 18)  # still mostly full: behind since the first
    assert backlog.behind() >= BEHIND_AFTER
    backlog.read(10, 1 << 18)
    assert backlog.behind() == 0.0
    backlog.read(1 << 18, 1 << 18)
    backlog.stopped()
    assert backlog.behind() == 0.0


def test_hub_joined_frames_are_the_frames_read_item_by_item() -> None:
    """``read_frames`` (a client taking every item; the join shared by clients in step) gives
    the bytes, loss and position ``read`` gives, from every position, cached or not."""
    from lazycelery.serve.v1.hub import StreamHub

    hub = StreamHub(size=8)
    hub.keep()
    index = TaskIndex()
    evs = [{"type": "task-received", "uuid": f"u{n}", "name": "t", "timestamp": 1.0 + n}
           for n in range(20)]
    hub.publish(evs, index.apply_batch(evs), index.lock)
    for limit in (3, 100):
        for position in (0, 11, 12, 15, 20):
            losses = hub.client_losses
            got = hub.read(position, limit)
            expected = b"".join(item.frame(hub.epoch) for item in got.items)
            for _ in range(2):  # the second from the cache, counting the loss again
                assert hub.read_frames(position, limit) == (expected, len(got.items), got.lost,
                                                            got.position)
            assert hub.client_losses == losses + 3 * got.lost
