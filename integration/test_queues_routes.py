"""`lazycelery queues routes` / `queues route TASKNAME` against real brokers and a real worker:
the app's task_routes, the bindings, and the workers consuming each queue (asked by name)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import ROOT, WorkerProcess, wait_for

pytestmark = pytest.mark.integration

APP = """\
import os
from celery import Celery

app = Celery("routedapp", broker=os.environ["LC_BROKER"])
app.conf.task_routes = {{
    "workerapp.add": {{"queue": "{math}"}},
    "workerapp.echo*": {{"queue": "{echoes}"}},
}}
app.conf.task_default_queue = "{default}"
"""


@pytest.fixture(params=["redis", "amqp"])
def broker(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


def test_routes_tree_and_one_task_route(broker: str, tmp_path: Path,
                                        celery_worker_factory: Callable[..., WorkerProcess]
                                        ) -> None:
    suffix = uuid.uuid4().hex[:6]
    math, echoes, default = f"math-{suffix}", f"echoes-{suffix}", f"default-{suffix}"
    (tmp_path / "routedapp.py").write_text(APP.format(math=math, echoes=echoes,
                                                       default=default))
    worker = celery_worker_factory(broker, queue=f"{math},{echoes}")
    env = {k: v for k, v in os.environ.items()
           if k not in ("CELERY_BROKER_URL", "LAZYCELERY_BROKER_URL")}
    env.update(LAZYCELERY_CONFIG=os.devnull, NO_COLOR="1", LC_BROKER=broker,
               PYTHONPATH=os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")]))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lazycelery", "-A", "routedapp",
                               "queues", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=60)

    def consumed() -> dict[str, list[str]] | None:
        tree = json.loads(cli("routes", "--json").stdout)["tree"]
        return tree["consumers"] if {math, echoes} <= set(tree["consumers"]) else None

    consumers = wait_for(consumed, timeout=60, what="the worker's queues in the tree")
    assert consumers[math] == [worker.hostname] and consumers[echoes] == [worker.hostname]
    table = cli("routes")
    assert table.returncode == 0, table.stderr
    assert f"-> queue {math}" in table.stdout and f"consumers: {worker.hostname}" in table.stdout
    assert f"workerapp.add -> {{'queue': '{math}'}}" in table.stdout

    add = cli("route", "workerapp.add")
    assert "routed by: task_routes['workerapp.add']" in add.stdout
    assert f"delivered to queue {math}: consumed by {worker.hostname}" in add.stdout
    echo = json.loads(cli("route", "workerapp.echo", "--json").stdout)["route"]
    assert echo["rule"].startswith("task_routes pattern") and echo["queue"] == echoes
    assert echo["consumers"] == {echoes: [worker.hostname]}
    other = cli("route", "workerapp.sleepy")
    assert "no route matched" in other.stdout and "nobody eats it" in other.stdout
