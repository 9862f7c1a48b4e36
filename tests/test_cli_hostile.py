"""Hostile text on the one-shot commands: queue tables, peek, task and worker lines, the audit log,
the plugin list and error lines show control characters as escapes (one row stays one line);
``--json`` stays valid JSON with DEL, C1 and bidi controls escaped too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lazycelery import cli
from lazycelery.broker.model import PeekedMessage, QueueSnapshot, QueueStats
from lazycelery.broker.report import format_peek, format_snapshot
from lazycelery.commands.plugins import _print_table
from lazycelery.commands.task import describe_placement, finish
from lazycelery.core import audit
from lazycelery.core.actions import ActionResult, Placement, Reply
from lazycelery.text import visible
from lazycelery.tui.plugins import FAILED, PluginInfo, Selection
from tests.hostile import HOSTILE, RAW, TEXT_HOSTILE

RAW_JSON = (b"\x7f", b"\xc2\x9b", b"\xe2\x80\xae")


def assert_lines_clean(text: str, expected_lines: int | None = None) -> list[str]:
    lines = text.rstrip("\n").split("\n")
    for line in lines:
        assert not RAW.search(line), line[:200]
    if expected_lines is not None:
        assert len(lines) == expected_lines, text[:500]
    return lines


@pytest.mark.parametrize("name", list(HOSTILE))
def test_queue_table_and_peek(name: str) -> None:
    value = HOSTILE[name]
    text_value = value if isinstance(value, str) and value else "celery"
    snapshot = QueueSnapshot(
        taken_at=1_700_000_000.0, source=text_value, error=text_value, stale=True,
        notes=(text_value,), queues=(
            QueueStats(name=text_value, ready=3, reserved=0, consumers=1,
                       oldest_age_s=value),  # type: ignore[arg-type]
            QueueStats(name="plain", ready=1),
        ))
    # STALE line, header, 2 rows, blank, summary, source, 1 note
    assert_lines_clean(format_snapshot(snapshot, f"redis://{text_value}@h/0"), 8)
    messages = [PeekedMessage(position=1, task=value, id=value, eta=value,  # type: ignore[arg-type]
                              argsrepr=value, kwargsrepr=value,  # type: ignore[arg-type]
                              note=value, age_s=value, priority=value)]  # type: ignore[arg-type]
    assert_lines_clean(format_peek(text_value, messages), 2)


@pytest.mark.parametrize("name", list(TEXT_HOSTILE))
def test_task_and_worker_lines(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    value = TEXT_HOSTILE[name]
    placement = Placement(holders={"t1": value}, held_as={"t1": value}, online=(value,),
                          source="inspect")
    lines = describe_placement(placement, ["t1", "t2"], "revoke")
    assert len(lines) == 2 and value in lines[0]  # the raw text; printing escapes it
    result = ActionResult(action="revoke", targets=("t1",), ok=False, message=value,
                          replies={value: Reply(ok=False, text=value)}, missing=(value,),
                          refused={"t2": value})
    assert finish(result) == 1
    out = capsys.readouterr().out
    assert_lines_clean(out, 4)
    assert visible(value)[:20] in out


def test_audit_log_text_and_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "audit.log"
    monkeypatch.setenv(audit.AUDIT_ENV, str(log))
    evil = "q\x1b]0;owned\x07\u202e\x9b\x7f"
    audit.record("purge", [evil], {"ok": True, "message": f"purged {evil}\nline two"}, evil)
    assert cli.main(["audit"]) == 0
    out = capsys.readouterr().out
    assert_lines_clean(out, 1)
    assert "q\\x1b]0;owned\\x07\\u202e\\x9b\\x7f" in out
    assert cli.main(["audit", "--json"]) == 0
    raw = capsys.readouterr().out.encode()
    assert not any(b in raw for b in RAW_JSON)
    doc = json.loads(raw)
    assert doc["targets"] == [evil]  # the same value, escaped the JSON way


def test_plugin_table_escapes_third_party_text(capsys: pytest.CaptureFixture[str]) -> None:
    info = PluginInfo(name="evil\x1b[2J", target="x:y\u202e", distribution="d\x07", version="1",
                      builtin=False, state=FAILED, reason="boom \x1b]0;t\x07",
                      detail="Traceback:\n  \x1b[31mline\n")
    _print_table([info], Selection(), verbose=True)
    out = capsys.readouterr().out
    lines = assert_lines_clean(out)
    assert "evil\\x1b[2J" in lines[1] and "boom \\x1b]0;t\\x07" in lines[1]
    assert "  \\x1b[31mline" in lines  # the traceback keeps its lines, escapes shown


def test_error_lines_escape_what_they_echo(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    missing = tmp_path / "no\x1b]0;x\x07.toml"
    assert cli.main(["--config", str(missing), "config", "show"]) != 0
    err = capsys.readouterr().err
    assert_lines_clean(err, 1)
    assert "no\\x1b]0;x\\x07.toml" in err
