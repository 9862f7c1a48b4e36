"""The audit log in the store with a real worker: a CLI action taken with `--store` lands in the
store's audit table (PostgreSQL) as well as in the file, and `lazycelery audit --store` reads it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import WorkerProcess, wait_for
from lazycelery.cli import main
from lazycelery.core import audit
from lazycelery.store import open_store
from lazycelery.store.audit import read_audit

pytestmark = pytest.mark.integration


def test_a_cli_revoke_is_audited_in_the_file_and_in_postgresql(
        redis_url: str, celery_worker_factory: Callable[..., WorkerProcess], postgres_url: str,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(audit.AUDIT_ENV, str(tmp_path / "audit.log"))
    monkeypatch.delenv("LAZYCELERY_STORE", raising=False)
    worker = celery_worker_factory(redis_url, backend=redis_url)
    client = worker.app()
    try:
        slow = client.send_task("workerapp.add", args=[1, 2], countdown=120)
        wait_for(lambda: slow.id in str(client.control.inspect(
            destination=[worker.hostname], timeout=3.0).scheduled()), timeout=60,
                 what="the worker to hold the ETA task")
        assert main(["-b", worker.broker, "--store", postgres_url, "task", "revoke", slow.id,
                     "--yes"]) == 0
        capsys.readouterr()
        in_file = audit.read()
        assert [(e.action, e.targets) for e in in_file] == [("revoke", [slow.id])]
        store = open_store(postgres_url, writer=False)
        assert read_audit(store) == in_file
        store.close()
        assert main(["audit", "--store", postgres_url, "--json"]) == 0
        [line] = capsys.readouterr().out.splitlines()
        assert json.loads(line)["targets"] == [slow.id]
    finally:
        client.close()
