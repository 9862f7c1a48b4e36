"""`lazycelery errors --listen` against a real worker raising real exceptions (tests/data/errors/
errorapp.py: sqlite3, redis-py, kombu, application errors): the failures are grouped by cause,
one group per kind whatever ids and values the messages carry, and the redis-py / kombu
connection errors are clustered as similar."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from conftest import ROOT, WorkerProcess, free_port, wait_for

APP_DIR = ROOT / "tests" / "data" / "errors"


def start_worker(broker: str, queue: str, log: Path) -> WorkerProcess:
    hostname = f"lcerr-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    env = dict(os.environ, LC_BROKER=broker, LC_QUEUE=queue, ERR_CLOSED_PORT=str(free_port()),
               PYTHONPATH=str(APP_DIR))
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "errorapp", "worker", "-n", hostname, "-Q",
             queue, "-c", "2", "-P", "prefork", "-E", "--without-mingle", "--without-gossip",
             "-l", "info"], cwd=str(APP_DIR), env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    return WorkerProcess(hostname=hostname, broker=broker, queue=queue, proc=proc, log=log)


#: (task, args, times): 13 failures of 6 kinds
SENT = [
    ("shop.charge", [(501, 120.0), (502, 333.3), (777, 101.0)]),
    ("shop.lookup_user", [("a@example.com",), ("b@example.org",)]),
    ("shop.daily_report", [("2026-01-01",), ("2026-02-02",)]),
    ("shop.save_user", [("x@example.com",), ("y@example.com",)]),
    ("shop.cache_get", [("k1",), ("k2",)]),
    ("shop.publish", [(1,), (2,)]),
]


@pytest.mark.timeout(240)
def test_errors_groups_a_real_workers_failures(redis_url: str, tmp_path: Path) -> None:
    queue = f"lcerr-{uuid.uuid4().hex[:8]}"
    cli = subprocess.Popen(
        [sys.executable, "-m", "lazycelery", "errors", "--broker", redis_url, "--config",
         os.devnull, "--listen", "180", "--limit", "13", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    worker = start_worker(redis_url, queue, tmp_path / "worker.log")
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.extend(cli.stderr or []), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("listening to" in line for line in stderr), timeout=60,
                 what="lazycelery errors to listen")
        wait_for(lambda: worker.proc.poll() is not None or worker.ping(), timeout=60,
                 interval=0.2, what="the worker to answer ping")
        assert worker.proc.poll() is None, worker.output()[-3000:]
        app = worker.app()
        try:
            for name, calls in SENT:
                for args in calls:
                    app.send_task(name, args=args, queue=queue)
        finally:
            app.close()
        out, _ = cli.communicate(timeout=120)
    finally:
        if cli.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(cli.pid, signal.SIGTERM)
            cli.wait(10)
        worker.stop()
    assert cli.returncode == 0, "".join(stderr)
    doc = json.loads(out)
    assert doc["sources"]["live"]["stopped_by_limit"] is True
    groups = {next(iter(g["tasks"])): g for g in doc["groups"]}
    assert {name: g["count"] for name, g in groups.items()} == {
        "shop.charge": 3, "shop.lookup_user": 2, "shop.daily_report": 2, "shop.save_user": 2,
        "shop.cache_get": 2, "shop.publish": 2}
    assert all(len(g["tasks"]) == 1 for g in doc["groups"])
    assert groups["shop.charge"]["message"] == "card declined for order <n>: amount <n> over limit"
    assert groups["shop.lookup_user"]["exception"] == "KeyError"
    assert groups["shop.daily_report"]["exception"] == "sqlite3.OperationalError"
    assert groups["shop.save_user"]["exception"] == "sqlite3.IntegrityError"
    assert groups["shop.cache_get"]["exception"] == "redis.exceptions.ConnectionError"
    assert groups["shop.publish"]["exception"] == "kombu.exceptions.OperationalError"
    assert groups["shop.charge"]["frames"] == ["errors/errorapp.py:charge",
                                               "errors/errorapp.py:_card_limit"]
    assert set(groups["shop.charge"]["workers"]) == {worker.hostname}
    clustered = [sorted(next(iter(g["tasks"])) for g in doc["groups"]
                        if g["group"] in c["groups"]) for c in doc["clusters"]]
    assert clustered == [["shop.cache_get", "shop.publish"]]
