"""Dashboard actions on a queue's messages: requeue its dead letters, move its waiting messages to
another queue. Counted first, confirmed (Cancel focused), refused read-only, audited
(``core.queue_ops``), run off the UI thread; the result says exactly what happened."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from lazycelery.broker.bulk import BulkOutcome, Selection
from lazycelery.broker.model import QueueStats
from lazycelery.text import number
from lazycelery.tui.panes.dialog import text_lines

if TYPE_CHECKING:
    from prompt_toolkit.formatted_text import StyleAndTextTuples

    from lazycelery.core.actions import Actions
    from lazycelery.tui.operator import Operator

__all__ = ["BulkOps", "QueueActions", "dead_letter_queue"]


class BulkOps(Protocol):
    """What these actions need from the broker inspector."""

    def stats(self, queue: str) -> QueueStats: ...
    def move(self, source: str, target: str, selection: Selection) -> BulkOutcome: ...
    def requeue_dead(self, source: str, selection: Selection) -> BulkOutcome: ...


def dead_letter_queue(queue: QueueStats) -> str | None:
    """The dead-letter queue to requeue from: the queue's own DLQ, or the queue itself when it
    is one."""
    if queue.dead_letter is not None:
        return queue.dead_letter
    return queue.name if queue.dead_letter_of is not None else None


class QueueActions:
    """``queue.requeue-dead`` and ``queue.move`` on the selected queue."""

    def __init__(self, op: Operator) -> None:
        self.op = op

    def _ready(self, action: str) -> tuple[Actions, BulkOps, QueueStats] | None:
        from lazycelery.core.actions import Actions

        queue = self.op.screen.queues.selected
        if queue is None:
            self.op.board.post(f"{action}: no queue selected", level="error")
            return None
        actions = self.op.ready(action)
        if actions is None:
            return None
        ops = self.op.queue_ops
        if not isinstance(actions, Actions) or ops is None or not hasattr(ops, "requeue_dead"):
            why = self.op.screen.info.queues_unavailable or "queue introspection is not available"
            self.op.board.post(f"{action}: {why}", level="error")
            return None
        bulk: BulkOps = ops  # type: ignore[assignment]  # the inspector: checked just above
        return actions, bulk, queue

    def _run(self, actions: Actions, action: str, targets: tuple[str, ...],
             operation: Callable[[], BulkOutcome]) -> None:
        from lazycelery.core.queue_ops import bulk_action

        self.op.execute(action, lambda: bulk_action(actions, action, targets, operation)[0],
                        after=self.op.on_purged)

    # ---------------------------------------------------------------- requeue dead letters

    def requeue_dead_selected(self) -> None:
        ready = self._ready("requeue-dead")
        if ready is None:
            return
        actions, ops, queue = ready
        dlq = dead_letter_queue(queue)
        if dlq is None:
            self.op.board.post(f"requeue-dead: queue {queue.name} has no dead-letter queue "
                               "(RabbitMQ: a dead-letter exchange; Redis: [queues] dead_letter "
                               "in the config)", level="error")
            return
        origin = queue.dead_letter_of or queue.name
        self.op.background(f"requeue-dead: counting the messages in {dlq}…",
                           lambda: ops.stats(dlq),
                           lambda stats: self._confirm_requeue(actions, ops, dlq, origin, stats))

    def _confirm_requeue(self, actions: Actions, ops: BulkOps, dlq: str, origin: str,
                         stats: QueueStats) -> None:
        if stats.ready == 0:
            self.op.board.post(f"requeue-dead: {dlq} is empty: nothing to requeue", level="info")
            return
        count = "An unknown number of" if stats.ready is None else number(stats.ready)
        lines: list[StyleAndTextTuples] = [[("class:dialog.headline",
                   f"{count} dead letters in {dlq!r} go back to the queue each was "
                   f"dead-lettered from ({origin!r}).")],
                 *text_lines("They join the back of that queue; the counts of what was "
                             "requeued and what was no longer there are shown after.")]
        self.op.confirm(f"Requeue dead letters of {origin}", lines, "Requeue",
                        lambda: self._run(actions, "requeue-dead", (dlq,),
                                          lambda: ops.requeue_dead(dlq, Selection.of(None))))

    # ---------------------------------------------------------------- move

    def move_selected(self) -> None:
        ready = self._ready("move")
        if ready is None:
            return
        actions, ops, queue = ready
        source = queue.name

        def parse(text: str) -> str:
            target = text.strip()
            if not target:
                raise ValueError("type the name of the queue to move them to")
            if target == source:
                raise ValueError("that is the same queue")
            return target

        self.op.ask(f"Move the waiting messages of {source}",
                    text_lines("Every waiting message (all priorities) moves to the back of "
                               "the queue you name; you confirm with the count next."),
                    "to queue:", "", parse,
                    lambda target: self.op.background(
                        f"move: counting the messages in {source}…", lambda: ops.stats(source),
                        lambda stats: self._confirm_move(actions, ops, source, target, stats)))

    def _confirm_move(self, actions: Actions, ops: BulkOps, source: str, target: str,
                      stats: QueueStats) -> None:
        if stats.ready == 0:
            self.op.board.post(f"move: queue {source} has no waiting messages", level="info")
            return
        count = "An unknown number of" if stats.ready is None else number(stats.ready)
        lines: list[StyleAndTextTuples] = [[("class:dialog.headline",
                   f"{count} waiting messages move from {source!r} to {target!r}.")]]
        self.op.confirm(f"Move messages of {source}", lines, "Move",
                        lambda: self._run(actions, "move", (source, target),
                                          lambda: ops.move(source, target, Selection.of(None))))
