"""The audit log: one JSON line per action, owner-only, readable back, and the `audit` command."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import pytest

from lazycelery.cli import main
from lazycelery.core import audit


@pytest.fixture
def log_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state" / "audit.log"
    monkeypatch.setenv(audit.AUDIT_ENV, str(path))
    return path


def test_record_appends_one_json_line_with_who_and_where(log_path: Path) -> None:
    entry = audit.record("revoke", ["id-1"], {"ok": True, "message": "1 ok"}, "prod")
    audit.record("pool-grow", ["w1@h"], {"ok": False}, None)
    lines = log_path.read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert set(first) == {"time", "user", "host", "environment", "action", "targets", "result",
                          "prev"}
    assert first["action"] == "revoke" and first["targets"] == ["id-1"] and first["environment"] == "prod"
    assert first["time"].endswith("+00:00") and first["user"] and first["host"] == entry.host
    assert json.loads(lines[1])["environment"] == "-"
    assert stat.S_IMODE(log_path.stat().st_mode) == 0o600


def test_read_returns_the_last_entries_and_skips_garbage(log_path: Path) -> None:
    for i in range(5):
        audit.record("revoke", [f"id-{i}"], {"ok": True}, "e")
    with log_path.open("a") as stream:
        stream.write("not json\n")
    assert [e.targets[0] for e in audit.read()] == [f"id-{i}" for i in range(5)]
    assert [e.targets[0] for e in audit.read(limit=3)] == ["id-3", "id-4"]  # garbage was one of 3
    assert audit.read(Path(log_path.parent / "missing.log")) == []


def test_concurrent_writers_never_interleave_lines(log_path: Path) -> None:
    def write(n: int) -> None:
        for i in range(50):
            audit.record("retry", [f"{n}-{i}" * 20], {"ok": True, "message": "x" * 500}, "e")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(audit.read()) == 200


def test_default_path_is_in_the_user_state_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    import platformdirs

    monkeypatch.delenv(audit.AUDIT_ENV, raising=False)
    expected = platformdirs.user_state_path("lazycelery", appauthor=False) / "audit.log"
    assert audit.default_path() == expected


def test_audit_command_prints_lines_and_json(log_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    audit.record("revoke", ["id-1"], {"ok": True, "message": "1 ok"}, "prod")
    audit.record("shutdown", ["w1@h"], {"ok": False, "message": "0 ok, 1 did not answer: w1@h"}, "prod")
    assert main(["audit"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert "  prod  revoke  ok  1 ok  [id-1]" in out[0]
    assert "  shutdown  FAILED  0 ok, 1 did not answer: w1@h  [w1@h]" in out[1]
    assert main(["audit", "-n", "1", "--json"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["action"] == "shutdown"
    assert main(["audit", "--path"]) == 0
    assert capsys.readouterr().out.strip() == str(log_path)
