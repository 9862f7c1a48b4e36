"""The screen model without an application: keys' effects on the UI state, the lists, the filter
prompt and the detail stack, through its ``NullShell`` (no prompt_toolkit involved)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from lazycelery.core.index import TaskIndex
from lazycelery.core.model import FAILURE
from lazycelery.tui.screen.model import ScreenModel
from lazycelery.tui.screen.shell import FILTER_INPUT

RECORDED = Path(__file__).parent / "data" / "recorded" / "redis" / "events.jsonl.gz"


def recorded() -> list[dict[str, Any]]:
    with gzip.open(RECORDED, "rt") as fh:
        return [json.loads(line) for line in fh]


def loaded_screen() -> ScreenModel:
    index = TaskIndex()
    screen = ScreenModel(index)
    events = recorded()
    screen.feed.push(events, index.apply_batch(events))
    screen.pull()
    return screen


def test_panes_detail_stack_and_back() -> None:
    screen = loaded_screen()
    assert len(screen.tasks) == len(screen.index) > 0 and screen.tasks.follow
    newest = screen.tasks.selected
    screen.move(2)
    assert screen.tasks.selected_index() == 2 and not screen.tasks.follow
    screen.focus_next(1)  # tasks -> detail opens the selected task
    assert screen.ui.pane == "detail" and screen.detail.record is screen.tasks.selected
    assert screen.detail.record is not newest
    screen.back()
    assert screen.ui.pane == "tasks"
    screen.focus_pane("workers")
    assert screen.workers.selected is not None
    screen.activate()  # enter on a worker: its tasks
    assert screen.ui.pane == "tasks"
    assert screen.tasks.filter_text == f"worker:{screen.workers.selected.hostname}"


def test_filter_prompt_history_and_cancel() -> None:
    screen = loaded_screen()
    screen.open_filter()
    assert screen.ui.context == "filter" and screen.shell.input_text(FILTER_INPUT) == ""
    screen.filter_changed("state:failre")
    assert screen.ui.filter_error is not None  # explained while typing, nothing applied
    screen.shell.set_input_text(FILTER_INPUT, "state:failure")
    screen.prompt_accept()
    screen.tasks.settle()
    rows = screen.tasks.rows(0, len(screen.tasks))
    assert rows and all(r.state == FAILURE for r in rows)
    assert screen.ui.filter_history == ["state:failure"] and not screen.ui.filter_editing
    screen.open_filter()
    screen.prompt_move(-1)
    assert screen.shell.input_text(FILTER_INPUT) == "state:failure"
    screen.filter_changed("name:nothing.matches")
    screen.prompt_cancel()  # esc undoes the live preview
    screen.tasks.settle()
    assert screen.tasks.filter_text == "state:failure"
    screen.back()
    assert screen.tasks.filter_text == ""


def test_sort_follow_and_help_scroll() -> None:
    screen = loaded_screen()
    screen.sort_next()
    assert screen.tasks.sort_column == "state"
    assert screen.ui.current_flash() == ("sorted by state, ascending", False)
    screen.help.build = lambda context: [f"{context} line {i}" for i in range(30)]
    screen.toggle_help()
    assert screen.ui.context == "help" and screen.help.lines[0] == "tasks line 0"
    screen.help.page_rows = 10
    screen.last()
    assert screen.help.top == 20
    screen.page(-1)
    assert screen.help.top == 15
