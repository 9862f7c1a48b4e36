"""Ingest over real Redis: both paths beside each other with a real worker, restarts, overflow,
AUTH / ACL user / TLS / unix socket / global_keyprefix on a private redis-server."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from conftest import RedisServer, WorkerProcess, free_port, wait_for
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest import CONNECTED, RECONNECTING, STOPPED, Ingestor, IngestStatus
from lazycelery.core.model import TaskRecord
from lazycelery.core.read_ahead import _RECV_SIZE

pytestmark = pytest.mark.integration


#: a prompt stop takes a poll interval; one that waited for an event or a retry would take that
#: long or never return: 10 s tells the two apart with room for load 15 on 2 cores
PROMPT = 10.0


class Recorder:
    """An Ingestor with its index and every status it reported."""

    def __init__(self, url: str, mode: str, **kwargs: Any) -> None:
        self.index = TaskIndex()
        self.statuses: list[IngestStatus] = []
        self.ingestor = Ingestor(url, self.index, mode=mode, on_status=self.statuses.append,
                                 **kwargs)

    def start(self) -> Recorder:
        self.ingestor.start()
        return self

    def wait_connected(self, timeout: float = 20.0) -> None:
        wait_for(lambda: self.ingestor.status.state == CONNECTED, timeout,
                 what=f"{self.ingestor.path} ingest to connect ({self.ingestor.status.describe()})")

    def task(self, task_id: str) -> TaskRecord | None:
        return self.index.get(task_id)

    def stop_timed(self) -> float:
        """Seconds stop() took. The join is not cut at Ingestor.stop's default 2 s (a loaded
        machine can need longer to wake the thread from its 0.25 s poll): callers bound it
        with PROMPT, which still tells it from a stop that waits for an event or a retry."""
        started = time.monotonic()
        self.ingestor.stop(timeout=3 * PROMPT)
        return time.monotonic() - started


@pytest.fixture
def recorders() -> Iterator[Callable[..., Recorder]]:
    made: list[Recorder] = []

    def make(url: str, mode: str, **kwargs: Any) -> Recorder:
        rec = Recorder(url, mode, **kwargs)
        made.append(rec)
        return rec.start()

    yield make
    for rec in made:
        rec.ingestor.stop()


def run_workload(worker: WorkerProcess) -> dict[str, Any]:
    """A success, a failure with traceback, a retried task and a chain of three."""
    client = worker.app()
    try:
        ids = {
            "ok": client.send_task("workerapp.add", (1, 2)).id,
            "fail": client.send_task("workerapp.always_fail", ("boom",)).id,
            "flaky": client.send_task("workerapp.flaky", (7,), {"fail_for": 1}).id,
        }
        add = "workerapp.add"
        result = (client.signature(add, (1, 1)) | client.signature(add, (2,))
                  | client.signature(add, (3,))).apply_async()
        ids["chain"] = [result.parent.parent.id, result.parent.id, result.id]
    finally:
        client.close()
    return ids


def workload_done(rec: Recorder, ids: dict[str, Any]) -> bool:
    ok, fail, flaky = rec.task(ids["ok"]), rec.task(ids["fail"]), rec.task(ids["flaky"])
    chain = [rec.task(i) for i in ids["chain"]]
    return (ok is not None and ok.state == "SUCCESS" and fail is not None
            and fail.state == "FAILURE" and flaky is not None and flaky.state == "SUCCESS"
            and all(c is not None and c.state == "SUCCESS" for c in chain))


def check_workload(rec: Recorder, ids: dict[str, Any], worker: WorkerProcess) -> None:
    ok, fail, flaky = rec.task(ids["ok"]), rec.task(ids["fail"]), rec.task(ids["flaky"])
    assert ok is not None and ok.result == "3" and ok.name == "workerapp.add"
    assert ok.worker == worker.hostname and ok.runtime is not None
    assert fail is not None and fail.exception is not None and "bad payload" in fail.exception
    assert fail.traceback is not None and "ValueError" in fail.traceback
    assert fail.traceback.startswith("Traceback")
    assert flaky is not None and flaky.retries == 1 and flaky.n_retried == 1
    assert flaky.result == "7" and flaky.parent_id is None  # a retry is not its own child
    first, second, third = (rec.task(i) for i in ids["chain"])
    assert first is not None and second is not None and third is not None
    assert {first.root_id, second.root_id, third.root_id} == {first.uuid}
    assert (second.parent_id, third.parent_id) == (first.uuid, second.uuid)
    assert rec.index.children_of(first.uuid) == [second.uuid]
    assert third.result == "7"
    assert worker.hostname in rec.index.workers


def _as_dict(rec: Any, *ignore: str) -> dict[str, Any]:
    return {k: v for k, v in msgspec.structs.asdict(rec).items() if k not in ignore}


def test_fast_and_kombu_paths_see_the_same_live_stream(
        redis_url: str, celery_worker_factory: Callable[..., WorkerProcess],
        recorders: Callable[..., Recorder]) -> None:
    fast, kombu = recorders(redis_url, "fast"), recorders(redis_url, "kombu")
    assert (fast.ingestor.path, kombu.ingestor.path) == ("fast", "kombu")
    fast.wait_connected()
    kombu.wait_connected()
    worker = celery_worker_factory(redis_url)
    ids = run_workload(worker)
    for rec in (fast, kombu):
        wait_for(lambda rec=rec: workload_done(rec, ids), 60, what=f"{rec.ingestor.path} tasks")
        check_workload(rec, ids, worker)
    # Both paths read the same messages: the indexes agree record by record.
    wait_for(lambda: fast.index.events_total == kombu.index.events_total, 60,
             what="both paths to have applied the same events")
    fast_tasks = {r.uuid: _as_dict(r, "last_seen") for r in fast.index.snapshot()}
    kombu_tasks = {r.uuid: _as_dict(r, "last_seen") for r in kombu.index.snapshot()}
    assert fast_tasks == kombu_tasks
    assert fast.index.counts()["by_state"] == kombu.index.counts()["by_state"]
    assert fast.ingestor.counters()["malformed"] == 0
    assert fast.ingestor.events_per_second() > 0
    for rec in (fast, kombu):
        assert rec.stop_timed() < PROMPT
        assert rec.ingestor.status.state == STOPPED


@pytest.mark.parametrize("mode", ["fast", "kombu"])
def test_broker_restart_is_a_reported_gap(
        mode: str, redis_server_factory: Callable[[], RedisServer],
        celery_worker_factory: Callable[..., WorkerProcess],
        recorders: Callable[..., Recorder]) -> None:
    server = redis_server_factory()
    url = f"{server.url}/0"
    rec = recorders(url, mode)
    rec.wait_connected()
    worker = celery_worker_factory(url)
    client = worker.app()
    before = client.send_task("workerapp.add", (2, 2)).id
    wait_for(lambda: (t := rec.task(before)) is not None and t.state == "SUCCESS", 60,
             what="a task before the restart")

    server.stop()
    wait_for(lambda: rec.ingestor.status.state == RECONNECTING
             and rec.ingestor.status.attempt >= 2, 60, what="reconnect attempts")
    # the second attempt's status as it was published (reading the live one after the wait
    # could already show attempt 3 when the test thread is descheduled for a second)
    status = next(s for s in rec.statuses if s.state == RECONNECTING and s.attempt == 2)
    assert status.last_error and ("refused" in status.last_error.lower()
                                  or "closed" in status.last_error.lower())
    attempts = [s.attempt for s in rec.statuses if s.state == RECONNECTING]
    assert attempts[:2] == [1, 2]
    assert status.next_retry_in == 1.0 and status.describe().startswith("reconnecting: attempt 2")
    lost_at = time.time()

    server.start()  # same port
    wait_for(lambda: rec.ingestor.status.state == CONNECTED, 60, what="reconnection")
    gap = rec.ingestor.status.gap
    assert gap is not None and gap.reason == "broker restarted"
    assert gap.start <= lost_at <= gap.end and gap.seconds >= 1.0

    wait_for(worker.ping, 60, interval=0.5, what="the worker to reconnect")
    after = client.send_task("workerapp.add", (3, 3)).id
    wait_for(lambda: (t := rec.task(after)) is not None and t.state == "SUCCESS", 60,
             what="a task sent after the restart")
    client.close()

    # stop() is prompt while reconnecting too
    server.stop()
    wait_for(lambda: rec.ingestor.status.state == RECONNECTING, 60, what="reconnecting again")
    assert rec.stop_timed() < PROMPT


def _event_envelope(index: int, padding: int) -> str:
    event = {"hostname": "flood@test", "utcoffset": 0, "pid": 1, "clock": index,
             "uuid": f"flood-{index}", "name": "flood", "args": "x" * padding, "kwargs": "{}",
             "retries": 0, "timestamp": time.time(), "type": "task-received"}
    return json.dumps({
        "body": base64.b64encode(json.dumps(event).encode()).decode(),
        "content-encoding": "utf-8", "content-type": "application/json",
        "headers": {"hostname": "flood@test"},
        "properties": {"delivery_mode": 1, "priority": 0, "body_encoding": "base64",
                       "delivery_tag": str(uuid.uuid4()),
                       "delivery_info": {"exchange": "celeryev", "routing_key": "task.received"}},
    })


def _stall_and_flood(server: RedisServer, recorders: Callable[..., Recorder],
                     **ingest: Any) -> tuple[Recorder, Any, _Gate]:
    """A fast-path recorder under a 256 kB Redis pubsub limit whose ingest thread is held in
    its batch callback, then 24 MB published (far more than the kernel's socket buffers hold):
    the recorder, the admin client and the gate to ``clear()`` to let the ingest go on."""
    import redis

    admin = redis.Redis.from_url(f"{server.url}/0")
    admin.config_set("client-output-buffer-limit", "pubsub 262144 131072 1")
    stall, stalled = _Gate(), _Gate()

    def slow_consumer(events: Any, records: Any) -> None:
        if stall.is_set():
            stalled.set()
            stall.wait_clear(30)

    rec = recorders(f"{server.url}/0", "fast", on_batch=slow_consumer, wakeup=False, **ingest)
    rec.wait_connected()
    stall.set()
    admin.publish("/0.celeryev/task.received", _event_envelope(0, 10))
    wait_for(stalled.is_set, 60, what="the consumer to stall")
    payload = [_event_envelope(i, 4000) for i in range(1, 201)]
    for _ in range(30):
        pipe = admin.pipeline(transaction=False)
        for message in payload:
            pipe.publish("/0.celeryev/task.received", message)
        pipe.execute()
    return rec, admin, stall


def test_output_buffer_overflow_is_a_reported_gap(
        redis_server_factory: Callable[[], RedisServer],
        recorders: Callable[..., Recorder]) -> None:
    # a small read-ahead: the stalled ingest's reader fills it, then Redis's buffer overflows
    rec, admin, stall = _stall_and_flood(redis_server_factory(), recorders,
                                         read_ahead=1 << 18)
    stall.clear()
    wait_for(lambda: rec.ingestor.status.gap is not None, 60, what="a gap after the overflow")
    gap = rec.ingestor.status.gap
    assert gap is not None and "overflow" in gap.reason
    assert rec.ingestor.status.state == CONNECTED
    assert any(s.state == RECONNECTING and s.last_error and "closed" in s.last_error.lower()
               for s in rec.statuses)
    admin.close()


def test_read_ahead_rides_out_a_stalled_ingest_without_a_gap(
        redis_server_factory: Callable[[], RedisServer],
        recorders: Callable[..., Recorder]) -> None:
    """The same stall and the same 24 MB as above with the default read-ahead: its thread keeps
    the socket drained while the ingest thread is held, so Redis never drops us and every
    event is applied once the ingest resumes."""
    rec, admin, stall = _stall_and_flood(redis_server_factory(), recorders)
    # every byte left Redis for the read-ahead while the ingest thread was still held
    wait_for(lambda: _pubsub_pending(admin) == 0, 60, what="Redis's pubsub buffer to drain")
    session = rec.ingestor._session
    assert session is not None and session.read_ahead.peak > 1 << 20
    stall.clear()
    wait_for(lambda: len(rec.index) == 201, 60,
             what=f"all 201 tasks applied (have {len(rec.index)})")
    assert rec.ingestor.status.gap is None
    assert rec.ingestor.status.state == CONNECTED
    assert all(s.state != RECONNECTING for s in rec.statuses)
    admin.close()


@pytest.mark.parametrize("limit", [4 << 20, 0], ids=["4MB", "none"])
def test_a_small_read_ahead_stops_at_its_bound(
        redis_server_factory: Callable[[], RedisServer],
        recorders: Callable[..., Recorder], limit: int) -> None:
    """``--read-ahead 4MB`` (and ``0``): the same stall and 24 MB. The reader holds what its
    bound allows (4 MB and at most one read past it; none at all with 0) and reads no more:
    the rest waits in Redis, whose own limit then cuts the subscriber off, a reported gap."""
    rec, admin, stall = _stall_and_flood(redis_server_factory(), recorders, read_ahead=limit)
    session = rec.ingestor._session
    assert session is not None and session.read_ahead.limit == limit
    if limit:
        wait_for(lambda: session.read_ahead.buffered >= limit, 30,
                 what=f"the read-ahead to fill (holds {session.read_ahead.buffered})")
    # Redis gives up on the subscriber, the reader never reads past its bound meanwhile
    wait_for(lambda: _pubsub_pending(admin) == 0 and not _subscribed(admin), 30,
             what="Redis to cut the stalled subscriber off")
    assert session.read_ahead.peak <= limit + _RECV_SIZE
    assert session.read_ahead.inline is (limit == 0)
    stall.clear()
    wait_for(lambda: rec.ingestor.status.gap is not None, 30, what="a gap after the overflow")
    gap = rec.ingestor.status.gap
    assert gap is not None and "overflow" in gap.reason
    admin.close()


def _subscribed(admin: Any) -> bool:
    return any(int(c.get("psub", 0)) > 0 for c in admin.client_list())


def _pubsub_pending(admin: Any) -> int:
    """Bytes Redis holds for the subscribers (their output buffers); 0 once all were read."""
    clients = admin.client_list()
    return sum(int(c.get("omem", 0)) for c in clients if int(c.get("psub", 0)) > 0)


class _Gate:
    """A flag one thread can wait on until another clears it."""

    def __init__(self) -> None:
        import threading

        self._set = threading.Event()
        self._clear = threading.Event()

    def set(self) -> None:
        self._clear.clear()
        self._set.set()

    def clear(self) -> None:
        self._set.clear()
        self._clear.set()

    def is_set(self) -> bool:
        return self._set.is_set()

    def wait_clear(self, timeout: float) -> None:
        self._clear.wait(timeout)


# --------------------------------------------------------------------------- AUTH / TLS / unix


class SecureRedis:
    """A private redis-server with a password, an ACL user, TLS and a unix socket."""

    def __init__(self, tmp: Path) -> None:
        self.dir = tmp
        self.port, self.tls_port = free_port(), free_port()
        self.sock = str(tmp / "redis.sock")
        self.cert, self.key = str(tmp / "cert.pem"), str(tmp / "key.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key,
             "-out", self.cert, "-days", "1", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, capture_output=True, timeout=60)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(tmp), "--requirepass", "s3cret pw",
             "--user", "lcuser", "on", ">u-pass", "~*", "&*", "+@all",
             "--unixsocket", self.sock, "--unixsocketperm", "700",
             "--tls-port", str(self.tls_port), "--tls-cert-file", self.cert,
             "--tls-key-file", self.key, "--tls-ca-cert-file", self.cert,
             "--tls-auth-clients", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: Path(self.sock).exists(), 60, what="secure redis-server")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def secure_redis(tmp_path: Path) -> Iterator[SecureRedis]:
    if shutil.which("redis-server") is None or shutil.which("openssl") is None:
        pytest.skip("needs redis-server and openssl")
    server = SecureRedis(tmp_path)
    yield server
    server.stop()


def _publish_event(url: str, task_id: str, transport_options: dict[str, Any] | None = None) -> None:
    """Send one event with celery's own dispatcher (kombu decides the channel name)."""
    from celery import Celery

    app = Celery("lc-publisher", broker=url, set_as_current=False)
    app.conf.broker_transport_options = transport_options or {}
    try:
        with app.connection_for_write() as conn:
            dispatcher = app.events.Dispatcher(conn, hostname="pub@test", enabled=True)
            dispatcher.send("task-received", uuid=task_id, name="published", args="()",
                            kwargs="{}", retries=0, eta=None, expires=None, root_id=task_id,
                            parent_id=None)
            dispatcher.close()
    finally:
        app.close()


def test_auth_acl_tls_unix_socket_and_keyprefix(
        secure_redis: SecureRedis, recorders: Callable[..., Recorder]) -> None:
    s = secure_redis
    publisher = f"redis://:s3cret%20pw@127.0.0.1:{s.port}/3"
    cases: list[tuple[str, dict[str, Any]]] = [
        (f"redis://:s3cret%20pw@127.0.0.1:{s.port}/3", {}),
        (f"redis://lcuser:u-pass@127.0.0.1:{s.port}/3", {}),
        (f"rediss://:s3cret%20pw@localhost:{s.tls_port}/3?ssl_cert_reqs=required"
         f"&ssl_ca_certs={s.cert}", {}),
        (f"redis+socket://:s3cret%20pw@{s.sock}?virtual_host=3", {}),
        (f"unix://lcuser:u-pass@{s.sock}?db=3", {}),
        (f"redis://:s3cret%20pw@127.0.0.1:{s.port}/3", {"global_keyprefix": "lc:"}),
    ]
    for url, options in cases:
        rec = recorders(url, "fast", transport_options=options, wakeup=False)
        rec.wait_connected()
        task_id = str(uuid.uuid4())
        _publish_event(publisher, task_id, options)
        wait_for(lambda rec=rec, task_id=task_id: rec.task(task_id) is not None, 60,
                 what=f"an event over {url.split('@')[-1]} {options}")
        event_task = rec.task(task_id)
        assert event_task is not None and event_task.state == "RECEIVED"
        assert rec.stop_timed() < PROMPT
    # kombu's path reads the same server (its channel name is the reference for ours)
    rec = recorders(publisher, "kombu", transport_options={"global_keyprefix": "lc:"},
                    wakeup=False)
    rec.wait_connected()
    task_id = str(uuid.uuid4())
    _publish_event(publisher, task_id, {"global_keyprefix": "lc:"})
    wait_for(lambda: rec.task(task_id) is not None, 60, what="an event over the kombu path")


def test_wrong_password_is_reported_without_the_secret(
        secure_redis: SecureRedis, recorders: Callable[..., Recorder]) -> None:
    rec = recorders(f"redis://:not-the-pw@127.0.0.1:{secure_redis.port}/0", "fast", wakeup=False)
    wait_for(lambda: rec.ingestor.status.state == RECONNECTING, 60, what="an auth failure")
    error = rec.ingestor.status.last_error or ""
    assert "not-the-pw" not in error and ("WRONGPASS" in error or "invalid" in error.lower())


@pytest.mark.parametrize("mode", ["fast", "kombu"])
def test_wakeup_makes_workers_answer_at_once(
        mode: str, redis_url: str, celery_worker_factory: Callable[..., WorkerProcess],
        recorders: Callable[..., Recorder]) -> None:
    worker = celery_worker_factory(redis_url)
    seen: list[Any] = []
    rec = recorders(redis_url, mode, on_batch=lambda events, records: seen.extend(events))
    rec.wait_connected()
    # The heartbeat control command is answered by a worker-heartbeat with freq=5 and no
    # counters (CELERY-INTERNALS §1); the periodic ones have freq=2.
    wait_for(lambda: any(e.get("type") == "worker-heartbeat" and e.get("freq") == 5
                         and e.get("hostname") == worker.hostname for e in seen), 60,
             what="the worker to answer the wakeup")
