"""The import contract: the headless core, the screen model, pane discovery and the built-in
pane modules (and the CLI's start-up) never import prompt_toolkit."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CORE = ["lazycelery.core", "lazycelery.core.index", "lazycelery.core.model",
        "lazycelery.core.query", "lazycelery.core.task_list", "lazycelery.commands.dashboard",
        "lazycelery.cli",
        # the screen model and what discovery loads: `lazycelery plugins` stays fast
        "lazycelery.tui.screen.model", "lazycelery.tui.plugins", "lazycelery.tui.panes.workers",
        "lazycelery.tui.panes.queues", "lazycelery.tui.panes.tasks",
        "lazycelery.tui.panes.detail", "lazycelery.tui.panes.errors",
        # the error analysis and its command
        "lazycelery.analysis", "lazycelery.analysis.report", "lazycelery.commands.errors_cmd"]


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


def test_the_plugins_command_imports_no_ui() -> None:
    """`lazycelery plugins` discovers (and loads) every pane, the built-in ones included,
    without prompt_toolkit."""
    code = ("import sys\nfrom lazycelery.cli import main\nrc = main(['plugins'])\n"
            "bad = [m for m in sys.modules if m.split('.')[0] == 'prompt_toolkit']\n"
            "print('UI:', bad[:5])\nsys.exit(3 if bad else rc)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "LAZYCELERY_PLUGINS": "none"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip()}
    for name in ("workers", "queues", "tasks", "detail"):
        assert rows[name].endswith("loaded") and "built-in" in rows[name]

