"""The demo's environment, app settings, embedded transport, housekeeping and signal plumbing."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from lazycelery.demo.environment import (
    ENV_BROKER,
    ENV_DIR,
    RUN_FILE,
    DemoEnvironment,
    find_runs,
    write_run_file,
)
from lazycelery.demo.housekeeping import Janitor, queue_of, sweep
from lazycelery.demo.runner import (
    DemoTerminated,
    remove_stale_runs,
    signals_raise,
    worker_specs,
)

DEAD_PID = 2**22 + 12345  # above the default pid_max: never a live process


# --------------------------------------------------------------------------- environment


def test_embedded_environment(tmp_path: Path) -> None:
    env = DemoEnvironment.embedded(tmp_path)
    assert env.is_embedded
    assert env.queues == ("default", "priority")
    assert env.result_backend == f"file://{tmp_path}/results"
    options = env.transport_options()
    # one folder for reading and writing: every process is both producer and consumer
    assert options["data_folder_in"] == options["data_folder_out"] == str(env.messages_dir)
    assert options["control_folder"] == str(env.control_dir)
    assert options["staging_folder"] == str(env.staging_dir)
    env.make_dirs()
    for folder in (env.messages_dir, env.control_dir, env.staging_dir, env.results_dir):
        assert folder.is_dir()
    assert not env.logs_dir.exists()
    env.make_dirs(run=True)
    assert env.logs_dir.is_dir() and env.tmp_dir.is_dir()


def test_external_environment_has_private_queues_and_no_transport_options(tmp_path: Path) -> None:
    env = DemoEnvironment.external("redis://localhost:6379/3", tmp_path, "ab12cd")
    assert not env.is_embedded
    assert env.queues == ("lcdemo-ab12cd-default", "lcdemo-ab12cd-priority")
    assert env.transport_options() == {}
    env.make_dirs()
    assert not env.messages_dir.exists()
    # a Redis result backend (docker/compose.yaml): nothing to create at all
    DemoEnvironment("redis://r:6379/0", tmp_path / "none", "redis://r:6379/1").make_dirs()
    assert not (tmp_path / "none").exists()


def test_environ_round_trip(tmp_path: Path) -> None:
    for env in (DemoEnvironment.embedded(tmp_path),
                DemoEnvironment.external("amqp://guest:guest@h//", tmp_path, "x1")):
        assert DemoEnvironment.from_environ(env.to_environ(), runs_root=tmp_path) == env


def test_from_environ_attaches_to_the_one_live_run(tmp_path: Path) -> None:
    root = tmp_path / "tmp"
    root.mkdir()
    assert DemoEnvironment.from_environ({}, runs_root=root).data_dir != root
    live = DemoEnvironment.embedded(root / "lazycelery-demo-live")
    live.make_dirs()
    write_run_file(live, os.getpid())
    dead = DemoEnvironment.embedded(root / "lazycelery-demo-dead")
    dead.make_dirs()
    write_run_file(dead, DEAD_PID)
    assert DemoEnvironment.from_environ({}, runs_root=root) == live
    # an explicit variable wins
    assert DemoEnvironment.from_environ({ENV_BROKER: "redis://x/0"}, runs_root=root).broker_url \
        == "redis://x/0"
    # with two live runs it cannot choose
    other = DemoEnvironment.embedded(root / "lazycelery-demo-other")
    other.make_dirs()
    write_run_file(other, os.getppid())
    chosen = DemoEnvironment.from_environ({}, runs_root=root)
    assert chosen.data_dir not in (live.data_dir, other.data_dir)


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
    env = DemoEnvironment.embedded(tmp_path)
    specs = worker_specs(3, env, "host")
    assert [s.hostname for s in specs] == ["demo1@host", "demo2@host", "demo3@host"]
    assert [s.queues for s in specs] == [("default",), ("default", "priority"), ("default",)]
    assert worker_specs(1, env, "h")[0].queues == ("default", "priority")


# --------------------------------------------------------------------------- the app


def test_app_settings(tmp_path: Path) -> None:
    from lazycelery.demo.factory import EMBEDDED_TRANSPORT, create_app

    embedded = create_app(DemoEnvironment.embedded(tmp_path))
    conf = embedded.conf
    assert conf.broker_transport == EMBEDDED_TRANSPORT
    assert conf.task_send_sent_event and conf.worker_send_task_events
    queues = {q.name: q for q in conf.task_queues}
    assert set(queues) == {"default", "priority"}
    # each queue has its own exchange and routing key (else both get every default task)
    assert {q.routing_key for q in queues.values()} == {"default", "priority"}
    assert queues["priority"].exchange.name == "priority"
    assert queues["priority"].max_priority == 9  # x-max-priority on RabbitMQ
    assert conf.task_routes["demo.send_email"] == {"queue": "priority"}
    external = create_app(DemoEnvironment.external("redis://h:1/2", tmp_path, "r1"))
    assert external.conf.broker_transport is None
    assert external.conf.task_default_queue == "lcdemo-r1-default"


def test_a_celery_broker_url_in_the_shell_does_not_redirect_the_app(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lazycelery.demo.factory import create_app

    monkeypatch.setenv("CELERY_BROKER_URL", "redis://elsewhere:6379/0")
    app = create_app(DemoEnvironment.external("amqp://guest@rabbit//", tmp_path, "x"))
    with app.connection_for_write() as conn:
        assert conn.as_uri().startswith("amqp://guest:**@rabbit:5672")
    with app.connection_for_read() as conn:
        assert conn.as_uri().startswith("amqp://guest:**@rabbit:5672")


def test_embedded_transport_resolves() -> None:
    from kombu.transport import resolve_transport

    from lazycelery.demo.factory import EMBEDDED_TRANSPORT
    from lazycelery.demo.transport import Transport

    assert resolve_transport(EMBEDDED_TRANSPORT) is Transport


# --------------------------------------------------------------------------- transport


_PUBLISHER = """
import sys
from kombu.connection import Connection
from kombu.entity import Queue
url, transport, folder = sys.argv[1:4]
options = {"data_folder_in": folder, "data_folder_out": folder, "control_folder": folder + ".ctl",
           "staging_folder": folder + ".staging"}
queue = Queue("q", routing_key="q")
with Connection(url, transport=transport or None, transport_options=options) as conn:
    producer = conn.Producer()
    for n in range(int(sys.argv[4])):
        producer.publish({"n": n, "pad": "x" * 20000}, routing_key="q", declare=[queue])
"""


def _race(tmp_path: Path, transport: str, per_process: int = 300) -> tuple[int, str]:
    """Two publisher processes and a consumer polling as fast as it can (a stock one)."""
    import subprocess
    import sys

    from kombu.connection import Connection
    from kombu.entity import Queue

    env = DemoEnvironment.embedded(tmp_path)
    env.make_dirs()
    folder = str(env.messages_dir)
    publishers = [subprocess.Popen([sys.executable, "-c", _PUBLISHER, env.broker_url, transport,
                                    folder, str(per_process)]) for _ in range(2)]
    received, error = 0, ""
    options = dict(env.transport_options(), control_folder=folder + ".ctl", polling_interval=0)
    try:
        with Connection(env.broker_url, transport_options=options) as conn:
            simple = conn.SimpleQueue(Queue("q", routing_key="q"))
            while received < 2 * per_process:
                simple.get(block=True, timeout=20).ack()
                received += 1
            simple.close()
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        for process in publishers:
            process.kill()
            process.wait()
    return received, error


def test_messages_are_never_seen_half_written(tmp_path: Path) -> None:
    """kombu's own channel exposes an empty file between open() and write(): a consumer
    polling meanwhile fails with JSONDecodeError (kombu#1551). Ours renames complete files
    into place, so a stock consumer reads every message."""
    from lazycelery.demo.factory import EMBEDDED_TRANSPORT

    received, error = _race(tmp_path / "ours", EMBEDDED_TRANSPORT)
    assert (received, error) == (600, "")
    assert list((tmp_path / "ours" / "broker" / "messages.staging").glob("*")) == []


def test_the_stock_transport_really_has_the_race(tmp_path: Path) -> None:
    # why the subclass exists (and the proof that the test above can catch the race): with
    # kombu's channel the same run fails within a few messages.
    received, error = _race(tmp_path / "stock", "")
    if not error:
        pytest.skip(f"the race did not show this time ({received} messages read): kombu#1551 "
                    "fixed? then lazycelery.demo.transport can go")
    assert "JSONDecodeError" in error, error


# --------------------------------------------------------------------------- housekeeping


def test_queue_of() -> None:
    assert queue_of("1712_3f2a-aa.default.msg") == "default"
    assert queue_of("1712_3f2a.celeryev.1b2c-3d.msg") == "celeryev.1b2c-3d"
    assert queue_of("1712_3f2a.demo1@h.celery.pidbox.msg") == "demo1@h.celery.pidbox"
    assert queue_of("notes.txt") is None
    assert queue_of("nodot.msg") is None


def test_sweep_drops_old_unread_files_but_never_task_messages(tmp_path: Path) -> None:
    names = {
        "1_a.default.msg": 1000, "2_b.priority.msg": 1000,  # old task messages: kept
        "3_c.celeryev.dead.msg": 1000, "4_d.demo9@h.celery.pidbox.msg": 1000,  # old: dropped
        "5_e.celeryev.live.msg": 1990,  # fresh: kept
        "other.txt": 1000,
    }
    for name, mtime in names.items():
        path = tmp_path / name
        path.write_text("{}")
        os.utime(path, (mtime, mtime))
    assert sweep(tmp_path, {"default", "priority"}, max_age=60, now=2000) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "1_a.default.msg", "2_b.priority.msg", "5_e.celeryev.live.msg", "other.txt"]
    assert sweep(tmp_path / "missing", set(), 60) == 0


def test_janitor_thread_sweeps_and_stops(tmp_path: Path) -> None:
    stale = tmp_path / "1_a.celeryev.x.msg"
    stale.write_text("{}")
    os.utime(stale, (1, 1))
    janitor = Janitor(tmp_path, {"default"}, max_age=60, interval=0.05).start()
    deadline = time.monotonic() + 5
    while stale.exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    janitor.stop()
    assert janitor.removed == 1


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
