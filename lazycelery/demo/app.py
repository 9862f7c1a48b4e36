"""The demo's Celery app (``celery -A lazycelery.demo.app``), configured by LAZYCELERY_DEMO_* vars."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

from celery.signals import beat_init, worker_ready

from lazycelery.demo.environment import ENV_PARENT, DemoEnvironment
from lazycelery.demo.factory import create_app

__all__ = ["app", "environment", "watch_parent"]


def watch_parent(parent_pid: int, interval: float = 1.0,
                 signum: int = signal.SIGQUIT) -> threading.Thread:
    """Send ourselves ``signum`` (SIGQUIT: a worker's cold shutdown) once ``parent_pid`` is no
    longer our parent: `lazycelery demo` was killed without a chance to stop us (SIGKILL, a
    crash)."""
    def watch() -> None:
        # There is nothing to block on for another process's death: look once a second.
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os.kill(os.getpid(), signum)

    thread = threading.Thread(target=watch, name="lazycelery-demo-parent", daemon=True)
    thread.start()
    return thread


def _parent_pid() -> int | None:
    parent = os.environ.get(ENV_PARENT, "")
    return int(parent) if parent.isdigit() else None


def _watch_parent_when_ready(**_: Any) -> None:
    # worker_ready fires after the pool has forked its processes: the thread is not forked.
    parent = _parent_pid()
    if parent is not None:
        watch_parent(parent)


def _watch_parent_from_beat(**_: Any) -> None:
    # beat stops cleanly on SIGTERM (it saves its schedule); it has no SIGQUIT handler.
    parent = _parent_pid()
    if parent is not None:
        watch_parent(parent, signum=signal.SIGTERM)


worker_ready.connect(_watch_parent_when_ready, weak=False)
beat_init.connect(_watch_parent_from_beat, weak=False)


environment = DemoEnvironment.from_environ(os.environ)
environment.make_dirs()
app = create_app(environment)
app.set_current()
