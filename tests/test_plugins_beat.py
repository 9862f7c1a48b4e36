"""The lazycelery-beat plugin: schedules in words, the three sources (the app's beat_schedule, a shelve
written by celery's own PersistentScheduler, redbeat keys in a private Redis db), and the pane
installed as a distribution and driven headlessly in the dashboard."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from lazycelery.config import Settings
from lazycelery.tui.plugins import Selection, discover
from tests.test_plugins import (  # the fake-install and headless-dashboard helpers
    BEAT_PLUGIN,
    Harness,
    dashboard,
    drive,
    fake_site,
    install_beat,
    screen_text,
)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    with fake_site(tmp_path / "site", monkeypatch) as root:
        yield root

# the headless module, imported from the source tree; sys.path is restored at once so that no
# other test discovers the plugin by accident
sys.path.insert(0, str(BEAT_PLUGIN))
try:
    from lazycelery_beat.schedule import (  # type: ignore[import-not-found,unused-ignore]
        BeatSource,
        describe_crontab,
        describe_every,
        describe_schedule,
        entries_from_app,
        entries_from_redbeat,
        entries_from_shelve,
        entry_filter,
        load,
        resolve_source,
        source_mtime,
    )
finally:
    sys.path.remove(str(BEAT_PLUGIN))

APP_MODULE = """
from datetime import timedelta

from celery import Celery
from celery.schedules import crontab

app = Celery("{name}", broker="memory://")
app.conf.timezone = "UTC"
app.conf.beat_schedule = {{
    "ping": {{"task": "{name}.ping", "schedule": 30.0}},
    "nightly-report": {{"task": "{name}.report", "schedule": crontab(hour=3, minute=0),
                        "args": (7,), "options": {{"queue": "reports"}}}},
    "weekday-mail": {{"task": "{name}.mail",
                      "schedule": crontab(hour=7, minute=30, day_of_week="mon-fri")}},
    "sweep": {{"task": "{name}.sweep", "schedule": timedelta(minutes=5)}},
}}
"""


@pytest.fixture
def beat_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A user's app module with a beat_schedule, importable like `-A beatapp_<n>`; the working
    directory is empty so no stray celerybeat-schedule is picked up."""
    name = f"beatapp_{tmp_path.name.replace('-', '_')}"[:60]
    (tmp_path / f"{name}.py").write_text(APP_MODULE.format(name=name))
    monkeypatch.syspath_prepend(str(tmp_path))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for var in ("LAZYCELERY_BEAT_SOURCE", "LAZYCELERY_BEAT_SCHEDULE", "LAZYCELERY_BEAT_REDIS_URL",
                "LAZYCELERY_BEAT_KEY_PREFIX", "LAZYCELERY_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    module = __import__(name)
    yield module.app
    sys.modules.pop(name, None)


# --------------------------------------------------------------------------- words


@pytest.mark.parametrize(("seconds", "words"), [
    (30, "every 30 s"), (90, "every 90 s"), (300, "every 5 min"), (5400, "every 90 min"),
    (7200, "every 2 h"), (86400, "every 1 d"), (0.5, "every 0.5 s"),
])
def test_intervals_in_words(seconds: float, words: str) -> None:
    assert describe_every(seconds) == words


@pytest.mark.parametrize(("kwargs", "words"), [
    ({}, "every minute"),
    ({"minute": "*/15"}, "every 15 min"),
    ({"minute": 5}, "hourly at :05"),
    ({"minute": "5,35,50"}, "hourly at :05, :35, :50"),
    ({"minute": 0, "hour": "*/3"}, "every 3 h at :00 UTC"),
    ({"minute": 0, "hour": 3}, "at 03:00 UTC daily"),
    ({"minute": 0, "hour": "3,15"}, "at 03:00, 15:00 UTC daily"),
    ({"minute": 30, "hour": 7, "day_of_week": "mon-fri"}, "at 07:30 UTC on Mon–Fri"),
    ({"minute": 0, "hour": 0, "day_of_week": "sat,sun"}, "at 00:00 UTC on Sat, Sun"),
    ({"minute": 0, "hour": 0, "day_of_month": 1}, "at 00:00 UTC on day 1 of the month"),
    ({"minute": 0, "hour": 9, "month_of_year": "1,7"}, "at 09:00 UTC in Jan, Jul"),
    ({"minute": "*/10", "day_of_week": "mon"}, "every 10 min on Mon"),
    ({"minute": "0-10", "hour": "1-20"}, "cron 0-10 1-20 * * *"),
])
def test_crontabs_in_words(kwargs: dict[str, Any], words: str) -> None:
    from celery.schedules import crontab

    assert describe_schedule(crontab(**kwargs)) == words


def test_crontab_words_use_the_apps_timezone() -> None:
    assert describe_crontab({0}, {3}, set(range(7)), set(range(1, 32)), set(range(1, 13)),
                            "Europe/Berlin") == "at 03:00 Europe/Berlin daily"


# --------------------------------------------------------------------------- sources


def test_app_schedule_next_runs_are_estimates_that_move_forward(beat_app: Any) -> None:
    assumed: dict[str, datetime] = {}
    before = time.time()
    entries = {e.name: e for e in entries_from_app(beat_app, assumed)}
    now = time.time()
    ping = entries["ping"]
    assert ping.task.endswith(".ping") and ping.schedule == "every 30 s" and ping.estimated
    # assumed to run 30 s after it was read: bounded by the read itself, not by a guess of how
    # long the read takes (seconds on a loaded machine); 1 s for beat's whole-second rounding
    assert ping.next_run_at is not None and before + 29 <= ping.next_run_at <= now + 31
    assert ping.last_run_at is None and ping.total_run_count is None
    nightly = entries["nightly-report"]
    assert nightly.schedule == "at 03:00 UTC daily"
    assert nightly.args == "(7,)" and nightly.queue == "reports"
    next_at = datetime.fromtimestamp(nightly.next_run_at or 0, tz=timezone.utc)
    assert (next_at.hour, next_at.minute) == (3, 0) and 0 < next_at.timestamp() - now <= 86400
    assert entries["sweep"].schedule == "every 5 min"
    # the same assumption on the next read: the countdown runs down instead of restarting...
    again = {e.name: e for e in entries_from_app(beat_app, assumed)}
    assert again["ping"].next_run_at == pytest.approx(ping.next_run_at, abs=0.01)
    # ...and once the estimated run has passed, the estimate moves to the next one
    before = time.time()
    assumed["ping"] = beat_app.now() - timedelta(seconds=45)
    later = {e.name: e for e in entries_from_app(beat_app, assumed)}
    assert later["ping"].next_run_at is not None
    assert before + 29 <= later["ping"].next_run_at <= time.time() + 31


def write_shelve(app: Any, path: Path) -> None:
    """What `celery beat` leaves on disk: celery's PersistentScheduler, with `ping` sent twice
    and `nightly-report` once (reserve() is what beat does when it sends an entry's task)."""
    from celery.beat import PersistentScheduler

    scheduler = PersistentScheduler(app=app, schedule_filename=str(path), lazy=False)
    try:
        for name, times in (("ping", 2), ("nightly-report", 1)):
            for _ in range(times):
                scheduler.reserve(scheduler.schedule[name])
        scheduler.sync()
    finally:
        scheduler.close()


def test_shelve_written_by_celery_beat(beat_app: Any, tmp_path: Path) -> None:
    path = tmp_path / "celerybeat-schedule"
    write_shelve(beat_app, path)
    entries = {e.name: e for e in entries_from_shelve(path, beat_app)}
    assert set(entries) >= {"ping", "nightly-report", "weekday-mail", "sweep"}
    ping = entries["ping"]
    assert ping.total_run_count == 2 and not ping.estimated
    assert ping.last_run_at is not None and abs(ping.last_run_at - time.time()) < 5
    assert ping.next_run_at == pytest.approx(ping.last_run_at + 30, abs=1)
    assert entries["nightly-report"].total_run_count == 1
    assert entries["weekday-mail"].schedule == "at 07:30 UTC on Mon–Fri"
    assert entries["weekday-mail"].total_run_count == 0
    assert entries["weekday-mail"].last_run_at is None  # beat's start time is not a run
    # given with the dbm suffix, the same file is found
    suffixed = next(p for p in tmp_path.iterdir() if p.name.startswith("celerybeat-schedule."))
    assert {e.name for e in entries_from_shelve(suffixed, beat_app)} == set(entries)
    failed = load(BeatSource("shelve", str(tmp_path / "nope")), beat_app)
    assert failed.entries == () and failed.error is not None and "no beat schedule file" in \
        failed.error


def _redbeat_datetime(moment: datetime) -> dict[str, Any]:
    return {"__type__": "datetime", "year": moment.year, "month": moment.month,
            "day": moment.day, "hour": moment.hour, "minute": moment.minute,
            "second": moment.second, "microsecond": moment.microsecond, "timezone": "UTC"}


def write_redbeat(client: Any, prefix: str = "redbeat:") -> float:
    """Keys laid out as celery-redbeat's RedBeatSchedulerEntry.save() / _next_instance() write
    them (JSON with redbeat's __type__ encoding). Returns ping's next run (its ZSET score)."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    ping_next = (now + timedelta(seconds=20)).timestamp()
    entries = {
        "ping": ({"__type__": "interval", "every": 30.0, "relative": False},
                 {"last_run_at": _redbeat_datetime(now - timedelta(seconds=10)),
                  "total_run_count": 12}, ping_next, True),
        "nightly": ({"__type__": "crontab", "minute": "0", "hour": "3", "day_of_week": "*",
                     "day_of_month": "*", "month_of_year": "*"},
                    None, (now + timedelta(hours=5)).timestamp(), True),
        "paused": ({"__type__": "interval", "every": 3600.0, "relative": False},
                   None, -1, False),
        "hourly-rrule": ({"__type__": "rrule", "freq": 4, "interval": 2, "dtstart": None},
                         None, (now + timedelta(hours=2)).timestamp(), True),
    }
    for name, (schedule, meta, score, enabled) in entries.items():
        key = f"{prefix}{name}"
        definition = {"name": name, "task": f"proj.{name}", "args": [1, "x"], "kwargs": {"k": 2},
                      "options": {"queue": "beat"}, "schedule": schedule, "enabled": enabled}
        client.hset(key, "definition", json.dumps(definition))
        if meta is not None:
            client.hset(key, "meta", json.dumps(meta))
        client.zadd(f"{prefix}:schedule", {key: score})
    client.sadd(f"{prefix}:statics", *entries)
    return ping_next


def test_redbeat_keys_in_redis(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    ping_next = write_redbeat(client)
    entries = {e.name: e for e in entries_from_redbeat(client)}
    assert set(entries) == {"ping", "nightly", "hourly-rrule", "paused"}
    ping = entries["ping"]
    assert ping.task == "proj.ping" and ping.schedule == "every 30 s"
    assert ping.next_run_at == ping_next and ping.total_run_count == 12
    assert ping.last_run_at is not None and abs(ping.last_run_at - (time.time() - 10)) < 3
    assert ping.args == "(1, 'x')" and ping.kwargs == "{'k': 2}" and ping.queue == "beat"
    assert entries["nightly"].schedule == "at 03:00 UTC daily"
    assert entries["nightly"].last_run_at is None
    paused = entries["paused"]
    assert not paused.enabled and paused.next_run_at is None
    assert entries["hourly-rrule"].schedule == "every 2 h (rrule)"
    # another key prefix (redbeat_key_prefix)
    client.flushdb()
    write_redbeat(client, prefix="beat:")
    assert len(entries_from_redbeat(client, key_prefix="beat:")) == 4
    assert entries_from_redbeat(client) == []
    client.close()


def test_source_resolution(beat_app: Any, redis_url: str, tmp_path: Path) -> None:
    import redis

    spec = beat_app.main
    assert resolve_source(beat_app, spec, {}) == BeatSource("app", spec)
    assert isinstance(resolve_source(beat_app, None, {}), str)  # no -A: explains the options
    shelf = resolve_source(beat_app, spec, {"LAZYCELERY_BEAT_SCHEDULE": "/x/schedule"})
    assert shelf == BeatSource("shelve", "/x/schedule")
    url = redis_url.replace("redis://", "redis://:secret@")
    red = resolve_source(beat_app, spec, {"LAZYCELERY_BEAT_REDIS_URL": url})
    assert isinstance(red, BeatSource) and red.kind == "redbeat" and red.url == url
    assert "secret" not in red.describe() and "secret" not in repr(red)
    assert isinstance(resolve_source(beat_app, spec, {"LAZYCELERY_BEAT_SOURCE": "nope"}), str)
    # redbeat keys found on a Redis broker are picked up without configuration
    beat_app.conf.broker_url = redis_url
    try:
        assert resolve_source(beat_app, spec, {}) == BeatSource("app", spec)
        client = redis.Redis.from_url(redis_url)
        write_redbeat(client)
        client.close()
        found = resolve_source(beat_app, spec, {})
        assert isinstance(found, BeatSource) and found.kind == "redbeat"
    finally:
        beat_app.conf.broker_url = "memory://"
    # the app's beat_schedule_filename, when beat left it in the working directory
    write_shelve(beat_app, Path("celerybeat-schedule"))
    assert resolve_source(beat_app, spec, {}) == BeatSource("shelve", "celerybeat-schedule")


# --------------------------------------------------------------------------- the pane


def _beat_dashboard(site: Path, monkeypatch: pytest.MonkeyPatch, app: Any) -> Any:
    install_beat(site, monkeypatch)
    infos = discover(Selection.from_environment(environ={"LAZYCELERY_PLUGINS": "beat"}))
    beat = next(i for i in infos if i.name == "beat")
    assert beat.loaded and beat.distribution == "lazycelery-beat" and beat.key == "5", \
        beat.status()
    settings = Settings(broker_url="memory://", app_spec=app.main)
    return dashboard(infos, settings=settings, rows=24, columns=150)


async def _open_beat(h: Harness, expect: str) -> str:
    await h.keys("5")
    assert h.d.ui.pane == "beat"
    await h.until(lambda: expect in screen_text(h.d))
    return screen_text(h.d)


def test_beat_pane_from_the_apps_schedule(site: Path, monkeypatch: pytest.MonkeyPatch,
                                          beat_app: Any) -> None:
    with _beat_dashboard(site, monkeypatch, beat_app) as h:
        async def scenario(h: Harness) -> None:
            screen = await _open_beat(h, "every 30 s")
            assert f"5 Beat  4 entries · app {beat_app.main} · read " in screen
            lines = screen.splitlines()
            header = next(i for i, line in enumerate(lines) if line.startswith("NAME"))
            assert lines[header].split()[:4] == ["NAME", "TASK", "SCHEDULE", "LAST"]
            rows = lines[header + 1:header + 5]
            assert rows[0].startswith("ping")
            assert "~in 29 s" in rows[0] or "~in 30 s" in rows[0]  # estimated: no beat state
            assert rows[1].startswith("sweep") and "every 5 min" in rows[1]
            assert any("nightly-report" in r and "at 03:00 UTC daily" in r for r in rows)
            assert any("weekday-mail" in r and "at 07:30 UTC on Mon–Fri" in r for r in rows)
            # j moves the selection; enter shows that entry's tasks in the task list
            await h.keys("j")
            assert "sweep:" in screen_text(h.d)  # the detail line of the selected entry
            await h.keys("\r")
            assert h.d.ui.pane == "tasks"
            sweep = next(e for e in entries_from_app(beat_app) if e.name == "sweep")
            assert h.d.tasks.filter_text == entry_filter(sweep)
            await h.keys("5r")
            assert h.d.ui.current_flash() == ("reading the beat schedule…", False)

        drive(h, scenario)


def test_enter_filters_by_schedule_entry_not_by_task_name(beat_app: Any) -> None:
    from lazycelery.core.index import TaskIndex
    from lazycelery.core.query import compile_filter

    report = f"{beat_app.main}.report"
    beat_app.conf.beat_schedule = {
        "report-7": {"task": report, "schedule": 60.0, "args": (7,)},
        "report-8": {"task": report, "schedule": 60.0, "args": [8], "kwargs": {"fmt": 'a "b"'}},
        "report-all": {"task": report, "schedule": 60.0},
    }
    entries = {e.name: e for e in entries_from_app(beat_app)}
    index = TaskIndex()
    # what the task events of each run carry: beat sends args as a list, a client a tuple
    sent = [("by-beat-7", report, "[7]", "{}"), ("by-hand-7", report, "(7,)", "{}"),
            ("by-beat-8", report, "[8]", "{'fmt': 'a \"b\"'}"),
            ("by-beat-all", report, "[]", "{}"), ("other-task", report + "2", "[7]", "{}"),
            ("seventy", report, "[77]", "{}")]
    index.apply_batch([{"type": "task-received", "uuid": u, "name": n, "args": a, "kwargs": k,
                        "hostname": "w@h", "timestamp": 1.0} for u, n, a, k in sent])

    def matching(name: str) -> list[str]:
        predicate = compile_filter(entry_filter(entries[name]))
        return sorted(r.uuid for r in predicate.filter(index.snapshot()))

    assert matching("report-7") == ["by-beat-7", "by-hand-7"]
    assert matching("report-8") == ["by-beat-8"]
    assert matching("report-all") == ["by-beat-all"]


def test_a_shelve_rewrite_is_read_at_once(site: Path, monkeypatch: pytest.MonkeyPatch,
                                          beat_app: Any, tmp_path: Path) -> None:
    # beat rewrites its file when it syncs: the pane reads it then, not at the next interval
    path = tmp_path / "beat-state" / "celerybeat-schedule"
    path.parent.mkdir()
    write_shelve(beat_app, path)
    stamp = source_mtime(BeatSource("shelve", str(path)))
    assert stamp is not None
    monkeypatch.setenv("LAZYCELERY_BEAT_SCHEDULE", str(path))
    monkeypatch.setenv("LAZYCELERY_BEAT_INTERVAL", "3600")
    with _beat_dashboard(site, monkeypatch, beat_app) as h:
        async def scenario(h: Harness) -> None:
            def ping_runs() -> str:
                row = next((line for line in screen_text(h.d).splitlines()
                            if line.startswith("ping ")), "")
                return row.split()[-1] if row else ""

            await _open_beat(h, "nightly-report")
            assert ping_runs() == "2"
            write_shelve(beat_app, path)  # ping sent twice more: 4 runs
            await h.until(lambda: ping_runs() == "4", timeout=10)

        drive(h, scenario)


def test_beat_pane_from_a_shelve_file(site: Path, monkeypatch: pytest.MonkeyPatch,
                                      beat_app: Any, tmp_path: Path) -> None:
    path = tmp_path / "beat-state" / "celerybeat-schedule"
    path.parent.mkdir()
    write_shelve(beat_app, path)
    monkeypatch.setenv("LAZYCELERY_BEAT_SCHEDULE", str(path))
    with _beat_dashboard(site, monkeypatch, beat_app) as h:
        async def scenario(h: Harness) -> None:
            screen = await _open_beat(h, "nightly-report")
            assert f"shelve {path}" in screen
            ping = next(line for line in screen.splitlines() if line.startswith("ping "))
            assert "every 30 s" in ping and ping.split()[-1] == "2"  # RUNS
            assert "~" not in ping  # a real next run, and a real last run:
            assert "just now" in ping or " s ago" in ping

        drive(h, scenario)


def test_beat_pane_from_redbeat_keys(site: Path, monkeypatch: pytest.MonkeyPatch,
                                     beat_app: Any, redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    write_redbeat(client)
    client.close()
    monkeypatch.setenv("LAZYCELERY_BEAT_REDIS_URL", redis_url)
    with _beat_dashboard(site, monkeypatch, beat_app) as h:
        async def scenario(h: Harness) -> None:
            screen = await _open_beat(h, "every 2 h (rrule)")
            assert "4 entries · redbeat redis://" in screen
            lines = {line.split()[0]: line for line in screen.splitlines() if line.strip()}
            assert "proj.ping" in lines["ping"] and lines["ping"].split()[-1] == "12"
            assert "in 1" in lines["ping"]  # the ZSET score: about 20 s away
            assert "disabled" in lines["paused"]
            assert "at 03:00 UTC daily" in lines["nightly"]

        drive(h, scenario)


def test_beat_pane_says_plainly_when_there_is_no_source(site: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        beat_app: Any) -> None:
    monkeypatch.setenv("LAZYCELERY_BEAT_SOURCE", "redbeat")
    with _beat_dashboard(site, monkeypatch, beat_app) as h:
        async def scenario(h: Harness) -> None:
            screen = await _open_beat(h, "No Redis for redbeat")
            assert "5 Beat  no source" in screen
            assert "LAZYCELERY_BEAT_REDIS_URL" in screen
            await h.keys("3")
            assert h.d.ui.pane == "tasks"

        drive(h, scenario)
