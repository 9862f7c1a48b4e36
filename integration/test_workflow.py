"""Whole workflows and replay with a real worker on real Redis: a chord and a nested chain of
groups linked into one tree from live events plus the result backend, `task tree --json`, and
a replay that the worker executes again with the same args, as a child of the original."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import chain, chord, group

from conftest import WorkerProcess, wait_for
from lazycelery.cli import main
from lazycelery.core import audit
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest import CONNECTED, Ingestor
from lazycelery.core.model import SUCCESS
from lazycelery.core.reconcile import fetch_metas
from lazycelery.core.workflow import GROUP, TASK, Node
from lazycelery.core.workflow_fetch import gather

pytestmark = pytest.mark.integration


@pytest.fixture
def worker(redis_url: str, celery_worker_factory: Callable[..., WorkerProcess]) -> WorkerProcess:
    return celery_worker_factory(redis_url, backend=redis_url)


@pytest.fixture
def client(worker: WorkerProcess) -> Iterator[Any]:
    app = worker.app()
    yield app
    app.close()


@pytest.fixture
def index(worker: WorkerProcess) -> Iterator[TaskIndex]:
    idx = TaskIndex()
    ingestor = Ingestor(worker.broker, idx)
    ingestor.start()
    try:
        wait_for(lambda: ingestor.status.state == CONNECTED, 60, what="ingest to connect")
        yield idx
    finally:
        ingestor.stop()


@pytest.fixture
def audit_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "audit.log"
    monkeypatch.setenv(audit.AUDIT_ENV, str(path))
    return path


def _sig(client: Any, name: str, *args: Any, immutable: bool = False) -> Any:
    return client.signature(f"workerapp.{name}", args=args, immutable=immutable)


def _all_done(index: TaskIndex, n: int) -> bool:
    records = index.records()  # takes the index's lock itself
    return len(records) >= n and all(r.state == SUCCESS for r in records)


def _tree(index: TaskIndex, client: Any, focus: str) -> Node:
    return gather(focus, get=index.get, children_of=index.children_of, records=index.records,
                  fetch=lambda ids: fetch_metas(client, ids)).root


def _cli(worker: WorkerProcess, tmp_path: Path, *words: str) -> list[str]:
    return ["task", *words, "-b", worker.broker, "--result-backend", worker.backend or "",
            "--store", f"sqlite:///{tmp_path}/no-store.sqlite3"]


def test_a_chord_is_one_tree_from_any_header_task(worker: WorkerProcess, client: Any,
                                                  index: TaskIndex) -> None:
    body = chord([_sig(client, "add", i, i) for i in range(3)],
                 _sig(client, "echo")).apply_async()
    assert body.get(timeout=30) == {"args": [[0, 2, 4]], "kwargs": {}}
    wait_for(lambda: _all_done(index, 4), 60, what="the chord's four tasks in the index")
    metas = fetch_metas(client, [body.id])
    last_header = metas[body.id]["parent_id"]
    headers = [r.uuid for r in index.records() if r.uuid != body.id]
    lone = next(h for h in headers if h != last_header)
    assert index.children_of(lone) == []  # events alone link nothing to it
    root = _tree(index, client, lone)
    assert root.kind == GROUP
    members = [c for c in root.children if c.role != "callback"]
    assert sorted(c.id for c in members) == sorted(headers)
    assert [c.id for c in root.children if c.role == "callback"] == [body.id]
    assert root.header_done == (3, 3) and root.counts == {SUCCESS: 4}


def test_a_nested_chain_of_groups_and_the_cli_tree(worker: WorkerProcess, client: Any,
                                                   index: TaskIndex, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    canvas = chain(_sig(client, "add", 1, 1, immutable=True),
                   group(_sig(client, "add", 2, 2, immutable=True),
                         _sig(client, "add", 3, 3, immutable=True)),
                   _sig(client, "echo"),
                   group(_sig(client, "add", 5, 5, immutable=True),
                         _sig(client, "add", 6, 6, immutable=True)))
    last = canvas.apply_async()
    assert sorted(last.get(timeout=30)) == [10, 12]
    wait_for(lambda: _all_done(index, 6), 60, what="the six tasks in the index")
    leaf = last.results[0].id
    root = _tree(index, client, leaf)
    assert root.kind == TASK and root.name == "workerapp.add" and root.counts == {SUCCESS: 6}
    (chord_node,) = [c for c in root.children if c.kind == GROUP]
    (callback,) = [c for c in chord_node.children if c.role == "callback"]
    assert callback.name == "workerapp.echo"
    (inner,) = callback.children
    assert inner.kind == GROUP and inner.id == last.id
    assert sorted(c.id for c in inner.children) == sorted(r.id for r in last.results)
    # the CLI, from the result backend alone (no dashboard memory, no store)
    capsys.readouterr()
    assert main([*_cli(worker, tmp_path, "tree", leaf, "--json")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["tree"]["id"] == root.id and doc["tree"]["counts"] == {SUCCESS: 6}
    assert doc["tree"]["children"][0]["chord"] is True


def test_a_replay_runs_again_with_the_same_args_as_a_child(
        worker: WorkerProcess, client: Any, index: TaskIndex, tmp_path: Path,
        audit_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = client.send_task("workerapp.echo", args=[1, {"deep": [2, 3]}], kwargs={"tag": "x"})
    expected = {"args": [1, {"deep": [2, 3]}], "kwargs": {"tag": "x"}}
    assert first.get(timeout=30) == expected
    # refused read-only, and without --yes on a pipe: nothing sent, nothing audited
    assert main([*_cli(worker, tmp_path, "replay", first.id, "--yes"), "--read-only"]) != 0
    assert not audit_log.exists()
    assert main(_cli(worker, tmp_path, "replay", first.id, "--yes")) == 0
    [entry] = audit.read(audit_log)
    assert entry.action == "replay" and entry.targets == [first.id]
    new_id = entry.result["created"][first.id]
    assert new_id != first.id
    assert client.AsyncResult(new_id).get(timeout=30) == expected  # the worker ran it again
    meta = client.backend.get_task_meta(new_id)
    assert meta["parent_id"] == first.id and meta["queue"] == worker.queue
    wait_for(lambda: new_id in index.children_of(first.id), 60,
             what="the replay as a child of the original in the index")
    root = _tree(index, client, first.id)
    assert [c.id for c in root.children] == [new_id] and root.counts == {SUCCESS: 2}


# ---------------------------------------------------------------------- from the history store


def _tree_ids(doc: dict[str, Any]) -> set[str]:
    ids = {doc["id"]} if doc["kind"] == "task" else set()
    for child in doc["children"]:
        ids |= _tree_ids(child)
    return ids


def _cli_json(words: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    code = main(words)
    out, err = capsys.readouterr()
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


def test_the_tree_is_read_from_a_recorded_store_after_memory_is_gone(
        worker: WorkerProcess, client: Any, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``lazycelery record`` writes a nested chain of groups and a top-level chord into SQLite;
    with no dashboard or serve memory left, `task tree` and serve's tree read each workflow
    from the store (its links) and the result backend, from any of its tasks."""
    from test_store_record import RecordProcess, _send_until_recorded

    from lazycelery.serve.service import Service
    from lazycelery.serve.v1.debug_data import tree_doc

    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    recorder = RecordProcess(worker.broker, url, tmp_path)
    reader = None
    try:
        reader = wait_for(lambda: _try_open(url), 60, interval=0.2, what="the recorder's store")
        _send_until_recorded(client, reader)
        nested = chain(_sig(client, "add", 1, 1, immutable=True),
                       group(_sig(client, "add", 2, 2, immutable=True),
                             _sig(client, "add", 3, 3, immutable=True)),
                       _sig(client, "echo"),
                       group(_sig(client, "add", 5, 5, immutable=True),
                             _sig(client, "add", 6, 6, immutable=True))).apply_async()
        body = chord([_sig(client, "add", i, i) for i in range(3)],
                     _sig(client, "echo")).apply_async()
        assert sorted(nested.get(timeout=30)) == [10, 12]
        assert body.get(timeout=30) == {"args": [[0, 2, 4]], "kwargs": {}}
        leaf = nested.results[0].id
        first = nested
        while first.parent is not None:  # the chain's results, back to its first step
            first = first.parent
        root_id = first.id
        headers = {r.id for r in body.parent.results}  # the chord's header GroupResult
        last_header = fetch_metas(client, [body.id])[body.id]["parent_id"]
        assert len(headers) == 3 and last_header in headers

        def stored() -> set[str] | None:
            chord_done = reader.fetch_tasks([*headers, body.id])
            if len(chord_done) < 4 or any(r.state != SUCCESS for r, _ in chord_done.values()):
                return None
            rows = reader.query("SELECT uuid FROM tasks WHERE root_id = ? AND state = ?",
                                (root_id, SUCCESS))
            return {r[0] for r in rows} if len(rows) == 6 else None

        nested_ids: set[str] = wait_for(stored, 60, interval=0.2,
                                        what="both workflows' tasks in the store")
        assert recorder.terminate() == 0, recorder.stderr()
    finally:
        recorder.close()
        if reader is not None:
            reader.close()
    words = ["task", "tree", "--json", "-b", worker.broker, "--store", url]
    with_backend = [*words, "--result-backend", worker.backend or ""]
    for focus in sorted(nested_ids):
        doc = _cli_json([*with_backend[:3], focus, *with_backend[3:]], capsys)
        assert doc["tree"]["id"] == root_id and doc["tree"]["counts"] == {SUCCESS: 6}, focus
        assert doc["tree"]["children"][0]["chord"] is True
        assert _tree_ids(doc["tree"]) == nested_ids
        # events alone (no backend) link the six as well: parents and roots are in the store
        bare = _cli_json([*words[:3], focus, *words[3:]], capsys)
        assert _tree_ids(bare["tree"]) == nested_ids
    lone = sorted(headers - {last_header})[0]
    doc = _cli_json([*with_backend[:3], lone, *with_backend[3:]], capsys)
    assert doc["tree"]["kind"] == GROUP and doc["tree"]["chord"] is True
    assert _tree_ids(doc["tree"]) == headers | {body.id}
    # serve, started afresh on the same store: an empty memory, the same documents
    service = Service(app=client, index=TaskIndex(), environment="test", store_url=url)
    served = tree_doc(service, leaf)
    assert served is not None
    assert served["tree"] == _cli_json([*with_backend[:3], leaf, *with_backend[3:]],
                                       capsys)["tree"]


def _try_open(url: str) -> Any:
    from lazycelery.store import StoreError, open_store

    try:
        return open_store(url, create=False, writer=False)
    except StoreError:
        return None  # the recorder has not created it yet

