"""An existing Flower API client works unchanged against `lazycelery serve` (issue 12): the
script integration/flower_client_script.py, written from Flower's API documentation with the
standard library only, is run against Flower 2.x and then against serve on the same real worker;
both runs succeed and print the same lines."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from test_serve_helpers import INTEGRATION, Server, servers  # noqa: F401  (fixture)

from conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
pytest.importorskip("flower", reason="Flower is in the test extra")
pytest.importorskip("starlette", reason="the serve extra")

SCRIPT = INTEGRATION / "flower_client_script.py"


def run_script(server: Server, worker: str, queue: str) -> list[str]:
    done = subprocess.run([sys.executable, str(SCRIPT), server.url, worker, queue],
                          capture_output=True, text=True, timeout=200)
    assert done.returncode == 0, f"{server.url}: {done.stderr}\n{done.stdout}"
    return done.stdout.splitlines()


@pytest.mark.parametrize("transport", ["redis", "amqp"])
def test_a_flower_client_script_runs_unchanged_against_serve(
        transport: str, request: pytest.FixtureRequest,
        celery_worker_factory: Callable[..., Any],
        servers: Callable[..., Server]) -> None:  # noqa: F811
    backend = request.getfixturevalue("redis_url")
    broker = backend if transport == "redis" else request.getfixturevalue("amqp_url")
    worker = celery_worker_factory(broker, backend=backend, concurrency=1)
    flower = servers("flower", broker, worker.queue, backend=backend)
    serve = servers("serve", broker, worker.queue, backend=backend)
    for server in (flower, serve):
        wait_for(lambda s=server: httpx.get(f"{s.url}/api/workers", params={"status": "1"},
                                            timeout=5).json().get(worker.hostname),
                 timeout=60, what="the worker to be seen online")

    theirs = run_script(flower, worker.hostname, worker.queue)
    ours = run_script(serve, worker.hostname, worker.queue)
    assert ours == theirs
    # the script checked something: every boolean it printed is true on both servers
    assert len(ours) >= 20 and not any(line.endswith("False") for line in ours), ours
