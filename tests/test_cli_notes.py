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


APP = """from celery import Celery
app = Celery("proj", broker="redis://127.0.0.1:2/0")
"""
BARE_APP = """from celery import Celery
app = Celery("bare")
"""


def test_app_flag_with_a_default_environment_says_which_wins(tmp_path: Path) -> None:
    """-A gives the app and its broker; default_environment the rest (docs/configuration.md)."""
    (tmp_path / "proj.py").write_text(APP)
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    result = run("--config", str(config), "-A", "proj", "queues", cwd=tmp_path)
    assert result.returncode == 2, result
    note = ("lazycelery: note: -A proj wins: its app and broker are used; default_environment "
            "'prod' still gives its other settings (queues, result backend, store, alerts): "
            "pass --env to choose one")
    lines = result.stderr.splitlines()
    assert lines[0] == note and lines.count(note) == 1, result.stderr
    assert "127.0.0.1:2" in lines[1]  # the app's broker, not the environment's (port 1)
    assert "Traceback" not in result.stderr


def test_app_without_a_broker_says_the_environment_gives_it(tmp_path: Path) -> None:
    (tmp_path / "bare.py").write_text(BARE_APP)
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    result = run("--config", str(config), "-A", "bare", "queues", cwd=tmp_path)
    lines = result.stderr.splitlines()
    assert lines[0] == ("lazycelery: note: -A bare wins for the app, but it sets no broker: "
                        "the broker comes from config environment 'prod'; default_environment "
                        "'prod' still gives its other settings (queues, result backend, "
                        "store, alerts): pass --env to choose one"), result.stderr
    assert "127.0.0.1:1" in lines[1]


def test_no_app_note_with_env(tmp_path: Path) -> None:
    (tmp_path / "proj.py").write_text(APP)
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    result = run("--config", str(config), "--env", "prod", "-A", "proj", "queues", cwd=tmp_path)
    assert "note:" not in result.stderr, result.stderr
