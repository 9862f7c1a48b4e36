"""The audit log in the history store (real SQLite and PostgreSQL): every action's entry goes
into the file and, with a store configured, into the store's ``audit`` table; `lazycelery
audit` then reads the store. A store that cannot take an entry never loses the file's copy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from celery import Celery

from conftest import free_port
from lazycelery.cli import main
from lazycelery.core import audit
from lazycelery.core.actions import Actions
from lazycelery.store import open_store
from lazycelery.store.audit import read_audit, store_sink, write_audit


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def audit_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "audit.log"
    monkeypatch.setenv(audit.AUDIT_ENV, str(path))
    monkeypatch.delenv("LAZYCELERY_STORE", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return path


def _actions(url: str | None) -> Actions:
    return Actions(Celery(broker="memory://"), environment="prod", audit_sink=store_sink(url))


def test_each_action_goes_into_the_file_and_the_store(store_url: str, audit_log: Path) -> None:
    actions = _actions(store_url)
    assert actions.purge("emails", lambda queue: 3).audit_error is None
    assert actions.purge("reports", lambda queue: 0).audit_error is None
    in_file = audit.read(audit_log)
    store = open_store(store_url, writer=False)
    assert read_audit(store) == in_file and len(in_file) == 2
    assert read_audit(store, limit=1) == in_file[1:]
    assert store.query("SELECT action, environment, ok FROM audit ORDER BY id") == [
        ("purge", "prod", True), ("purge", "prod", True)]
    store.close()


def test_a_store_that_cannot_take_the_entry_keeps_the_file_and_says_so(audit_log: Path) -> None:
    url = f"postgresql://lc:pw-s3cret@127.0.0.1:{free_port()}/celerymon"
    done = _actions(url).purge("emails", lambda queue: 3)
    assert done.ok and done.audit_error is not None
    assert done.audit_error.startswith(
        "in the file, not in the store: store postgresql://lc:********@127.0.0.1:")
    assert "pw-s3cret" not in done.audit_error and "\n" not in done.audit_error
    assert [e.targets for e in audit.read(audit_log)] == [["emails"]]


def test_without_a_store_only_the_file(audit_log: Path) -> None:
    assert store_sink(None) is None
    assert _actions(None).purge("emails", lambda queue: 3).audit_error is None
    assert len(audit.read(audit_log)) == 1


def test_the_audit_command_reads_the_configured_store(
        store_url: str, audit_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _actions(store_url).purge("emails", lambda queue: 3)  # this machine: file and store
    other = audit.AuditEntry(time="2026-12-06T10:00:00.000+00:00", user="ann", host="ops-2",
                             environment="prod", action="revoke", targets=["t-1"],
                             result={"ok": True, "message": "1 ok"})
    store = open_store(store_url)
    write_audit(store, other)  # another operator's machine: only in the store
    store.close()
    assert main(["audit", "--store", store_url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and "ann@ops-2  prod  revoke  ok  1 ok  [t-1]" in out[0]
    assert "purge  ok" in out[1]
    assert main(["audit", "--store", store_url, "--json", "-n", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["targets"] == ["emails"]
    assert main(["audit", "--store", store_url, "--file"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1  # this machine's file


def test_an_unreadable_store_falls_back_to_the_file_in_one_line(
        tmp_path: Path, audit_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    audit.record("revoke", ["t-9"], {"ok": True, "message": "1 ok"}, "prod")
    missing = tmp_path / "none.sqlite3"
    assert main(["audit", "--store", f"sqlite:///{missing}"]) == 0
    captured = capsys.readouterr()
    assert captured.err == (f"lazycelery: audit: store sqlite:///{missing}: no such file "
                            f"(`lazycelery record` creates it); reading {audit_log}\n")
    assert "[t-9]" in captured.out and not missing.exists()


def test_the_compliance_report_counts_the_store_and_the_file_once(
        store_url: str, audit_log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import datetime, timezone

    monkeypatch.setenv("LAZYCELERY_MASK_COUNTS", str(tmp_path / "counts.log"))
    _actions(store_url).purge("emails", lambda queue: 3)  # in the file and the store
    audit.record("revoke", ["t-2"], {"ok": True}, "prod")  # taken without the store: file only
    other = audit.AuditEntry(time=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                             user="ann", host="ops-2", environment="prod", action="revoke",
                             targets=["t-1"], result={"ok": False})
    store = open_store(store_url)
    write_audit(store, other)  # another operator's: store only
    store.close()
    assert main(["report", "compliance", "--store", store_url, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["actions_total"] == 3
    assert {(a["user"], a["kind"], a["ok"], a["count"]) for a in doc["actions"]} == {
        (other.user, "revoke", False, 1), (in_file_user(audit_log), "purge", True, 1),
        (in_file_user(audit_log), "revoke", True, 1)}


def in_file_user(path: Path) -> str:
    return audit.read(path)[0].user
