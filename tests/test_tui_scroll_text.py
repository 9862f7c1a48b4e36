"""The shared scrolling-text control: the window follows the state's ``top``, clamped so that
the last page is full, between renders as well as at a render."""

from __future__ import annotations

from prompt_toolkit.formatted_text import StyleAndTextTuples

from lazycelery.tui.scroll_text import ScrollTextControl, clamp_top


class _State:
    top = 0


def _lines(n: int) -> list[StyleAndTextTuples]:
    return [[("", f"line {i}")] for i in range(n)]


def _shown(control: ScrollTextControl, height: int) -> list[str]:
    content = control.create_content(40, height)
    return ["".join(t for _, t, *_ in content.get_line(i)) for i in range(content.line_count)]


def test_clamp_top() -> None:
    assert clamp_top(-3, 20, 5) == 0
    assert clamp_top(7, 20, 5) == 7
    assert clamp_top(40, 20, 5) == 15
    assert clamp_top(4, 3, 5) == 0  # fewer lines than the page


def test_scrolls_within_the_lines() -> None:
    state = _State()
    control = ScrollTextControl(lambda width: _lines(12), state)
    assert _shown(control, 5) == [f"line {i}" for i in range(5)]
    control.scroll(3)
    assert state.top == 3 and _shown(control, 5)[0] == "line 3"
    control.scroll(100)  # clamped to the last full page
    assert state.top == 7 and _shown(control, 5)[-1] == "line 11"
    control.scroll(-100)
    assert state.top == 0


def test_a_render_clamps_a_top_set_elsewhere() -> None:
    state = _State()
    state.top = 50
    control = ScrollTextControl(lambda width: _lines(8), state)
    assert _shown(control, 5)[0] == "line 3" and state.top == 3


def test_no_lines_is_one_empty_line() -> None:
    control = ScrollTextControl(lambda width: [], _State())
    content = control.create_content(40, 5)
    assert content.line_count == 1 and content.get_line(0) == []
