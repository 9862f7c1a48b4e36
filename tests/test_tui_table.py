"""The virtual table formats only visible rows, keeps the selection's screen row as rows arrive,
fits columns to the width and drops low-priority columns when narrow."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from lazycelery.tui.format import (
    age,
    clock_time,
    duration,
    fit,
    fixed,
    lines_of,
    number,
    one_line,
    percent,
    short_id,
    sparkline,
    wrap,
)
from lazycelery.tui.table import Column, ListModel, VirtualTable


class Huge:
    """A model of ten million rows that counts how many it was asked to produce."""

    def __init__(self, n: int = 10_000_000) -> None:
        self.n = n
        self.selected = 0
        self.produced = 0

    def __len__(self) -> int:
        return self.n

    def rows(self, start: int, stop: int) -> Sequence[int]:
        out = list(range(max(0, start), min(stop, self.n)))
        self.produced += len(out)
        return out

    def selected_index(self) -> int:
        return self.selected


def columns() -> list[Column[int]]:
    return [
        Column("N", lambda i: ("", str(i)), width=9, align="right"),
        Column("NAME", lambda i: ("", f"task-{i % 7}"), min_width=6, max_width=20, grow=1),
        Column("EXTRA", lambda i: ("class:x", "x" * 30), min_width=10, priority=5),
    ]


def text(content: object, i: int) -> str:
    return "".join(t for _, t, *_ in content.get_line(i))  # type: ignore[attr-defined]


def test_only_visible_rows_are_formatted() -> None:
    model = Huge()
    table = VirtualTable(lambda: model, columns(), selection_key=lambda: model.selected)
    content = table.create_content(80, 25)
    assert content.line_count == 25  # header + 24 rows, whatever the row count
    assert model.produced == 24 and table.rendered_rows == 24
    assert text(content, 0).startswith("        N NAME")
    assert text(content, 1).startswith("        0 task-0")
    assert all(len(text(content, i)) == 80 for i in range(25))


def test_selection_keeps_its_screen_row_when_rows_arrive_above() -> None:
    model = Huge(1000)
    table = VirtualTable(lambda: model, columns(), selection_key=lambda: "same-item")
    model.selected = 500
    table.create_content(80, 21)  # scrolls so that row 500 is visible
    row_on_screen = 500 - table.top
    model.n, model.selected = 1010, 510  # 10 rows arrived above the selected item
    table.create_content(80, 21)
    assert 510 - table.top == row_on_screen


def test_moving_the_selection_scrolls_minimally() -> None:
    model = Huge(1000)
    keys = iter(range(10_000))
    table = VirtualTable(lambda: model, columns(), selection_key=lambda: next(keys))
    table.create_content(80, 11)
    assert table.top == 0
    model.selected = 15
    content = table.create_content(80, 11)
    assert table.top == 6 and content.cursor_position.y == 10
    model.selected = 3
    table.create_content(80, 11)
    assert table.top == 3


def test_narrow_terminal_drops_low_priority_columns() -> None:
    model = Huge(10)
    table = VirtualTable(lambda: model, columns())
    wide = text(table.create_content(80, 5), 0)
    narrow = text(table.create_content(18, 5), 0)
    assert "EXTRA" in wide and "EXTRA" not in narrow and "NAME" in narrow


def test_empty_model_shows_a_message() -> None:
    model = Huge(0)
    table = VirtualTable(lambda: model, columns(), empty_text=lambda: "nothing yet")
    content = table.create_content(40, 5)
    assert "nothing yet" in text(content, 1)


def test_list_model_selection_by_key() -> None:
    lst: ListModel[str] = ListModel(key=lambda s: s)
    lst.set_items(["b", "c"])
    assert lst.selected == "b"
    lst.move(1)
    assert lst.selected == "c"
    lst.set_items(["a", "b", "c"])  # an item arrived above: the selection stays on "c"
    assert lst.selected == "c" and lst.selected_index() == 2
    lst.set_items(["a"])  # "c" went away
    assert lst.selected_index() == -1 or lst.selected == "a"


def test_format_helpers() -> None:
    assert fit("abcdef", 4) == "abc…"
    assert fit("ab", 4, "right") == "  ab"
    assert fit("日本語です", 5) == "日本…"
    assert one_line("a\nb\x1b[31m") == "a\\x0ab\\x1b[31m"  # one line, escapes shown
    assert wrap("abcdefg", 3) == ["abc", "def", "g"]
    assert number(1234567) == "1.23M" and number(1234) == "1,234" and number(None) == "–"
    assert duration(0.0123) == "12ms" and duration(2.5) == "2.50s" and duration(65) == "1m05s"
    assert age(5) == "5s" and age(7200) == "2h"
    assert sparkline([0, 1, 2, 4]) == "▁▃▅█"
    assert sparkline([0, 0]) == "▁▁" and sparkline([]) == ""


ODD_VALUES = [float("nan"), float("inf"), float("-inf"), 10**400, "12", [1], {"a": 1}, True]


@pytest.mark.parametrize("value", ODD_VALUES,
                         ids=["nan", "inf", "-inf", "10**400", "str", "list", "dict", "bool"])
def test_number_helpers_show_odd_values_as_a_question_mark(value: object) -> None:
    assert duration(value) == "?" and age(value) == "?" and clock_time(value) == "?"
    assert percent(value) == "?" and fixed(value, 2) == "?"
    assert number(value) == ("1.00e+400" if value == 10**400 else "?")


def test_out_of_range_times_and_huge_counts() -> None:
    # time.localtime raised "timestamp out of range for platform time_t" in the time column
    assert clock_time(1e20) == "?" and clock_time(1e308, millis=True) == "?"
    assert number(10**5000) == "1.00e+5000" and number(2 * 10**15) == "2.00e+15"
    assert number(1e300) == "1.00e+300" and number(-3.5) == "-3.5"
    assert sparkline([float("nan"), 2, "x", -1, 4]) == "▁▅▁▁█"
    assert short_id(["a", "b"]) == "['a', 'b"
    assert one_line(None) == "" and one_line(10**5000) == "<int: about 5,001 digits>"
    assert lines_of("Traceback:\n  \x1b[31mboom") == ["Traceback:", "  \\x1b[31mboom"]
