"""Flower's task endpoints answer from the history store for tasks no longer in memory: a real
worker (Redis, no result backend) runs a success and a failure under `serve --store` (SQLite);
serve is restarted on the same store (memory empty) and `/api/task/info/<id>` and
`/api/task/result/<id>` answer from the store in Flower's shape, while `/api/tasks` keeps
Flower's meaning (memory) unless `store=true` asks for the store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_serve_helpers import Server, servers  # noqa: F401

from conftest import WorkerProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
pytest.importorskip("starlette", reason="the serve extra")


def _get(url: str, path: str, **params: Any) -> Any:
    response = httpx.get(f"{url}{path}", params=params, timeout=15)
    assert response.status_code == 200, response.text
    return response.json()


def _state(url: str, task_id: str) -> str | None:
    response = httpx.get(f"{url}/api/task/info/{task_id}", timeout=15)
    return response.json().get("state") if response.status_code == 200 else None


def _stored_state(url: str, task_id: str) -> str | None:
    from lazycelery.store import open_store

    store = open_store(url, create=False, writer=False)
    try:
        found = store.get_task(task_id)
    finally:
        store.close()
    return found[0].state if found is not None else None


def test_a_restarted_serve_answers_flower_task_endpoints_from_the_store(
        redis_url: str, celery_worker_factory: Callable[..., WorkerProcess],
        servers: Callable[..., Server], tmp_path: Path) -> None:  # noqa: F811
    from lazycelery.serve.shapes import TASK_FIELDS

    worker = celery_worker_factory(redis_url)  # no result backend: only the store remembers
    store = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    first = servers("serve", redis_url, worker.queue, args=["--store", store])
    app = worker.app()
    sent: list[str] = []
    try:
        def seen() -> str | None:  # PUB/SUB keeps nothing before serve subscribes: resend
            sent.append(app.send_task("workerapp.add", args=(4, 5)).id)
            return next((i for i in sent if _state(first.url, i) == "SUCCESS"), None)
        ok_id = wait_for(seen, timeout=60, interval=0.5, what="a success in the first serve")
        bad_id = app.send_task("workerapp.always_fail", args=("boom",)).id
        wait_for(lambda: _state(first.url, bad_id) == "FAILURE", timeout=60, interval=0.3,
                 what="the failure in the first serve")
    finally:
        app.close()
    assert first.stop() == 0, first.output()[-3000:]
    assert _stored_state(store, ok_id) == "SUCCESS" and _stored_state(store, bad_id) == "FAILURE"

    second = servers("serve", redis_url, worker.queue, args=["--store", store])
    # memory is empty: Flower's /api/tasks (memory) does not know them
    assert _get(second.url, "/api/tasks") == {}

    info = _get(second.url, f"/api/task/info/{ok_id}")
    assert tuple(info) == TASK_FIELDS
    assert info["uuid"] == ok_id and info["state"] == "SUCCESS" and info["result"] == "9"
    assert info["worker"] == worker.hostname and info["name"] == "workerapp.add"
    failed = _get(second.url, f"/api/task/info/{bad_id}")
    assert failed["state"] == "FAILURE" and "boom" in (failed["exception"] or "")

    # no result backend: Flower answers 503; the store knows the outcome
    assert _get(second.url, f"/api/task/result/{ok_id}") == \
        {"task-id": ok_id, "state": "SUCCESS", "result": "9"}
    result = _get(second.url, f"/api/task/result/{bad_id}")
    assert result["state"] == "FAILURE" and "boom" in result["result"]
    assert "Traceback" in (result["traceback"] or "")
    unknown = httpx.get(f"{second.url}/api/task/result/no-such-task", timeout=10)
    assert unknown.status_code == 503, unknown.text
    assert httpx.get(f"{second.url}/api/task/info/no-such-task").status_code == 404

    # store=true: memory, then the store, with Flower's filters
    both = _get(second.url, "/api/tasks", store="true")
    assert {ok_id, bad_id} <= set(both) and set(both) <= {*sent, bad_id}
    assert list(_get(second.url, "/api/tasks", store="true", state="FAILURE")) == [bad_id]
    added = list(_get(second.url, "/api/tasks", store="true", taskname="workerapp.add"))
    assert ok_id in added and bad_id not in added
    assert len(_get(second.url, "/api/tasks", store="true", limit=1)) == 1
    bad = httpx.get(f"{second.url}/api/tasks", params={"store": "maybe"}, timeout=10)
    assert bad.status_code == 400 and bad.json()["parameter"] == "store"
    assert second.stop() == 0
    assert "Traceback" not in second.output()
