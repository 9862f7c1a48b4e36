"""The worker restart hook with real commands: the configured line split like a shell line, the
worker's name substituted into argv (never through a shell), the exit code and first output
line reported and audited, refused in read-only mode, without a command, and for odd names."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from lazycelery.cli import main
from lazycelery.core.action_result import ReadOnlyError
from lazycelery.core.actions import Actions
from lazycelery.core.restart import restart_argv, run_restart
from lazycelery.errors import UsageError


@pytest.fixture
def hook(tmp_path: Path) -> tuple[Path, Path]:
    """A script that says what it got, appends its arguments to a file and exits 0 (or the
    code in its second argument)."""
    out = tmp_path / "restarted.txt"
    script = tmp_path / "restart-hook.sh"
    script.write_text(f'#!/bin/sh\necho "restarting $1"\necho "$1|$2" >> {out}\n'
                      'exit "${3:-0}"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, out


def test_placeholders_go_into_single_arguments() -> None:
    argv = restart_argv("systemctl restart 'celery@{name}' --host={host} {worker}", "w1@box")
    assert argv == ["systemctl", "restart", "celery@w1", "--host=box", "w1@box"]
    assert restart_argv("kubectl rollout restart deploy/{name}", "w-2.x@h") == [
        "kubectl", "rollout", "restart", "deploy/w-2.x"]


@pytest.mark.parametrize("name", ["w1@h;rm -rf /", "w1 h", "-rf", "$(id)@h", "w1@h\n", ""])
def test_an_odd_worker_name_is_refused(name: str) -> None:
    with pytest.raises(UsageError, match="not a plain name@host"):
        restart_argv("echo {worker}", name)


@pytest.mark.parametrize("template, problem", [
    ("echo {cmd}", "unknown placeholder {cmd}"), ("echo 'x", "cannot be split"),
    ("", "is empty"), ("echo {0}", "unknown placeholder {0}")])
def test_a_bad_template_is_one_line(template: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem.replace("{", r"\{").replace("}", r"\}")):
        restart_argv(template, "w1@h")


def test_the_command_runs_without_a_shell(hook: tuple[Path, Path], tmp_path: Path) -> None:
    script, out = hook
    outcome = run_restart(restart_argv(f"{script} {{worker}} '$(touch {tmp_path}/pwned)' 7",
                                       "w1@h"))
    assert (outcome.exit_code, outcome.first_line, outcome.ok) == (7, "restarting w1@h", False)
    assert out.read_text() == f"w1@h|$(touch {tmp_path}/pwned)\n"
    assert not (tmp_path / "pwned").exists()
    missing = run_restart([str(tmp_path / "nope")])
    assert missing.exit_code is None and missing.first_line.startswith("could not start")


def test_actions_restart_is_audited_and_refused_read_only(hook: tuple[Path, Path],
                                                          tmp_path: Path) -> None:
    from celery import Celery

    script, out = hook
    audit = tmp_path / "audit.log"
    actions = Actions(Celery(set_as_current=False), environment="prod", audit_path=audit)
    result = actions.restart("w1@h", f"{script} {{worker}} {{name}}")
    assert result.ok and out.read_text() == "w1@h|w1\n"
    assert result.replies["w1@h"].text == "exit 0: restarting w1@h"
    entry = json.loads(audit.read_text().splitlines()[-1])
    assert (entry["action"], entry["targets"], entry["environment"]) == ("restart", ["w1@h"],
                                                                         "prod")
    assert entry["result"]["message"] == f"ran {script} w1@h w1: exit 0: restarting w1@h"
    with pytest.raises(UsageError, match="no restart command configured"):
        actions.restart("w1@h", None)
    read_only = Actions(Celery(set_as_current=False), read_only=True, audit_path=audit)
    with pytest.raises(ReadOnlyError):
        read_only.restart("w1@h", f"{script} {{worker}}")
    assert out.read_text() == "w1@h|w1\n"  # nothing more ran


def test_the_cli(hook: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 capsys: pytest.CaptureFixture[str]) -> None:
    script, out = hook
    config = tmp_path / "config.toml"
    config.write_text(f'restart = "{script} {{worker}} {{name}}"\n'
                      f'[environments.prod]\nbroker = "redis://127.0.0.1:1/0"\n'
                      f'restart = "{script} {{worker}} prod 3"\n')
    monkeypatch.setenv("LAZYCELERY_AUDIT_LOG", str(tmp_path / "audit.log"))
    base = ["worker", "restart", "--config", str(config)]
    assert main([*base, "w1@h", "--dry-run"]) == 0
    assert "would run" in capsys.readouterr().out and not out.exists()
    assert main([*base, "w1@h", "--yes"]) == 0
    assert out.read_text() == "w1@h|w1\n"
    assert "exit 0: restarting w1@h" in capsys.readouterr().out
    assert main([*base, "--env", "prod", "w2@h", "--yes"]) == 1  # the environment's own, exit 3
    assert "exit 3: restarting w2@h" in capsys.readouterr().out
    assert main([*base, "--read-only", "w1@h", "--yes"]) == 3
    assert "read-only" in capsys.readouterr().err
    assert out.read_text() == "w1@h|w1\nw2@h|prod\n"
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert main(["worker", "restart", "--config", str(empty), "w1@h", "--yes"]) == 2
    assert "no restart command configured" in capsys.readouterr().err
