"""`lazycelery timeline` on a history store holding the recorded real stream (redis): lanes
per worker and per queue as JSON and text, the filter, an empty range, bad input in one line."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from lazycelery.cli import main
from lazycelery.core.index import TaskIndex
from lazycelery.store import open_store
from lazycelery.store.writer import StoreWriter
from tests.replay import load_events

SINCE = "2026-11-27T00:00"


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("timeline") / "history.sqlite3"
    store = open_store(f"sqlite:///{path}")
    run, _ = store.begin_recorder("test", 1, "redis://x")
    writer = StoreWriter(store, recorder=run)
    writer.start()
    index = TaskIndex()
    events = load_events("redis")
    for i in range(0, len(events), 200):
        chunk = events[i:i + 200]
        writer.on_batch(chunk, index.apply_batch(chunk))
    assert writer.stop(timeout=60)
    store.close()
    return f"sqlite:///{path}"


def timeline(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["timeline", "--config", "/dev/null", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_lanes_per_worker_as_json(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = timeline(capsys, "--store", store_url, "--since", SINCE, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["grouping"] == "worker" and doc["bars"] == 2911 and doc["untimed"] == 89
    assert [lane["key"] for lane in doc["lanes"]] == ["rec1@vm", "rec2@vm"]
    bars = [b for lane in doc["lanes"] for row in lane["rows"] for b in row]
    assert len(bars) == 2911 and len({b["id"] for b in bars}) == 2911
    for lane in doc["lanes"]:
        for row in lane["rows"]:
            assert all(b["worker"] == lane["key"] for b in row)
            assert all(a["end"] <= b["start"] for a, b in itertools.pairwise(row))
    assert {b["state"] for b in bars} == {"SUCCESS", "FAILURE", "REVOKED"}


def test_per_queue_with_a_filter_as_text(store_url: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = timeline(capsys, "--store", store_url, "--since", SINCE, "--by", "queue",
                            "--filter", "state:failure", "--width", "100")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].strip().startswith("|")  # the ruler
    lanes = [line for line in lines[1:-1] if line.strip()]
    assert lanes[0].startswith("bench ") and set(lanes[0][25:]) <= {"X", " "}
    assert all(len(line) <= 100 for line in lines[:-1])
    assert lines[-1].startswith("121 tasks in 1 queue lane ")


def test_an_empty_range(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = timeline(capsys, "--store", store_url, "--since", "5m")
    assert code == 0 and out.startswith("no task ran between ")


@pytest.mark.parametrize(("args", "says"), [
    (("--since", "yesterday"), "--since: needs a duration"),
    (("--filter", "state:("), "--filter: unknown state"),
])
def test_bad_input_is_one_line(store_url: str, capsys: pytest.CaptureFixture[str],
                               args: tuple[str, ...], says: str) -> None:
    code, _, err = timeline(capsys, "--store", store_url, *args)
    assert code == 2 and says in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_no_store_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = timeline(capsys, "--store", f"sqlite:///{tmp_path / 'none.sqlite3'}")
    assert code == 2 and "no such file" in err and len(err.strip().splitlines()) == 1

