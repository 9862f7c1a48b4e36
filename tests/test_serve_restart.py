"""``POST /api/worker/restart/<worker>`` in process: a worker name from the cluster that is not a
plain ``name@host`` is a JSON 400 and nothing runs (the real command, the roles, read-only and
the audit are in integration/test_serve_restart.py)."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the serve extra")
with warnings.catch_warnings():  # starlette 1.x suggests another httpx package: not ours to pick
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from lazycelery.core.index import TaskIndex
from lazycelery.serve.app import build_app
from lazycelery.serve.auth import AuthConfig, Guard
from lazycelery.serve.service import Service


def _client(index: TaskIndex, restart: str | None, tmp_path: Path) -> TestClient:
    from celery import Celery

    service = Service(app=Celery("t", broker="memory://", set_as_current=False), index=index,
                      environment="test", restart_command=restart,
                      audit_path=tmp_path / "audit.log")
    return TestClient(build_app(service, Guard(AuthConfig({}))), raise_server_exceptions=False)


def test_a_hostile_worker_name_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    hostile = "w1@h;touch x"
    index = TaskIndex()
    index.apply_batch([{"type": "worker-heartbeat", "hostname": hostile,
                        "timestamp": time.time(), "local_received": time.time()}])
    ran = tmp_path / "ran"
    with _client(index, f"touch {ran} {{worker}}", tmp_path) as c:
        response = c.post(f"/api/worker/restart/{hostile}")
        assert response.status_code == 400, response.text
        assert "is not a plain name@host" in response.json()["error"]
        assert c.post("/api/worker/restart/nobody@h").status_code == 404
    assert not ran.exists() and not (tmp_path / "audit.log").exists()
