"""Issue 13's "done when" on real processes: two real `celery worker -E` of tests/data/errors/
errorapp.py on one queue, one of them bad (ERR_BAD_WORKER: it cannot write the resize output
the other writes), a mix of failures (application errors, a flaky dependency retried), all
seen by a real `lazycelery serve --store`. The error groups are the right ones and the root-
cause hint names the bad worker, through `/api/v1/errors` and through `lazycelery errors`,
which answer the same document."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_serve_helpers import Server, servers  # noqa: F401

from conftest import ROOT, WorkerProcess, free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
pytest.importorskip("starlette", reason="the serve extra")

from lazycelery.serve.auth import hash_token  # noqa: E402

APP_DIR = ROOT / "tests" / "data" / "errors"
TOKEN = "viewer-token-errors-0123456789"
CONFIG = f"""
[[serve.tokens]]
name = "viewer"
sha256 = "{hash_token(TOKEN)}"
role = "viewer"
"""
VIEW = {"Authorization": f"Bearer {TOKEN}"}
RESIZES = 40
#: (task, argument lists): application errors of three kinds and a flaky dependency
OTHERS = [
    ("shop.charge", [(501, 120.0), (502, 333.3), (777, 101.0)]),
    ("shop.lookup_user", [("a@example.com",), ("b@example.org",)]),
    ("shop.sync_inventory", [(77,), (78,)]),
]


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(broker: str, queue: str, name: str, *, bad: bool) -> WorkerProcess:
        hostname = f"{name}-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
        env = dict(os.environ, LC_BROKER=broker, LC_QUEUE=queue,
                   ERR_CLOSED_PORT=str(free_port()), PYTHONPATH=str(APP_DIR))
        env.pop("ERR_BAD_WORKER", None)
        if bad:
            env["ERR_BAD_WORKER"] = "1"
        log = tmp_path / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "errorapp", "worker", "-n", hostname,
                 "-Q", queue, "-c", "1", "-P", "prefork", "-E", "--without-mingle",
                 "--without-gossip", "-l", "info"], cwd=str(APP_DIR), env=env, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)
        worker = WorkerProcess(hostname=hostname, broker=broker, queue=queue, proc=proc,
                               log=log)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def _finished(url: str, since: str) -> list[dict[str, Any]]:
    """The resize tasks (the export reads the store serve records into, and memory's tasks
    not flushed to it yet)."""
    got = httpx.get(f"{url}/api/v1/export", headers=VIEW, timeout=30, params={
        "q": "name:shop.resize", "since": since, "format": "ndjson"})
    assert got.status_code == 200, got.text
    return [r for r in map(json.loads, got.text.splitlines())
            if r["state"] in ("SUCCESS", "FAILURE")]


def test_the_hint_names_the_bad_worker(redis_url: str, tmp_path: Path,
                                       workers: Callable[..., WorkerProcess],
                                       servers: Callable[..., Server]) -> None:  # noqa: F811
    queue = f"lcbad-{uuid.uuid4().hex[:8]}"
    since = datetime.fromtimestamp(time.time() - 5).isoformat(timespec="seconds")
    store = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    serve = servers("serve", redis_url, queue, config_text=CONFIG, args=["--store", store])
    plain = servers("serve", redis_url, queue, config_text=CONFIG)  # no store: memory
    good = workers(redis_url, queue, "good", bad=False)
    bad = workers(redis_url, queue, "bad", bad=True)
    for w in (good, bad):
        wait_for(lambda w=w: w.proc.poll() is not None or w.ping(), timeout=60, interval=0.2,
                 what=f"{w.hostname} to answer ping")
        assert w.proc.poll() is None, w.output()[-3000:]
    for server in (serve, plain):
        wait_for(lambda server=server: {good.hostname, bad.hostname} <= {
            w["hostname"] for w in httpx.get(f"{server.url}/api/v1/workers", headers=VIEW,
                                             timeout=10).json()["workers"]},
            timeout=60, what="serve to see both workers")
    app = good.app()
    try:
        for i in range(RESIZES):
            app.send_task("shop.resize", args=(3000 + i,), queue=queue)
        for name, calls in OTHERS:
            for args in calls:
                app.send_task(name, args=args, queue=queue)
    finally:
        app.close()
    wait_for(lambda: len(_finished(serve.url, since)) == RESIZES, timeout=120, interval=0.5,
             what="every resize finished in the store")
    ran = {w: sum(r["worker"] == w for r in _finished(serve.url, since))
           for w in (good.hostname, bad.hostname)}
    assert all(ran.values()), ran  # both workers took resizes

    # the retried flaky dependency's last failure is in the store too
    wait_for(lambda: len(httpx.get(f"{serve.url}/api/v1/export", headers=VIEW, params={
        "q": "name:shop.* state:failure -name:shop.resize", "since": since,
        "format": "ndjson"}, timeout=30).text.splitlines()) == 7, timeout=60, interval=0.5,
        what="the other failures in the store")

    def errors_doc() -> dict[str, Any]:
        got = httpx.get(f"{serve.url}/api/v1/errors", params={"since": since}, headers=VIEW,
                        timeout=60)
        assert got.status_code == 200, got.text
        out: dict[str, Any] = got.json()
        return out

    # the export includes what the writer has not flushed yet: wait for the store to hold it
    # all (no ``memory`` source), so the CLI reading the store alone agrees below
    wait_for(lambda: "memory" not in errors_doc()["sources"], timeout=60, interval=0.5,
             what="every task flushed to the store")
    doc = errors_doc()
    groups = {next(iter(g["tasks"])): g for g in doc["groups"]}
    assert set(groups) == {"shop.resize", "shop.charge", "shop.lookup_user",
                           "shop.sync_inventory"}
    resize = groups["shop.resize"]
    assert resize["exception"] == "FileNotFoundError"
    assert resize["count"] == ran[bad.hostname]
    assert resize["workers"] == {bad.hostname: ran[bad.hostname]}
    worker_hints = [h for h in resize["hints"] if h["kind"] == "worker"]
    assert len(worker_hints) == 1, resize["hints"]
    assert worker_hints[0]["evidence"]["value"] == bad.hostname
    assert bad.hostname in worker_hints[0]["text"]
    assert groups["shop.charge"]["count"] == 3
    assert groups["shop.lookup_user"]["exception"] == "KeyError"
    assert groups["shop.sync_inventory"]["exception"] == "redis.exceptions.ConnectionError"
    assert not any(h["kind"] == "worker" and h["evidence"]["value"] == good.hostname
                   for g in doc["groups"] for h in g["hints"])

    # the group's tasks and the CLI's document on the same store
    tasks = httpx.get(f"{serve.url}/api/v1/errors/{resize['group']}", headers=VIEW,
                      params={"since": since, "limit": 1000}, timeout=60).json()
    assert {t["worker"] for t in tasks["tasks"]} == {bad.hostname}
    assert tasks["count"] == resize["count"]
    env = dict(os.environ)
    env.pop("LAZYCELERY_STORE", None)
    cli = subprocess.run([sys.executable, "-m", "lazycelery", "errors", "--config", os.devnull,
                          "--store", store, "--since", since, "--json"], capture_output=True,
                         text=True, timeout=120, env=env)
    assert cli.returncode == 0, cli.stderr
    want = json.loads(cli.stdout)
    for side in (want, doc):
        side["sources"]["history"].pop("until")
    assert doc == want

    # serve without a store answers from memory: the same groups, the same worker hint
    def memory_doc() -> dict[str, Any]:
        got = httpx.get(f"{plain.url}/api/v1/errors", params={"since": since}, headers=VIEW,
                        timeout=60)
        assert got.status_code == 200, got.text
        out: dict[str, Any] = got.json()
        return out

    wait_for(lambda: memory_doc()["failures"] == ran[bad.hostname] + 7, timeout=60,
             interval=0.5, what="the failures in serve's memory")
    live = memory_doc()
    assert "memory" in live["sources"]
    counts = {g["group"]: g["count"] for g in live["groups"]}
    # memory counts a task once with its last outcome: the two retried tasks are 2, not 6
    retried = groups["shop.sync_inventory"]["group"]
    assert counts.pop(retried) == 2 and groups["shop.sync_inventory"]["count"] == 6
    assert counts == {g["group"]: g["count"] for g in doc["groups"] if g["group"] != retried}
    live_resize = next(g for g in live["groups"] if g["group"] == resize["group"])
    assert [h["evidence"]["value"] for h in live_resize["hints"] if h["kind"] == "worker"] \
        == [bad.hostname]
