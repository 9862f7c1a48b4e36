"""A real Prometheus server scrapes a real `lazycelery serve` (with a real worker and a store),
and every query of the shipped Grafana dashboard (docs/grafana-dashboard.json) is evaluated by
that Prometheus: each must parse and return series. This is what "an existing Prometheus scrape
and Grafana dashboard work unchanged" means when no Grafana server can run here: Grafana only
forwards these expressions to Prometheus.

Needs the `prometheus` binary (Debian's `prometheus` package; .ci/run installs it when missing);
skipped, with that reason, without it."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_serve_helpers import Server, servers  # noqa: F401

from conftest import free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
pytest.importorskip("starlette", reason="the serve extra")

DASHBOARD = Path(__file__).resolve().parent.parent / "docs" / "grafana-dashboard.json"
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")


def dashboard_queries() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(panel["title"], target["expr"]) for panel in panels
            for target in panel.get("targets", ()) if "expr" in target]


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[int], str]]:
    """``start(target_port)`` runs Prometheus scraping 127.0.0.1:target_port every second and
    returns its URL; it is stopped when the test ends."""
    if PROMETHEUS is None:
        pytest.skip("no prometheus binary (Debian package `prometheus`)")
    procs: list[subprocess.Popen[bytes]] = []

    def start(target_port: int) -> str:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: lazycelery\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n")
        log = (tmp_path / "prometheus.log").open("wb")
        procs.append(subprocess.Popen(
            [str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT))
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            if procs[-1].poll() is not None:
                raise AssertionError((tmp_path / "prometheus.log").read_text()[-3000:])
            try:
                return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=60, interval=0.2, what="prometheus to be ready")
        return url

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def query(url: str, expr: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def test_prometheus_scrapes_serve_and_every_dashboard_query_answers(
        redis_url: str, celery_worker_factory: Callable[..., Any],
        servers: Callable[..., Server], prometheus: Callable[[int], str],  # noqa: F811
        tmp_path: Path) -> None:
    worker = celery_worker_factory(redis_url, backend=redis_url)
    serve = servers("serve", redis_url, worker.queue, backend=redis_url,
                    args=("--store", f"sqlite:///{tmp_path / 'store.db'}", "--queue-interval", "1"))
    wait_for(lambda: httpx.get(f"{serve.url}/api/workers", params={"status": 1})
             .json().get(worker.hostname), what="the worker in serve")
    prom = prometheus(serve.port)
    wait_for(lambda: [s for s in query(prom, 'up{job="lazycelery"}') if s["value"][1] == "1"],
             what="prometheus to scrape serve")

    # work on both sides of the scrapes, so rate() and increase() have two samples to compare
    def send_some() -> None:
        for i in range(5):
            httpx.post(f"{serve.url}/api/task/async-apply/workerapp.add", json={"args": [i, 1]},
                       timeout=10).raise_for_status()
        httpx.post(f"{serve.url}/api/task/async-apply/workerapp.always_fail",
                   timeout=10).raise_for_status()

    send_some()
    wait_for(lambda: query(prom, "flower_task_runtime_seconds_count"), what="a runtime scraped")
    send_some()
    # messages that wait, at several priorities: the oldest-age and per-priority panels need some
    cancelled = httpx.post(f"{serve.url}/api/worker/queue/cancel-consumer/{worker.hostname}",
                           data={"queue": worker.queue}, timeout=10)
    assert cancelled.status_code == 200, cancelled.text
    client = worker.app()
    for priority in (0, 3, 9):
        client.send_task("workerapp.add", args=(priority, 0), queue=worker.queue,
                             priority=priority)

    queries = dashboard_queries()
    assert len(queries) >= 10, queries
    for title, expr in queries:
        wait_for(lambda e=expr: query(prom, e), timeout=60, interval=0.5,  # type: ignore[misc]
                 what=f"series for the panel {title!r}: {expr}")

    # the values say what happened, not just that series exist
    online = query(prom, "sum(flower_worker_online)")
    assert float(online[0]["value"][1]) == 1.0
    failed = query(prom, 'sum(flower_events_total{type="task-failed"})')
    assert float(failed[0]["value"][1]) >= 1.0
    connected = query(prom, "lazycelery_ingest_connected")
    assert {s["value"][1] for s in connected} == {"1"}


def test_promtool_finds_no_problem_in_our_own_families(
        redis_url: str, celery_worker_factory: Callable[..., Any],
        servers: Callable[..., Server]) -> None:  # noqa: F811
    """`promtool check metrics` lints names, units and help texts. Flower's families keep
    Flower's names (dashboards depend on them), so only ours must be clean."""
    if PROMTOOL is None:
        pytest.skip("no promtool binary (Debian package `prometheus`)")
    worker = celery_worker_factory(redis_url, backend=redis_url)
    serve = servers("serve", redis_url, worker.queue, backend=redis_url)
    httpx.post(f"{serve.url}/api/task/async-apply/workerapp.add", json={"args": [1, 1]},
               timeout=10).raise_for_status()
    text = wait_for(lambda: (lambda t: t if "flower_task_runtime_seconds_count{" in t else None)(
        httpx.get(f"{serve.url}/metrics").text), what="a runtime in /metrics")
    lint = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                          capture_output=True, timeout=60)
    problems = [line for line in lint.stdout.decode().splitlines() + lint.stderr.decode()
                .splitlines() if line.startswith("lazycelery_")]
    assert problems == [], problems
