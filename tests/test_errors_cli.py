"""`lazycelery errors` on a history store holding the recorded real failures: groups, hints,
clusters and trends as JSON and text; bad input is one line and exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lazycelery.cli import main
from lazycelery.core.index import TaskIndex
from lazycelery.store import open_store
from lazycelery.store.writer import StoreWriter
from tests.errors_data import recorded_events


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("errors") / "history.sqlite3"
    store = open_store(f"sqlite:///{path}")
    run, _ = store.begin_recorder("test", 1, "redis://x")
    writer = StoreWriter(store, recorder=run)
    writer.start()
    index = TaskIndex()
    events = recorded_events()
    for i in range(0, len(events), 50):
        chunk = events[i:i + 50]
        writer.on_batch(chunk, index.apply_batch(chunk))
    assert writer.stop(timeout=30)
    store.close()
    return f"sqlite:///{path}"


def errors(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["errors", "--config", "/dev/null", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_groups_and_hints_as_json(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = errors(capsys, "--store", store_url, "--since", "2026-01-01T00:00",
                            "--json")
    assert code == 0, err
    doc = json.loads(out)
    # the store keeps a task's latest exception: the retries of sync_inventory are read back
    # with its final ConnectionError (16 groups; 17 live)
    assert doc["groups_total"] == 16 and doc["failures"] == 156
    top = doc["groups"][0]
    assert (top["exception"], top["count"], top["tasks"]) == (
        "FileNotFoundError", 31, {"shop.resize": 31})
    assert top["example"].startswith("FileNotFoundError: [Errno 2] No such file or directory: "
                                     "'/nonexistent/resize/")
    hints = {h["kind"]: h for h in top["hints"]}
    assert hints["worker"]["evidence"]["value"] == "w-bad@shop-1"
    assert hints["online"]["evidence"]["worker"] == "w-bad@shop-1"
    assert [len(c["groups"]) for c in doc["clusters"]] == [3, 2]
    assert doc["sources"]["history"]["store"] == store_url


def test_text_table(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = errors(capsys, "--store", store_url, "--since", "2026-01-01T00:00",
                          "--top", "3")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("16 error groups, 156 failures (195 tasks finished)")
    assert "hint: 100 % of 31 failures on worker w-bad@shop-1" in out
    assert "… 13 more groups" in out
    assert "similar groups" in out


def test_trend_of_one_group(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = errors(capsys, "--store", store_url, "--since", "2026-01-01T00:00",
                          "trend", "18bda5", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["group"] == "18bda5c9c091" and doc["unit"] == "minute" and doc["total"] == 31
    code, out, _ = errors(capsys, "--store", store_url, "--since", "2026-01-01T00:00",
                          "trend", "all", "--unit", "hour")
    assert code == 0 and out.startswith("failures per hour, all groups: 156")


@pytest.mark.parametrize(("args", "message"), [
    (["foo"], "errors: unknown arguments 'foo'"),
    (["--limit", "3"], "--limit needs --listen SECONDS"),
    (["--new", "soon"], "--new: needs a duration"),
    (["--since", "yesterday-ish"], "--since: needs a duration"),
    (["trend", "nosuchgroup"], "no error group 'nosuchgroup'"),
    (["export"], "errors: unknown arguments 'export'"),
    (["export", "nosuchgroup"], "no error group 'nosuchgroup'"),
])
def test_bad_input_is_one_line(store_url: str, capsys: pytest.CaptureFixture[str],
                               args: list[str], message: str) -> None:
    code, out, err = errors(capsys, "--store", store_url, *args)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_no_store_and_no_listen(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = errors(capsys, "--store", f"sqlite:///{tmp_path / 'none.sqlite3'}")
    assert code == 2
    assert "lazycelery record" in err and "--listen SECONDS" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("fmt", ["csv", "json", "ndjson"])
def test_export_a_groups_tasks(store_url: str, capsys: pytest.CaptureFixture[str],
                               fmt: str) -> None:
    code, out, _ = errors(capsys, "--store", store_url, "--since", "2026-01-01T00:00",
                          "export", "18bda5", "--format", fmt)
    assert code == 0
    if fmt == "csv":
        import csv
        import io

        rows = list(csv.DictReader(io.StringIO(out)))
    elif fmt == "json":
        rows = json.loads(out)
    else:
        rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 31
    assert {(r["name"], r["state"], r["worker"], r["group"]) for r in rows} == {
        ("shop.resize", "FAILURE", "w-bad@shop-1", "18bda5c9c091")}
    assert len({r["uuid"] for r in rows}) == 31


def test_export_cells_never_start_a_formula() -> None:
    from lazycelery.analysis.export import render

    out = render([{"uuid": "u", "args": "=HYPERLINK(1)", "name": "-x"}], "csv")
    assert "'=HYPERLINK(1)" in out and "'-x" in out


def test_listen_to_a_broker_that_is_down_is_one_masked_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = errors(capsys, "--broker", "redis://user:secret@127.0.0.1:1/0",
                            "--listen", "1")
    assert code == 2 and out == ""
    assert "could not read events from redis://user:********@127.0.0.1:1/0" in err
    assert "secret" not in err and len(err.strip().splitlines()) == 1
