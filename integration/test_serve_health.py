"""`lazycelery serve`'s /healthcheck is honest over real brokers: an event published the moment
/healthcheck first answers OK is seen, on the fast path and on kombu's (Redis: PSUBSCRIBE
confirmed first; RabbitMQ: the event queue bound and consumed first), and a broker that cannot
be reached keeps it at a 503 JSON "starting" (no worker needed: the event is published with
celery's own EventDispatcher)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from test_serve_helpers import Server, servers  # noqa: F401

from conftest import free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
pytest.importorskip("starlette", reason="the serve extra")


@contextmanager
def dispatcher(broker: str) -> Iterator[Any]:
    """An open event dispatcher: ready before serve is, so the event goes out at once."""
    from celery import Celery

    app = Celery("probe", broker=broker, set_as_current=False)
    conn = app.connection_for_write()
    conn.ensure_connection(max_retries=3)
    sender = app.events.Dispatcher(conn, hostname="probe@health", enabled=True)
    try:
        yield sender
    finally:
        sender.close()
        conn.release()
        app.close()


def _first_ok(url: str) -> list[int]:
    """Poll /healthcheck as fast as it answers until the first 200; the statuses seen."""
    seen: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{url}/healthcheck", timeout=2)
        except httpx.HTTPError:
            continue
        seen.append(response.status_code)
        if response.status_code == 200:
            assert response.text == "OK"
            return seen
        assert response.status_code == 503 and "starting" in response.json()["error"]
    raise AssertionError(f"no OK from /healthcheck: {seen[-5:]}")


def _published_right_after_ok_is_seen(serve: Server, broker: str) -> None:
    task_id = str(uuid.uuid4())
    with dispatcher(broker) as sender:
        seen = _first_ok(serve.url)
        sender.send("task-received", uuid=task_id, name="probe.health", args="()",
                    kwargs="{}", retries=0, eta=None, root_id=task_id, parent_id=None)
    found = wait_for(lambda: httpx.get(f"{serve.url}/api/task/info/{task_id}").status_code
                     == 200, timeout=60, what="the event published right after OK")
    assert found, (seen, serve.output()[-2000:])
    info = httpx.get(f"{serve.url}/api/task/info/{task_id}").json()
    assert info["name"] == "probe.health" and info["state"] == "RECEIVED"


@pytest.mark.parametrize("round_", range(3))
@pytest.mark.parametrize("ingest", ["fast", "kombu"])
def test_redis_event_right_after_ok_is_seen(redis_url: str, round_: int, ingest: str,
                                            servers: Callable[..., Server]  # noqa: F811
                                            ) -> None:
    """Both paths: kombu's Redis channel sends its PSUBSCRIBE at its first drain and never
    says when Redis took it, so that path waits to see it in ``CLIENT LIST``."""
    serve = servers("serve", redis_url, "lc-health", wait=False, args=("--ingest", ingest))
    _published_right_after_ok_is_seen(serve, redis_url)


@pytest.mark.parametrize("ingest", ["fast", "kombu"])
def test_amqp_event_right_after_ok_is_seen(amqp_url: str, ingest: str,
                                           servers: Callable[..., Server]  # noqa: F811
                                           ) -> None:
    serve = servers("serve", amqp_url, "lc-health", wait=False, args=("--ingest", ingest))
    _published_right_after_ok_is_seen(serve, amqp_url)


@pytest.mark.parametrize("ingest", ["fast", "kombu"])
@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_event_sent_as_connected_is_reported_is_seen(request: pytest.FixtureRequest,
                                                     broker: str, ingest: str) -> None:
    """The strictest form: the event goes out from the ingest thread itself, in the status
    callback that reports it connected (what /healthcheck reads), before the ingest reads a
    byte. Seen only when "connected" comes after the broker took the subscription."""
    from lazycelery.core.index import TaskIndex
    from lazycelery.core.ingest import CONNECTED, Ingestor, IngestStatus

    url = request.getfixturevalue(f"{broker}_url")
    task_id = str(uuid.uuid4())
    index = TaskIndex()
    sent: list[float] = []
    with dispatcher(url) as sender:
        def on_status(status: IngestStatus) -> None:
            if status.state == CONNECTED and not sent:
                sender.send("task-received", uuid=task_id, name="probe.health", args="()",
                            kwargs="{}", retries=0, eta=None, root_id=task_id, parent_id=None)
                sent.append(time.time())

        ingestor = Ingestor(url, index, mode=ingest, on_status=on_status, wakeup=False)
        ingestor.start()
        try:
            wait_for(lambda: bool(sent), timeout=30, what="the ingest to report connected")
            found = wait_for(lambda: index.get(task_id) is not None, timeout=10,
                             what=f"the event sent as {ingestor.path} reported connected")
            assert found
        finally:
            ingestor.stop()


def test_unreachable_broker_is_503_starting(servers: Callable[..., Server]  # noqa: F811
                                            ) -> None:
    serve = servers("serve", f"redis://127.0.0.1:{free_port()}/0", "lc-health", wait=False)

    def answer() -> httpx.Response | None:
        try:
            return httpx.get(f"{serve.url}/healthcheck", timeout=2)
        except httpx.HTTPError:
            return None

    first = wait_for(answer, timeout=60, interval=0.1, what="serve to answer at all")
    assert first.status_code == 503 and first.headers["retry-after"] == "1"
    assert first.json()["error"].startswith("starting: the event stream is not subscribed yet")
    # still not ready once the ingest is retrying (the second attempt is 1 s later)
    retrying = wait_for(lambda: "reconnecting" in httpx.get(
        f"{serve.url}/healthcheck", timeout=10).text, timeout=60, what="reconnecting")
    assert retrying
    assert httpx.get(f"{serve.url}/healthcheck", timeout=10).status_code == 503
    assert httpx.get(f"{serve.url}/api/workers", timeout=5).status_code == 200  # serving
