"""The ``:`` command palette's model: fuzzy matching over command titles and names, the
candidates fixed when it opened, and which one is selected."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

__all__ = ["Named", "PaletteState", "fuzzy_match", "rank"]


class Named(Protocol):
    """What the palette ranks: a command's name and title."""

    @property
    def name(self) -> str: ...

    @property
    def title(self) -> str: ...


N = TypeVar("N", bound=Named)


def fuzzy_match(query: str, text: str) -> tuple[int, list[int]] | None:
    """Subsequence match (case-insensitive): (score, matched positions) or None.

    Scores favour consecutive letters and letters at word starts, as in editors' palettes.
    """
    if not query:
        return 0, []
    q, t = query.lower(), text.lower()
    positions: list[int] = []
    score, i, prev = 0, 0, -2
    for ch in q:
        if ch == " ":
            continue
        i = t.find(ch, i)
        if i < 0:
            return None
        bonus = 1
        if i == prev + 1:
            bonus += 5
        if i == 0 or not t[i - 1].isalnum():
            bonus += 8
        score += bonus - min(3, i - prev - 1 if prev >= 0 else i)
        positions.append(i)
        prev = i
        i += 1
    return score, positions


def rank(query: str, commands: list[N]) -> list[tuple[N, list[int]]]:
    """Commands matching ``query`` best first (by title, else by name)."""
    scored: list[tuple[int, int, N, list[int]]] = []
    for order, command in enumerate(commands):
        by_title = fuzzy_match(query, command.title)
        by_name = fuzzy_match(query, command.name)
        best = by_title
        if by_name is not None and (best is None or by_name[0] > best[0]):
            best = (by_name[0], [])  # the title is shown: don't underline name positions
        if best is not None:
            scored.append((-best[0], order, command, best[1]))
    scored.sort(key=lambda s: (s[0], s[1]))
    return [(c, pos) for _, _, c, pos in scored]


@dataclass
class PaletteState(Generic[N]):
    """Candidates fixed when the palette opened (commands enabled in that pane)."""

    candidates: list[N]
    selected: int = 0

    def results(self, query: str) -> list[tuple[N, list[int]]]:
        return rank(query, self.candidates)
