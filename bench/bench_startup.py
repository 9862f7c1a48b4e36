"""Benchmark 5: wall time of ``lazycelery --help`` / ``lazycelery tail --help`` vs ``python -c pass``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import REPO, log, median


def lazycelery_command() -> list[str]:
    """The console script next to this interpreter, else ``python -m lazycelery``."""
    script = Path(os.path.abspath(sys.executable)).with_name("lazycelery")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "lazycelery"]


def _wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, cwd=REPO)
    return time.perf_counter() - t


def slowest_imports(cmd: list[str], top: int = 8) -> list[tuple[str, float]]:
    """The largest cumulative import times (``-X importtime``) of one run, in ms."""
    argv = cmd if cmd[0] == sys.executable else [sys.executable, "-c",
                                                  "from lazycelery.cli import main; main()", *cmd[1:]]
    argv = [argv[0], "-X", "importtime", *argv[1:]]
    out = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=REPO,
                         env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    rows = []
    for line in out.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m and len(m.group(3)) <= 2:  # top-level imports only
            rows.append((m.group(4), int(m.group(2)) / 1000))
    rows.sort(key=lambda r: -r[1])
    return rows[:top]


def run(quick: bool) -> dict[str, Any]:
    repeats = 15
    base = lazycelery_command()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "lazycelery --help": [*base, "--help"],
        "lazycelery tail --help": [*base, "tail", "--help"],
    }
    log(f"startup: {repeats} runs of each, interleaved ({' '.join(base)})")
    for cmd in commands.values():  # warm the page cache and .pyc files
        _wall(cmd)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, cmd in commands.items():
            times[name].append(_wall(cmd))
    medians = {name: median(v) * 1000 for name, v in times.items()}
    ref = medians["python -c pass"]
    rows = {name: {"median_ms": ms, "over_python_ms": ms - ref,
                   "runs_ms": [t * 1000 for t in times[name]]} for name, ms in medians.items()}
    result: dict[str, Any] = {"repeats": repeats, "command": " ".join(base), "rows": rows}
    ok = subprocess.run([*base, "tail", "--help"], capture_output=True, check=False, cwd=REPO)
    if ok.returncode != 0:
        result["warning"] = f"`lazycelery tail --help` exited {ok.returncode}: {ok.stderr.decode()[-300:]}"
    result["slowest_imports_tail_help"] = slowest_imports([*base, "tail", "--help"])
    return result
