"""Small in-memory lists with a selection kept by key (the workers and queues panes)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["ListModel"]

T = TypeVar("T")


class ListModel(Generic[T]):
    """A small in-memory list with a selection kept by key (workers, queues)."""

    def __init__(self, key: Callable[[T], object]) -> None:
        self._key = key
        self.items: list[T] = []
        self.selected_key: object = None

    def set_items(self, items: Sequence[T]) -> None:
        self.items = list(items)
        if self.items and self.selected_index() < 0:
            self.selected_key = self._key(self.items[0])

    def __len__(self) -> int:
        return len(self.items)

    def rows(self, start: int, stop: int) -> Sequence[T]:
        return self.items[max(0, start):stop]

    def selected_index(self) -> int:
        for i, item in enumerate(self.items):
            if self._key(item) == self.selected_key:
                return i
        return -1

    @property
    def selected(self) -> T | None:
        i = self.selected_index()
        return self.items[i] if i >= 0 else None

    def select_index(self, i: int) -> None:
        if self.items:
            self.selected_key = self._key(self.items[max(0, min(i, len(self.items) - 1))])

    def move(self, delta: int) -> None:
        self.select_index(max(0, self.selected_index()) + delta)
