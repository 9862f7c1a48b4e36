"""The restart hook from the dashboard: ``R`` in the charts pane (and ``worker.restart`` from
the workers pane) asks first with the exact command and Cancel focused, runs a real script
without a shell once confirmed, reports the exit code and first output line, audits; refused in
read-only mode and without a configured command."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from celery import Celery

from lazycelery.core.actions import Actions
from lazycelery.tui.panes.dialog import CANCEL
from tests.test_tui_actions import ENTER, HOST, TAB, Harness, harness, run


def script(tmp_path: Path) -> tuple[Path, Path]:
    out = tmp_path / "restarted.txt"
    path = tmp_path / "hook.sh"
    path.write_text(f'#!/bin/sh\necho "restarted $1"\necho "$1" >> {out}\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path, out


def test_restart_from_the_charts_pane(tmp_path: Path) -> None:
    hook, out = script(tmp_path)
    audit = tmp_path / "audit.log"
    with harness() as h:
        h.d.operator.attach(Actions(Celery(set_as_current=False), environment="test",
                                    audit_path=audit))
        h.d.operator.restart_command = f"{hook} {{worker}}"

        async def scenario(h: Harness) -> None:
            await h.keys("1")
            await h.until(lambda: h.d.workers.selected is not None)
            await h.keys("mR")
            dialog = await h.dialog()
            assert dialog.focus == CANCEL and dialog.title == f"Restart {HOST}"
            said = " ".join("".join(t for _, t, *_ in line) for line in dialog.lines)
            assert f"without a shell: {hook} {HOST}" in said
            await h.keys(ENTER)  # Cancel
            assert h.d.operator.dialog is None and not out.exists()
            await h.keys("R")
            await h.dialog()
            await h.keys(TAB + ENTER)
            await h.until(lambda: f"exit 0: restarted {HOST}" in h.messages())
            assert out.read_text() == f"{HOST}\n"
            entry = json.loads(audit.read_text().splitlines()[-1])
            assert (entry["action"], entry["targets"]) == ("restart", [HOST])

        run(h, scenario)


def test_refused_read_only_and_without_a_command(tmp_path: Path) -> None:
    hook, out = script(tmp_path)
    with harness(read_only=True) as h:
        h.d.operator.restart_command = f"{hook} {{worker}}"

        async def scenario(h: Harness) -> None:
            await h.keys("1")
            await h.until(lambda: h.d.workers.selected is not None)
            h.d.run("worker.restart")
            await h.until(lambda: "restart: refused: read-only mode" in h.messages())
            assert h.d.operator.dialog is None and not out.exists()

        run(h, scenario)
    with harness() as h:
        async def scenario(h: Harness) -> None:
            await h.keys("1")
            await h.until(lambda: h.d.workers.selected is not None)
            h.d.run("worker.restart")
            await h.until(lambda: "no restart command configured" in h.messages())
            assert h.d.operator.dialog is None

        run(h, scenario)
