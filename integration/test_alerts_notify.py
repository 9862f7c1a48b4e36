"""Alert transitions delivered: a rule with `notify = ["hook"]` fires on real failures of a real
worker (Redis), and a real HTTP receiver gets the `alert.firing` then the `alert.resolved`
webhook, signed with the channel's secret; from `lazycelery record` and from `lazycelery serve`
without a store (serve starts the channels itself)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from notify_receiver import Receiver, receiver
from test_serve_helpers import Server, servers  # noqa: F401

from conftest import ROOT, WorkerProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SECRET = "alert-secret-0123"


def config_text(url: str) -> str:
    return f"""
[notify.channels.hook]
type = "webhook"
url = "{url}"
secret = "{SECRET}"
timeout = 5

[[alerts.rules]]
name = "fails"
kind = "failures"
filter = "name:workerapp.always_fail"
count = 3
window = "3s"
notify = ["hook"]
"""


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as got:
        yield got


def bodies(got: Receiver) -> list[dict[str, Any]]:
    out = []
    for request in list(got.requests):
        signature = request.headers.get("X-Lazycelery-Signature", "")
        expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(signature, expected), request.headers
        out.append(json.loads(request.body))
    return out


def kinds(got: Receiver) -> list[str]:
    return [body["kind"] for body in bodies(got)]


def fail_until_firing(app: Any, got: Receiver) -> None:
    """PUB/SUB keeps nothing for a subscriber that is not there yet: fail until it fires."""
    def fired() -> bool:
        if "alert.firing" not in kinds(got):
            for i in range(3):
                app.send_task("workerapp.always_fail", args=(i,))
        return "alert.firing" in kinds(got)

    wait_for(fired, timeout=90, interval=1.0, what="the alert.firing webhook")


def check(got: Receiver) -> None:
    wait_for(lambda: "alert.resolved" in kinds(got), timeout=60, interval=0.5,
             what="the alert.resolved webhook")
    firing = next(b for b in bodies(got) if b["kind"] == "alert.firing")
    assert firing["version"] == 1 and firing["labels"]["rule"] == "fails"
    assert "name:workerapp.always_fail" in firing["links"].get("filter", ""), firing
    assert kinds(got)[:2] == ["alert.firing", "alert.resolved"]


def test_record_delivers_alert_transitions_to_a_webhook(
        redis_url: str, celery_worker_factory: Callable[..., WorkerProcess], hook: Receiver,
        tmp_path: Path) -> None:
    worker = celery_worker_factory(redis_url, backend=redis_url)
    config = tmp_path / "config.toml"
    config.write_text(config_text(hook.url))
    env = dict(os.environ, LAZYCELERY_CONFIG=str(config),
               LAZYCELERY_ALERTS_DIR=str(tmp_path / "alerts"),
               LAZYCELERY_AUDIT_LOG=str(tmp_path / "audit.log"))
    env.pop("LAZYCELERY_STORE", None)
    err = tmp_path / "record.stderr"
    with err.open("wb") as out:
        recorder = subprocess.Popen(
            [sys.executable, "-m", "lazycelery", "record", "--broker", redis_url,
             "--store", f"sqlite:///{tmp_path / 'h.sqlite3'}", "--status-every", "0"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=out,
            start_new_session=True)
    try:
        wait_for(lambda: "alerts: 1 rule(s)" in err.read_text(), timeout=60,
                 what="the recorder to start its rules")
        fail_until_firing(worker.app(), hook)
        check(hook)
    finally:
        recorder.terminate()
        try:
            recorder.wait(30)
        except subprocess.TimeoutExpired:
            recorder.kill()
            recorder.wait(10)
    text = err.read_text()
    assert "Traceback" not in text and SECRET not in text, text
    assert re.search(r"notifications: [2-9]\d* sent", text), text


def test_serve_without_a_store_delivers_alert_transitions(
        redis_url: str, celery_worker_factory: Callable[..., WorkerProcess], hook: Receiver,
        servers: Callable[..., Server], tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAZYCELERY_ALERTS_DIR", str(tmp_path / "alerts"))
    worker = celery_worker_factory(redis_url, backend=redis_url)
    serve = servers("serve", redis_url, worker.queue, backend=redis_url,
                    config_text=config_text(hook.url))
    fail_until_firing(worker.app(), hook)
    check(hook)
    assert serve.stop() == 0
    assert "Traceback" not in serve.output() and SECRET not in serve.output()
