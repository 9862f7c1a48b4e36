"""The demo's environment, app settings (queues, beat schedule) and signal plumbing."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from lazycelery.demo.environment import (
    DEFAULT_BROKER,
    ENV_BROKER,
    ENV_DIR,
    ENV_EMBEDDED,
    RUN_FILE,
    DemoEnvironment,
    find_runs,
    write_run_file,
)
from lazycelery.demo.runner import (
    DemoTerminated,
    remove_stale_runs,
    signals_raise,
    worker_specs,
)

DEAD_PID = 2**22 + 12345  # above the default pid_max: never a live process


# --------------------------------------------------------------------------- environment


def _embedded(data_dir: Path, port: int = 6390) -> DemoEnvironment:
    return DemoEnvironment.embedded_at(f"redis://127.0.0.1:{port}/0",
                                       f"redis://127.0.0.1:{port}/1", data_dir, "fakeredis")


def test_embedded_environment(tmp_path: Path) -> None:
    env = _embedded(tmp_path)
    assert env.is_embedded and env.embedded == "fakeredis"
    assert env.queues == ("default", "priority")  # a private server: no prefix
    assert env.result_backend == "redis://127.0.0.1:6390/1"
    assert env.beat_schedule == tmp_path / "celerybeat-schedule"
    assert env.to_environ()[ENV_EMBEDDED] == "fakeredis"
    env.make_dirs()
    assert list(tmp_path.iterdir()) == []  # a Redis backend needs no folder
    env.make_dirs(run=True)
    assert env.logs_dir.is_dir() and env.tmp_dir.is_dir()


def test_external_environment_has_private_queues_and_file_results(tmp_path: Path) -> None:
    env = DemoEnvironment.external("redis://localhost:6379/3", tmp_path, "ab12cd")
    assert not env.is_embedded
    assert env.queues == ("lcdemo-ab12cd-default", "lcdemo-ab12cd-priority")
    assert env.result_backend == f"file://{tmp_path}/results"
    env.make_dirs()
    assert env.results_dir.is_dir()
    # a Redis result backend (docker/compose.yaml): nothing to create at all
    DemoEnvironment("redis://r:6379/0", tmp_path / "none", "redis://r:6379/1").make_dirs()
    assert not (tmp_path / "none").exists()


def test_environ_round_trip(tmp_path: Path) -> None:
    for env in (_embedded(tmp_path),
                DemoEnvironment.external("amqp://guest:guest@h//", tmp_path, "x1")):
        assert DemoEnvironment.from_environ(env.to_environ(), runs_root=tmp_path) == env


def test_from_environ_attaches_to_the_one_live_run(tmp_path: Path) -> None:
    root = tmp_path / "tmp"
    root.mkdir()
    nothing = DemoEnvironment.from_environ({}, runs_root=root)
    assert nothing.data_dir != root and nothing.broker_url == DEFAULT_BROKER
    live = _embedded(root / "lazycelery-demo-live", 6391)
    live.make_dirs(run=True)
    write_run_file(live, os.getpid())
    dead = _embedded(root / "lazycelery-demo-dead", 6392)
    dead.make_dirs(run=True)
    write_run_file(dead, DEAD_PID)
    assert DemoEnvironment.from_environ({}, runs_root=root) == live
    # an explicit variable wins
    assert DemoEnvironment.from_environ({ENV_BROKER: "redis://x/0"}, runs_root=root).broker_url \
        == "redis://x/0"
    # with two live runs it cannot choose...
    other = _embedded(root / "lazycelery-demo-other", 6393)
    other.make_dirs(run=True)
    write_run_file(other, os.getppid())
    chosen = DemoEnvironment.from_environ({}, runs_root=root)
    assert chosen.data_dir not in (live.data_dir, other.data_dir)
    # ...unless LAZYCELERY_DEMO_DIR names one (what the demo's summary prints)
    named = DemoEnvironment.from_environ({ENV_DIR: str(other.data_dir)}, runs_root=root)
    assert named == other


def test_stale_runs_are_removed_live_ones_kept(tmp_path: Path) -> None:
    live = tmp_path / "lazycelery-demo-live"
    dead = tmp_path / "lazycelery-demo-dead"
    broken = tmp_path / "lazycelery-demo-broken"
    unrelated = tmp_path / "something-else"
    for path, pid in ((live, os.getpid()), (dead, DEAD_PID), (unrelated, DEAD_PID)):
        path.mkdir()
        (path / RUN_FILE).write_text(json.dumps({"pid": pid, "environ": {}}))
    broken.mkdir()
    (broken / RUN_FILE).write_text("{not json")
    assert {r.path.name: r.alive for r in find_runs(tmp_path)} == {
        "lazycelery-demo-live": True, "lazycelery-demo-dead": False}
    assert remove_stale_runs(tmp_path) == [dead]
    assert live.exists() and broken.exists() and unrelated.exists() and not dead.exists()


def test_worker_specs_split_the_queues(tmp_path: Path) -> None:
    env = _embedded(tmp_path)
    specs = worker_specs(3, env, "host")
    assert [s.hostname for s in specs] == ["demo1@host", "demo2@host", "demo3@host"]
    assert [s.queues for s in specs] == [("default",), ("default", "priority"), ("default",)]
    assert worker_specs(1, env, "h")[0].queues == ("default", "priority")


# --------------------------------------------------------------------------- the app


def test_app_settings(tmp_path: Path) -> None:
    from lazycelery.demo.factory import create_app

    embedded = create_app(_embedded(tmp_path))
    conf = embedded.conf
    assert conf.broker_url == "redis://127.0.0.1:6390/0"
    assert conf.result_backend == "redis://127.0.0.1:6390/1"
    assert conf.task_send_sent_event and conf.worker_send_task_events
    # beat: its file in the run's dir (the beat pane finds it), written after every send
    assert conf.beat_schedule_filename == str(tmp_path / "celerybeat-schedule")
    assert conf.beat_sync_every == 1
    queues = {q.name: q for q in conf.task_queues}
    assert set(queues) == {"default", "priority"}
    # each queue has its own exchange and routing key (else both get every default task)
    assert {q.routing_key for q in queues.values()} == {"default", "priority"}
    assert queues["priority"].exchange.name == "priority"
    assert queues["priority"].max_priority == 9  # x-max-priority on RabbitMQ
    assert conf.task_routes["demo.send_email"] == {"queue": "priority"}
    external = create_app(DemoEnvironment.external("redis://h:1/2", tmp_path, "r1"))
    assert external.conf.task_default_queue == "lcdemo-r1-default"


def test_every_beat_entry_names_a_demo_task(tmp_path: Path) -> None:
    from celery.beat import ScheduleEntry

    import lazycelery.demo.tasks as tasks
    from lazycelery.demo.factory import beat_schedule, create_app

    names = {getattr(tasks, n).name for n in tasks.__all__ if hasattr(getattr(tasks, n), "name")}
    app = create_app(_embedded(tmp_path))
    for name, spec in beat_schedule().items():
        entry = ScheduleEntry(**dict(spec, name=name, app=app))  # as beat builds it
        assert entry.task in names, entry.task


def test_a_celery_broker_url_in_the_shell_does_not_redirect_the_app(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lazycelery.demo.factory import create_app

    monkeypatch.setenv("CELERY_BROKER_URL", "redis://elsewhere:6379/0")
    app = create_app(DemoEnvironment.external("amqp://guest@rabbit//", tmp_path, "x"))
    with app.connection_for_write() as conn:
        assert conn.as_uri().startswith("amqp://guest:**@rabbit:5672")
    with app.connection_for_read() as conn:
        assert conn.as_uri().startswith("amqp://guest:**@rabbit:5672")


# --------------------------------------------------------------------------- signals


def test_signals_raise_then_silenced_then_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with signals_raise() as silence:
        with pytest.raises(DemoTerminated) as caught:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        assert caught.value.signum == signal.SIGTERM
        assert caught.value.code == 128 + signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        silence()
        os.kill(os.getpid(), signal.SIGHUP)  # ignored now: cleanup must not be cut short
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
    assert signal.getsignal(signal.SIGTERM) == before


def test_demo_terminated_is_a_system_exit() -> None:
    # asyncio (the dashboard's loop) re-raises SystemExit and swallows most other exceptions
    assert issubclass(DemoTerminated, SystemExit)
    assert ENV_DIR.startswith("LAZYCELERY_DEMO_")
