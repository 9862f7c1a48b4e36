"""A multi-environment serve's automation in process: each environment gets the rules in effect
for it (top-level plus its own table), fed by its own observer only; ``GET /api/alerts`` lists
every environment's rules with their ``env`` (``?env=`` one environment's); report files get
the environment's name. Events are replayed from the recorded Redis stream."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the serve extra")
with warnings.catch_warnings():  # starlette 1.x suggests another httpx package: not ours to pick
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from lazycelery.config import Settings
from lazycelery.core.envs import EnvSet, EnvWatch
from lazycelery.errors import ConfigError
from lazycelery.serve.auth import AuthConfig, Guard
from lazycelery.serve.envs import EnvServices
from lazycelery.serve.envs_app import build_env_app
from lazycelery.serve.envs_automation import EnvAutomation, env_file
from lazycelery.serve.runtime import Observer
from lazycelery.serve.service import Service
from tests.replay import load_events

CONFIG = """
[[alerts.rules]]
name = "any-failure"
kind = "failures"
filter = "name:*"
count = 1
window = "1h"

[environments.prod]
broker = "memory://"

[environments.staging]
broker = "memory://"

[[environments.staging.alerts.rules]]
name = "staging-only"
kind = "failures"
filter = "name:*"
count = 1000
window = "1h"
"""


def services(config: Path) -> EnvServices:
    from celery import Celery

    envs = EnvSet([EnvWatch(name, Settings(broker_url="memory://", env_name=name,
                                           config_path=config), max_tasks=100_000)
                   for name in ("prod", "staging")])
    out = EnvServices(envs)
    for name in ("prod", "staging"):
        app = Celery(name, broker="memory://", set_as_current=False)
        out.services[name] = Service(app=app, index=envs[name].index, environment=name)
        out.observers[name] = Observer(out.services[name])
    return out


@pytest.fixture
def started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EnvServices]:
    monkeypatch.setenv("LAZYCELERY_ALERTS_DIR", str(tmp_path / "alerts"))
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    envs = services(config)
    said: list[str] = []
    automation = EnvAutomation(config, said.append)
    automation.start(envs)
    try:
        assert "prod: alerts: 1 rule(s)" in " ".join(said)
        assert "staging: alerts: 2 rule(s)" in " ".join(said)
        yield envs
    finally:
        automation.stop()


def test_each_environment_evaluates_its_own_events(started: EnvServices) -> None:
    events = load_events("redis")  # has failures: what prod's ingest thread would pass on
    prod = started.services["prod"]
    started.observers["prod"].on_batch(events, started.envs["prod"].index.apply_batch(events))
    for service in started.services.values():
        assert service.alerts is not None
        service.alerts.step()
    states = {name: {r["name"]: r["state"] for r in s.alerts.rules()}  # type: ignore[union-attr]
              for name, s in started.services.items()}
    assert states == {"prod": {"any-failure": "firing"},
                      "staging": {"any-failure": "ok", "staging-only": "ok"}}
    assert prod.alerts is not None and prod.alerts.evaluator.environment == "prod"

    with TestClient(build_env_app(started, Guard(AuthConfig({}))),
                    raise_server_exceptions=False) as client:
        everything = client.get("/api/alerts").json()
        assert everything["configured"] is True and everything["firing"] == 1
        assert [(r["env"], r["name"]) for r in everything["rules"]] == [
            ("prod", "any-failure"), ("staging", "any-failure"), ("staging", "staging-only")]
        staging = client.get("/api/alerts", params={"env": "staging"}).json()
        assert {r["env"] for r in staging["rules"]} == {"staging"} and staging["firing"] == 0
        firing = client.get("/api/alerts", params={"state": "firing"}).json()
        assert [(r["env"], r["name"]) for r in firing["rules"]] == [("prod", "any-failure")]
        unknown = client.get("/api/alerts", params={"env": "qa"})
        assert unknown.status_code == 404 and unknown.json()["parameter"] == "env"
        bad = client.get("/api/alerts", params={"state": "on"})
        assert bad.status_code == 400 and bad.json()["parameter"] == "state"


def test_a_bad_rule_is_one_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAZYCELERY_ALERTS_DIR", str(tmp_path / "alerts"))
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.replace('count = 1000', 'count = "many"'))
    said: list[str] = []
    envs = services(config)
    automation = EnvAutomation(config, said.append)
    try:
        with pytest.raises(ConfigError, match="staging"):
            automation.start(envs)
    finally:
        automation.stop()
    # checked before anything started: prod's rules did not start either
    assert said == [] and all(s.alerts is None for s in envs.services.values())


def test_report_files_get_the_environment_name() -> None:
    assert env_file("~/reports/daily-{date}.md", "prod") == "~/reports/daily-{date}-prod.md"
    assert env_file("/r/{env}/{date}.html", "eu/west") == "/r/eu_west/{date}.html"
    assert env_file("/r/summary", "qa") == "/r/summary-qa"


def test_report_schedules_say_when_the_next_runs(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """As a single-environment serve or record says it: an environment with a store of its own
    names its next run; one without says its schedules are off."""
    from dataclasses import replace

    monkeypatch.setenv("LAZYCELERY_ALERTS_DIR", str(tmp_path / "alerts"))
    config = tmp_path / "config.toml"
    config.write_text(CONFIG + f'\n[[reports.schedules]]\ncron = "0 8 * * *"\n'
                      f'file = "{tmp_path}/daily-{{date}}.md"\n')
    envs = services(config)
    prod = envs.envs["prod"]
    assert prod.settings is not None
    prod.settings = replace(prod.settings, store_url=f"sqlite:///{tmp_path}/h.sqlite3")
    said: list[str] = []
    automation = EnvAutomation(config, said.append)
    try:
        automation.start(envs)
    finally:
        automation.stop()
    lines = [line for line in said if "report schedules" in line]
    assert len(lines) == 2, said
    assert lines[0].startswith("prod: report schedules: 1, the next at ")
    assert lines[0].endswith(" 08:00 UTC")
    assert lines[1] == "staging: report schedules off: this environment has no store of its own"
