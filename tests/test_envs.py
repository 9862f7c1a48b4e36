"""Several environments: resolving them from the config, the status row, the search across
environments (recorded events replayed into two indexes), and tail's env-tagged lines."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from lazycelery.cli import build_parser
from lazycelery.config import resolve
from lazycelery.config_envs import MIN_SHARE, requested_envs, resolve_envs, share_of
from lazycelery.core.env_status import MISCONFIGURED, EnvStatus
from lazycelery.core.envs import EnvSet, EnvWatch
from lazycelery.core.ingest_status import Gap, IngestStatus
from lazycelery.errors import ConfigError
from lazycelery.tail.buffer import Notice
from lazycelery.tail.envs import EnvFormatter, EnvReporter
from lazycelery.tail.events import TailEvent
from lazycelery.tail.format import JsonFormatter, TextFormatter
from tests.replay import load_events

CONFIG = """
max_tasks = 30000

[environments.prod]
broker = "redis://:s3cret@prod.internal:6379/0"
color = "red"
read_only = true
store = "sqlite:///tmp/prod.db"

[environments.staging]
broker = "amqp://guest:guest@staging.internal:5672/stage"

[environments.broken]
app = "no_such_module_for_lazycelery.celery"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    return path


def _args(config: Path, *argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["--config", str(config), *argv])


def test_env_repeats_and_all_envs_are_parsed(config: Path) -> None:
    args = _args(config, "tail", "--env", "prod", "--env", "staging")
    assert args.envs == ["prod", "staging"] and args.env == "staging"
    assert requested_envs(args) == ["prod", "staging"]
    assert requested_envs(_args(config, "--all-envs")) == ["*"]
    assert requested_envs(_args(config, "--env", "prod")) is None
    assert requested_envs(_args(config, "--env", "prod", "--env", "prod")) is None


def test_each_environment_gets_its_own_settings_and_a_share_of_the_budget(config: Path) -> None:
    choices, notes = resolve_envs(_args(config, "--all-envs"), environ={})
    assert [c.name for c in choices] == ["prod", "staging", "broken"]
    prod, staging, broken = choices
    assert prod.settings is not None and staging.settings is not None
    assert prod.settings.broker_url.startswith("redis://") and prod.settings.read_only
    assert staging.settings.broker_url.startswith("amqp://") and not staging.settings.read_only
    assert prod.color == "red" and staging.color is None
    assert prod.settings.max_tasks == staging.settings.max_tasks == 10_000
    assert broken.settings is None and broken.error is not None
    assert "no_such_module_for_lazycelery" in broken.error and "\n" not in broken.error
    assert notes == []


def test_one_cluster_variables_are_ignored_and_said(config: Path) -> None:
    environ = {"CELERY_BROKER_URL": "redis://elsewhere:6379/0"}
    choices, notes = resolve_envs(_args(config, "--env", "prod", "--env", "staging"), environ)
    assert [c.settings.broker_url for c in choices if c.settings] == [
        "redis://:s3cret@prod.internal:6379/0", "amqp://guest:guest@staging.internal:5672/stage"]
    assert notes == ["CELERY_BROKER_URL is ignored with several environments "
                     "(each uses its own table)"]


@pytest.mark.parametrize("flag", [["--broker", "redis://x:6379/0"], ["-A", "proj"],
                                  ["--store", "sqlite:///x.db"]])
def test_one_cluster_flags_are_refused(config: Path, flag: list[str]) -> None:
    with pytest.raises(ConfigError, match="names one cluster"):
        resolve_envs(_args(config, "--all-envs", *flag), environ={})


def test_unknown_names_and_one_cluster_commands_are_one_line(config: Path) -> None:
    with pytest.raises(ConfigError, match="unknown environment 'nope'"):
        resolve_envs(_args(config, "--env", "prod", "--env", "nope"), environ={})
    with pytest.raises(ConfigError, match="works on one environment"):
        resolve(_args(config, "queues", "--env", "prod", "--env", "staging"), environ={})
    with pytest.raises(ConfigError, match="color"):
        bad = config.parent / "bad.toml"
        bad.write_text('[environments.a]\ncolor = "purple"\n')
        resolve_envs(_args(bad, "--all-envs"), environ={})


def test_the_share_never_drops_below_the_minimum() -> None:
    assert share_of(100_000, 4) == 25_000
    assert share_of(100_000, 1_000) == MIN_SHARE


def test_a_misconfigured_environment_is_one_row_saying_why() -> None:
    watch = EnvWatch("broken", None, error="cannot import app 'x': No module named 'x'")
    watch.build()
    row = watch.status()
    assert row.state == MISCONFIGURED and watch.ingestor is None
    assert row.describe().startswith("broken: misconfigured: cannot import app 'x'")


def test_the_status_line_is_one_line_and_masks_urls() -> None:
    row = EnvStatus(name="prod", state="reconnecting",
                    why="attempt 3 (redis://:pw@h:1/0 said\nConnection refused)",
                    workers_online=2, workers_total=3, tasks_per_s=12.5, failure_rate=0.02,
                    queue_depth=1500, oldest_age_s=240.0,
                    last_gap=Gap(start=1.0, end=3.5, seconds=2.5, reason="broker restarted"))
    line = row.describe()
    assert "\n" not in line and ":pw@" not in line
    assert "workers 2/3; 12.5 tasks/s; failures 2.0%; queued 1,500 (oldest 4 m)" in line
    assert "gap of 2.5 s (broker restarted)" in line
    doc = row.to_json()
    assert doc["env"] == "prod" and doc["last_gap"]["seconds"] == 2.5
    json.dumps(doc)


def _replayed(names: tuple[str, ...]) -> EnvSet:
    envs = EnvSet(EnvWatch(name, None) for name in names)
    events = load_events("redis")
    half = len(events) // 2
    envs[names[0]].index.max_tasks = envs[names[1]].index.max_tasks = 100_000
    envs[names[0]].index.apply_batch(events[:half])
    envs[names[1]].index.apply_batch(events[half:])
    return envs


def test_search_by_id_prefix_and_filter_names_the_environment() -> None:
    envs = _replayed(("a", "b"))
    one = envs["b"].index.snapshot()[0]
    (hit,) = envs.find_task(one.uuid)
    assert (hit.env, hit.task.uuid) == ("b", one.uuid)
    prefixed = envs.find_task(one.uuid[:8])
    assert ("b", one.uuid) in {(f.env, f.task.uuid) for f in prefixed}
    assert envs.find_task("") == []
    failed = envs.search(lambda r: r.state == "FAILURE")
    per_env = {
        name: sum(1 for r in envs[name].index.snapshot() if r.state == "FAILURE")
        for name in ("a", "b")}
    assert len(failed) == sum(per_env.values()) > 0
    assert {f.env for f in failed} == {n for n, count in per_env.items() if count}
    assert len(envs.search(lambda r: True, limit=3)) == 3


def _event() -> TailEvent:
    from lazycelery.tail.events import enrich

    item = enrich({"type": "task-failed", "uuid": "abc", "hostname": "w1", "timestamp": 1.0,
                   "exception": "ValueError()"}, None, None)
    assert item is not None
    return item


def test_json_lines_carry_the_environment_first() -> None:
    line = EnvFormatter(JsonFormatter(), "prod").format(_event())
    doc: dict[str, Any] = json.loads(line)
    assert next(iter(doc)) == "env" and doc["env"] == "prod" and doc["type"] == "task-failed"


def test_text_lines_start_with_the_padded_environment() -> None:
    plain = EnvFormatter(TextFormatter(), "qa", width=7).format(_event()).decode()
    assert plain.startswith("qa       ") and "task-failed" in plain
    red = EnvFormatter(TextFormatter(), "qa", width=2, color="31").format(_event()).decode()
    assert red.startswith("\x1b[31mqa\x1b[0m  ")


def test_a_stream_that_ends_in_one_environment_is_a_notice_naming_it() -> None:
    reporter = EnvReporter("prod", "redis://prod:6379/0")
    ended = reporter.update(IngestStatus(state="stopped", path="fast", last_error="boom"))
    assert ended == Notice("prod: event stream stopped: boom; the other environments go on")
    lost = reporter.update(IngestStatus(state="reconnecting", path="fast", attempt=1,
                                        last_error="Connection refused"))
    assert isinstance(lost, Notice) and lost.text.startswith("prod: cannot connect")


def test_no_environment_table_is_one_line_naming_no_flag_the_user_did_not_give(config: Path) -> None:
    empty = config.parent / "empty.toml"
    empty.write_text("[queues]\n")
    with pytest.raises(ConfigError, match=r"no \[environments.NAME\] table \(--all-envs and `envs`"):
        resolve_envs(_args(empty, "--all-envs"), environ={})
