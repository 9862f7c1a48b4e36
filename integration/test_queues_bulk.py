"""Bulk move / delete / requeue-dead against real Redis and RabbitMQ with real workers: exact
counts while a worker consumes the same queue, dead letters requeued and then run, priorities."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import redis

from conftest import ROOT, WorkerProcess, wait_for
from lazycelery.broker import open_inspector
from lazycelery.broker.bulk import Selection
from lazycelery.broker.inspector import BrokerInspector
from lazycelery.broker.management import ManagementAPI, ManagementError

pytestmark = pytest.mark.integration

Workers = Callable[..., WorkerProcess]


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _client(broker: str, backend: str | None = None) -> Any:
    from celery import Celery

    return Celery("lc-bulk", broker=broker, backend=backend, set_as_current=False)


def _send(app: Any, queue: str, n: int, task: str = "workerapp.sleepy",
          args: tuple[Any, ...] = (0.05,)) -> list[str]:
    return [app.send_task(task, args=args, queue=queue).id for _ in range(n)]


@pytest.fixture
def inspectors() -> Iterator[Callable[..., BrokerInspector]]:
    made: list[BrokerInspector] = []

    def make(url: str, known: tuple[str, ...] = (), **kwargs: Any) -> BrokerInspector:
        inspector = open_inspector(url, {}, known, **kwargs)
        made.append(inspector)
        return inspector

    yield make
    for inspector in made:
        inspector.close()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("CELERY_BROKER_URL", "LAZYCELERY_BROKER_URL",
                            "LAZYCELERY_MANAGEMENT_URL")}
    environ.update(LAZYCELERY_CONFIG=os.devnull, NO_COLOR="1",
                   LAZYCELERY_AUDIT_LOG=str(tmp_path / "audit.log"))
    return environ


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lazycelery", "queues", *args], cwd=ROOT,
                          env=env, input="", capture_output=True, text=True, timeout=120)


def _states(app: Any, ids: list[str]) -> dict[str, str]:
    from celery.result import AsyncResult

    return {task_id: AsyncResult(task_id, app=app).state for task_id in ids}


def _assert_exact(outcome: Any, ids: list[str], waiting_in_target: set[str],
                  ran: set[str]) -> None:
    """Every id is counted exactly once; what was moved is in the target and never ran."""
    counted = [*outcome.done, *outcome.gone, *outcome.not_found]
    assert sorted(counted) == sorted(ids)
    assert set(outcome.done) == waiting_in_target
    assert not set(outcome.done) & ran


# ----------------------------------------------------------------------------- Redis


def test_redis_move_counts_exactly_while_a_worker_consumes(
        redis_url: str, celery_worker_factory: Workers,
        inspectors: Callable[..., BrokerInspector]) -> None:
    source, target = _name("src"), _name("dst")
    worker = celery_worker_factory(redis_url, backend=redis_url, queue=source, concurrency=2)
    app = _client(redis_url, redis_url)
    ids = _send(app, source, 60)
    wait_for(lambda: "SUCCESS" in _states(app, ids[:5]).values(), what="the worker to start")
    inspector = inspectors(redis_url, (source, target))
    outcome = inspector.move(source, target, Selection.of(ids))
    # the worker drains what is left; the moved ones wait in a queue nobody consumes
    wait_for(lambda: not redis.Redis.from_url(redis_url).exists(source), timeout=60)
    states = _states(app, ids)
    wait_for(lambda: all(s == "SUCCESS" for i, s in _states(app, ids).items()
                         if i not in outcome.done), timeout=60, what="the rest to run")
    moved_now = {m.id for m in inspector.peek(target, 100)}
    ran = {i for i, s in _states(app, ids).items() if s == "SUCCESS"}
    _assert_exact(outcome, ids, moved_now, ran)
    assert outcome.done, f"nothing was left to move ({states})"
    assert inspector.stats(target).ready == len(outcome.done)
    worker.stop()


def test_redis_delete_selected_keeps_the_others_and_their_priority(
        redis_url: str, inspectors: Callable[..., BrokerInspector]) -> None:
    source = _name("del")
    app = _client(redis_url)
    low = [app.send_task("workerapp.add", args=(1, 1), queue=source, priority=0).id
           for _ in range(3)]
    high = [app.send_task("workerapp.add", args=(1, 1), queue=source, priority=9).id
            for _ in range(2)]
    inspector = inspectors(redis_url, (source,))
    outcome = inspector.delete(source, Selection.of([low[0], high[1], "not-there"]))
    assert sorted(outcome.done) == sorted([low[0], high[1]])
    assert outcome.not_found == ["not-there"] and outcome.scanned == 5
    stats = inspector.stats(source)
    assert stats.by_priority == {0: 2, 3: 0, 6: 0, 9: 1}
    assert {m.id for m in inspector.peek(source, 10)} == {low[1], low[2], high[0]}


def test_redis_dead_letter_pattern_requeued_and_run_by_a_worker(
        redis_url: str, tmp_path: Path, env: dict[str, str],
        celery_worker_factory: Workers) -> None:
    queue = _name("work")
    config = tmp_path / "config.toml"
    config.write_text('[queues]\ndead_letter = "{queue}.dlq"\n')
    env = {**env, "LAZYCELERY_CONFIG": str(config)}
    app = _client(redis_url, redis_url)
    # the application's own convention: failed work parked in "<queue>.dlq"
    ids = _send(app, f"{queue}.dlq", 3, "workerapp.add", (2, 3))
    _send(app, queue, 1, "workerapp.add", (0, 0))  # so the queue itself is known

    listed = json.loads(_cli(env, "--json", "-b", redis_url).stdout)
    row = {q["name"]: q for q in listed["queues"]}
    assert row[queue]["dead_letter"] == f"{queue}.dlq"
    assert row[queue]["dead_letter_ready"] == 3
    assert row[f"{queue}.dlq"]["dead_letter_of"] == queue
    assert row[queue]["sources"]["dead_letter"] == "config:queues.dead_letter"

    done = _cli(env, "requeue-dead", f"{queue}.dlq", "--all", "--yes", "-b", redis_url)
    assert done.returncode == 0, done.stderr
    assert f"requeue-dead {queue}.dlq: 3 requeued" in done.stdout
    celery_worker_factory(redis_url, backend=redis_url, queue=queue)
    wait_for(lambda: set(_states(app, ids).values()) == {"SUCCESS"}, timeout=60,
             what="the requeued tasks to run")
    audit = Path(env["LAZYCELERY_AUDIT_LOG"]).read_text().splitlines()
    entry = json.loads(audit[-1])
    assert entry["action"] == "requeue-dead" and entry["result"]["count"] == 3


def test_redis_cli_move_by_ids_confirmation_and_read_only(
        redis_url: str, env: dict[str, str]) -> None:
    source, target = _name("src"), _name("dst")
    app = _client(redis_url)
    ids = _send(app, source, 4)
    _send(app, target, 1)
    refused = _cli(env, "move", source, target, "--ids", ids[0], "-b", redis_url)
    assert refused.returncode == 2 and "pass --yes" in refused.stderr
    read_only = _cli(env, "move", source, target, "--ids", ids[0], "--yes", "--read-only",
                     "-b", redis_url)
    assert read_only.returncode == 3 and "read-only" in read_only.stderr
    assert not Path(env["LAZYCELERY_AUDIT_LOG"]).exists()
    moved = _cli(env, "move", source, target, "--ids", f"{ids[0]},{ids[1]}", "--ids",
                 "missing-id", "--yes", "--json", "-b", redis_url)
    document = json.loads(moved.stdout)
    assert moved.returncode == 1  # one id was not found: the caller must know
    assert sorted(document["outcome"]["done"]) == sorted(ids[:2])
    assert document["outcome"]["not_found"] == ["missing-id"]
    client = redis.Redis.from_url(redis_url)
    assert client.llen(source) == 2 and client.llen(target) == 3
    # the moved envelope names its new queue, so a restore after a timeout goes there
    envelope = json.loads(client.lindex(target, 0) or b"{}")
    assert envelope["properties"]["delivery_info"]["routing_key"] == target
    assert "Traceback" not in moved.stderr


# ----------------------------------------------------------------------------- RabbitMQ


def _api(amqp_url: str) -> ManagementAPI:
    parts = urlsplit(amqp_url)
    vhost = parts.path[1:] or "/"
    api = ManagementAPI(f"http://{parts.hostname}:15672/api/", vhost, parts.username,
                        parts.password, timeout=5.0)
    try:
        api.queues()
    except ManagementError as exc:
        pytest.skip(f"RabbitMQ management API not available ({exc}); enable it with "
                    "`rabbitmq-plugins enable rabbitmq_management`")
    return api


def _http(api: ManagementAPI, method: str, path: str, body: dict[str, Any] | None) -> None:
    import urllib.request

    request = urllib.request.Request(f"{api.base}{path}", method=method,
                                     data=json.dumps(body).encode() if body else None,
                                     headers={**api._headers, "content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10):
        pass


@pytest.fixture
def amqp_queues(amqp_url: str) -> Iterator[Callable[..., str]]:
    """``declare(name, **arguments)``: queues (and exchanges) deleted after the test."""
    from kombu import Connection

    conn = Connection(amqp_url)
    channel = conn.channel()
    names: list[str] = []

    def declare(name: str, arguments: dict[str, Any] | None = None,
                bind: tuple[str, str] | None = None) -> str:
        channel.queue_declare(queue=name, durable=True, auto_delete=False,
                              arguments=arguments or {})
        if bind is not None:
            channel.exchange_declare(exchange=bind[0], type="direct", durable=True)
            channel.queue_bind(queue=name, exchange=bind[0], routing_key=bind[1])
        names.append(name)
        return name

    yield declare
    for name in names:
        channel.queue_delete(queue=name)
    conn.release()


def test_amqp_priority_queue_shows_its_max_priority(
        amqp_url: str, amqp_queues: Callable[..., str],
        inspectors: Callable[..., BrokerInspector]) -> None:
    from kombu import Queue

    from lazycelery.broker.report import format_priorities

    api = _api(amqp_url)
    queue = amqp_queues(_name("prio"), {"x-max-priority": 10})
    app = _client(amqp_url)
    app.conf.task_queues = [Queue(queue, routing_key=queue, max_priority=10)]
    for priority in (0, 5, 9):
        app.send_task("workerapp.add", args=(1, 1), queue=queue, priority=priority)
    inspector = inspectors(amqp_url, (queue,), management_url=api.base)
    stats = wait_for(lambda: inspector.snapshot().get(queue))
    assert stats.max_priority == 10 and stats.ready == 3
    assert stats.sources["max_priority"] == "rabbitmq:management-api"
    assert format_priorities(stats) == "max 10"


def test_amqp_dead_letters_requeued_and_consumed_by_a_real_worker(
        amqp_url: str, redis_url: str, amqp_queues: Callable[..., str], env: dict[str, str],
        celery_worker_factory: Workers, inspectors: Callable[..., BrokerInspector]) -> None:
    api = _api(amqp_url)
    queue = _name("work")
    dlx = f"{queue}.dlx"
    dead = amqp_queues(f"{queue}.dlq", bind=(dlx, queue))
    policy = f"lc-{queue}"
    # a policy, not a queue argument: Celery's own declare of the queue must still match
    _http(api, "PUT", f"policies/{quote(api.vhost, safe='')}/{policy}",
          {"pattern": f"^{queue}$", "definition": {"dead-letter-exchange": dlx},
           "apply-to": "queues"})
    try:
        app = _client(amqp_url, redis_url)
        ids = _send(app, queue, 4, "workerapp.add", (20, 22))
        amqp_queues(queue)  # for clean-up (Celery declared it)
        _reject_all(amqp_url, queue)
        inspector = inspectors(amqp_url, (queue,), management_url=api.base)
        stats = wait_for(lambda: (s := inspector.snapshot().get(queue)) is not None
                         and s.dead_letter_ready == 4 and s, timeout=60,
                         what="the management API to count the dead letters")
        assert stats.dead_letter == dead
        assert inspector.snapshot().get(dead).dead_letter_of == queue  # type: ignore[union-attr]

        one = _cli(env, "requeue-dead", dead, "--ids", ids[0], "--yes", "-b", amqp_url)
        assert one.returncode == 0 and f"requeue-dead {dead}: 1 requeued" in one.stdout
        rest = _cli(env, "requeue-dead", dead, "--all", "--yes", "--json", "-b", amqp_url)
        outcome = json.loads(rest.stdout)["outcome"]
        assert sorted(outcome["done"]) == sorted(ids[1:])
        assert set(outcome["targets"].values()) == {queue}
        celery_worker_factory(amqp_url, backend=redis_url, queue=queue)
        wait_for(lambda: set(_states(app, ids).values()) == {"SUCCESS"}, timeout=60,
                 what="the requeued tasks to run")
    finally:
        _http(api, "DELETE", f"policies/{quote(api.vhost, safe='')}/{policy}", None)


def _reject_all(amqp_url: str, queue: str) -> None:
    from kombu import Connection

    with Connection(amqp_url) as conn:
        channel = conn.channel()
        while (message := channel.basic_get(queue, no_ack=False)) is not None:
            channel.basic_reject(message.delivery_info["delivery_tag"], requeue=False)


def test_amqp_move_counts_exactly_while_a_worker_consumes(
        amqp_url: str, redis_url: str, amqp_queues: Callable[..., str],
        celery_worker_factory: Workers, inspectors: Callable[..., BrokerInspector]) -> None:
    source, target = _name("src"), _name("dst")
    amqp_queues(target)
    worker = celery_worker_factory(amqp_url, backend=redis_url, queue=source, concurrency=2)
    amqp_queues(source)
    app = _client(amqp_url, redis_url)
    ids = _send(app, source, 60)
    wait_for(lambda: "SUCCESS" in _states(app, ids[:5]).values(), what="the worker to start")
    inspector = inspectors(amqp_url, (source, target), management_url="")
    outcome = inspector.move(source, target, Selection.of(ids))
    wait_for(lambda: all(s == "SUCCESS" for i, s in _states(app, ids).items()
                         if i not in outcome.done), timeout=90, what="the rest to run")
    ran = {i for i, s in _states(app, ids).items() if s == "SUCCESS"}
    waiting = inspector.stats(target).ready
    assert waiting == len(outcome.done)
    counted = [*outcome.done, *outcome.gone, *outcome.not_found]
    assert sorted(counted) == sorted(ids) and not set(outcome.done) & ran
    worker.stop()


def test_amqp_delete_selected_returns_the_others(
        amqp_url: str, amqp_queues: Callable[..., str],
        inspectors: Callable[..., BrokerInspector]) -> None:
    source = amqp_queues(_name("del"))
    app = _client(amqp_url)
    ids = _send(app, source, 5, "workerapp.add", (1, 2))
    inspector = inspectors(amqp_url, (source,), management_url="")
    outcome = inspector.delete(source, Selection.of([ids[1], ids[3], "nope"]))
    assert sorted(outcome.done) == sorted([ids[1], ids[3]])
    assert outcome.not_found == ["nope"] and outcome.scanned == 5
    assert inspector.stats(source).ready == 3
    left = inspector.delete(source, Selection.of(None))
    assert sorted(left.done) == sorted([ids[0], ids[2], ids[4]])
