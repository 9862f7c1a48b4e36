"""Several environments in one process against real brokers: a Redis db and a RabbitMQ vhost,
each with a real `celery worker -E`, and a third environment pointing at a closed port. The
closed one says why in one line; the two others keep streaming."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, WorkerProcess, _db_cycle, free_port, wait_for

pytestmark = pytest.mark.integration

Factory = Callable[..., WorkerProcess]


def _config(path: Path, redis_url: str, amqp_url: str) -> Path:
    config = path / "config.toml"
    config.write_text(f"""
[environments.red]
broker = "{redis_url}"
color = "red"
read_only = true

[environments.rabbit]
broker = "{amqp_url}"
management_url = "none"

[environments.down]
broker = "redis://:hunter2@127.0.0.1:{free_port()}/0"
""")
    return config


@pytest.fixture
def two_clusters(tmp_path: Path, redis_url: str, amqp_url: str,
                 celery_worker_factory: Factory) -> Iterator[tuple[Path, dict[str, WorkerProcess]]]:
    workers = {"red": celery_worker_factory(redis_url),
               "rabbit": celery_worker_factory(amqp_url)}
    yield _config(tmp_path, redis_url, amqp_url), workers


def _send(worker: WorkerProcess, task: str, *args: Any) -> None:
    app = worker.app()
    try:
        app.send_task(task, args=args)
    finally:
        app.close()


def test_each_environment_streams_and_the_closed_one_says_why(
        two_clusters: tuple[Path, dict[str, WorkerProcess]]) -> None:
    from lazycelery.config_envs import resolve_envs
    from lazycelery.core.envs import EnvSet

    config, workers = two_clusters
    choices, _ = resolve_envs(argparse.Namespace(config=str(config), all_envs=True),
                              environ={})
    envs = EnvSet.from_choices(choices)
    envs.build()
    envs.start()
    try:
        for name, worker in workers.items():
            def succeeded(name: str = name, worker: WorkerProcess = worker) -> bool:
                _send(worker, "workerapp.add", 2, 3)  # again until the stream is up
                return envs[name].index.by_state.get("SUCCESS", 0) > 0
            wait_for(succeeded, timeout=60, interval=0.5, what=f"a success in {name}")
            wait_for(lambda name=name: envs[name].status().workers_online >= 1,  # type: ignore[misc]
                     timeout=60, what=f"a worker online in {name}")
        _send(workers["red"], "workerapp.always_fail", "boom")
        wait_for(lambda: envs["red"].index.by_state.get("FAILURE", 0) > 0, timeout=60,
                 what="the failure in red")
        down = wait_for(lambda: _reconnecting(envs["down"].status()), timeout=60,
                        what="the closed port's reason")
        assert "Connection refused" in down.connection_text()
        assert "\n" not in down.describe() and "hunter2" not in down.describe()
        # the other two are unaffected by the broken one
        red, rabbit = envs["red"].status(), envs["rabbit"].status()
        assert red.state == rabbit.state == "connected"
        assert red.read_only and not rabbit.read_only and red.color == "red"
        assert red.failure_rate is not None and red.failure_rate > 0
        assert rabbit.failure_rate == 0.0
        # the tasks of one cluster are in its own index only
        red_ids = {r.uuid for r in envs["red"].index.snapshot()}
        rabbit_ids = {r.uuid for r in envs["rabbit"].index.snapshot()}
        assert red_ids and rabbit_ids and not red_ids & rabbit_ids
        one = next(iter(rabbit_ids))
        assert [(f.env, f.task.uuid) for f in envs.find_task(one[:12])] == [("rabbit", one)]
    finally:
        envs.stop()


def _reconnecting(status: Any) -> Any:
    return status if status.state == "reconnecting" and status.why else None


class _Tail:
    """``lazycelery --config FILE tail ARGS`` with stdout and stderr read as they arrive."""

    def __init__(self, config: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if k != "CELERY_BROKER_URL"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lazycelery", "--config", str(config), "tail", *args],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, into in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._read, args=(stream, into), daemon=True).start()

    @staticmethod
    def _read(stream: Any, into: list[str]) -> None:
        for raw in iter(stream.readline, b""):
            into.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def close(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(15)


def test_tail_all_envs_tags_every_line_and_goes_on_past_a_closed_port(
        two_clusters: tuple[Path, dict[str, WorkerProcess]]) -> None:
    config, workers = two_clusters
    tail = _Tail(config, "--all-envs", "--json", "--type", "task-succeeded")
    try:
        for name, worker in workers.items():
            def seen(name: str = name, worker: WorkerProcess = worker) -> bool:
                _send(worker, "workerapp.add", 1, 1)
                return any(json.loads(line).get("env") == name for line in list(tail.out))
            wait_for(seen, timeout=60, interval=0.5, what=f"a line of {name}")
        wait_for(lambda: any(line.startswith("lazycelery: down: cannot connect")
                             for line in list(tail.err)), timeout=60, what="down's line")
        docs = [json.loads(line) for line in list(tail.out)]
        assert {d["env"] for d in docs} == {"red", "rabbit"}
        assert all(d["type"] == "task-succeeded" and next(iter(d)) == "env" for d in docs)
        assert not any("hunter2" in line or "Traceback" in line for line in tail.err)
        assert tail.close() == 0
    finally:
        tail.close()


def test_tail_text_prefixes_the_environment(tmp_path: Path, redis_url: str,
                                            celery_worker_factory: Factory) -> None:
    """Two Redis dbs of one server: two environments whose workers cannot see each other."""
    import redis

    second = f"{redis_url.rsplit('/', 1)[0]}/{next(_db_cycle)}"
    if second == redis_url:
        pytest.skip("one Redis db in LAZYCELERY_TEST_REDIS_DBS: two are needed")

    redis.Redis.from_url(second).flushdb()
    worker = celery_worker_factory(second)
    config = tmp_path / "config.toml"
    config.write_text(f'[environments.one]\nbroker = "{redis_url}"\n'
                      f'[environments.zero]\nbroker = "{second}"\n')
    tail = _Tail(config, "--env", "one", "--env", "zero", "--type", "task-succeeded")
    try:
        def seen() -> bool:
            _send(worker, "workerapp.add", 1, 2)
            return bool(tail.out)
        wait_for(seen, timeout=60, interval=0.5, what="a text line")
        assert all(line.startswith("zero  ") for line in tail.out)
        assert "\x1b" not in tail.out[0]  # a pipe: no colour
    finally:
        tail.close()
        redis.Redis.from_url(second).flushdb()
