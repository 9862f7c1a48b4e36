"""Reports from a real run: a real `celery worker -E` on Redis, `lazycelery record` as a
subprocess with a report schedule every minute to a real HTTP receiver and a file; then
`lazycelery report --since 1h` agrees with what the worker did."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from notify_receiver import receiver
from test_store_record import RecordProcess, _send_until_recorded, _try_open

from conftest import ROOT, WorkerProcess, wait_for
from lazycelery.store import Store

pytestmark = pytest.mark.integration


@pytest.mark.timeout(300)
def test_a_recorder_sends_scheduled_reports_and_report_agrees(
        redis_url: str, celery_worker_factory: Callable[..., WorkerProcess],
        tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    worker = celery_worker_factory(redis_url, backend=redis_url, concurrency=2)
    app = worker.app()
    with receiver([200]) as hook:
        config = tmp_path / "config.toml"
        config.write_text(f"""
[notify]
dead_letter = "{tmp_path / 'dead.ndjson'}"
[notify.channels.ops]
type = "webhook"
url = "{hook.url}"
secret = "s"
[[reports.schedules]]
name = "minutely"
cron = "* * * * *"
since = "1h"
format = "json"
channels = ["ops"]
file = "{tmp_path / 'report-{time}.json'}"
""")
        recorder = RecordProcess(redis_url, store_url, tmp_path, "--config", str(config))
        reader: Store | None = None
        try:
            reader = wait_for(lambda: _try_open(store_url), timeout=60, what="the store")
            assert reader is not None
            _send_until_recorded(app, reader)
            failing = [app.send_task("workerapp.always_fail", args=(f"p{i}",)) for i in range(3)]
            for result in failing:
                wait_for(lambda r=result: r.state == "FAILURE", what="a failure")
            wait_for(lambda: reader is not None and len(reader.query(
                "SELECT uuid FROM tasks WHERE state = 'FAILURE'")) == 3, what="failures stored")
            # the next cron minute (at most 60 s + one 10 s tick away)
            wait_for(lambda: any(json.loads(r.body)["kind"] == "report" for r in hook.requests),
                     timeout=120, interval=0.5, what="a scheduled report at the receiver")
        finally:
            code = recorder.terminate()
            recorder.close()
            if reader is not None:
                reader.close()
        assert code == 0, recorder.stderr()
        assert "Traceback" not in recorder.stderr()
        assert "report schedules: 1, the next at " in recorder.stderr()
        assert ", 0 dead-lettered, 0 redelivered, 0 lost (queue full)" in recorder.stderr()
    body = json.loads(next(r.body for r in hook.requests if json.loads(r.body)["kind"] == "report"))
    sent = body["payload"]["report"]
    assert body["key"] == "report:minutely"
    assert sent["errors"] and sent["errors"][0]["task_names"] == {"workerapp.always_fail": 3}
    assert list(tmp_path.glob("report-*.json"))

    done = subprocess.run(
        [sys.executable, "-m", "lazycelery", "--config", str(config), "--store", store_url,
         "report", "--since", "1h", "--format", "json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["volume"]["states"]["FAILURE"] == 3
    assert doc["volume"]["total"] == doc["volume"]["states"]["FAILURE"] + \
        doc["volume"]["states"]["SUCCESS"]
    (group,) = doc["errors"]
    assert group["count"] == 3 and group["title"].startswith("ValueError")
    assert {w["hostname"] for w in doc["workers"]} == {worker.hostname}
    assert doc["gaps"]["recorded_s"] > 0


@pytest.mark.timeout(180)
def test_report_listen_reports_a_live_window_without_a_store(
        redis_url: str, celery_worker_factory: Callable[..., WorkerProcess],
        tmp_path: Path) -> None:
    worker = celery_worker_factory(redis_url, backend=redis_url, concurrency=2)
    app = worker.app()
    err = tmp_path / "report.stderr"
    with err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lazycelery", "--broker", redis_url, "--store",
             f"sqlite:///{tmp_path / 'none.sqlite3'}", "report", "--listen", "20",
             "--format", "json"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, start_new_session=True)
    try:
        wait_for(lambda: "listening to" in err.read_text(), timeout=60, what="listening")
        # "listening" is said once the subscription is confirmed: nothing sent after is missed
        results = [app.send_task("workerapp.always_fail", args=(f"p{i}",)) for i in range(2)]
        results += [app.send_task("workerapp.add", args=(i, i)) for i in range(5)]
        for result in results:
            wait_for(lambda r=result: r.state in ("SUCCESS", "FAILURE"), what="a result")
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, err.read_text()
    doc = json.loads(out)
    assert doc["volume"]["states"] == {"FAILURE": 2, "SUCCESS": 5}
    assert doc["errors"][0]["task_names"] == {"workerapp.always_fail": 2}
    assert doc["gaps"]["recorded_s"] > 0
    assert not (tmp_path / "none.sqlite3").exists()
