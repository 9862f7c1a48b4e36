"""Alert rules on a real `celery worker -E` (Redis): `lazycelery record` and `lazycelery
serve` with a short-window rule see real failures, the rule fires and then resolves; seen
through `lazycelery alerts --json` (the published state file), `GET /api/alerts` and the
one log line per transition; then `alerts test` replays the recorded history."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_serve_helpers import Server, servers  # noqa: F401
from test_store_record import RecordProcess, _send_until_recorded, _try_open
from test_tail_helpers import assert_no_traceback

from conftest import ROOT, WorkerProcess, wait_for

# the rule fires for about its window (15 s) and resolves one window after the last failure:
# long enough to be seen firing through `lazycelery alerts --json`, a Python process that can
# take seconds to start on a loaded machine (with a 3 s window a poll could miss it)
pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

Factory = Callable[..., WorkerProcess]

RULES = """
[[alerts.rules]]
name = "fails"
kind = "failures"
filter = "name:workerapp.always_fail"
count = 3
window = "15s"
notify = ["ops"]

[[alerts.rules]]
name = "busy"
kind = "queue_depth"
threshold = 1000000
"""


@pytest.fixture
def alerts_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(RULES)
    monkeypatch.setenv("LAZYCELERY_CONFIG", str(config))
    monkeypatch.setenv("LAZYCELERY_ALERTS_DIR", str(tmp_path / "alerts"))
    return config


def alerts(*args: str) -> Any:
    done = subprocess.run([sys.executable, "-m", "lazycelery", "alerts", *args],
                          cwd=ROOT, env=dict(os.environ), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert_no_traceback(done.stderr)
    return json.loads(done.stdout) if "--json" in args else done.stdout


def state_of(rule: str) -> str:
    listed = alerts("--json")
    return str(next(r["state"] for r in listed["rules"] if r["name"] == rule))


def test_record_fires_then_resolves_and_alerts_test_replays_it(
        redis_url: str, celery_worker_factory: Factory, alerts_env: Path,
        tmp_path: Path) -> None:
    worker = celery_worker_factory(redis_url, backend=redis_url)
    app = worker.app()
    store = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    recorder = RecordProcess(redis_url, store, tmp_path)
    try:
        reader = wait_for(lambda: _try_open(store), timeout=60, what="the store")
        _send_until_recorded(app, reader)
        assert state_of("fails") == "ok"
        failing = [app.send_task("workerapp.always_fail", args=(i,)) for i in range(5)]
        wait_for(lambda: state_of("fails") == "firing", timeout=60, interval=0.5,
                 what="the rule to fire")
        listed = alerts("--json")
        fails = next(r for r in listed["rules"] if r["name"] == "fails")
        assert listed["evaluator"]["running"] and fails["members"] == ["workerapp.always_fail"]
        assert set(fails["tasks"]) <= {r.id for r in failing} and fails["tasks"]
        # no more failures: the window empties and the rule resolves
        wait_for(lambda: state_of("fails") == "resolved", timeout=60, interval=0.5,
                 what="the rule to resolve")
        assert state_of("busy") == "ok"
        assert recorder.terminate() == 0
        err = recorder.stderr()
        assert_no_traceback(err)
        lines = [line for line in err.splitlines() if line.startswith("lazycelery: alert ")]
        assert [line.split()[3] for line in lines] == ["firing:", "resolved:"], err
        assert "alerts: 2 rule(s)" in err

        replayed = alerts("test", "fails", "--since", "10m", "--store", store, "--json")
        kinds = [t["state"] for t in replayed["transitions"]]
        assert kinds[:2] == ["firing", "resolved"] and replayed["events"] > 0
        assert set(replayed["transitions"][0]["tasks"]) <= {r.id for r in failing}
    finally:
        recorder.close()


def test_serve_exposes_the_firing_rule_and_a_silence_is_shown(
        redis_url: str, celery_worker_factory: Factory, alerts_env: Path,
        servers: Callable[..., Server],  # noqa: F811
        tmp_path: Path) -> None:
    worker = celery_worker_factory(redis_url, backend=redis_url)
    app = worker.app()
    serve = servers("serve", redis_url, worker.queue, backend=redis_url,
                    config_text=alerts_env.read_text())
    url = f"{serve.url}/api/alerts"
    first = httpx.get(url).json()
    assert first["configured"] and {r["name"] for r in first["rules"]} == {"fails", "busy"}
    assert alerts("silence", "fails", "--for", "1h").startswith("silenced fails until ")

    def firing() -> Any:
        app.send_task("workerapp.always_fail", args=("x",))  # PUB/SUB: until serve hears them
        found = httpx.get(url, params={"state": "firing"}).json()
        return found["rules"] if found["firing"] else None

    rules = wait_for(firing, timeout=60, interval=0.5, what="/api/alerts to list it firing")
    assert [r["name"] for r in rules] == ["fails"]
    assert rules[0]["silenced_until"] is not None
    bad = httpx.get(url, params={"state": "burning"})
    assert bad.status_code == 400 and "state: unknown 'burning'" in bad.json()["error"]
    wait_for(lambda: httpx.get(url, params={"state": "resolved"}).json()["rules"],
             timeout=60, interval=0.5, what="the rule to resolve")
    assert serve.stop() == 0
    output = serve.output()
    assert_no_traceback(output)
    assert "alert fails firing: " in output and "(not notified: silenced)" in output
