"""`lazycelery --server URL --token T`: the real dashboard in a pseudo-terminal (pyte reads
the screen back) attached to a real `lazycelery serve` with a real worker on Redis: a task of
the server's snapshot and a live one from its stream show on the remote screen, the header
names the server and the token's role, and `q` quits."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_dashboard_pty import Terminal
from test_serve_helpers import Server, servers  # noqa: F401
from test_serve_v1 import CONFIG, VIEW, VIEWER_TOKEN, send_add

from conftest import wait_for

pexpect = pytest.importorskip("pexpect")
pytest.importorskip("pyte")
pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
def remote_terminal(tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    made: list[Terminal] = []

    def start(*args: str) -> Terminal:
        env = dict(os.environ, TERM="xterm-256color", LANG="C.UTF-8", LC_ALL="C.UTF-8",
                   LAZYCELERY_CONFIG=os.devnull, LAZYCELERY_TOKEN=VIEWER_TOKEN)
        env.pop("NO_COLOR", None)
        term = Terminal(sys.executable, ["-m", "lazycelery", *args], env)
        made.append(term)
        return term

    yield start
    for term in made:
        if term.child.isalive():
            term.child.terminate(force=True)


def test_dashboard_attached_to_serve(redis_url: str, celery_worker_factory: Callable[..., Any],
                                     servers: Callable[..., Server],  # noqa: F811
                                     remote_terminal: Callable[..., Terminal]) -> None:
    worker = celery_worker_factory(redis_url, backend=redis_url)
    serve = servers("serve", redis_url, worker.queue, backend=redis_url, config_text=CONFIG)
    before = send_add(serve.url, 20, 22)  # in the server's snapshot when the dashboard starts
    wait_for(lambda: httpx.get(f"{serve.url}/api/v1/tasks/{before}", headers=VIEW)
             .json()["task"]["state"] == "SUCCESS", what="the first task")
    term = remote_terminal("--server", serve.url)
    term.wait_for(lambda s: before[:8] in s, what="the snapshot's task on screen")
    assert "127.0.0.1" in term.text and "viewer" in term.text
    live = send_add(serve.url, 1, 2)
    term.wait_for(lambda s: live[:8] in s, what="a live task from the stream on screen")
    term.press("q")
    term.child.expect(pexpect.EOF, timeout=60)
