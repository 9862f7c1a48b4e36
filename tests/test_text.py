"""Control characters from events and brokers are shown as escapes, never sent to the terminal."""

from __future__ import annotations

import json
from types import MappingProxyType

import msgspec
import pytest

from lazycelery.text import json_visible, real, text_of, visible, visible_lines


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("billing.charge", "billing.charge"),
        ("héllo wörld ✓", "héllo wörld ✓"),
        ("\x1b]0;owned\x07", "\\x1b]0;owned\\x07"),
        ("a\x1b[2Jb", "a\\x1b[2Jb"),
        ("nul\x00", "nul\\x00"),
        ("line\nbreak\ttab", "line\\x0abreak\\x09tab"),
        ("csi\x9b31m", "csi\\x9b31m"),
        ("dcs\x90q\x9c", "dcs\\x90q\\x9c"),
        ("del\x7f", "del\\x7f"),
        ("rtl\u202eevil", "rtl\\u202eevil"),
    ],
)
def test_visible_escapes_every_control_character(raw: str, shown: str) -> None:
    assert visible(raw) == shown
    assert all(ch.isprintable() for ch in visible(raw))


def test_visible_lines_keeps_line_breaks_only() -> None:
    assert visible_lines("Traceback:\n  \x1b[31mboom\x1b[0m\n") == "Traceback:\n  \\x1b[31mboom\\x1b[0m\n"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("plain", "plain"),
        (None, ""),
        (3, "3"),
        (float("nan"), "nan"),
        ([1, "x"], "[1, 'x']"),
        ({"a": None}, "{'a': None}"),
        (True, "True"),
        (10**400, "1" + "0" * 400),
        (10**5000, "<int: about 5,001 digits>"),  # beyond Python's int -> str limit
    ],
    ids=["str", "none", "int", "nan", "list", "dict", "bool", "10**400", "10**5000"],
)
def test_text_of_shows_any_value_and_never_raises(value: object, shown: str) -> None:
    assert text_of(value) == shown


def test_text_of_survives_a_broken_repr_and_deep_nesting() -> None:
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert text_of(Broken()) == "<Broken>"
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    assert text_of(deep) == "<list>"


@pytest.mark.parametrize(
    ("value", "number"),
    [(1.5, 1.5), (3, 3.0), (float("nan"), None), (float("inf"), None), (10**400, None),
     (True, None), ("1", None), (None, None), ([1], None)],
    ids=["float", "int", "nan", "inf", "10**400", "bool", "str", "none", "list"],
)
def test_real_is_a_finite_float_or_none(value: object, number: float | None) -> None:
    assert real(value) == number


def test_json_visible_escapes_what_json_leaves_raw() -> None:
    doc = {"k\u202e": "a\x7fb\x9bc\u2066d\x1be é ✓"}
    data = json_visible(msgspec.json.encode(doc))
    assert data == b'{"k\\u202e":"a\\u007fb\\u009bc\\u2066d\\u001be \xc3\xa9 \xe2\x9c\x93"}'
    assert json.loads(data) == doc

def test_one_number_and_rate_format() -> None:
    from lazycelery.text import number, rate

    assert [number(v) for v in (0, 7, 1200, 999_999, 1_234_567, 12_345_678)] == \
        ["0", "7", "1,200", "999,999", "1.23M", "12.3M"]
    assert number(None) == "–" and number(None, missing="-") == "-"
    assert [rate(v) for v in (0.0, 0.04, -0.04, 1.25, 1234.5)] == ["0", "0", "0", "1.2", "1,234.5"]
    assert [rate(v, signed=True) for v in (-0.04, -0.049, 0.2, -3.0)] == ["0", "0", "+0.2", "-3.0"]


def test_the_cli_table_and_the_dashboard_show_a_queue_the_same_way() -> None:
    from lazycelery.broker.model import QueueSnapshot, QueueStats
    from lazycelery.broker.report import format_snapshot
    from lazycelery.tui.panes.queues import queue_columns

    stats = QueueStats(name="reports", ready=1200, reserved=1500, consumers=0, net_rate=-0.04,
                       in_rate=1234.5, out_rate=0.0)
    row = format_snapshot(QueueSnapshot(taken_at=1.0, queues=(stats,), source="s"),
                          "b").splitlines()[1].split()
    assert row[:7] == ["reports", "1,200", "1,500", "0", "1,234.5", "0", "0"]

    class History:
        def series(self, name: str) -> list[int]:
            return []

    class D:
        queue_history = History()
        queue_wait_stats = MappingProxyType({})

    cells = {c.title: c.cell(stats)[1] for c in queue_columns(D())}  # type: ignore[arg-type]
    assert (cells["READY"], cells["RESERVED"], cells["CONS"], cells["IN/S"], cells["OUT/S"],
            cells["Δ/S"]) == ("1,200", "1,500", "0", "1,234.5", "0", "0")
