"""The last actions `--server URL` refused, forwarded to a real `lazycelery serve` with a real
celery worker on Redis: a pool restart's ``--module``/``--reload`` (the worker really imports,
then reloads, a probe module), an add-consumer's exchange, exchange type and routing key (the
worker really binds the queue so and runs a task published to that exchange), and the workflow
links (``task tree ID --server`` and the remote dashboard's ``W`` give the local answer).
Each action: an operator token only (a viewer is refused, nothing happens), refused by this
side's --read-only and by serve --read-only, asked first (default No), audited by serve with
the token's name and the options; bad options are one line (400 JSON naming the parameter)."""

from __future__ import annotations

import io
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from celery import chain, chord, group
from test_dashboard_actions import ENTER, Live, drive, screen_text
from test_remote_actions import (
    _audit,
    _state,
    _who,
    remote_dashboard,
    serve_cluster,
    serve_env,
)
from test_serve_helpers import INTEGRATION, Server, servers  # noqa: F401
from test_serve_v1 import CONFIG, OP, OPERATOR_TOKEN, VIEWER_TOKEN

from conftest import WorkerProcess, wait_for
from lazycelery.cli import main
from lazycelery.core.reconcile import fetch_metas
from lazycelery.core.workflow import tree_lines
from lazycelery.core.workflow_fetch import gather

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
pytest.importorskip("starlette", reason="the serve extra")


@pytest.fixture
def forwarded(redis_url: str, celery_worker_factory: Callable[..., WorkerProcess],
              servers: Callable[..., Server],  # noqa: F811
              tmp_path: Path) -> Iterator[tuple[WorkerProcess, Server, Any]]:
    """A worker (worker_pool_restarts=True, workerapp.py) that logs each import of
    reload_probe to ``tmp_path/probe.txt``, a serve on the same Redis, a client app."""
    with serve_cluster(redis_url, celery_worker_factory, servers, CONFIG,
                       env={"LC_RELOAD_PROBE": str(tmp_path / "probe.txt")}) as parts:
        yield parts


def _cli(serve: Server, *argv: str, token: str = OPERATOR_TOKEN
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lazycelery", *argv, "--server", serve.url],
                          cwd=str(INTEGRATION), capture_output=True, text=True, timeout=90,
                          env={**serve_env(), "LAZYCELERY_TOKEN": token})


def _imports(tmp_path: Path) -> int:
    probe = tmp_path / "probe.txt"
    return len(probe.read_text().splitlines()) if probe.exists() else 0


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _asked_and_cancelled(serve: Server, argv: list[str], monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> str:
    """The command in this process on a terminal whose user presses Enter (the default, No):
    it asks, then sends nothing. What it printed before asking."""
    monkeypatch.setenv("LAZYCELERY_TOKEN", OPERATOR_TOKEN)
    monkeypatch.setenv("LAZYCELERY_CONFIG", "/dev/null")
    monkeypatch.setattr(sys, "stdin", _Tty("\n"))
    capsys.readouterr()
    assert main([*argv, "--server", serve.url]) == 1
    said = capsys.readouterr()
    assert "[y/N]" in said.out and "cancelled: nothing was sent" in said.err
    return said.out


def test_pool_restart_forwards_modules_and_reload(
        forwarded: tuple[WorkerProcess, Server, Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    worker, serve, _client = forwarded
    w = worker.hostname
    base = ["worker", "pool-restart", w, "--module", "reload_probe"]
    # a viewer token: 403, the worker imports nothing
    refused = _cli(serve, *base, "--yes", token=VIEWER_TOKEN)
    assert refused.returncode != 0
    assert refused.stderr.strip() == ("lazycelery: pool-restart: serve refused: role viewer "
                                      "may not act (operator needed)")
    # this side's --read-only: refused before anything is sent
    local = _cli(serve, *base, "--yes", "--read-only")
    assert local.returncode != 0 and "Traceback" not in local.stderr
    assert local.stderr.strip().startswith("lazycelery: pool-restart: refused: read-only mode")
    # a module that is not a dotted Python name: one line here; a 400 naming it at serve
    bad = _cli(serve, "worker", "pool-restart", w, "--module", "os;x", "--yes")
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1
    assert "bad module name 'os;x'" in bad.stderr
    raw = httpx.post(f"{serve.url}/api/v1/actions/workers/pool-restart",
                     json={"workers": [w], "modules": ["os;x"], "reload": True},
                     headers=OP, timeout=30)
    assert raw.status_code == 400 and raw.json()["parameter"] == "modules"
    # asked first; Enter is No
    said = _asked_and_cancelled(serve, [*base, "--reload"], monkeypatch, capsys)
    assert f"pool-restart (reload reload_probe) on: {w}" in said
    assert _imports(tmp_path) == 0 and _audit(tmp_path) == []

    # an operator: imported (the reply comes after the import), then imported again only
    # when --reload says so
    done = _cli(serve, *base, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[:2] == [f"pool-restart (import reload_probe) on: {w}",
                                            "pool-restart: 1 ok"]
    assert _imports(tmp_path) == 1
    again = _cli(serve, *base, "--yes")
    assert again.returncode == 0 and _imports(tmp_path) == 1  # already imported: kept
    reloaded = _cli(serve, *base, "--reload", "--yes")
    assert reloaded.returncode == 0, reloaded.stdout + reloaded.stderr
    assert f"{w}  ok     reload started" in reloaded.stdout
    assert _imports(tmp_path) == 2
    assert _who(tmp_path) == [("pool-restart", "api:token:ops")] * 3
    assert [e.result.get("options") for e in _audit(tmp_path)] == [
        {"modules": ["reload_probe"]}, {"modules": ["reload_probe"]},
        {"modules": ["reload_probe"], "reload": True}]
    assert all(e.targets == [w] for e in _audit(tmp_path))
    # Flower's own endpoint keeps Flower's shape
    flower = httpx.post(f"{serve.url}/api/worker/pool/restart/{w}", headers=OP, timeout=30)
    assert flower.status_code == 200
    assert flower.json() == {"message": f"Restarting '{w}' worker's pool"}
    assert worker.ping()


def _queues_at(client: Any, worker: WorkerProcess) -> dict[str, dict[str, Any]]:
    found = client.control.inspect(destination=[worker.hostname], timeout=3.0).active_queues()
    return {q["name"]: q for q in (found or {}).get(worker.hostname, [])}


def test_add_consumer_forwards_exchange_type_and_routing_key(
        forwarded: tuple[WorkerProcess, Server, Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    worker, serve, client = forwarded
    w, tag = worker.hostname, uuid.uuid4().hex[:8]
    queue, exchange, key = f"lcq-extra-{tag}", f"lcx-{tag}", f"lc.{tag}.reports"
    argv = ["worker", "add-consumer", w, "-q", queue, "--exchange", exchange,
            "--exchange-type", "topic", "--routing-key", key]
    refused = _cli(serve, *argv, "--yes", token=VIEWER_TOKEN)
    assert refused.returncode != 0
    assert refused.stderr.strip() == ("lazycelery: add-consumer: serve refused: role viewer "
                                      "may not act (operator needed)")
    local = _cli(serve, *argv, "--yes", "--read-only")
    assert local.returncode != 0
    assert local.stderr.strip().startswith("lazycelery: add-consumer: refused: read-only mode")
    bad = _cli(serve, *argv[:-4], "--exchange-type", "bogus", "--yes")
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1
    assert "bad exchange type 'bogus'" in bad.stderr
    raw = httpx.post(f"{serve.url}/api/v1/actions/workers/add-consumer",
                     json={"workers": [w], "queue": queue, "exchange": "no spaces"},
                     headers=OP, timeout=30)
    assert raw.status_code == 400 and raw.json()["parameter"] == "exchange"
    said = _asked_and_cancelled(serve, argv, monkeypatch, capsys)
    line = f"add-consumer queue {queue} (exchange {exchange} (topic), routing key {key}) on: {w}"
    assert line in said
    assert queue not in _queues_at(client, worker) and _audit(tmp_path) == []

    done = _cli(serve, *argv, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[:2] == [line, "add-consumer: 1 ok"]
    # the worker binds the queue to that exchange, of that type, with that key
    wait_for(lambda: queue in _queues_at(client, worker), timeout=30,
             what="the worker to consume the new queue")
    bound = _queues_at(client, worker)[queue]
    assert (bound["exchange"]["name"], bound["exchange"]["type"], bound["routing_key"]) == \
        (exchange, "topic", key)
    # a task published to the exchange with the key reaches the queue and runs there
    sent = client.send_task("workerapp.add", args=[20, 22], exchange=exchange, routing_key=key)
    assert sent.get(timeout=60) == 42
    wait_for(lambda: _state(serve, sent.id) == "SUCCESS", timeout=60, what="serve to see it")
    [entry] = _audit(tmp_path)
    assert (entry.action, entry.targets) == ("add-consumer", [w, queue])
    assert entry.user.startswith("api:token:ops")
    assert entry.result["options"] == {"exchange": exchange, "exchange_type": "topic",
                                       "routing_key": key}


def test_a_read_only_serve_refuses_the_forwarded_options(
        forwarded: tuple[WorkerProcess, Server, Any], redis_url: str,
        servers: Callable[..., Server], tmp_path: Path) -> None:  # noqa: F811
    worker, _serve, client = forwarded
    frozen = servers("serve", redis_url, worker.queue, backend=redis_url, config_text=CONFIG,
                     args=("--read-only",))
    queue = f"lcq-ro-{uuid.uuid4().hex[:8]}"
    for argv in (["worker", "pool-restart", worker.hostname, "--module", "reload_probe",
                  "--reload"],
                 ["worker", "add-consumer", worker.hostname, "-q", queue, "--exchange", queue,
                  "--routing-key", "k"]):
        refused = _cli(frozen, *argv, "--yes")
        assert refused.returncode != 0, refused.stdout
        assert refused.stderr.strip() == (f"lazycelery: {argv[1]}: serve refused: read-only "
                                          "mode: actions are refused")
    assert _imports(tmp_path) == 0 and queue not in _queues_at(client, worker)
    assert _audit(tmp_path) == []


def _labels(text: str) -> list[str]:
    """A drawn tree's node labels, without the box drawing (siblings' order may differ: the
    local CLI without a store knows no first-seen times)."""
    return sorted(line.lstrip("│├└─ ") for line in text.splitlines())


def test_task_tree_and_the_dashboards_workflow_links_through_serve(
        forwarded: tuple[WorkerProcess, Server, Any], redis_url: str, tmp_path: Path) -> None:
    _worker, serve, client = forwarded

    def sig(name: str, *args: Any) -> Any:
        return client.signature(f"workerapp.{name}", args=args, immutable=bool(args))

    # a chain of groups: the result backend alone links it whole (the local CLI has no store)
    canvas = chain(sig("add", 1, 1), group(sig("add", 2, 2), sig("add", 3, 3)),
                   client.signature("workerapp.echo"), group(sig("add", 5, 5), sig("add", 6, 6)))
    last = canvas.apply_async()
    assert sorted(last.get(timeout=60)) == [10, 12]
    leaf = last.results[0].id
    wait_for(lambda: _state(serve, leaf) == "SUCCESS", timeout=60, what="serve to see it")

    # the CLI: a viewer token may read; a prefix is resolved by serve; the local answer
    remote = _cli(serve, "task", "tree", leaf[:8], token=VIEWER_TOKEN)
    assert remote.returncode == 0, remote.stdout + remote.stderr
    assert f"lazycelery: {leaf[:8]} is task {leaf}" in remote.stderr
    local = subprocess.run(
        [sys.executable, "-m", "lazycelery", "task", "tree", leaf, "-b", redis_url,
         "--result-backend", redis_url, "--store", f"sqlite:///{tmp_path}/no-store.sqlite3"],
        cwd=str(INTEGRATION), capture_output=True, text=True, timeout=90, env=serve_env())
    assert local.returncode == 0, local.stdout + local.stderr
    assert _labels(remote.stdout) == _labels(local.stdout)
    assert len(remote.stdout.splitlines()) == 8  # 6 tasks, the chord and the last group
    assert "[SUCCESS 6]" in remote.stdout.splitlines()[0]
    assert sum("◀ this task" in line for line in remote.stdout.splitlines()) == 1

    # the remote dashboard's W (a viewer token too) on a chord's header task no event links
    # to the others: serve reads its result backend; the Family section then shows what the
    # local W shows over the same events
    headers = [str(uuid.uuid4()) for _ in range(3)]
    body = chord([client.signature("workerapp.add", args=(i, i)).set(task_id=t)
                  for i, t in enumerate(headers)],
                 client.signature("workerapp.echo")).apply_async()
    assert body.get(timeout=60) == {"args": [[0, 2, 4]], "kwargs": {}}
    last_header = fetch_metas(client, [body.id])[body.id]["parent_id"]
    lone = next(h for h in headers if h != last_header)

    # the remote dashboard's W (a viewer token too): serve reads its result backend; the
    # Family section then shows what the local W shows over the same events
    async def scenario(live: Live) -> None:
        index = live.index
        await live.until(lambda: all(getattr(index.get(t), "state", None) == "SUCCESS"
                                     for t in [*headers, body.id]), what="the chord's tasks")
        await live.open_task(lone)
        await live.keys(ENTER)  # the detail
        await live.keys("W")
        await live.until(lambda: "workflow: 4 tasks linked" in live.messages(),
                         what="serve's links")
        links = live.d.screen.detail.links
        assert set(links) >= {*headers, body.id}
        assert all(set(m) <= {"name", "status", "parent_id", "group_id", "children"}
                   for m in links.values())  # never args or results

        def drawn(metas: Any) -> list[str]:
            root = gather(lone, get=index.get, children_of=index.children_of, known=metas).root
            return [text for text, _node in tree_lines(root, lone)]

        local_metas = fetch_metas(client, [*headers, body.id])  # what the local W reads
        assert drawn(links) == drawn(local_metas)
        assert drawn(links)[0].startswith("chord ")
        await live.until(lambda: "header 3/3 done" in screen_text(live.d), what="the Family tree")

    with remote_dashboard(serve.url, VIEWER_TOKEN) as live:
        drive(live, scenario)
    assert _audit(tmp_path) == []  # reads: nothing audited
