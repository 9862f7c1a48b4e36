"""Table columns: a title, how to draw a cell from a row, and how the column sizes and drops out
on a narrow terminal. No prompt_toolkit here: pane modules declare their columns at import."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Cell", "Column"]

T = TypeVar("T")

#: (style, text) of one cell
Cell = tuple[str, str]


@dataclass(frozen=True)
class Column(Generic[T]):
    """``width``: fixed cells; 0 = flexible, sized from visible rows between ``min_width`` and
    ``max_width`` (then ``grow`` shares what is left). ``priority``: higher columns are dropped
    first when the terminal is narrow."""

    title: str
    cell: Callable[[T], Cell]
    width: int = 0
    min_width: int = 4
    max_width: int = 1000
    align: str = "left"
    grow: int = 0
    priority: int = 0
