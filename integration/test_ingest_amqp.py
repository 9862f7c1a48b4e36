"""Ingest over real RabbitMQ (celery's Receiver path) with a real worker."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conftest import WorkerProcess, stop_promptly, wait_for
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest import CONNECTED, Ingestor
from lazycelery.errors import UsageError

pytestmark = pytest.mark.integration


@pytest.fixture
def ingest(amqp_url: str) -> Iterator[tuple[Ingestor, TaskIndex, list[int]]]:
    index = TaskIndex()
    batches: list[int] = []
    ingestor = Ingestor(amqp_url, index, mode="kombu", on_batch=lambda events, records: batches.append(
        len(events)))
    ingestor.start()
    yield ingestor, index, batches
    ingestor.stop()


def _state(index: TaskIndex, task_id: str) -> str | None:
    rec = index.get(task_id)
    return rec.state if rec is not None else None


def test_kombu_path_on_rabbitmq(amqp_url: str, celery_worker_factory: Callable[..., WorkerProcess],
                                ingest: tuple[Ingestor, TaskIndex, list[int]]) -> None:
    ingestor, index, batches = ingest
    assert ingestor.path == "kombu"
    wait_for(lambda: ingestor.status.state == CONNECTED, 60, what="the AMQP connection")
    worker = celery_worker_factory(amqp_url)
    client = worker.app()
    try:
        ok = client.send_task("workerapp.add", (20, 22)).id
        fail = client.send_task("workerapp.always_fail", ({"k": 1},)).id
        flaky = client.send_task("workerapp.flaky", (5,), {"fail_for": 2}).id
        add = "workerapp.add"
        result = (client.signature(add, (1, 2)) | client.signature(add, (3,))).apply_async()
        chain = [result.parent.id, result.id]
    finally:
        client.close()
    expected: dict[str, str] = {ok: "SUCCESS", fail: "FAILURE", flaky: "SUCCESS",
                                chain[0]: "SUCCESS", chain[1]: "SUCCESS"}
    wait_for(lambda: all(_state(index, t) == s for t, s in expected.items()), 60,
             what="the tasks to finish")
    records: dict[str, Any] = {t: index.get(t) for t in expected}
    assert records[ok].result == "42" and records[ok].worker == worker.hostname
    assert records[ok].queue == worker.queue  # from task-sent
    assert "ValueError" in records[fail].traceback and "bad payload" in records[fail].exception
    assert records[flaky].retries == 2 and records[flaky].n_retried == 2
    assert records[chain[1]].parent_id == chain[0] and records[chain[1]].root_id == chain[0]
    # timestamps are the senders' epoch times, not shifted (localize=False)
    assert abs(records[ok].succeeded - time.time()) < 120
    assert max(batches) >= 1 and sum(batches) == index.events_total
    wait_for(lambda: worker.hostname in index.workers, 60, what="the worker record")
    stop_promptly(ingestor)


def test_fast_mode_is_refused_for_an_amqp_failover_list(amqp_url: str) -> None:
    with pytest.raises(UsageError, match="fast"):
        Ingestor(f"{amqp_url};{amqp_url}", TaskIndex(), mode="fast")
