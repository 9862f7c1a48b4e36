"""The Celery app that integration tests run real workers with.

Broker, backend and queue come from the environment so one module serves Redis and RabbitMQ:
LC_BROKER, LC_BACKEND (optional), LC_QUEUE (default ``lc-test``: a private queue, so other
workers on a shared broker never take these tasks), LC_BROKER_CA (optional: the CA file an
``amqps://`` broker's certificate is checked against, as ``broker_use_ssl``).
"""

from __future__ import annotations

import os
import ssl
import time
from typing import Any

from celery import Celery

BROKER = os.environ.get("LC_BROKER", "redis://127.0.0.1:6379/15")
BACKEND = os.environ.get("LC_BACKEND") or None
QUEUE = os.environ.get("LC_QUEUE", "lc-test")

app = Celery("workerapp", broker=BROKER, backend=BACKEND, set_as_current=True)
app.conf.update(
    task_send_sent_event=True,
    worker_send_task_events=True,
    task_track_started=True,
    task_default_queue=QUEUE,
    result_extended=True,
    result_expires=600,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_pool_restarts=True,
)
if os.environ.get("LC_BROKER_CA"):
    app.conf.broker_use_ssl = {"ca_certs": os.environ["LC_BROKER_CA"],
                               "cert_reqs": ssl.CERT_REQUIRED}


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def sleepy(seconds: float = 0.1) -> float:
    time.sleep(seconds)
    return seconds


def _explode(payload: Any) -> None:
    raise ValueError(f"bad payload: {payload!r}")


@app.task
def always_fail(payload: Any = None) -> None:
    _explode(payload)


@app.task(bind=True, max_retries=3, default_retry_delay=0.05)
def flaky(self: Any, n: int, fail_for: int = 1) -> int:
    """Retries ``fail_for`` times (same task id, retries counter grows), then returns n."""
    if self.request.retries < fail_for:
        raise self.retry(countdown=0.05, exc=RuntimeError(f"transient failure {self.request.retries}"))
    return n


@app.task
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


# --- actions tests (issue 5) -----------------------------------------------------------------


def _marker(token: str) -> str:
    import tempfile

    return os.path.join(os.environ.get("LC_STATE_DIR") or tempfile.gettempdir(), f"lc-fail-once-{token}")


@app.task
def fail_once(token: str, value: Any, **extra: Any) -> dict[str, Any]:
    """Fails on its first call for ``token`` (a marker file records the call), then succeeds:
    a re-sent copy with the same args shows that a retry really carried them."""
    try:
        fd = os.open(_marker(token), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return {"value": value, "extra": extra}
    os.close(fd)
    raise RuntimeError(f"first call for {token} fails on purpose")


@app.task
def long_running(seconds: float = 60.0) -> float:
    """Sleeps in small steps (a terminate test kills it long before it ends)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return seconds
