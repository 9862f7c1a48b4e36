"""`lazycelery demo` with its dashboard in a pseudo-terminal: `q` and a hang-up both stop everything."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, wait_for

pexpect = pytest.importorskip("pexpect")
pyte = pytest.importorskip("pyte")

# KNOWN PROBLEM (not yet understood): on the embedded filesystem:// broker about one demo
# run in five loses messages between processes (a worker that never answers the start-up ping,
# or events that never reach tail). Until it is found, a failed run is retried twice; a demo
# that fails three times in a row still fails the test.
pytestmark = [pytest.mark.integration, pytest.mark.flaky(reruns=2, reruns_delay=1)]

ROWS, COLS = 40, 140
_WORKERS = re.compile(rb"workers\s+demo1@\S+ \(pid (\d+)\), demo2@\S+ \(pid (\d+)\)")
_DIR = re.compile(rb"\(embedded, in (\S+)\)")


class DemoTerminal:
    """`python -m lazycelery demo` in a pty; its screen is kept by pyte."""

    def __init__(self, tmp: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYCELERY_DEMO_")}
        env.update(TMPDIR=str(tmp), TERM="xterm-256color")
        env.pop("NO_COLOR", None)
        self.screen = pyte.Screen(COLS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()
        self.child = pexpect.spawn(sys.executable, ["-m", "lazycelery", "demo"], cwd=str(ROOT),
                                   dimensions=(ROWS, COLS), env=env, timeout=60)
        self.pids: list[int] = []

    def pump(self, seconds: float = 0.1) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                data = self.child.read_nonblocking(65536, timeout=0.05)
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                return
            self.raw += data
            self.stream.feed(data)

    def text(self) -> str:
        return "\n".join(self.screen.display)

    def until(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; screen:\n{self.text()}")
            self.pump(0.2)

    def started(self) -> Path:
        """Wait for the start-up summary (pids, data dir) and the dashboard showing tasks."""
        self.until(lambda: _WORKERS.search(self.raw) and _DIR.search(self.raw), 90,
                   "the demo's summary")
        workers = _WORKERS.search(self.raw)
        data_dir = _DIR.search(self.raw)
        assert workers is not None and data_dir is not None
        self.pids = [int(workers.group(1)), int(workers.group(2))]
        self.until(lambda: "demo2@" in self.text() and "SUCCESS" in self.text(), 60,
                   "the dashboard with the demo's workers and tasks")
        return Path(data_dir.group(1).decode())

    def finish(self, timeout: float = 30) -> int | None:
        self.until(lambda: not self.child.isalive(), timeout, "the demo to exit")
        self.child.close()
        return self.child.exitstatus


def _group_gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[DemoTerminal]:
    term = DemoTerminal(tmp_path)
    yield term
    if term.child.isalive():
        term.child.kill(signal.SIGKILL)
    for pid in term.pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def test_q_quits_the_dashboard_and_stops_the_demo(terminal: DemoTerminal) -> None:
    data_dir = terminal.started()
    screen = terminal.text()
    assert "filesystem://" in screen
    assert "not supported for filesystem://" in screen  # the queues pane says why it is empty
    terminal.child.send("q")
    assert terminal.finish() == 0
    assert all(_group_gone(pid) for pid in terminal.pids)
    assert not data_dir.exists()
    assert b"lazycelery demo: stopped" in terminal.raw


def test_a_hang_up_stops_the_demo(terminal: DemoTerminal) -> None:
    data_dir = terminal.started()
    # what a closed SSH session does: the terminal goes away, SIGHUP to its foreground group
    terminal.child.kill(signal.SIGHUP)
    wait_for(lambda: not terminal.child.isalive(), timeout=30, what="the demo to exit")
    wait_for(lambda: all(_group_gone(pid) for pid in terminal.pids) and not data_dir.exists(),
             timeout=30, what="the workers to stop and the temp dir to go")
