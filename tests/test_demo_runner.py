"""The demo lifecycle without real workers: a failed start cleans up, waiting notices dead workers."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lazycelery.demo import environment as demo_environment
from lazycelery.demo.environment import DemoEnvironment
from lazycelery.demo.runner import Demo, DemoOptions, WorkerSpec, run_demo, wait_until
from lazycelery.demo.supervisor import group_alive
from lazycelery.errors import BrokerError


@pytest.fixture(autouse=True)
def _restore_demo_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    # Demo.start exports the run's variables for the dashboard: undo that after each test.
    for name in dir(demo_environment):
        if name.startswith("ENV_"):
            monkeypatch.setenv(getattr(demo_environment, name), "")


def test_a_worker_that_cannot_start_is_reported_and_everything_is_removed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\necho 'ImportError: no module named celery' >&2\nexit 3\n")
    fake_python.chmod(0o755)
    root = tmp_path / "tmp"
    root.mkdir()
    options = DemoOptions(python=str(fake_python), tmp_root=root, ready_timeout=30)
    shown: list[Demo] = []
    started = time.monotonic()
    with pytest.raises(BrokerError,
                       match=r"demo (demo\d|beat|producer) exited with status 3: ImportError"):
        run_demo(options, lambda demo: shown.append(demo) or 0)
    assert time.monotonic() - started < 20
    assert shown == []
    assert list(root.iterdir()) == []
    assert "stopped" not in capsys.readouterr().err


def test_wait_until_returns_when_the_duration_is_over(tmp_path: Path) -> None:
    demo = Demo(DemoOptions())
    process = demo.supervisor.start("demo1", [sys.executable, "-c", "import time; time.sleep(30)"])
    demo.workers.append((WorkerSpec("demo1@h", ("default",)), process))
    try:
        started = time.monotonic()
        assert wait_until(demo, 0.3, poll=0.05) == 0
        assert 0.25 < time.monotonic() - started < 3
    finally:
        demo.supervisor.stop()


def test_wait_until_gives_up_when_every_worker_died(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    demo = Demo(DemoOptions())
    process = demo.supervisor.start("demo1", [sys.executable, "-c", "raise SystemExit(4)"],
                                    log_path=tmp_path / "demo1.log")
    demo.workers.append((WorkerSpec("demo1@h", ("default",)), process))
    assert wait_until(demo, None, poll=0.05) == 1
    assert "demo1 exited with status 4" in capsys.readouterr().err
    demo.supervisor.stop()


def test_stop_before_start_is_harmless() -> None:
    demo = Demo(DemoOptions())
    demo.stop()
    demo.stop()
    assert demo.killed == []
    assert os.environ.get(demo_environment.ENV_DIR) == ""


def _fake_start(tmp_path: Path) -> Any:
    """Demo.start replaced: a sleeping 'worker' in the supervisor and a data dir, no celery."""
    def start(self: Demo) -> DemoEnvironment:
        environment = DemoEnvironment.embedded_at(
            "redis://127.0.0.1:1/0", "redis://127.0.0.1:1/1", tmp_path / "lazycelery-demo-fake",
            "fakeredis")
        environment.make_dirs(run=True)
        self.environment = environment
        process = self.supervisor.start(
            "demo1", [sys.executable, "-c", "import time; time.sleep(60)"])
        self.workers.append((WorkerSpec("demo1@h", ("default",)), process))
        return environment

    return start


def test_the_demo_is_stopped_when_the_dashboard_crashes(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Demo, "start", _fake_start(tmp_path))
    seen: list[Demo] = []

    def crash(demo: Demo) -> int:
        seen.append(demo)
        raise RuntimeError("the dashboard fell over")

    with pytest.raises(RuntimeError, match="fell over"):
        run_demo(DemoOptions(stop_timeout=5), crash)
    (demo,) = seen
    (process,) = demo.processes()
    assert process.returncode() is not None
    assert not group_alive(process.pid)
    assert not (tmp_path / "lazycelery-demo-fake").exists()


def test_sigterm_while_showing_stops_the_demo(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Demo, "start", _fake_start(tmp_path))
    seen: list[Demo] = []

    def show(demo: Demo) -> int:
        seen.append(demo)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        return 0

    assert run_demo(DemoOptions(stop_timeout=5), show) == 128 + signal.SIGTERM
    assert not group_alive(seen[0].processes()[0].pid)
    assert not (tmp_path / "lazycelery-demo-fake").exists()


def test_an_embedded_broker_that_cannot_start_is_one_line_and_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    broken = bin_dir / "redis-server"
    broken.write_text("#!/bin/sh\necho 'FATAL: cannot open the config' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    root = tmp_path / "tmp"
    root.mkdir()
    shown: list[Demo] = []
    with pytest.raises(BrokerError) as caught:
        run_demo(DemoOptions(embedded="redis-server", tmp_root=root),
                 lambda demo: shown.append(demo) or 0)
    assert str(caught.value) == ("cannot start the embedded broker: redis-server exited with "
                                 "status 1: FATAL: cannot open the config; use --broker "
                                 "redis://HOST:PORT/DB instead")
    assert shown == []
    assert list(root.iterdir()) == []  # the run's temp dir is gone
    assert "stopped" not in capsys.readouterr().err


def test_a_stop_that_had_to_kill_keeps_the_logs_and_one_that_did_not_removes_them(
        tmp_path: Path) -> None:
    stubborn = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('still here', flush=True); time.sleep(30)")
    runs = {}
    for name, argv in (("clean", [sys.executable, "-c", "import time; time.sleep(30)"]),
                       ("killed", [sys.executable, "-c", stubborn])):
        demo = Demo(DemoOptions(stop_timeout=0.5))
        environment = DemoEnvironment("", tmp_path / f"lazycelery-demo-{name}")
        environment.make_dirs(run=True)
        demo.environment = environment
        log = environment.logs_dir / "demo1.log"
        process = demo.supervisor.start("demo1", argv, log_path=log)
        if name == "killed":
            while "still here" not in log.read_text():
                assert process.returncode() is None
                time.sleep(0.02)
        demo.stop()
        runs[name] = demo
        assert not environment.data_dir.exists()
    assert runs["clean"].killed == [] and runs["clean"].kept_logs is None
    kept = runs["killed"].kept_logs
    assert runs["killed"].killed == ["demo1"]
    assert kept == tmp_path / f"lazycelery-demo-logs-{runs['killed'].run_id}"
    assert (kept / "demo1.log").read_text() == "still here\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [kept.name]
