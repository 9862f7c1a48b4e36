"""A bad alert rule or retry policy stops `record` and `serve` with its one line before anything
starts: no report-schedules line before it, no history store created (a subprocess, no broker
reached)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli_bad_input import REPO, one_line

SCHEDULE = """
[[reports.schedules]]
cron = "* * * * *"
file = "{reports}/r-{{date}}.md"
"""
BAD_RULE = """
[[alerts.rules]]
name = "fails"
kind = "failures"
window = "soon"
"""
BAD_POLICY = """
[[policies.retry]]
name = "flaky"
task = "*"
backoff = "soon"
"""


def _run(tmp_path: Path, bad: str, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.toml"
    config.write_text(SCHEDULE.format(reports=tmp_path) + bad)
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("LAZYCELERY_", "CELERY_"))}
    environ.update(LAZYCELERY_CONFIG=str(config), LAZYCELERY_AUDIT_LOG=os.devnull,
                   LAZYCELERY_ALERTS_DIR=str(tmp_path / "alerts"),
                   XDG_STATE_HOME=str(tmp_path / "state"), XDG_DATA_HOME=str(tmp_path / "data"))
    return subprocess.run([sys.executable, "-m", "lazycelery", "--broker",
                           "redis://127.0.0.1:1/0", *args], capture_output=True, text=True,
                          timeout=60, env=environ, stdin=subprocess.DEVNULL)


def _free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


@pytest.mark.parametrize(("bad", "key"), [
    pytest.param(BAD_RULE, "alerts.rules[0].window", id="rule"),
    pytest.param(BAD_POLICY, "policies.retry[0].backoff", id="policy")])
@pytest.mark.parametrize("command", ["record", "serve"])
def test_a_bad_rule_or_policy_is_the_only_line_and_no_store_is_created(
        tmp_path: Path, command: str, bad: str, key: str) -> None:
    store = tmp_path / "history.sqlite3"
    port = ["--port", _free_port()] if command == "serve" else []
    result = _run(tmp_path, bad, command, *port, "--store", f"sqlite:///{store}")
    assert one_line(result).endswith(f"{key}: not a duration: 'soon' (try 500ms, 2s, 10m, 1h)")
    assert not store.exists()


def test_otel_without_the_sdk_is_the_only_line_and_no_store_is_created(tmp_path: Path) -> None:
    """`record --otel` where the OpenTelemetry SDK is not installed (a plain `opentelemetry`
    package shadows the real one): the install hint alone, before the schedules start."""
    shadow = tmp_path / "shadow" / "opentelemetry"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    store = tmp_path / "history.sqlite3"
    config = tmp_path / "config.toml"
    config.write_text(SCHEDULE.format(reports=tmp_path))
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("LAZYCELERY_", "CELERY_", "OTEL_"))}
    environ.update(LAZYCELERY_CONFIG=str(config), LAZYCELERY_AUDIT_LOG=os.devnull,
                   LAZYCELERY_ALERTS_DIR=str(tmp_path / "alerts"),
                   PYTHONPATH=os.pathsep.join([str(shadow.parent), str(REPO)]))
    result = subprocess.run([sys.executable, "-m", "lazycelery", "--broker",
                             "redis://127.0.0.1:1/0", "--otel", "record", "--store",
                             f"sqlite:///{store}"], capture_output=True, text=True, timeout=60,
                            env=environ, stdin=subprocess.DEVNULL)
    assert one_line(result).startswith("lazycelery: --otel needs the OpenTelemetry SDK")
    assert not store.exists()
