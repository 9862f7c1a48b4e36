"""The import contract: the headless core (and the CLI's start-up) never import prompt_toolkit."""

from __future__ import annotations

import subprocess
import sys

import pytest

CORE = ["lazycelery.core", "lazycelery.core.index", "lazycelery.core.model",
        "lazycelery.core.query", "lazycelery.core.task_list", "lazycelery.commands.dashboard",
        "lazycelery.cli"]


@pytest.mark.parametrize("module", CORE)
def test_core_does_not_import_prompt_toolkit(module: str) -> None:
    code = (f"import sys, importlib; importlib.import_module({module!r}); "
            "bad = [m for m in sys.modules if m.split('.')[0] == 'prompt_toolkit']; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dashboard_refuses_a_pipe_with_one_line() -> None:
    proc = subprocess.run([sys.executable, "-m", "lazycelery", "--broker",
                           "redis://127.0.0.1:1/0"], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "needs a terminal" in proc.stderr
