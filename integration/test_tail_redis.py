"""`lazycelery tail` as a real subprocess against a real `celery worker -E` on Redis."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
from collections.abc import Callable

import pytest
from test_tail_helpers import (
    TailProcess,
    assert_no_traceback,
    finish_filtered,
    probe,
    require_ingest,
    run_scenario,
    send_until,
)

from conftest import ROOT, RedisServer, WorkerProcess, free_port, wait_for

pytestmark = pytest.mark.integration

Factory = Callable[..., WorkerProcess]


@pytest.fixture(autouse=True)
def _ingest_written() -> None:
    require_ingest()


def test_json_lines_follow_a_real_worker(redis_url: str, celery_worker_factory: Factory) -> None:
    worker = celery_worker_factory(redis_url)
    app = worker.app()
    tail = TailProcess(redis_url, "--json", "--timeout", "60")
    failures = TailProcess(redis_url, "--json", "--state", "failure", "--name", "workerapp.*",
                           "--limit", "1")
    text = TailProcess(redis_url, "--type", "task-failed", "--name", "*.always_fail",
                       "--limit", "1")
    try:
        send_until(tail, probe(app))
        run_scenario(tail, app, worker.hostname)
        finish_filtered([failures, text],
                        lambda: app.send_task("workerapp.always_fail", args=("boom",)))
        assert failures.wait_exit() == 0 and text.wait_exit() == 0
        (failed,) = failures.docs()
        assert failed["type"] == "task-failed" and failed["state"] == "FAILURE"
        (line,) = text.lines
        assert "\x1b" not in line  # stdout is a pipe: no colour
        fields = line.split()
        assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d\d\d", fields[0])
        assert fields[1:3] == ["task-failed", "workerapp.always_fail"]
        assert fields[4] == worker.hostname
        assert line.endswith("ValueError(\"bad payload: 'boom'\")")
        assert tail.interrupt() == 0
        for process in (tail, failures, text):
            assert_no_traceback(process.stderr())
        assert tail.stderr() == ""  # piped stderr: no "following ..." banner
    finally:
        for process in (tail, failures, text):
            process.close()
        app.close()


def test_timeout_exits_0_when_nothing_matches(redis_url: str) -> None:
    tail = TailProcess(redis_url, "--json", "--timeout", "1.5", "--type", "task-failed")
    try:
        start = time.monotonic()
        assert tail.wait_exit(30) == 0
        assert 1.5 <= time.monotonic() - start < 20
        assert tail.lines == [] and tail.stderr() == ""
    finally:
        tail.close()


def test_timeout_exits_1_when_the_broker_was_never_reached() -> None:
    # nothing listens on port 1: "no events" must not read as "all quiet" to a script
    tail = TailProcess("redis://:s3cret@127.0.0.1:1/0", "--json", "--timeout", "1.5")
    try:
        assert tail.wait_exit(60) == 1
        assert tail.lines == []
        errors = tail.stderr().splitlines()
        assert errors[0].startswith("lazycelery: cannot connect to redis://:********@127.0.0.1:1/0")
        assert errors[-1] == "lazycelery: --timeout: 1.5 s went by without a connection"
        assert "s3cret" not in tail.stderr()
        assert_no_traceback(tail.stderr())
    finally:
        tail.close()


def test_a_broker_restart_is_reported_and_tail_carries_on(
        redis_server_factory: Callable[[], RedisServer], celery_worker_factory: Factory) -> None:
    server = redis_server_factory()
    broker = f"{server.url}/0"
    worker = celery_worker_factory(broker)
    app = worker.app()
    tail = TailProcess(broker, "--json")
    try:
        send_until(tail, probe(app))
        server.stop()
        lost = tail.wait_stderr("connection lost", timeout=20)
        assert re.fullmatch(r"lazycelery: connection lost \(.+\); reconnecting "
                            r"\(attempt 1, next try in 1\.0 s\)", lost), lost
        server.start()  # same port
        back = tail.wait_stderr("reconnected after", timeout=60)
        assert re.fullmatch(r"lazycelery: reconnected after \d+\.\d s gap( \(.+\))?", back), back
        after = send_until(tail, probe(app), timeout=90)
        assert after["state"] == "SUCCESS" and after["name"] == "workerapp.add"
        assert tail.proc.poll() is None
        stderr = tail.stderr().splitlines()
        assert len([line for line in stderr if "connection lost" in line]) == 1
        assert tail.interrupt() == 0
        assert_no_traceback(tail.stderr())
    finally:
        tail.close()
        app.close()


def test_an_unreachable_broker_is_retried_and_its_password_never_shown() -> None:
    port = free_port()  # nothing listens there
    tail = TailProcess(f"redis://:s3cret-pw@127.0.0.1:{port}/0", "--json")
    try:
        first = tail.wait_stderr("cannot connect", timeout=30)
        assert first.startswith(f"lazycelery: cannot connect to redis://:********@127.0.0.1:{port}/0 (")
        assert first.endswith("; retrying (attempt 1, next try in 1.0 s)")
        time.sleep(2.5)  # a few more attempts: still running, no line per attempt
        assert tail.proc.poll() is None
        assert tail.interrupt() == 0
        stderr = tail.stderr()
        assert "s3cret-pw" not in stderr
        assert stderr.count("cannot connect") == 1
        assert_no_traceback(stderr)
    finally:
        tail.close()


def test_a_closed_pipe_ends_tail_quietly(redis_url: str, celery_worker_factory: Factory) -> None:
    """`lazycelery tail --json | head -1`: after the first line the reader is gone."""
    worker = celery_worker_factory(redis_url)
    app = worker.app()
    tail = TailProcess(redis_url, "--json", stdout_reader=False)
    stdout = tail.proc.stdout
    assert stdout is not None
    first: list[bytes] = []
    reader = threading.Thread(target=lambda: first.append(stdout.readline()), daemon=True)
    try:
        reader.start()
        deadline = time.monotonic() + 60
        while not first and time.monotonic() < deadline:
            app.send_task("workerapp.add", args=(1, 1))
            reader.join(1.0)
        assert first and first[0].startswith(b"{")
        stdout.close()  # what `head -1` does after its line
        start = time.monotonic()
        assert tail.wait_exit(20) == 0
        assert time.monotonic() - start < 10  # noticed without waiting for another event
        assert tail.stderr() == ""
    finally:
        tail.close()
        app.close()


def test_ctrl_c_exits_0_without_a_traceback(redis_url: str, celery_worker_factory: Factory) -> None:
    worker = celery_worker_factory(redis_url)
    app = worker.app()
    tail = TailProcess(redis_url)  # text mode
    try:
        deadline = time.monotonic() + 60
        while not tail.lines and time.monotonic() < deadline:
            app.send_task("workerapp.add", args=(1, 1))
            with contextlib.suppress(AssertionError):
                tail.wait_until(lambda: tail.lines, 1.0, "a text line")
        assert tail.lines
        assert tail.interrupt() == 0
        assert_no_traceback(tail.stderr())
        assert tail.stderr() == ""
    finally:
        tail.close()
        app.close()


def test_a_terminal_gets_colour_a_banner_and_lines_cut_to_its_width(
        redis_url: str, celery_worker_factory: Factory) -> None:
    """In a real pseudo-terminal: colour, the `following` banner, the width; NO_COLOR wins."""
    pexpect = pytest.importorskip("pexpect")
    worker = celery_worker_factory(redis_url)
    app = worker.app()
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    cmd = [sys.executable, "-m", "lazycelery", "tail", "--broker", redis_url,
           "--name", "workerapp.echo", "--type", "task-succeeded", "--limit", "1"]
    try:
        for no_color in (False, True):
            child_env = dict(env, TERM="xterm", **({"NO_COLOR": "1"} if no_color else {}))
            child = pexpect.spawn(cmd[0], cmd[1:], env=child_env, dimensions=(24, 90),
                                  cwd=str(ROOT), timeout=60)
            try:
                child.expect_exact(f"lazycelery: following {redis_url} (fast path)")
                deadline = time.monotonic() + 60
                while child.isalive() and time.monotonic() < deadline:
                    app.send_task("workerapp.echo", args=("y" * 300,))
                    with contextlib.suppress(pexpect.TIMEOUT):
                        child.expect(pexpect.EOF, timeout=2)
                output = child.before.decode() if isinstance(child.before, bytes) else ""
                child.close()
                assert child.exitstatus == 0
            finally:
                if child.isalive():
                    child.terminate(force=True)
            (line,) = [ln for ln in output.splitlines() if "task-succeeded" in ln]
            assert ("\x1b[" in line) is not no_color
            visible = re.sub(r"\x1b\[[0-9;]*m", "", line).rstrip("\r")
            assert visible.endswith("…") and len(visible) == 89  # cut to the 90 columns
    finally:
        app.close()


def test_tasks_finished_during_a_gap_are_reconciled_from_the_result_backend(
        redis_url: str, redis_server_factory: Callable[[], RedisServer],
        celery_worker_factory: Factory) -> None:
    """tail prints one `reconciled` line per task that finished while the stream was down."""
    server = redis_server_factory()
    broker = f"{server.url}/0"
    worker = celery_worker_factory(broker, backend=redis_url, concurrency=3)
    app = worker.app()
    tail = TailProcess(broker, "--json", "--result-backend", redis_url)
    try:
        send_until(tail, probe(app))
        ids = [app.send_task("workerapp.long_running", args=[2.0]).id for _ in range(2)]
        for uuid in ids:
            tail.wait_doc(lambda d, u=uuid: d.get("uuid") == u and d["type"] == "task-started",
                          timeout=30, what=f"{uuid} to start")
        server.stop()  # the event stream goes down while the tasks run
        wait_for(lambda: all(app.backend.get_task_meta(u)["status"] == "SUCCESS" for u in ids),
                 timeout=60, what="the tasks to finish during the gap")
        worker.stop()  # its buffered task-succeeded events die with it
        server.start()
        for uuid in ids:
            doc = tail.wait_doc(lambda d, u=uuid: d.get("uuid") == u and d["type"] == "reconciled",
                                timeout=60, what=f"{uuid} to be reconciled")
            assert (doc["state"], doc["old_state"], doc["reconciled"]) == ("SUCCESS", "STARTED", True)
            assert doc["name"] == "workerapp.long_running"
        # the summary goes to stderr, read by another thread than the lines above: wait for it
        tail.wait_until(lambda: any("reconcile (reconnect)" in line for line in tail.errors),
                        timeout=30, what="the reconcile summary on stderr")
        assert tail.interrupt() == 0
        assert_no_traceback(tail.stderr())
    finally:
        tail.close()
        app.close()
