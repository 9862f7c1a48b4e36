"""The peek overlay's model: the next messages of one queue (never unpickled), a cursor and the
messages chosen for a bulk action (by task id)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lazycelery.broker.model import PeekedMessage

__all__ = ["PEEK_COUNT", "PeekModel"]

#: how many messages the overlay reads from the head of the queue
PEEK_COUNT = 200


class PeekModel:
    """Messages, cursor, chosen ids and scroll position; ``page_rows`` is set by the render."""

    def __init__(self) -> None:
        self.queue: str | None = None
        self.messages: list[PeekedMessage] = []
        self.cursor = 0
        self.chosen: set[str] = set()
        self.top = 0
        self.page_rows = 10
        #: masks the arguments shown (set to the configured rules by the dashboard's wiring;
        #: None: the default rules)
        self.masker: Any = None
        #: set when the rows are not read from the broker (RabbitMQ: the events' waiting tasks)
        self.source_note: str | None = None

    def show(self, queue: str, messages: Sequence[PeekedMessage],
             source_note: str | None = None) -> None:
        self.queue = queue
        self.messages = list(messages)
        self.source_note = source_note
        self.cursor = self.top = 0
        self.chosen = set()

    def move(self, delta: int) -> None:
        if not self.messages:
            return
        self.cursor = max(0, min(self.cursor + delta, len(self.messages) - 1))
        if self.cursor < self.top:
            self.top = self.cursor
        elif self.cursor >= self.top + self.page_rows:
            self.top = self.cursor - self.page_rows + 1

    @property
    def current(self) -> PeekedMessage | None:
        return self.messages[self.cursor] if self.messages else None

    def toggle(self) -> None:
        """Choose the message under the cursor (or un-choose it), then move down."""
        message = self.current
        if message is None or message.id is None:
            return
        self.chosen.symmetric_difference_update({message.id})
        self.move(1)

    def toggle_all(self) -> None:
        ids = {m.id for m in self.messages if m.id is not None}
        self.chosen = set() if ids <= self.chosen else ids

    def selected_ids(self) -> list[str]:
        """The chosen ids in queue order; none chosen: the one under the cursor."""
        if self.chosen:
            return [m.id for m in self.messages if m.id in self.chosen]
        message = self.current
        return [message.id] if message is not None and message.id is not None else []
