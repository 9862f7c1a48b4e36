"""The fleet charts on real workers: two `celery worker -E` processes on Redis (and on RabbitMQ,
its own vhost, results over rpc://), each on its own
queue, run tasks of different durations while a real `lazycelery record` writes the history
store; `lazycelery stats` then reports each worker's exact share, the p95 runtime of each task
name (the slow one at least its sleep) and the SLA breaches of the slow task; `stats resources`
samples one worker's rusage with inspect stats addressed to it only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from test_store_record import RecordProcess, _try_open

from conftest import ROOT, WorkerProcess, wait_for
from lazycelery.store import Store

pytestmark = pytest.mark.integration

Factory = Callable[..., WorkerProcess]
SLOW = 0.6  # seconds each slow task sleeps


@pytest.fixture(params=["redis", "amqp"])
def broker(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(broker URL, result backend URL) of each broker; RabbitMQ users keep results in rpc://
    (the amqp fixture skips with its reason where there is no RabbitMQ)."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url, url if request.param == "redis" else "rpc://"


def stats(*args: str, config: Path | None = None) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("LAZYCELERY_STORE", None)
    done = subprocess.run([sys.executable, "-m", "lazycelery", "stats", *args, "--json",
                           "--config", str(config) if config else os.devnull],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def _probe_until_recorded(app: Any, reader: Store) -> float:
    """Redis PUB/SUB keeps nothing for a subscriber not there yet: probe until one is stored;
    returns the finish time of the last probe (every probe finished by then)."""
    sent: list[str] = []

    def recorded() -> bool:
        sent.append(str(app.send_task("workerapp.echo", args=("probe",)).id))
        found = reader.fetch_tasks(sent)
        return any(rec.state == "SUCCESS" for rec, _ in found.values())

    wait_for(recorded, timeout=60, interval=1.0, what="a probe task in the store")
    for probe in sent:
        app.AsyncResult(probe).get(timeout=60)
    # the last probe was sent once the recorder listened: it is stored; the measured range
    # starts after it (its task-succeeded event may come after its result)
    def finished() -> float | None:
        rec = reader.fetch_tasks(sent[-1:]).get(sent[-1], (None,))[0]
        return rec.succeeded if rec is not None else None

    return float(wait_for(finished, timeout=60, what="the last probe done in the store"))


@pytest.mark.timeout(300)
def test_two_workers_shares_p95_and_sla(broker: tuple[str, str], celery_worker_factory: Factory,
                                        tmp_path: Path) -> None:
    broker_url, backend = broker
    w1 = celery_worker_factory(broker_url, backend=backend, concurrency=2)
    w2 = celery_worker_factory(broker_url, backend=backend, concurrency=1)
    app1, app2 = w1.app(), w2.app()
    store_url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    recorder = RecordProcess(broker_url, store_url, tmp_path)
    reader: Store | None = None
    try:
        reader = wait_for(lambda: _try_open(store_url), timeout=60, what="the store")
        probed = _probe_until_recorded(app1, reader)
        since = datetime.fromtimestamp(probed + 0.001, timezone.utc).isoformat()
        fast = [app1.send_task("workerapp.add", args=(i, i)) for i in range(9)]
        slow = [app1.send_task("workerapp.sleepy", args=(SLOW,)) for _ in range(3)]
        fast += [app2.send_task("workerapp.add", args=(i, 1)) for i in range(6)]
        for result in fast + slow:
            result.get(timeout=60)
        ids = [str(r.id) for r in fast + slow]
        wait_for(lambda: sum(rec.state == "SUCCESS"
                             for rec, _ in reader.fetch_tasks(ids).values()) == len(ids),  # type: ignore[union-attr]
                 timeout=60, what="every task in the store")
    finally:
        if reader is not None:
            reader.close()
        recorder.terminate()
        recorder.close()
    source = ["--broker", broker_url, "--store", store_url, "--since", since]

    load = stats("load", *source)
    shares = {w["worker"]: (w["tasks"], w["share"]) for w in load["workers"]}
    assert shares == {w1.hostname: (12, 12 / 18), w2.hostname: (6, 6 / 18)}, load["workers"]
    assert dict(load["workers"][0]["names"]) == {"workerapp.add": 9, "workerapp.sleepy": 3}

    heat = stats("heatmap", *source, "--bucket", "1h")
    p95 = {row["name"]: max(c for c in row["cells"] if c is not None) for row in heat["rows"]}
    assert set(p95) == {"workerapp.add", "workerapp.sleepy"}
    assert p95["workerapp.sleepy"] >= SLOW  # a task that slept 0.6 s ran at least that long
    counts = stats("heatmap", *source, "--bucket", "1h", "--value", "count")
    assert {r["name"]: sum(c for c in r["cells"] if c) for r in counts["rows"]} == {
        "workerapp.add": 15, "workerapp.sleepy": 3}

    config = tmp_path / "sla.toml"
    config.write_text(f'[sla."workerapp.sleepy"]\nruntime = "{SLOW - 0.1:g}s"\n'
                      '[sla."workerapp.add"]\nruntime = "30s"\n')
    sla = stats("sla", *source, config=config)
    rows = {r["name"]: r for r in sla["rows"]}
    assert (rows["workerapp.sleepy"]["checked"], rows["workerapp.sleepy"]["runtime_breaches"]) \
        == (3, 3)
    assert (rows["workerapp.add"]["checked"], rows["workerapp.add"]["runtime_breaches"]) == (15, 0)
    assert sla["total_breaches"] == 3
    assert {b["uuid"] for b in sla["breaches"]} == {str(r.id) for r in slow}

    per_worker = stats("workers", *source, "--worker", w2.hostname, "--bucket", "1d")
    assert [r["processed"] for r in per_worker["rows"]] == [6]
    assert per_worker["rows"][0]["failure_rate"] == 0.0

    resources = stats("resources", "--broker", broker_url, "--store", store_url, "--worker",
                      w1.hostname, "--samples", "2", "--interval", "1s")
    rusage = resources["rusage"]
    assert (rusage["asked"], rusage["unanswered"], rusage["broker_round_trips"]) == (2, 0, 4)
    points = rusage["points"]
    assert len(points) == 2 and points[0]["cpu_percent"] is None
    assert points[1]["cpu_percent"] is not None and points[1]["cpu_percent"] >= 0
    assert points[1]["maxrss_kib"] > 0
    # celery's rusage is the main process's own: said, with the prefork children it leaves out
    assert rusage["scope"] == "main process only"
    assert [p["pool_processes_not_counted"] for p in points] == [2, 2]


@pytest.mark.timeout(180)
def test_stats_listen_reads_live_events(broker: tuple[str, str],
                                        celery_worker_factory: Factory) -> None:
    """No store: `stats load --listen` takes the live events of the tasks run meanwhile."""
    import threading

    broker_url, backend = broker
    w1 = celery_worker_factory(broker_url, backend=backend, concurrency=1)
    w2 = celery_worker_factory(broker_url, backend=backend, concurrency=1)
    env = dict(os.environ)
    env.pop("LAZYCELERY_STORE", None)
    cli = subprocess.Popen([sys.executable, "-m", "lazycelery", "stats", "load", "--broker",
                            broker_url, "--config", os.devnull, "--listen", "30", "--json"],
                           cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, start_new_session=True)
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(cli.stderr or []), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("listening to" in line for line in err), timeout=60,
                 what="the listening line")
        sent = [w1.app().send_task("workerapp.add", args=(i, i)) for i in range(4)]
        sent += [w2.app().send_task("workerapp.add", args=(i, 2)) for i in range(2)]
        for result in sent:
            result.get(timeout=25)
        out, _ = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait(10)
    assert cli.returncode == 0, "".join(err)
    doc = json.loads(out)
    assert doc["source"]["listen_seconds"] == 30.0
    assert {w["worker"]: w["tasks"] for w in doc["workers"]} == {w1.hostname: 4, w2.hostname: 2}
