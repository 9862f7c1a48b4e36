"""Typing a filter word by word: when the new filter can only match a subset of the
current matches (``pay`` -> ``payl``), the task list scans those matches, not every task.
The rows must be exactly those of the same filter applied from scratch, also when tasks
arrive, change state or get evicted between two key presses."""

from __future__ import annotations

from typing import Any

import pytest

from lazycelery.core.index import TaskIndex
from lazycelery.core.query import narrows
from lazycelery.core.task_list import TaskListView
from tests.replay import load_events

EVENTS = [e for e in load_events("redis") if e["type"].startswith("task-")]


def _uuids(view: TaskListView) -> list[str]:
    return [r.uuid for r in view.rows(0, len(view))]


def _feed(index: TaskIndex, views: list[TaskListView], events: list[dict[str, Any]]) -> None:
    for i in range(0, len(events), 41):
        touched = index.apply_batch(events[i:i + 41])
        for view in views:
            view.sync(touched)


def _full_scan(view: TaskListView, text: str) -> None:
    """The reference: the same filter applied with no previous one to narrow from."""
    view.set_filter("")
    view.set_filter(text)
    view.settle()


@pytest.mark.parametrize("word", ["benchapp.flaky", "always_fail", "payload", "ValueError", "transient"])
def test_typing_a_word_gives_the_rows_of_the_whole_word(word: str) -> None:
    index = TaskIndex(max_tasks=1_500)  # evicts: the stream holds more tasks than that
    typed, reference = TaskListView(index, chunk=500), TaskListView(index, chunk=500)
    half = len(EVENTS) // 2
    _feed(index, [typed, reference], EVENTS[:half])
    step = max(1, (len(EVENTS) - half) // len(word))
    for n in range(1, len(word) + 1):
        narrowed = typed._narrowed_source(compile_for(typed, word[:n]))
        typed.set_filter(word[:n])
        typed.settle()
        if n > 1:
            assert narrowed is not None  # the shortcut was taken (else this test proves little)
        _full_scan(reference, word[:n])
        assert _uuids(typed) == _uuids(reference), word[:n]
        # tasks arrive, finish and get evicted before the next key press
        start = half + (n - 1) * step
        _feed(index, [typed, reference], EVENTS[start:start + step])
    typed.settle()
    reference.settle()
    assert _uuids(typed) == _uuids(reference)
    assert len(typed) > 0


def compile_for(view: TaskListView, text: str) -> Any:
    from lazycelery.core.query import compile_filter

    return compile_filter(text, now=view._wall())


def test_no_shortcut_while_the_previous_scan_runs() -> None:
    index = TaskIndex(max_tasks=10_000)
    typed, reference = TaskListView(index, chunk=100), TaskListView(index, chunk=100)
    _feed(index, [typed, reference], EVENTS)
    typed.set_filter("bench")
    typed.step(budget=0.0)  # one chunk: the matches so far are incomplete
    assert typed.busy
    assert typed._narrowed_source(compile_for(typed, "benchapp")) is None
    typed.set_filter("benchapp")
    typed.settle()
    _full_scan(reference, "benchapp")
    assert _uuids(typed) == _uuids(reference)


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("pay", "payl", True),
    ("pay", "payL", True),                 # case-sensitive now: still a subset
    ("pay", "pay state:failure", True),    # a term added
    ("state:failure pay", "state:failure payload", True),
    ("Pay", "payload", False),             # "Pay" is case-sensitive, "payload" is not
    ("pay", "pa", False),
    ("pay", "-payl", False),               # negation
    ("pay", "pay*", False),                # wildcard: a whole-value match
    ("re:pay", "re:payl", False),
    ("pay state:failure", "payl", False),  # a term removed
    ("state:failure", "state:failure,retry", False),
    ('"pay', "payl", False),               # unclosed quote
    ("name:pay", "name:payl", False),      # qualifiers are not looked into
])
def test_narrows(old: str, new: str, expected: bool) -> None:
    assert narrows(old, new) is expected
