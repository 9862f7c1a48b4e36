"""The timeline and charts panes in a real terminal (tmux, 120x40): every captured row is valid
text no wider than the window, with no replacement character at the right edge.

A "\\ufffd" seen at the right edge of these rows came from cutting the capture by *bytes*
(``tmux capture-pane -p | cut -c1-120``: GNU cut counts bytes), which splits the 3-byte block
characters their rows are made of; the terminal stream itself is whole. This guards the part
lazycelery owns: what it draws fits the width in cells and never holds a broken character."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from wcwidth import wcswidth

from conftest import ROOT

pytestmark = pytest.mark.integration

COLS, ROWS = 120, 40


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Callable[..., str]]:
    if shutil.which("tmux") is None:
        pytest.skip("no tmux on PATH")
    socket = f"lc-edges-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "TMPDIR": str(tmp_path), "LANG": "C.UTF-8"}
    env.pop("LAZYCELERY_PLUGINS", None)

    def run(*args: str) -> str:
        done = subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True,
                              env=env, timeout=30, check=True)
        return done.stdout

    run("new-session", "-d", "-s", "edges", "-x", str(COLS), "-y", str(ROWS),
        f"cd {ROOT} && {sys.executable} -m lazycelery demo")
    try:
        yield run
    finally:
        try:
            run("send-keys", "-t", "edges", "q")
            deadline = time.monotonic() + 20  # the demo stops its workers on q
            while time.monotonic() < deadline and "edges" in run("list-sessions"):
                time.sleep(0.2)
        except subprocess.CalledProcessError:
            pass  # the session ended: the server went with it
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=30,
                       check=False)


def _until(capture: Callable[[], str], cond: Callable[[str], bool], what: str) -> str:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        text = capture()
        if cond(text):
            return text
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}:\n{capture()}")


def _check_edges(text: str) -> None:
    assert "\ufffd" not in text
    for line in text.splitlines():
        assert wcswidth(line) <= COLS, line


@pytest.mark.timeout(240)
def test_timeline_and_charts_rows_fit_and_hold_no_broken_character(
        tmux: Callable[..., str]) -> None:
    def capture() -> str:
        return tmux("capture-pane", "-p", "-t", "edges")

    _until(capture, lambda t: "connected" in t and " ok " in t, "the demo's dashboard")
    tmux("send-keys", "-t", "edges", "Escape")
    tmux("send-keys", "-t", "edges", "T")
    timeline = _until(capture, lambda t: "T Timeline" in t and "█" in t, "the timeline's bars")
    _check_edges(timeline)
    tmux("send-keys", "-t", "edges", "m")
    charts = _until(capture, lambda t: "m Charts" in t and "Finished tasks" in t, "the charts")
    _check_edges(charts)
