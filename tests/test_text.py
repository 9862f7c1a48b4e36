"""Control characters from events and brokers are shown as escapes, never sent to the terminal."""

from __future__ import annotations

import pytest

from lazycelery.text import visible, visible_lines


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
