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

pytestmark = pytest.mark.integration

ROWS, COLS = 40, 140
_WORKERS = re.compile(rb"workers\s+demo1@\S+ \(pid (\d+)\), demo2@\S+ \(pid (\d+)\)")
_DIR = re.compile(rb"logs +(\S+)/logs")
BEAT_PLUGIN = ROOT / "plugins" / "lazycelery-beat"


class DemoTerminal:
    """`python -m lazycelery demo` in a pty; its screen is kept by pyte."""

    def __init__(self, tmp: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYCELERY_DEMO_")}
        # the beat plugin, installed as `pip install -e plugins/lazycelery-beat` would
        site = _install_beat(tmp / "site")
        env.update(TMPDIR=str(tmp), TERM="xterm-256color",
                   PYTHONPATH=os.pathsep.join([str(site), str(BEAT_PLUGIN)]))
        env.pop("LAZYCELERY_PLUGINS", None)
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


def _install_beat(site: Path) -> Path:
    """What pip leaves for importlib.metadata: a dist-info with the pane's entry point."""
    info = site / "lazycelery_beat-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lazycelery-beat\n"
                                   "Version: 0.1.0\n")
    (info / "entry_points.txt").write_text("[lazycelery.panes]\nbeat = lazycelery_beat:pane\n")
    return site


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


def test_the_dashboard_shows_the_whole_demo_and_q_stops_it(terminal: DemoTerminal) -> None:
    data_dir = terminal.started()
    screen = terminal.text()
    assert re.search(r"redis://127\.0\.0\.1:\d+/0", screen)  # the embedded broker
    assert "not supported" not in screen
    # the queues pane reads depths from the embedded broker: the paused priority queue fills
    terminal.until(lambda: re.search(r"^.*│priority +[1-9]\d* ", terminal.text(), re.M)
                   is not None, 60, "the priority queue's depth in the queues pane")
    # the beat pane has a live source: beat's own schedule file
    terminal.child.send("5")
    terminal.until(lambda: "shelve" in terminal.text() and "cleanup-sessions" in terminal.text()
                   and "every 10 s" in terminal.text(), 30, "the beat pane on beat's shelve")
    assert "no source" not in terminal.text()
    terminal.child.send("q")
    assert terminal.finish() == 0
    assert all(_group_gone(pid) for pid in terminal.pids)
    assert not data_dir.exists()
    assert b"lazycelery demo: stopped" in terminal.raw


def test_a_hang_up_stops_the_demo(terminal: DemoTerminal) -> None:
    data_dir = terminal.started()
    # what a closed SSH session does: the terminal goes away, SIGHUP to its foreground group
    terminal.child.kill(signal.SIGHUP)
    wait_for(lambda: not terminal.child.isalive(), timeout=60, what="the demo to exit")
    wait_for(lambda: all(_group_gone(pid) for pid in terminal.pids) and not data_dir.exists(),
             timeout=60, what="the workers to stop and the temp dir to go")
