"""The same fleet analysis from a SQLite history store filled by the recorder's writer as from
memory, and ``lazycelery stats`` on that store: text charts, their ``--json`` twins, and bad
options as one line with exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lazycelery.analysis.fleet import sla as slas
from lazycelery.analysis.fleet import tasks
from lazycelery.analysis.fleet.samples import task_samples
from lazycelery.analysis.fleet.source import from_store
from lazycelery.cli import main
from lazycelery.core.index import TaskIndex
from lazycelery.store import open_store
from lazycelery.store.writer import StoreWriter
from tests.replay import load_events

SINCE, UNTIL = 1795825490.0, 1795825512.0
RANGE = ["--since", "2026-11-28T00:24:50+00:00", "--until", "2026-11-28T00:25:12+00:00"]


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, TaskIndex]:
    path = tmp_path_factory.mktemp("fleet") / "history.sqlite3"
    store = open_store(f"sqlite:///{path}")
    run, _ = store.begin_recorder("test", 1, "redis://x")
    writer = StoreWriter(store, recorder=run)
    writer.start()
    index = TaskIndex(max_tasks=1_000_000)
    events = load_events("redis")
    for i in range(0, len(events), 200):
        chunk = events[i:i + 200]
        writer.on_batch(chunk, index.apply_batch(chunk))
    assert writer.stop(timeout=30)
    store.close()
    return f"sqlite:///{path}", index


def test_the_store_gives_the_numbers_memory_gives(filled: tuple[str, TaskIndex]) -> None:
    url, index = filled
    store = open_store(url, create=False, writer=False)
    try:
        data = from_store(store, SINCE, UNTIL)
    finally:
        store.close()
    stored = task_samples(data.records, SINCE, UNTIL)
    live = task_samples(index.snapshot(), SINCE, UNTIL)
    assert len(stored) == len(live) == 2906
    assert tasks.load_distribution(stored) == tasks.load_distribution(live)
    assert tasks.duration_heatmap(stored, 5.0, "p95", SINCE, UNTIL) == \
        tasks.duration_heatmap(live, 5.0, "p95", SINCE, UNTIL)
    assert tasks.worker_performance(stored, 5.0) == tasks.worker_performance(live, 5.0)
    targets = slas.targets({"benchapp.add": (0.05, None)})
    assert slas.evaluate(stored, targets) == slas.evaluate(live, targets)
    # the store keeps online / offline, and at most one heartbeat a minute per worker: none
    # in these 18 s after the online sample
    assert sorted((b.worker, b.kind) for b in data.beats) == [
        ("rec1@vm", "offline"), ("rec1@vm", "online"), ("rec2@vm", "offline"),
        ("rec2@vm", "online")]


def stats(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["stats", "--config", "/dev/null", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_load_and_its_json_twin(filled: tuple[str, TaskIndex],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = filled
    code, out, err = stats(capsys, "load", "--store", url, *RANGE, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["chart"], doc["since"], doc["until"]) == ("load", SINCE, UNTIL)
    assert [(w["worker"], w["tasks"], w["failed"]) for w in doc["workers"]] == [
        ("rec1@vm", 1502, 52), ("rec2@vm", 1404, 69)]
    code, out, _ = stats(capsys, "load", "--store", url, *RANGE)
    assert code == 0
    assert out.splitlines()[1].startswith("rec1@vm  51.7%    1,502     52  ███████████████▌")


def test_cli_heatmap_text_and_json(filled: tuple[str, TaskIndex],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    url, index = filled
    code, out, _ = stats(capsys, "heatmap", "--store", url, *RANGE, "--bucket", "5s", "--json")
    doc = json.loads(out)
    live = tasks.duration_heatmap(task_samples(index.snapshot()), 5.0, "p95", SINCE, UNTIL)
    assert code == 0 and doc["rows"] == live.as_json()["rows"]
    assert len(doc["columns"]) == 5  # 00:24:50 ... 00:25:10, the last one empty
    code, out, _ = stats(capsys, "heatmap", "--store", url, *RANGE, "--bucket", "5s")
    lines = out.splitlines()
    assert lines[0] == "p95 runtime per task name per 5.00s (UTC, by finish time)"
    assert lines[1].startswith("benchapp.add ") and lines[-1].startswith("legend: ░ 0ms-")
    assert "\x1b[" not in out  # no colour when not a terminal


def test_cli_sla_needs_targets_and_lists_breaches(filled: tuple[str, TaskIndex], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = filled
    code, _, err = stats(capsys, "sla", "--store", url, *RANGE)
    assert code == 2 and err.startswith("lazycelery: sla: no target configured")
    config = tmp_path / "c.toml"
    config.write_text('[sla."benchapp.add"]\nruntime = "50ms"\n')
    code = main(["stats", "sla", "--config", str(config), "--store", url, *RANGE, "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["total_breaches"] == 18
    assert doc["rows"][0]["runtime_breaches"] == 18 and doc["rows"][0]["checked"] == 2258


@pytest.mark.parametrize("args, problem", [
    (["load", "--bucket", "0s"], "--bucket: needs a positive duration"),
    (["load", "--since", "yesterday-ish"], "--since: needs a duration"),
    (["throughput", "--bucket", "1s", "--since", "30d"], "more than 2,000"),
    (["resources", "--samples", "2"], "--samples needs --worker"),
    (["load", "--since", "1h", "--until", "2h"], "--until: must be after --since"),
])
def test_bad_options_are_one_line(filled: tuple[str, TaskIndex], args: list[str], problem: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = stats(capsys, *args, "--store", filled[0])
    assert code == 2 and out == "" and problem in err and len(err.splitlines()) == 1


def test_no_store_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = stats(capsys, "load", "--store", f"sqlite:///{tmp_path / 'none.sqlite3'}")
    assert code == 2 and "lazycelery record" in err and "--listen" in err
