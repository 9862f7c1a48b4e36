"""The beat plugin for real: built and installed by pip (into a private target directory), listed
by `lazycelery plugins`, and its pane reading the shelve of a running `celery beat` process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import wait_for
from tests.test_plugins import (
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

pytestmark = pytest.mark.integration

_OFFLINE = ("No matching distribution", "Could not find a version", "NewConnectionError",
            "Temporary failure in name resolution", "Network is unreachable")


def test_pip_installs_the_plugin_and_lazycelery_lists_it(tmp_path: Path) -> None:
    target = tmp_path / "target"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
         str(target), str(BEAT_PLUGIN)], capture_output=True, text=True, timeout=300)
    if pip.returncode != 0 and any(s in pip.stdout + pip.stderr for s in _OFFLINE):
        pytest.skip("pip cannot fetch the build backend (setuptools) here: offline")
    assert pip.returncode == 0, pip.stdout + pip.stderr
    assert (target / "lazycelery_beat-0.1.0.dist-info" / "entry_points.txt").read_text() \
        .split() == ["[lazycelery.panes]", "beat", "=", "lazycelery_beat:pane"]
    env = {k: v for k, v in os.environ.items() if k != "LAZYCELERY_PLUGINS"}
    env.update(PYTHONPATH=str(target), LAZYCELERY_CONFIG=os.devnull,
               LAZYCELERY_BEAT_SOURCE="app")
    proc = subprocess.run([sys.executable, "-m", "lazycelery", "plugins", "--json", "--check"],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    panes = {p["name"]: p for p in json.loads(proc.stdout)["panes"]}
    beat = panes["beat"]
    assert (beat["distribution"], beat["version"], beat["state"], beat["key"]) == \
        ("lazycelery-beat", "0.1.0", "loaded", "5")
    where = subprocess.run([sys.executable, "-c", "import lazycelery_beat; "
                            "print(lazycelery_beat.__file__)"], capture_output=True, text=True,
                           env=env, timeout=60)
    assert where.stdout.startswith(str(target))  # the installed copy, not the source tree


BEAT_APP = """
from celery import Celery

app = Celery("beatint", broker={broker!r})
app.conf.timezone = "UTC"
app.conf.beat_sync_every = 1  # write the shelve after every sent task
app.conf.beat_schedule = {{
    "tick": {{"task": "beatint.tick", "schedule": 1.0}},
    "hourly": {{"task": "beatint.hourly", "schedule": 3600.0}},
}}
"""


@pytest.fixture
def running_beat(tmp_path: Path, redis_url: str) -> Iterator[Path]:
    """A real `celery beat` sending `tick` every second to a private Redis db; yields its
    schedule file. Always stopped."""
    work = tmp_path / "beat"
    work.mkdir()
    (work / "beatint.py").write_text(textwrap.dedent(BEAT_APP.format(broker=redis_url)))
    schedule = work / "celerybeat-schedule"
    log = work / "beat.log"
    env = dict(os.environ, PYTHONPATH=str(work))
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "beatint", "beat", "-s", str(schedule),
             "--max-interval", "1", "-l", "info"],
            cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield schedule
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_beat_pane_follows_a_running_beat(site: Path, monkeypatch: pytest.MonkeyPatch,
                                          running_beat: Path) -> None:
    sys.path.insert(0, str(BEAT_PLUGIN))
    try:
        from lazycelery_beat.schedule import (  # type: ignore[import-not-found,unused-ignore]
            entries_from_shelve,
        )
    finally:
        sys.path.remove(str(BEAT_PLUGIN))

    def tick_runs() -> int:
        try:
            entries = {e.name: e for e in entries_from_shelve(running_beat)}
        except Exception:
            return 0
        tick = entries.get("tick")
        return (tick.total_run_count or 0) if tick is not None else 0

    wait_for(lambda: tick_runs() >= 2, timeout=60, interval=0.3, what="beat to send tick twice")
    from lazycelery.config import Settings
    from lazycelery.tui.plugins import Selection, discover

    install_beat(site, monkeypatch)
    monkeypatch.setenv("LAZYCELERY_BEAT_SCHEDULE", str(running_beat))
    monkeypatch.setenv("LAZYCELERY_BEAT_INTERVAL", "0.5")
    infos = discover(Selection.from_environment(environ={"LAZYCELERY_PLUGINS": "beat"}))
    with dashboard(infos, settings=Settings(broker_url="memory://"), columns=140) as h:
        async def scenario(h: Harness) -> None:
            await h.keys("5")

            def runs() -> int:
                row = next((line for line in screen_text(h.d).splitlines()
                            if line.startswith("tick ")), "")
                last = row.split()[-1] if row else ""
                return int(last) if last.isdigit() else 0

            await h.until(lambda: runs() >= 2, timeout=20)
            first = runs()
            await h.until(lambda: runs() > first, timeout=20)  # re-read while beat runs
            screen = screen_text(h.d)
            assert f"shelve {running_beat}" in screen
            assert any(line.startswith("hourly ") and "every 1 h" in line
                       for line in screen.splitlines())

        drive(h, scenario)
