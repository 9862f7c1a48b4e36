"""Shared by the `lazycelery tail` integration tests: a tail subprocess and a task scenario.

`lazycelery tail` runs as a real subprocess (``sys.executable -m lazycelery``) whose stdout and
stderr are read line by line on background threads. Holds no tests of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

Doc = dict[str, Any]


def require_ingest() -> None:
    """Skip (with the reason) until the ingest and config modules exist."""
    for module in ("lazycelery.core.ingest", "lazycelery.config"):
        pytest.importorskip(module, reason=f"{module} is not written yet")


class TailProcess:
    """``lazycelery tail --broker URL ARGS...`` with its output collected as it arrives."""

    def __init__(self, broker: str, *args: str, stdout_reader: bool = True) -> None:
        env = dict(os.environ)
        env.pop("NO_COLOR", None)
        self.cmd = [sys.executable, "-m", "lazycelery", "tail", "--broker", broker, *args]
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._changed = threading.Condition()
        self._threads = [threading.Thread(target=self._read, args=(self.proc.stderr, self.errors),
                                          daemon=True)]
        if stdout_reader:
            self._threads.append(threading.Thread(target=self._read,
                                                  args=(self.proc.stdout, self.lines), daemon=True))
        for thread in self._threads:
            thread.start()

    def _read(self, stream: Any, into: list[str]) -> None:
        for raw in iter(stream.readline, b""):
            with self._changed:
                into.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    # -- reading

    def docs(self) -> list[Doc]:
        with self._changed:
            return [json.loads(line) for line in self.lines]

    def stderr(self) -> str:
        with self._changed:
            return "\n".join(self.errors)

    def wait_until(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        """Wait (on the reader threads' notifications, not a sleep loop) for ``predicate``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"timed out after {timeout}s waiting for {what}\n"
                        f"exit code: {self.proc.poll()}\nstderr:\n" + "\n".join(self.errors)
                        + "\nlast stdout lines:\n" + "\n".join(self.lines[-15:]))
                self._changed.wait(min(left, 0.5))

    def wait_doc(self, match: Callable[[Doc], bool], timeout: float = 30.0,
                 what: str = "a matching event") -> Doc:
        def find() -> Doc | None:
            for line in reversed(self.lines):
                doc: Doc = json.loads(line)
                if match(doc):
                    return doc
            return None

        found: Doc = self.wait_until(find, timeout, what)
        return found

    def wait_stderr(self, needle: str, timeout: float = 30.0) -> str:
        found: str = self.wait_until(
            lambda: next((line for line in self.errors if needle in line), None),
            timeout, f"{needle!r} on stderr")
        return found

    def task_docs(self, uuid: str) -> list[Doc]:
        return [doc for doc in self.docs() if doc.get("uuid") == uuid]

    # -- ending

    def wait_exit(self, timeout: float = 20.0) -> int:
        code = self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(5)
        return code

    def interrupt(self, timeout: float = 15.0) -> int:
        """Ctrl-C: SIGINT to the process, as the terminal would send it."""
        self.proc.send_signal(signal.SIGINT)
        return self.wait_exit(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def assert_no_traceback(text: str) -> None:
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text


def send_until(tail: TailProcess, send: Callable[[], str], *, kind: str = "task-succeeded",
               timeout: float = 60.0, every: float = 2.0) -> Doc:
    """Send a task every ``every`` s until tail shows its ``kind`` event (a Redis PUB/SUB
    subscriber sees nothing published before it subscribed, so "tail is ready" is observed,
    not assumed)."""
    deadline = time.monotonic() + timeout
    sent: list[str] = []
    while True:
        sent.append(send())
        try:
            return tail.wait_doc(lambda d: d["type"] == kind and d["uuid"] in sent,
                                 timeout=min(every, max(0.1, deadline - time.monotonic())),
                                 what=f"{kind} of a probe task")
        except AssertionError:
            if time.monotonic() >= deadline:
                raise


def probe(app: Any) -> Callable[[], str]:
    def send() -> str:
        return str(app.send_task("workerapp.add", args=(0, 0)).id)

    return send


def assert_states_follow_the_model(lines: Iterable[Doc]) -> None:
    """Each line's ``state`` is what the index says right after that event, in arrival order
    (the client's task-sent and the worker's events travel separately, so order varies)."""
    from lazycelery.core.index import TaskIndex
    from lazycelery.core.model import TaskRecord

    index = TaskIndex()
    for doc in lines:
        record = index.apply(doc)
        assert isinstance(record, TaskRecord)
        assert doc["state"] == record.state, doc


def types_of(docs: Iterable[Doc]) -> list[str]:
    return [doc["type"] for doc in docs]


#: countdown of the task revoked while the worker holds it for its ETA (seconds)
ETA_REVOKED = 15


def run_scenario(tail: TailProcess, app: Any, worker_hostname: str) -> dict[str, str]:
    """Success, failure, retry, a revoke while waiting for an ETA, and a chain of three;
    asserts on tail's JSON lines and returns the task ids by role."""
    ok = str(app.send_task("workerapp.add", args=(2, 3)).id)
    bad = str(app.send_task("workerapp.always_fail", args=("boom",)).id)
    flaky = str(app.send_task("workerapp.flaky", args=(7,), kwargs={"fail_for": 1}).id)
    # the ETA is far enough off for tail to show task-received and the revoke to reach the
    # worker before it on a loaded machine (the worker announces task-revoked at the ETA)
    later = str(app.send_task("workerapp.sleepy", args=(0.1,), countdown=ETA_REVOKED).id)
    steps = (app.signature("workerapp.add", args=(1, 2)) | app.signature("workerapp.add", args=(3,))
             | app.signature("workerapp.add", args=(4,)))
    chain_last = str(steps.apply_async().id)

    # success: the whole lifecycle, each line with the state right after it
    tail.wait_doc(lambda d: d["uuid"] == ok and d["type"] == "task-succeeded", what="add succeeded")
    # the client publishes task-sent after the task message itself: on a loaded machine the
    # worker's three events can all arrive first, so wait for the fourth
    lifecycle = ["task-received", "task-sent", "task-started", "task-succeeded"]
    tail.wait_until(lambda: len(tail.task_docs(ok)) >= len(lifecycle), 30,
                    "the four events of add")
    lines = tail.task_docs(ok)
    assert sorted(types_of(lines)) == lifecycle
    assert_states_follow_the_model(lines)
    if types_of(lines) == ["task-sent", "task-received", "task-started", "task-succeeded"]:
        assert [d["state"] for d in lines] == ["PENDING", "RECEIVED", "STARTED", "SUCCESS"]
    done = next(d for d in lines if d["type"] == "task-succeeded")
    assert done["name"] == "workerapp.add" and done["state"] == "SUCCESS"
    assert done["result"] == "5" and isinstance(done["runtime"], float)
    assert done["args"] == "(2, 3)" and done["worker"] == worker_hostname
    # the queue comes with task-sent, which the client may publish after the worker's
    # task-succeeded arrived: the last line carries everything merged
    assert lines[-1]["queue"] == app.conf.task_default_queue

    # failure: exception text and traceback
    failed = tail.wait_doc(lambda d: d["uuid"] == bad and d["type"] == "task-failed",
                           what="always_fail failed")
    assert failed["name"] == "workerapp.always_fail" and failed["state"] == "FAILURE"
    assert failed["exception"] == "ValueError(\"bad payload: 'boom'\")"
    assert "raise ValueError" in failed["traceback"]

    # retry: same uuid, retried with the exception, then succeeded on attempt 2
    retried = tail.wait_doc(lambda d: d["uuid"] == flaky and d["type"] == "task-retried",
                            what="flaky retried")
    assert retried["exception"] == "RuntimeError('transient failure 0')"
    final = tail.wait_doc(lambda d: d["uuid"] == flaky and d["type"] == "task-succeeded",
                          what="flaky succeeded")
    assert final["result"] == "7" and final["retries"] == 1 and final["state"] == "SUCCESS"
    assert final["name"] == "workerapp.flaky"
    received = [d for d in tail.task_docs(flaky) if d["type"] == "task-received"]
    assert sorted(d["retries"] for d in received) == [0, 1]
    assert_states_follow_the_model(tail.task_docs(flaky))

    # revoke while the worker holds the task for its ETA
    tail.wait_doc(lambda d: d["uuid"] == later and d["type"] == "task-received",
                  what="sleepy received")
    app.control.revoke(later, destination=[worker_hostname])
    revoked = tail.wait_doc(lambda d: d["uuid"] == later and d["type"] == "task-revoked",
                            timeout=ETA_REVOKED + 45, what="sleepy revoked")
    assert revoked["state"] == "REVOKED" and revoked["name"] == "workerapp.sleepy"
    assert revoked["terminated"] is False and revoked["expired"] is False
    assert not any(d["type"] == "task-started" for d in tail.task_docs(later))

    # chain: three steps under one root, each the parent of the next
    tail.wait_doc(lambda d: d["uuid"] == chain_last and d["type"] == "task-succeeded",
                  what="the last chain step")
    last = next(d for d in tail.task_docs(chain_last) if d["type"] == "task-succeeded")
    root = last["root_id"]
    assert root and root != chain_last
    succeeded = [d for d in tail.docs() if d["type"] == "task-succeeded" and d["root_id"] == root]
    assert len(succeeded) == 3
    # in chain order by their parent links: the worker's main process may announce step 3's
    # success before step 2's (their results come back from different pool processes)
    by_parent = {d["parent_id"]: d for d in succeeded}
    steps_done = [by_parent[None]]
    while steps_done[-1]["uuid"] in by_parent and len(steps_done) < 3:
        steps_done.append(by_parent[steps_done[-1]["uuid"]])
    assert [d["result"] for d in steps_done] == ["3", "6", "10"]
    assert steps_done[0]["uuid"] == root
    sent_by_worker = [d for d in tail.docs() if d["type"] == "task-sent" and d["root_id"] == root
                      and d["uuid"] != root]
    assert sent_by_worker and all(d["hostname"].startswith("gen") for d in sent_by_worker)

    for doc in tail.docs():  # the schema holds on every line
        assert doc["type"] and doc["time"] and isinstance(doc["timestamp"], float)
        assert isinstance(doc["local_received"], float)
    return {"ok": ok, "bad": bad, "flaky": flaky, "revoked": later, "chain_last": chain_last}


def finish_filtered(tails: Iterable[TailProcess], send: Callable[[], Any],
                    timeout: float = 40.0) -> None:
    """Filtered tails with ``--limit`` may have subscribed after the scenario's events: send
    more of what they wait for until each has exited."""
    deadline = time.monotonic() + timeout
    pending = list(tails)
    while pending:
        pending = [t for t in pending if t.proc.poll() is None]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise AssertionError("filtered tails did not exit: "
                                 + "; ".join(t.stderr() for t in pending))
        send()
        with contextlib.suppress(subprocess.TimeoutExpired):
            pending[0].proc.wait(2.0)
