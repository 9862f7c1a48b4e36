"""/api/v1 over real HTTP against a real `lazycelery serve`, a real celery worker and Redis:
the filter language, task detail, the live stream (a real task's events in order), a slow
client's loss counted and told while a fast one and the ingest lose nothing, roles, JSON 400s,
and `lazycelery tail --server` printing the events serve saw."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_serve_helpers import INTEGRATION, Server, bearer, servers, tokens_config, worker_env  # noqa: F401

from conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
pytest.importorskip("starlette", reason="the serve extra")

from lazycelery.core.ingest_remote import SseFrame, parse_frames  # noqa: E402

VIEWER_TOKEN = "viewer-token-v1-0123456789"
OPERATOR_TOKEN = "operator-token-v1-0123456789"
CONFIG = tokens_config(VIEWER_TOKEN, OPERATOR_TOKEN, viewer_name="viewer")
VIEW = bearer(VIEWER_TOKEN)
OP = bearer(OPERATOR_TOKEN)


class StreamReader:
    """An SSE client in a thread, keeping every frame it reads."""

    def __init__(self, url: str, params: dict[str, Any]) -> None:
        self.frames: list[SseFrame] = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(url, params), daemon=True)
        self.thread.start()

    def _run(self, url: str, params: dict[str, Any]) -> None:
        with httpx.Client(timeout=httpx.Timeout(10.0, read=30.0)) as client, \
                client.stream("GET", f"{url}/api/v1/stream", params=params,
                              headers=VIEW) as response:
            assert response.status_code == 200
            rest = b""
            for chunk in response.iter_raw():
                frames, rest = parse_frames(rest + chunk)
                with self.lock:
                    self.frames.extend(frames)
                if any(f.event == "hello" for f in frames):
                    self.connected.set()
                if self.stop.is_set():
                    return

    def events_of(self, uuid: str) -> list[str]:
        with self.lock:
            frames = list(self.frames)
        out = []
        for frame in frames:
            if frame.event == "task":
                event = json.loads(frame.data)["event"]
                if event.get("uuid") == uuid:
                    out.append(event["type"])
        return out

    def of_kind(self, kind: str) -> list[SseFrame]:
        with self.lock:
            return [f for f in self.frames if f.event == kind]


def send_add(url: str, x: int, y: int) -> str:
    sent = httpx.post(f"{url}/api/task/async-apply/workerapp.add", json={"args": [x, y]},
                      headers=OP, timeout=10)
    assert sent.status_code == 200, sent.text
    task_id: str = sent.json()["task-id"]
    return task_id


def test_v1_reads_stream_tail_and_roles(redis_url: str,
                                        celery_worker_factory: Callable[..., Any],
                                        servers: Callable[..., Server],  # noqa: F811
                                        tmp_path: Path) -> None:
    worker = celery_worker_factory(redis_url, backend=redis_url)
    serve = servers("serve", redis_url, worker.queue, backend=redis_url, config_text=CONFIG)
    url = serve.url
    wait_for(lambda: any(w["hostname"] == worker.hostname and w["status"] == "online"
                         for w in httpx.get(f"{url}/api/v1/workers", headers=VIEW)
                         .json()["workers"]), what="the worker in /api/v1/workers")

    stream = StreamReader(url, {"q": "name:workerapp.add", "heartbeat": 1})
    assert stream.connected.wait(20)
    env = worker_env(redis_url, worker.queue, redis_url, tmp_path / "config-0.toml")
    env["LAZYCELERY_TOKEN"] = VIEWER_TOKEN
    tail = subprocess.Popen([sys.executable, "-m", "lazycelery", "tail", "--server", url,
                             "--json", "--name", "workerapp.add", "--limit", "4"],
                            cwd=str(INTEGRATION), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        # tail has connected once serve counts a second stream client
        wait_for(lambda: b"lazycelery_stream_clients 2" in _metrics(url) or tail.poll(),
                 timeout=60, what="tail --server to connect")
        task_id = send_add(url, 2, 3)
        wait_for(lambda: "task-succeeded" in stream.events_of(task_id), timeout=60,
                 what="task-succeeded on the stream")
        out, err = tail.communicate(timeout=30)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
    seen = stream.events_of(task_id)
    # in the order serve applied them: the client's task-sent may reach Redis after the
    # worker's task-received (two publishers); the worker's own events are in order
    assert sorted(seen) == ["task-received", "task-sent", "task-started", "task-succeeded"]
    worker_order = [t for t in seen if t != "task-sent"]
    assert worker_order == ["task-received", "task-started", "task-succeeded"]
    lines = [json.loads(line) for line in out.decode().splitlines()]
    assert tail.returncode == 0, err.decode()
    assert [line["type"] for line in lines if line.get("uuid") == task_id] == seen
    assert VIEWER_TOKEN not in out.decode() + err.decode()

    # the filter language, memory first, and the detail with its history
    other = send_add(url, 1, 1)
    wait_for(lambda: "task-succeeded" in stream.events_of(other), what="the second task")
    page = httpx.get(f"{url}/api/v1/tasks", params={"q": "name:workerapp.add state:success",
                                                     "limit": 1}, headers=VIEW).json()
    assert page["count"] == 1 and page["next"] is not None
    rest = httpx.get(f"{url}/api/v1/tasks", params={"q": "name:workerapp.add", "limit": 1,
                                                     "cursor": page["next"]},
                     headers=VIEW).json()
    assert {page["tasks"][0]["uuid"], rest["tasks"][0]["uuid"]} == {task_id, other}
    assert not httpx.get(f"{url}/api/v1/tasks", params={"q": "state:failure"},
                         headers=VIEW).json()["tasks"]
    detail = httpx.get(f"{url}/api/v1/tasks/{task_id}", headers=VIEW).json()
    assert detail["task"]["state"] == "SUCCESS" and detail["task"]["result"] == "5"
    assert [h["state"] for h in detail["history"]] == ["PENDING", "RECEIVED", "STARTED",
                                                       "SUCCESS"]
    stream.stop.set()

    # errors: JSON, naming the parameter; roles
    bad = httpx.get(f"{url}/api/v1/tasks", params={"q": "runtime>"}, headers=VIEW)
    assert bad.status_code == 400 and bad.json()["parameter"] == "q"
    assert httpx.get(f"{url}/api/v1/tasks/nope", headers=VIEW).status_code == 404
    assert httpx.get(f"{url}/api/v1/tasks").status_code == 401
    assert httpx.get(f"{url}/api/v1/stream").status_code == 401
    assert httpx.get(f"{url}/api/v1/audit", headers=VIEW).status_code == 403
    audit = httpx.get(f"{url}/api/v1/audit", headers=OP).json()["entries"]
    assert any("ops" in e["user"] for e in audit)


def _metrics(url: str) -> bytes:
    return httpx.get(f"{url}/metrics", headers=VIEW, timeout=5).content


def _slow_stream(url: str) -> socket.socket:
    """A stream client that reads nothing: a tiny receive buffer, the request sent, only the
    response's first bytes read."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(f"GET /api/v1/stream?heartbeat=60 HTTP/1.1\r\nHost: {host}\r\n"
                 f"Authorization: Bearer {VIEWER_TOKEN}\r\n\r\n".encode())
    assert b"200" in sock.recv(64)
    return sock


def test_slow_client_loss_is_counted_and_told(redis_url: str,
                                              servers: Callable[..., Server],  # noqa: F811
                                              ) -> None:
    from celery import Celery

    serve = servers("serve", redis_url, "lc-v1-loss", config_text=CONFIG,
                    args=["--stream-buffer", "256"])
    url = serve.url
    fast = StreamReader(url, {"heartbeat": 1})
    assert fast.connected.wait(20)
    slow = _slow_stream(url)
    app = Celery("producer", broker=redis_url, set_as_current=False)
    count = 20_000
    try:
        with app.connection_for_write() as conn:
            dispatcher = app.events.Dispatcher(conn, hostname="producer@test")
            for n in range(count):
                dispatcher.send("task-received", uuid=f"loss-{n}", name="bench.noop",
                                args="()", kwargs="{}", retries=0)
            dispatcher.close()
        wait_for(lambda: len(_tasks(url)) >= 1 and _applied(url) >= count, timeout=60,
                 what="serve to ingest every event")
        last = f"loss-{count - 1}"  # the newest item is always delivered (the ring keeps it)
        wait_for(lambda: any(last in f.data for f in fast.of_kind("task")), timeout=60,
                 what="the fast client to read up to the last event")
        slow.settimeout(20)
        got = b""

        def told() -> bool:
            nonlocal got
            got += slow.recv(1 << 16)
            return b"event: loss" in got

        wait_for(told, timeout=60, interval=0, what="the slow client to be told its loss")
        frame = got[got.index(b"event: loss"):].split(b"\n\n")[0]
        body = json.loads(frame.split(b"data: ", 1)[1])
        assert body["lost"] > 0 and body["total_lost"] == body["lost"]
        assert b"lazycelery_stream_client_lost_total" in _metrics(url)
    finally:
        slow.close()
        fast.stop.set()
    # every event reached the fast client or is counted in a loss frame it got, in order
    uuids = [json.loads(f.data)["event"]["uuid"] for f in fast.of_kind("task")]
    numbers = [int(u.removeprefix("loss-")) for u in uuids]
    assert numbers == sorted(set(numbers))
    lost = sum(json.loads(f.data)["lost"] for f in fast.of_kind("loss"))
    assert len(numbers) + lost >= count


def _applied(url: str) -> int:
    for line in _metrics(url).decode().splitlines():
        if line.startswith("lazycelery_stream_published_total"):
            return int(float(line.split()[-1]))
    return 0


def _tasks(url: str) -> list[Any]:
    tasks: list[Any] = httpx.get(f"{url}/api/v1/tasks", params={"limit": 1},
                                 headers=VIEW).json()["tasks"]
    return tasks


