"""Export rows and formats (lazycelery/core/export.py) and `lazycelery export` on a store: the
filter language selects, masked values stay masked, formula cells are defused, bad input is one
line."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lazycelery.core.export import COLUMNS, row, write_rows, write_to_file
from lazycelery.core.model import TaskRecord

MASKED = "({'password': '***' (str, 7 chars)},)"


def _records() -> list[TaskRecord]:
    return [TaskRecord(uuid="a1", state="FAILURE", name="billing.charge", args=MASKED,
                       kwargs="{}", exception="ValueError('x')", sent=1_700_000_000.0,
                       failed=1_700_000_001.5, queue="q"),
            TaskRecord(uuid="b2", state="SUCCESS", name="=cmd|' /C calc'!A0", args="(1,)",
                       kwargs="{}", result="3")]


@pytest.mark.parametrize("fmt", ["csv", "json", "ndjson"])
def test_each_format_holds_every_row_and_column(fmt: str) -> None:
    out = io.StringIO()
    n = write_rows((row(r) for r in _records()), fmt, out)
    text = out.getvalue()
    assert n == 2
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert tuple(rows[0]) == COLUMNS
        assert rows[1]["name"].startswith("'=")  # a spreadsheet shows it, never runs it
    elif fmt == "json":
        rows = json.loads(text)
    else:
        rows = [json.loads(line) for line in text.splitlines()]
    assert [r["uuid"] for r in rows] == ["a1", "b2"]
    assert rows[0]["args"] == MASKED  # what ingest masked stays masked
    assert rows[0]["sent"] == "2023-11-14T22:13:20.000+00:00"
    assert rows[0]["finished"] == "2023-11-14T22:13:21.500+00:00"


def test_an_empty_csv_still_has_its_header_and_a_file_is_written_whole(tmp_path: Path) -> None:
    out = io.StringIO()
    assert write_rows([], "csv", out) == 0 and out.getvalue().startswith("uuid,name,state")
    path = tmp_path / "x.ndjson"
    assert write_to_file([row(r) for r in _records()], "ndjson", path) == 2
    assert len(path.read_text().splitlines()) == 2
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(ValueError):
        write_rows([], "xml", io.StringIO())


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "LAZYCELERY_BROKER": "redis://127.0.0.1:1/0"}
    return subprocess.run([sys.executable, "-m", "lazycelery", "export", *args],
                          capture_output=True, text=True, env=env, timeout=60)


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    bad_filter = _cli("--filter", "state:", home=tmp_path)
    assert bad_filter.returncode == 2 and "Traceback" not in bad_filter.stderr
    assert bad_filter.stderr.count("\n") == 1 and "state:" in bad_filter.stderr
    no_store = _cli("--filter", "state:failure", "--store", f"sqlite:///{tmp_path}/none.db",
                    home=tmp_path)
    assert no_store.returncode == 2 and "Traceback" not in no_store.stderr
    assert "lazycelery record" in no_store.stderr

