"""A one-shot command says the settings' notes on stderr, once: here --broker given while the
config file's default_environment still supplies the other settings (a subprocess)."""

from __future__ import annotations

from pathlib import Path

from tests.test_cli_bad_input import run

CONFIG = """default_environment = "prod"

[environments.prod]
broker = "redis://127.0.0.1:1/0"
queues = ["billing"]
"""
NOTE = ("lazycelery: note: --broker names the cluster, but default_environment 'prod' still "
        "gives its other settings (queues, result backend, store, alerts): pass --env to "
        "choose one")


def test_broker_with_a_default_environment_is_noted_once(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    result = run("--config", str(config), "--broker", "redis://127.0.0.1:1/0", "queues")
    assert result.returncode == 2, result
    lines = result.stderr.splitlines()
    assert lines[0] == NOTE and lines.count(NOTE) == 1, result.stderr
    assert lines[1].startswith("lazycelery: cannot reach redis at 127.0.0.1:1/0")
    assert "Traceback" not in result.stderr


def test_no_note_with_env_or_without_broker(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    for argv in (["--env", "prod", "--broker", "redis://127.0.0.1:1/0"], []):
        result = run("--config", str(config), *argv, "queues")
        assert "note:" not in result.stderr, result.stderr
