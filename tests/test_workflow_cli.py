"""`lazycelery task tree` and `task replay` with nothing to read (no result backend, no store):
one clear line and an exit status, never a traceback, nothing sent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TASK = "3e27fe9e-9215-48f7-bcc9-ab84bf004092"


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "lazycelery", "task", *args,
                           "-b", "redis://127.0.0.1:1/0"],
                          capture_output=True, text=True, env=env, timeout=60)


def test_tree_of_an_unknown_task_says_what_it_could_not_read(tmp_path: Path) -> None:
    out = _cli("tree", TASK, home=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1
    assert "unknown" in out.stderr and "no result backend" in out.stderr
    assert "lazycelery record" in out.stderr


def test_tree_takes_one_id(tmp_path: Path) -> None:
    out = _cli("tree", TASK, TASK.replace("3", "4"), home=tmp_path)
    assert out.returncode == 2 and "give one task id" in out.stderr


def test_replay_of_an_unknown_task_is_refused_with_the_reason(tmp_path: Path) -> None:
    out = _cli("replay", TASK, "--yes", home=tmp_path)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"replay: refused: {TASK}: unknown task" in out.stderr
