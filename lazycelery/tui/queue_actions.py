"""Dashboard actions on a queue's messages: requeue its dead letters, move its waiting messages to
another queue. Counted first, confirmed (Cancel focused), refused read-only, audited
(``core.queue_ops``), run off the UI thread; the result says exactly what happened. Attached to
a serve (``--server``), the same dialogs forward the action to it (``RemoteActions.queue_bulk``),
which runs and audits it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from lazycelery.broker.bulk import BulkOutcome, Selection
from lazycelery.broker.model import PeekedMessage, QueueStats
from lazycelery.text import counted, number
from lazycelery.tui.panes.dialog import text_lines

if TYPE_CHECKING:
    from prompt_toolkit.formatted_text import StyleAndTextTuples

    from lazycelery.core.actions import Actions
    from lazycelery.core.actions_remote import RemoteActions
    from lazycelery.tui.operator import Operator

    #: local actions, or a serve's (the action is forwarded)
    QueueActor = Actions | RemoteActions

__all__ = ["BulkOps", "QueueActions", "dead_letter_queue"]

#: the main name of the app lazycelery makes when none is given (``celery_app.bare_app``)
BARE_APP_NAME = "lazycelery"


class BulkOps(Protocol):
    """What these actions need from the broker inspector."""

    def stats(self, queue: str) -> QueueStats: ...
    def peek(self, queue: str, n: int = ...) -> list[PeekedMessage]: ...
    def delete(self, source: str, selection: Selection) -> BulkOutcome: ...
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

    def _ops(self, action: str) -> BulkOps | None:
        ops = self.op.queue_ops
        if getattr(ops, "forwarded", False):  # a remote dashboard's: counts only, acts on serve
            forwarded: BulkOps = ops  # type: ignore[assignment]  # stats(); the rest forwarded
            return forwarded
        if ops is None or not hasattr(ops, "requeue_dead"):
            why = self.op.screen.info.queues_unavailable or "queue introspection is not available"
            self.op.board.post(f"{action}: {why}", level="error")
            return None
        bulk: BulkOps = ops  # type: ignore[assignment]  # the inspector: checked just above
        return bulk

    def _actor(self, action: str, actions: Any) -> QueueActor | None:
        """Local ``Actions``, or a serve's that forwards the action; else says why not."""
        from lazycelery.core.actions import Actions

        if isinstance(actions, Actions) or hasattr(actions, "queue_bulk"):
            actor: QueueActor = actions
            return actor
        self.op.board.post(f"{action}: {self.op.unavailable}", level="error")
        return None

    def _ready(self, action: str) -> tuple[QueueActor, BulkOps, QueueStats] | None:
        queue = self.op.screen.queues.selected
        if queue is None:
            self.op.board.post(f"{action}: no queue selected", level="error")
            return None
        actions = self.op.ready(action)
        if actions is None:
            return None
        ops = self._ops(action)
        if ops is None:
            return None
        actor = self._actor(action, actions)
        if actor is None:
            return None
        return actor, ops, queue

    def _run(self, actions: QueueActor, ops: BulkOps, action: str, source: str,
             target: str | None, ids: list[str] | None) -> None:
        """Run the confirmed action: here through the broker inspector, audited by
        ``core.queue_ops``; or on serve, which audits it with this token's name."""
        from lazycelery.core.actions import Actions
        from lazycelery.core.queue_ops import bulk_action

        if not isinstance(actions, Actions):
            remote = actions
            self.op.execute(action, lambda: remote.queue_bulk(action, source, target, ids)[0],
                            after=self.op.on_purged)
            return
        local = actions
        selection = Selection.of(ids)

        def operation() -> BulkOutcome:
            if target is not None:
                return ops.move(source, target, selection)
            if action == "delete":
                return ops.delete(source, selection)
            return ops.requeue_dead(source, selection)

        targets = (source, target) if target is not None else (source,)
        self.op.execute(action, lambda: bulk_action(local, action, targets, operation)[0],
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

    def _confirm_requeue(self, actions: QueueActor, ops: BulkOps, dlq: str, origin: str,
                         stats: QueueStats) -> None:
        if stats.ready == 0:
            self.op.board.post(f"requeue-dead: {dlq} is empty: nothing to requeue", level="info")
            return
        count = ("An unknown number of dead letters" if stats.ready is None
                 else counted(stats.ready, "dead letter", short=True))
        go = "goes" if stats.ready == 1 else "go"
        lines: list[StyleAndTextTuples] = [[("class:dialog.headline",
                   f"{count} in {dlq!r} {go} back to the queue each was "
                   f"dead-lettered from ({origin!r}).")],
                 *text_lines("They join the back of that queue; the counts of what was "
                             "requeued and what was no longer there are shown after.")]
        self.op.confirm(f"Requeue dead letters of {origin}", lines, "Requeue",
                        lambda: self._run(actions, ops, "requeue-dead", dlq, None, None))

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

    def _confirm_move(self, actions: QueueActor, ops: BulkOps, source: str, target: str,
                      stats: QueueStats) -> None:
        if stats.ready == 0:
            self.op.board.post(f"move: queue {source} has no waiting messages", level="info")
            return
        count = "An unknown number of" if stats.ready is None else number(stats.ready)
        lines: list[StyleAndTextTuples] = [[("class:dialog.headline",
                   f"{count} waiting messages move from {source!r} to {target!r}.")]]
        self.op.confirm(f"Move messages of {source}", lines, "Move",
                        lambda: self._run(actions, ops, "move", source, target, None))

    # ---------------------------------------------------------------- peek and chosen messages

    def peek_selected(self) -> None:
        """Read the selected queue's next messages into the peek overlay (read-only: allowed
        in read-only mode; the actions in it are not)."""
        from lazycelery.core.queue_ops import mask_peeked
        from lazycelery.mask import Masker
        from lazycelery.tui.screen.peek import PEEK_COUNT

        queue = self.op.screen.queues.selected
        ops = self._ops("peek")
        if queue is None or ops is None:
            if queue is None:
                self.op.board.post("peek: no queue selected", level="error")
            return
        name, peek = queue.name, self.op.screen.peek
        if not getattr(ops, "can_peek", True):
            self._peek_from_events(name)
            return
        masker = peek.masker if peek.masker is not None else Masker()
        self.op.background(f"peek: reading the next messages of {name}…",
                           lambda: mask_peeked(ops.peek(name, PEEK_COUNT), masker),
                           lambda messages: self._show(name, messages))

    def _peek_from_events(self, name: str) -> None:
        """RabbitMQ: a message cannot be read without taking it (and handing it back marks it
        redelivered, may reorder the queue or count towards a quorum queue's delivery limit),
        so the rows are the tasks the events show waiting there; the actions then find those
        task ids in the queue as the CLI's --ids does."""
        from lazycelery.core.queue_ops import waiting_from_events
        from lazycelery.tui.screen.peek import PEEK_COUNT

        index = self.op.screen.index

        def found(messages: list[PeekedMessage]) -> None:
            if messages:
                self._show(name, messages, "waiting per the events (RabbitMQ cannot be peeked)")
            else:
                self.op.board.post(
                    f"peek: RabbitMQ cannot show a message without taking it, and the events "
                    f"show no task waiting in {name} (task-sent events: task_send_sent_event)",
                    level="error")

        self.op.background(f"peek: the tasks the events show waiting in {name}…",
                           lambda: waiting_from_events(index.records(), name, PEEK_COUNT), found)

    def _show(self, name: str, messages: list[PeekedMessage],
              source_note: str | None = None) -> None:
        self.op.screen.peek.show(name, messages, source_note)
        self.op.screen.ui.overlay = "peek"
        self.op.shell.invalidate()

    def close_peek(self) -> None:
        if self.op.screen.ui.overlay == "peek":
            self.op.screen.ui.overlay = None
            self.op.shell.invalidate()

    def _chosen(self, action: str) -> tuple[QueueActor, BulkOps, str, list[str]] | None:
        """The peek's queue and chosen ids, the overlay closed so the dialog can open."""
        peek = self.op.screen.peek
        ids = peek.selected_ids()
        if peek.queue is None or not ids:
            self.op.board.post(f"{action}: no message chosen", level="error")
            return None
        actions = self.op.ready(action)
        ops = self._ops(action) if actions is not None else None
        if actions is None or ops is None:
            return None
        actor = self._actor(action, actions)
        if actor is None:
            return None
        self.close_peek()
        return actor, ops, peek.queue, ids

    def _confirm_chosen(self, actions: QueueActor, ops: BulkOps, action: str, title: str,
                        headline: str, ids: list[str], label: str, source: str,
                        target: str | None = None) -> None:
        shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        lines: list[StyleAndTextTuples] = [[("class:dialog.headline", headline)],
                                           *text_lines(f"task ids: {shown}")]
        self.op.confirm(title, lines, label,
                        lambda: self._run(actions, ops, action, source, target, ids))

    def delete_chosen(self) -> None:
        chosen = self._chosen("delete")
        if chosen is None:
            return
        actions, ops, queue, ids = chosen
        n = f"{number(len(ids))} message{'' if len(ids) == 1 else 's'}"
        self._confirm_chosen(actions, ops, "delete", f"Delete from {queue}",
                             f"{n} will be deleted from {queue!r}: those tasks will never run.",
                             ids, f"Delete {len(ids)}", queue)

    def requeue_chosen(self) -> None:
        queue_stats = self.op.screen.queues.selected
        chosen = self._chosen("requeue-dead")
        if chosen is None:
            return
        actions, ops, queue, ids = chosen
        if queue_stats is not None and queue_stats.name == queue \
                and queue_stats.dead_letter_of is None:
            self.op.board.post(f"requeue-dead: {queue} is not a dead-letter queue",
                               level="error")
            return
        n = f"{number(len(ids))} message{'' if len(ids) == 1 else 's'}"
        self._confirm_chosen(actions, ops, "requeue-dead", f"Requeue from {queue}",
                             f"{n} go back to the queue each was dead-lettered from.",
                             ids, f"Requeue {len(ids)}", queue)

    def move_chosen(self) -> None:
        chosen = self._chosen("move")
        if chosen is None:
            return
        actions, ops, queue, ids = chosen
        n = f"{number(len(ids))} message{'' if len(ids) == 1 else 's'}"

        def parse(text: str) -> str:
            target = text.strip()
            if not target or target == queue:
                raise ValueError("type the name of another queue")
            return target

        self.op.ask(f"Move {n} of {queue}", text_lines("They join the back of the queue you "
                                                      "name; you confirm next."),
                    "to queue:", "", parse,
                    lambda target: self._confirm_chosen(
                        actions, ops, "move", f"Move from {queue}",
                        f"{n} move from {queue!r} to {target!r}.", ids, f"Move {len(ids)}",
                        queue, target))

    # ---------------------------------------------------------------- routes

    def routes(self) -> None:
        """Build the routing tree off the UI thread (bindings, a snapshot, the named workers'
        active_queues) and show it in the routes overlay."""
        ops = self._ops("routes")
        app = getattr(self.op.actions, "app", None)
        if ops is None:
            return
        inspector: Any = ops

        def build() -> list[str]:
            from lazycelery.broker.route_report import format_tree
            from lazycelery.broker.routing import build_tree
            from lazycelery.broker.workers import active_queue_replies

            bindings, types = inspector.bindings()
            snapshot = inspector.snapshot()
            replies = active_queue_replies(app, inspector) if app is not None else {}
            # lazycelery's own app (no -A) has no task_routes worth listing
            user_app = app if getattr(app, "main", None) != BARE_APP_NAME else None
            tree = build_tree(bindings, types, replies,
                              {q.name: q.ready for q in snapshot.queues}, user_app)
            return format_tree(tree, getattr(user_app, "main", None)).splitlines()

        self.op.background("routes: reading bindings and asking the workers…", build,
                           self._show_routes)

    def _show_routes(self, lines: list[str]) -> None:
        model = self.op.screen.routes
        model.lines = [[("", line)] for line in lines]
        model.top = 0
        self.op.screen.ui.overlay = "routes"
        self.op.shell.invalidate()

    def close_routes(self) -> None:
        if self.op.screen.ui.overlay == "routes":
            self.op.screen.ui.overlay = None
            self.op.shell.invalidate()
