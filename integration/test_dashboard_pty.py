"""End to end: the real `lazycelery` in a pseudo-terminal, its screen read back with pyte,
against a real `celery worker -E` on Redis. Tasks appear, a failed task's traceback is reached
with keys, `?` shows help, `q` quits and the terminal modes are restored."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pexpect = pytest.importorskip("pexpect")
pyte = pytest.importorskip("pyte")

pytestmark = pytest.mark.integration

ROWS, COLS = 40, 140


class Terminal:
    """A pseudo-terminal running a command, with a pyte screen fed from its output."""

    def __init__(self, command: str, args: list[str], env: dict[str, str],
                 rows: int = ROWS, cols: int = COLS) -> None:
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()
        self.child = pexpect.spawn(command, args, dimensions=(rows, cols), env=env,
                                   timeout=30)

    def resize(self, rows: int, cols: int) -> None:
        """Resize the pseudo-terminal (the child gets SIGWINCH) and the screen read back."""
        self.screen.resize(rows, cols)
        self.child.setwinsize(rows, cols)

    def pump(self, seconds: float = 0.1) -> None:
        end = time.monotonic() + seconds
        while True:
            try:
                data = self.child.read_nonblocking(65536, timeout=0.05)
            except pexpect.TIMEOUT:
                data = b""
            except pexpect.EOF:
                return
            if data:
                self.raw += data
                self.stream.feed(data)
            if time.monotonic() >= end:
                return

    @property
    def text(self) -> str:
        return "\n".join(self.screen.display)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 30.0,
                 what: str = "screen") -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump(0.1)
            if predicate(self.text):
                return self.text
        raise AssertionError(f"timed out waiting for {what}; screen:\n{self.text}")

    def press(self, keys: str, settle: float = 0.3) -> None:
        self.child.send(keys)
        self.pump(settle)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    made: list[Terminal] = []

    def start(*args: str, rows: int = ROWS, cols: int = COLS) -> Terminal:
        env = dict(os.environ, TERM="xterm-256color", LANG="C.UTF-8", LC_ALL="C.UTF-8",
                   LAZYCELERY_CONFIG=os.devnull)  # an empty config file
        env.pop("NO_COLOR", None)
        stty = tmp_path / "stty"
        # record the terminal modes before and after, to prove they are restored
        script = (f'stty -g > {stty}.before; "$0" -m lazycelery "$@"; code=$?; '
                  f"stty -g > {stty}.after; exit $code")
        term = Terminal("/bin/sh", ["-c", script, sys.executable, *args], env, rows, cols)
        made.append(term)
        return term

    yield start
    for term in made:
        if term.child.isalive():
            term.child.terminate(force=True)


def test_dashboard_end_to_end(redis_url: str, celery_worker_factory: Any,
                              terminal: Callable[..., Terminal], tmp_path: Path) -> None:
    worker = celery_worker_factory(redis_url)
    term = terminal("--broker", redis_url)
    short_host = worker.hostname.split("@")[0]
    term.wait_for(lambda s: "connected" in s and short_host in s, 60,
                  "the worker to show up in the workers pane")

    app = worker.app()
    try:
        for i in range(5):
            app.send_task("workerapp.add", (i, i))
        app.send_task("workerapp.always_fail", ("e2e-payload",))
    finally:
        app.close()
    screen = term.wait_for(lambda s: "workerapp.always_fail" in s and "FAILURE" in s
                           and s.count("workerapp.add") >= 5, 60, "tasks to appear")
    assert "SUCCESS" in screen

    # reach the failed task's traceback with keys: filter, open, next sections
    term.press("/state:failure\r")
    term.wait_for(lambda s: "/ state:failure" in s, 60, "the filter in the pane title")
    term.press("\r")
    term.wait_for(lambda s: "Task detail" in s and "Exception" in s, 60, "the detail pane")
    for _ in range(8):
        if "Traceback (most recent call last)" in term.text and \
                "ValueError: bad payload: 'e2e-payload'" in term.text:
            break
        term.press("]")
    screen = term.wait_for(lambda s: "ValueError: bad payload: 'e2e-payload'" in s, 60,
                           "the traceback")
    assert "Traceback (most recent call last)" in screen
    assert "History" in screen and "STARTED" in screen

    # ? shows the help generated from the command registry; ? closes it
    term.press("?")
    term.wait_for(lambda s: "cursor.down" in s and "Keys — detail pane" in s, 60,
                  "the help overlay")
    term.press("G")  # scroll to its end: the filter language and remapping
    term.wait_for(lambda s: "Filter language" in s and "[keys]" in s, 60, "the help's end")
    term.press("?")
    term.wait_for(lambda s: "Filter language" not in s, 60, "the help to close")

    # esc goes back to the list; q quits and restores the terminal
    term.press("\x1b", settle=0.5)
    term.wait_for(lambda s: "3 Tasks" in s, 60, "the task list")
    term.press("q")
    term.child.expect(pexpect.EOF, timeout=60)
    term.child.close()
    assert term.child.exitstatus == 0
    assert (tmp_path / "stty.before").read_text() == (tmp_path / "stty.after").read_text()
    tail = bytes(term.raw[-400:])
    assert b"\x1b[?1049l" in tail  # left the alternate screen


def test_dashboard_without_a_broker_shows_the_banner(terminal: Callable[..., Terminal],
                                                     tmp_path: Path) -> None:
    # nothing listens on port 1: the dashboard must keep retrying, never crash
    term = terminal("--broker", "redis://127.0.0.1:1/0")
    screen = term.wait_for(lambda s: "reconnecting: attempt" in s, 60, "the banner")
    assert "Traceback" not in screen
    term.press("q")
    term.child.expect(pexpect.EOF, timeout=60)
    term.child.close()
    assert term.child.exitstatus == 0
    assert (tmp_path / "stty.before").read_text() == (tmp_path / "stty.after").read_text()


def _send_hostile_events(url: str) -> None:
    """Events that broke the dashboard (issue 20): out-of-range timestamps in the time column,
    control sequences in names, ids and hostnames, a runtime that is a string, a version that is
    a list and a count of 10**400; sent with celery's own dispatcher."""
    from celery import Celery

    app = Celery("lc-hostile", broker=url, set_as_current=False)
    try:
        with app.connection_for_write() as conn:
            tasks = app.events.Dispatcher(conn, hostname="evil\x1b[31m@host", enabled=True)
            tasks.send("task-received", uuid="hostile-1e20", name="evil\x1b]0;pwned\x07\x1b[2J",
                       args="('\x1b[2J', '\u202e')", kwargs="{}", retries=0, timestamp=1e20)
            tasks.send("task-received", uuid="hostile-1e308\x07", name="huge.time", args="()",
                       kwargs="{}", retries=0, timestamp=1e308)
            tasks.send("task-succeeded", uuid="hostile-runtime", runtime="slow",
                       result=["\x1bP1$rq\x1b\\"])
            tasks.send("task-failed", uuid="hostile-runtime", exception={"not": "a string"},
                       traceback=["\x1b[2J"])
            tasks.close()
            worker = app.events.Dispatcher(conn, hostname="w\x1b]0;x\x07@host", enabled=True)
            worker.send("worker-heartbeat", freq=2.0, active=10**400, processed=True,
                        sw_ver=[5, 7], sw_ident="py-celery", sw_sys="Linux", loadavg=[0.5])
            worker.close()
    finally:
        app.close()


def test_hostile_values_on_screen_and_q_still_quits(redis_url: str,
                                                     terminal: Callable[..., Terminal],
                                                     tmp_path: Path) -> None:
    term = terminal("--broker", redis_url)
    term.wait_for(lambda s: "connected" in s, 60, "the dashboard to connect")
    _send_hostile_events(redis_url)
    screen = term.wait_for(lambda s: "evil\\x1b]0;pwned" in s and "huge.time" in s
                           and "w\\x1b]0;x\\x07@host" in s, 60, "the hostile rows")
    assert "Traceback" not in screen and "Press ENTER" not in screen
    assert "pwned" not in (term.screen.title or "")  # the escape did not retitle the window
    row = next(line for line in term.screen.display if "evil\\x1b]0;pwned" in line)
    # the 1e20 time, where localtime() raised: ingest replaces it by the receive time
    # (core/sanitize.py); the display's own "?" for such values is tested in test_hostile_render
    assert re.match(r"\d\d:\d\d:\d\d ", row.lstrip()), row
    term.press("q")
    term.child.expect(pexpect.EOF, timeout=60)
    term.child.close()
    assert term.child.exitstatus == 0
    assert (tmp_path / "stty.before").read_text() == (tmp_path / "stty.after").read_text()


def test_dashboard_started_in_a_tiny_terminal_waits_for_a_bigger_one(
        terminal: Callable[..., Terminal], tmp_path: Path) -> None:
    # started at 40x10 (the minimum is 60x14): the "too small" message, not a traceback;
    # enlarged, the dashboard; q quits cleanly
    term = terminal("--broker", "redis://127.0.0.1:1/0", rows=10, cols=40)
    screen = term.wait_for(lambda s: "Terminal too small: 40×10" in s, 60, "the too-small message")
    assert "lazycelery needs at least 60×14" in screen
    assert "Traceback" not in screen
    term.resize(30, 100)
    screen = term.wait_for(lambda s: "Tasks" in s and "reconnecting: attempt" in s, 60,
                           "the dashboard after the resize")
    assert "Terminal too small" not in screen
    term.press("q")
    term.child.expect(pexpect.EOF, timeout=60)
    term.child.close()
    assert term.child.exitstatus == 0
    assert b"Traceback" not in bytes(term.raw)
    assert (tmp_path / "stty.before").read_text() == (tmp_path / "stty.after").read_text()


def test_the_header_masks_a_password_with_raw_special_characters(
        terminal: Callable[..., Terminal]) -> None:
    password = "Zq9@Xy7:Wv Ut%Sr"  # raw "@", ":", a space and "%": kombu reads it as written
    term = terminal("--broker", f"redis://:{password}@127.0.0.1:1/0")
    screen = term.wait_for(lambda s: "reconnecting: attempt" in s, 60, "the banner")
    assert "redis://:********@127.0.0.1:1/0" in screen
    term.press("q")
    term.child.expect(pexpect.EOF, timeout=60)
    term.child.close()
    everything = bytes(term.raw).decode("utf-8", "replace")
    leaked = [password[i:i + 3] for i in range(len(password) - 2)
              if password[i:i + 3] in everything]
    assert not leaked, leaked


def test_the_dashboard_refuses_an_unclosed_ipv6_url_in_one_line(
        terminal: Callable[..., Terminal]) -> None:
    term = terminal("--broker", "redis://[::1")
    term.child.expect(pexpect.EOF, timeout=30)
    term.child.close()
    output = bytes(term.raw + (term.child.before or b"")).decode("utf-8", "replace")
    assert term.child.exitstatus == 2
    assert "lazycelery: --broker: bad URL redis://[::1: an unclosed '['" in output
    assert "Traceback" not in output
