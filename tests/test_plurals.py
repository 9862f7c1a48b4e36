"""Counts agree with their nouns: "1 group", never "1 groups", on every surface."""

from __future__ import annotations

import re
from pathlib import Path

from lazycelery.text import counted
from lazycelery.tui.panes.errors import errors_title, group_lines
from lazycelery.tui.screen.errors import ErrorsModel
from tests.errors_data import recorded_events

PACKAGE = Path(__file__).resolve().parent.parent / "lazycelery"


def test_counted() -> None:
    assert counted(1, "group") == "1 group"
    assert counted(0, "group") == "0 groups"
    assert counted(2, "dead letter") == "2 dead letters"
    assert counted(1234, "task") == "1,234 tasks"
    assert counted(12_345_678, "event") == "12,345,678 events"  # log lines keep every digit
    assert counted(12_345_678, "message", short=True) == "12.3M messages"
    assert counted(1, "entry", "entries") == "1 entry"
    assert counted(3, "entry", "entries") == "3 entries"


def test_the_errors_pane_with_one_failure() -> None:
    events = recorded_events()
    failed = next(e["uuid"] for e in events if e.get("type") == "task-failed")
    model = ErrorsModel(clock=lambda: max(e["timestamp"] for e in events) + 60)
    model.feed([e for e in events if e.get("uuid") == failed])
    model.refresh(force=True)
    title = "".join(text for _, text in errors_title(model))
    assert "1 group  1 failure" in title
    assert "1 failure (1 failed, 0 retried)" in group_lines(model, model.selected, 150)[0]


# A number in an f-string followed by a plural noun: "{n} groups" reads "1 groups" when n is 1.
_PLURAL_AFTER_NUMBER = re.compile(
    r"\{[^{}]+\}[ ]+(groups|tasks|workers|alerts|events|queues|messages|failures|entries|"
    r"lines|spans|environments|rules|retries|gaps|attempts|dead letters)\b(?!/)")
# where the number cannot be 1: a constant, or a count only shown when over a limit above 1
_NEVER_ONE = ("TYPED_CONFIRM_THRESHOLD", "buffer.max_lines", "tasks in view; at most",
              "_names_text(group)", "len(self.gaps)} gaps", "refusing to {action} messages")


def test_no_number_is_followed_by_a_plural_noun_in_the_source() -> None:
    found = [f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}"
             for path in sorted(PACKAGE.rglob("*.py"))
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if _PLURAL_AFTER_NUMBER.search(line) and not any(k in line for k in _NEVER_ONE)]
    assert found == [], "use lazycelery.text.counted:\n" + "\n".join(found)
