"""End to end: `lazycelery --all-envs` in a pseudo-terminal over a Redis db and a RabbitMQ vhost,
each with a real `celery worker -E`, and an environment on a closed port. The Clusters pane says
why the closed one is down, E switches (the header and every pane follow), the read-only
environment refuses an action, q quits."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pexpect = pytest.importorskip("pexpect")
pytest.importorskip("pyte")

from test_dashboard_pty import COLS, ROWS, Terminal  # noqa: E402

from conftest import free_port  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture
def envs_terminal(tmp_path: Path) -> Iterator[Callable[[Path], Terminal]]:
    made: list[Terminal] = []

    def start(config: Path) -> Terminal:
        env = dict(os.environ, TERM="xterm-256color", LANG="C.UTF-8", LC_ALL="C.UTF-8")
        for name in ("NO_COLOR", "CELERY_BROKER_URL", "LAZYCELERY_CONFIG"):
            env.pop(name, None)
        term = Terminal(sys.executable, ["-m", "lazycelery", "--config", str(config),
                                         "--all-envs", "--no-plugins"], env, ROWS, COLS + 20)
        made.append(term)
        return term

    yield start
    for term in made:
        if term.child.isalive():
            term.child.terminate(force=True)


def _header(screen: str) -> str:
    return screen.splitlines()[0]


def test_two_real_clusters_and_a_closed_port_in_one_dashboard(
        tmp_path: Path, redis_url: str, amqp_url: str, celery_worker_factory: Any,
        envs_terminal: Callable[[Path], Terminal]) -> None:
    red = celery_worker_factory(redis_url)
    rabbit = celery_worker_factory(amqp_url)
    config = tmp_path / "config.toml"
    config.write_text(f'[environments.red]\nbroker = "{redis_url}"\ncolor = "red"\n'
                      'read_only = true\n'
                      f'[environments.rabbit]\nbroker = "{amqp_url}"\nmanagement_url = "none"\n'
                      f'[environments.down]\nbroker = "redis://127.0.0.1:{free_port()}/0"\n')
    term = envs_terminal(config)
    red_host, rabbit_host = (w.hostname.split("@")[0] for w in (red, rabbit))
    term.wait_for(lambda s: " red " in _header(s) and red_host in s, 60,
                  "red's dashboard with its worker")
    app = red.app()
    try:
        app.send_task("workerapp.add", (1, 2))
    finally:
        app.close()
    term.wait_for(lambda s: "workerapp.add" in s and "SUCCESS" in s, 60, "red's task")

    term.press("0")  # the Clusters pane: one row per environment
    screen = term.wait_for(lambda s: "Connection refused" in s and "* red (ro)" in s, 60,
                           "the cluster view")
    assert "rabbit" in screen and "down" in screen

    term.press("E")  # every pane follows: rabbit's workers, rabbit's tasks
    term.wait_for(lambda s: " rabbit " in _header(s) and rabbit_host in s
                  and red_host not in s, 60, "rabbit's dashboard")
    app = rabbit.app()
    try:
        app.send_task("workerapp.always_fail", ("pty",))
    finally:
        app.close()
    screen = term.wait_for(lambda s: "workerapp.always_fail" in s, 60, "rabbit's task")
    assert "workerapp.add" not in screen  # red's task is in red's dashboard only

    term.press("EE")  # down, then red again: read-only there
    term.wait_for(lambda s: " red " in _header(s) and "READ-ONLY" in _header(s), 60,
                  "back to red")
    term.press("3")  # the tasks pane, then retry the selected task
    term.press("r")
    term.wait_for(lambda s: "read-only" in s, 60, "the refusal")
    term.press("q")
    term.child.expect(pexpect.EOF, timeout=60)
