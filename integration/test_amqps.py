"""``amqps://`` against a real RabbitMQ node with a TLS listener (our own node, see
``tls_rabbit.py``) and a real ``celery worker`` connected over TLS too: tail on both ingest
paths, serve, heartbeats while the ingest is held, a wrong CA, and the queues view."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_serve_helpers import Server, servers  # noqa: F401 (fixture)
from test_tail_helpers import TailProcess, assert_no_traceback, send_until
from tls_rabbit import TlsRabbit, make_cert, tls_rabbit_node

from conftest import ROOT, WorkerProcess, wait_for
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest import CONNECTED, RECONNECTING, Ingestor

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

#: a user of the node's own whose password must never be shown
USER, PASSWORD = "lc-tls", "s3cret-tls-pw"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRabbit]:
    with tls_rabbit_node(tmp_path_factory.mktemp("tls-rabbit")) as started:
        for args in (("add_user", USER, PASSWORD),
                     ("set_permissions", "-p", "/", USER, ".*", ".*", ".*")):
            done = started.ctl(*args)
            assert done.returncode == 0, done.stderr
        yield started


def _url(node: TlsRabbit, ca: str | None = None) -> str:
    base = f"amqps://{USER}:{PASSWORD}@localhost:{node.tls_port}//"
    return f"{base}?ssl_ca_certs={ca}" if ca else base


def _client(node: TlsRabbit, queue: str) -> Any:
    """A publishing app configured the way celery documents TLS: ``broker_use_ssl``."""
    from celery import Celery

    app = Celery("lc-tls-client", broker=_url(node), set_as_current=False)
    app.conf.update(task_default_queue=queue, task_send_sent_event=True,
                    broker_use_ssl={"ca_certs": node.cert, "cert_reqs": ssl.CERT_REQUIRED})
    return app


@pytest.fixture
def tls_worker(node: TlsRabbit, celery_worker_factory: Callable[..., WorkerProcess]
               ) -> Iterator[tuple[WorkerProcess, Any]]:
    worker = celery_worker_factory(_url(node), env={"LC_BROKER_CA": node.cert}, wait=False)
    client = _client(node, worker.queue)

    def answers() -> bool:
        if worker.proc.poll() is not None:
            raise AssertionError(f"worker exited:\n{worker.output()[-3000:]}")
        try:
            replies = client.control.ping(destination=[worker.hostname], timeout=1.0)
        except Exception:
            return False
        return any(worker.hostname in reply for reply in replies or [])

    wait_for(answers, 90, interval=0.2, what="the worker over amqps")
    assert "amqps://" in worker.output() and PASSWORD not in worker.output()
    try:
        yield worker, client
    finally:
        client.close()


@pytest.mark.parametrize("ingest", ["fast", "kombu"])
def test_tail_sees_a_task_over_amqps(ingest: str, node: TlsRabbit,
                                     tls_worker: tuple[WorkerProcess, Any]) -> None:
    worker, client = tls_worker
    tail = TailProcess(_url(node, node.cert), "--json", "--ingest", ingest)
    try:
        done = send_until(tail, lambda: str(client.send_task("workerapp.add", (20, 22)).id))
        assert done["hostname"] == worker.hostname and done["result"] == "42"
        kinds = {d["type"] for d in tail.task_docs(done["uuid"])}
        assert {"task-received", "task-started", "task-succeeded"} <= kinds
        assert PASSWORD not in tail.stderr()
    finally:
        tail.close()
    assert_no_traceback(tail.stderr())


def test_serve_health_and_tasks_over_amqps(
        node: TlsRabbit, tls_worker: tuple[WorkerProcess, Any], monkeypatch: pytest.MonkeyPatch,
        servers: Callable[..., Server]) -> None:  # noqa: F811
    worker, client = tls_worker
    # serve -A workerapp: the app's broker_use_ssl (LC_BROKER_CA) is what makes TLS work
    monkeypatch.setenv("LC_BROKER_CA", node.cert)
    serve = servers("serve", _url(node), worker.queue)
    assert httpx.get(f"{serve.url}/healthcheck", timeout=5).status_code == 200

    def listed() -> dict[str, Any] | None:
        task_id = client.send_task("workerapp.add", (1, 2)).id
        found = wait_for(lambda: next(
            (t for t in httpx.get(f"{serve.url}/api/v1/tasks", timeout=5).json()["tasks"]
             if t["uuid"] == task_id and t["state"] == "SUCCESS"), None), 20,
            what="the task in /api/v1/tasks")
        return dict(found)

    task = listed()
    assert task is not None and task["worker"] == worker.hostname
    assert PASSWORD not in serve.output()


@pytest.mark.timeout(180)
def test_heartbeats_keep_a_held_ingest_connected(node: TlsRabbit) -> None:
    """A 1 s heartbeat and the ingest thread held for 8 s: the read-ahead thread writes the
    heartbeats over TLS, so RabbitMQ (which closes after two missed ones) keeps the connection,
    and the events published meanwhile are all applied once the ingest resumes."""
    from celery import Celery

    app = Celery("lc-tls-hb", broker=_url(node), set_as_current=False)
    app.conf.update(broker_heartbeat=1, broker_use_ssl={"ca_certs": node.cert})
    held, holding, release = threading.Event(), threading.Event(), threading.Event()

    def slow(events: Any, records: Any) -> None:
        if held.is_set() and not release.is_set():
            holding.set()
            release.wait(60)

    index = TaskIndex()
    ingestor = Ingestor(_url(node), index, mode="fast", app=app, wakeup=False, on_batch=slow)
    statuses: list[str] = []
    ingestor.on_status = lambda status: statuses.append(status.state)
    ingestor.start()
    publisher = app.connection_for_write()
    try:
        wait_for(lambda: ingestor.status.state == CONNECTED, 30, what="the TLS connection")
        assert ingestor.path == "fast"
        dispatcher = app.events.Dispatcher(publisher, hostname="hb@test", enabled=True)
        held.set()
        dispatcher.send("task-received", uuid="hb-0", name="held", args="()", kwargs="{}")
        wait_for(holding.is_set, 10, what="the ingest to be held")
        started = time.monotonic()
        for i in range(1, 6):
            time.sleep(1.6)  # the broker's view of time passing: nothing to wait on instead
            dispatcher.send("task-received", uuid=f"hb-{i}", name="held", args="()",
                            kwargs="{}")
        assert time.monotonic() - started > 8 * app.conf.broker_heartbeat
        release.set()
        wait_for(lambda: all(index.get(f"hb-{i}") is not None for i in range(6)), 20,
                 what="every event published while held")
        assert ingestor.status.state == CONNECTED and RECONNECTING not in statuses
        assert ingestor.status.gap is None
        dispatcher.close()
    finally:
        release.set()
        publisher.release()
        ingestor.stop()


def test_wrong_ca_is_one_masked_line(node: TlsRabbit, tmp_path: Path) -> None:
    other_ca, _key = make_cert(tmp_path, "other")
    url = _url(node, other_ca)
    ingestor = Ingestor(url, TaskIndex(), mode="fast", wakeup=False)
    ingestor.start()
    try:
        wait_for(lambda: ingestor.status.state == RECONNECTING, 20, what="the refused handshake")
        error = ingestor.status.last_error or ""
        assert "CERTIFICATE_VERIFY_FAILED" in error and "\n" not in error
        assert PASSWORD not in error and PASSWORD not in ingestor.status.describe()
    finally:
        ingestor.stop()
    for command in (["tail", "--timeout", "3"], ["queues"]):
        done = subprocess.run([sys.executable, "-m", "lazycelery", *command, "--broker", url],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert PASSWORD not in done.stderr + done.stdout
        assert_no_traceback(done.stderr)
        line = next(ln for ln in done.stderr.splitlines() if "certificate verify failed" in ln)
        assert line.startswith("lazycelery: ")


def test_queues_over_amqps(node: TlsRabbit, tls_worker: tuple[WorkerProcess, Any]) -> None:
    worker, _client_app = tls_worker
    done = subprocess.run(
        [sys.executable, "-m", "lazycelery", "queues", "--broker", _url(node, node.cert),
         "--workers", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    snapshot = json.loads(done.stdout)
    queue = next(q for q in snapshot["queues"] if q["name"] == worker.queue)
    assert queue["consumers"] == 1
    assert PASSWORD not in done.stdout + done.stderr
