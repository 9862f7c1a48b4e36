"""`lazycelery mask test|rules` and `lazycelery report compliance`, run in process on a config
file, an audit log and a counts log of their own."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from lazycelery.cli import main
from lazycelery.core import audit
from lazycelery.mask import counts

CONFIG = """\
default_environment = "prod"
[mask]
extra_keys = ["pin"]
regex = ["sk_(", "sk_live_[0-9a-z]{8}"]
[mask.fields]
"billing.charge" = ["args[1]"]
[environments.prod]
broker = "redis://localhost:6379/0"
read_only = true
[environments.staging]
broker = "redis://localhost:6379/1"
"""


@pytest.fixture()
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    for name in ("LAZYCELERY_BROKER_URL", "CELERY_BROKER_URL", "LAZYCELERY_STORE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LAZYCELERY_CONFIG", str(config))
    monkeypatch.setenv(audit.AUDIT_ENV, str(tmp_path / "audit.log"))
    monkeypatch.setenv(counts.COUNTS_ENV, str(tmp_path / "counts.log"))
    return tmp_path


def test_mask_test_shows_what_the_rules_do(files: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mask", "test", "(42, 'ana', 'sk_live_abcdefgh')", "--task", "billing.charge",
                 "--kwargs", "{'pin': 1234, 'password': 'hunter2'}"]) == 0
    out, err = capsys.readouterr()
    assert err == ("lazycelery: mask rule skipped: mask.regex[0]: bad regular expression "
                   "'sk_(' (missing ), unterminated subpattern at position 3): skipped\n")
    assert out.splitlines() == [
        "args    (42, 'ana', 'sk_live_abcdefgh')",
        "     -> (42, '***' (str, 3 chars), '***' (str, 16 chars))",
        "kwargs  {'pin': 1234, 'password': 'hunter2'}",
        "     -> {'pin': '***' (int, 4 digits), 'password': '***' (str, 7 chars)}",
        "masked: pattern:regex[1] 1, field:billing.charge:args[1] 1, key:pin 1, key:password 1",
    ]
    assert main(["mask", "test", "{'token': 'x'}", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["args"] == {"in": "{'token': 'x'}", "out": "{'token': '***' (str, 1 char)}"}
    assert doc["environment"] == "prod" and doc["masked"] == {"key:token": 1}
    assert "field:billing.charge:args[1]" in doc["rules"] and len(doc["problems"]) == 1


def test_mask_rules_lists_the_rules_in_force(files: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mask", "rules"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "masking rules in force (environment 'prod'):"
    assert "  key:pin" in out and "  pattern:card" in out and "  pattern:email" not in out
    assert main(["mask"]) == 2
    assert capsys.readouterr().err == "lazycelery: mask: expected an action: test or rules\n"


def _history(files: Path) -> None:
    audit.record("retry", ["t1"], {"ok": True, "message": "1 retried"}, "prod")
    audit.record("retry", ["t2"], {"ok": True}, "prod")
    audit.record("purge", ["celery"], {"ok": False}, "staging")
    with (files / "audit.log").open("a") as fh:  # an action of long ago, and a broken line
        fh.write('{"time": "2020-01-01T00:00:00+00:00", "user": "old", "host": "h", '
                 '"environment": "prod", "action": "revoke", "targets": [], "result": {}}\n'
                 "not json\n")
    counts.append({"key:password": 40, "pattern:card": 2}, "prod", events=500)
    counts.append({"key:password": 2}, "prod", events=10)


def test_the_compliance_report_counts_actions_and_masked_values(
        files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _history(files)
    user = audit.read()[0].user
    assert main(["report", "compliance", "--since", "30d", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "lazycelery.compliance/1" and doc["actions_total"] == 3
    assert doc["actions"] == [
        {"user": user, "environment": "prod", "kind": "retry", "ok": True, "count": 2},
        {"user": user, "environment": "staging", "kind": "purge", "ok": False, "count": 1},
    ]
    assert doc["masking"]["masked"] == [
        {"environment": "prod", "rule": "key:password", "count": 42},
        {"environment": "prod", "rule": "pattern:card", "count": 2},
    ]
    assert doc["masking"]["events_checked"] == {"prod": 510}
    assert doc["read_only"] == [{"environment": "prod", "read_only": True},
                                {"environment": "staging", "read_only": False}]
    assert doc["retention"]["store_default_age"] == "30d"

    assert main(["report", "compliance"]) == 0  # Markdown by default, 30 days
    md = capsys.readouterr().out
    assert "## Actions taken (3)" in md
    assert f"| {user} | prod | retry | ok | 2 |" in md
    assert "| prod | key:password | 42 |" in md and "- key names: password," in md

    assert main(["report", "compliance", "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["section", "environment", "user", "name", "value"]
    assert ["action", "staging", user, "purge failed", "1"] in rows
    assert ["masked", "prod", "", "key:password", "42"] in rows


def test_report_bad_input_is_one_line(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "compliance", "--since", "soon"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lazycelery: --since: needs a duration") and err.count("\n") == 1
    # `report` alone is the activity report, from the history store (none here)
    assert main(["report"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lazycelery: report: store ") and err.count("\n") == 1
    assert err.endswith("; or --listen SECONDS for a live window, or `report compliance`\n")


def test_the_compliance_report_measures_coverage_from_the_store(
        files: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from lazycelery.store import open_store
    from lazycelery.store.batch import GapRow, WriteBatch

    url = f"sqlite:///{files / 'history.sqlite3'}"
    monkeypatch.setenv("LAZYCELERY_STORE", url)
    assert main(["report", "compliance", "--since", "1d", "--format", "json"]) == 0
    assert "error" in json.loads(capsys.readouterr().out)["coverage"]  # no store yet

    now = time.time()
    store = open_store(url)
    run, _ = store.begin_recorder("h", 1, "redis://h", now=now - 7200)
    store.end_recorder(run, now=now - 3600)  # a recorder ran 1 h of the last day
    store.write(WriteBatch(gaps=[GapRow(now - 5400, now - 4500, "broker restarted", "ingest",
                                        lost_events=12)]))
    store.close()
    assert main(["report", "compliance", "--since", "1d", "--format", "json"]) == 0
    cov = json.loads(capsys.readouterr().out)["coverage"]
    assert cov["recorded_s"] == pytest.approx(3600, abs=1)
    assert cov["gaps"] == 1 and cov["gap_s"] == pytest.approx(900, abs=1)
    assert cov["lost_events"] == 12
    assert cov["coverage"] == pytest.approx(2700 / 86400, rel=1e-3)
    assert main(["report", "compliance", "--since", "1d"]) == 0
    assert ("a recorder ran 60 min of 24.0 h; 1 gap(s) in its record (15 min, 12 events counted "
            "lost); covered 3.1% of the period.") in capsys.readouterr().out


def test_the_compliance_report_lists_api_users_and_roles_never_their_hashes(
        files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lazycelery.serve.auth import hash_password, hash_token

    password_hash = hash_password("s3cret-pass")
    token_hash = hash_token("tok-123")
    config = files / "config.toml"
    config.write_text(CONFIG + f"""
[[serve.users]]
name = "alice"
password = "{password_hash}"
role = "operator"
[[serve.tokens]]
name = "grafana"
sha256 = "{token_hash}"
""")
    assert main(["report", "compliance", "--format", "json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["api"] == {"accounts": [
        {"name": "alice", "kind": "user", "role": "operator"},
        {"name": "grafana", "kind": "token", "role": "viewer"}]}
    assert main(["report", "compliance"]) == 0
    md = capsys.readouterr().out
    assert "| alice | user | operator |" in md and "| grafana | token | viewer |" in md
    assert main(["report", "compliance", "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert ["api_account", "prod", "alice", "user", "operator"] in rows
    for text in (out, md):
        assert password_hash not in text and token_hash not in text

    # a broken [serve] table is said, not raised
    config.write_text(CONFIG + '\n[[serve.users]]\nname = "bob"\n')
    assert main(["report", "compliance", "--format", "json"]) == 0
    api = json.loads(capsys.readouterr().out)["api"]
    assert api["accounts"] == [] and "password" in api["error"]
