"""The operator actions' commands: retry, revoke, terminate, purge, worker control, reconcile, and
the keys of their dialogs; bound by name, remappable in ``[keys]``. In read-only mode the keys
stay bound only to say why an action is refused."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Final

from lazycelery.tui.panes.dialog import CHOOSE, CONFIRM
from lazycelery.tui.queue_actions import QueueActions
from lazycelery.tui.registry import Command
from lazycelery.tui.task_actions import TaskActions
from lazycelery.tui.worker_actions import WorkerActions

if TYPE_CHECKING:
    from lazycelery.tui.operator import Operator
    from lazycelery.tui.screen.model import ScreenModel

__all__ = ["TASK_VIEWS", "operator_commands"]

TASK_VIEWS: Final = frozenset({"tasks", "detail"})
_DIALOG: Final = frozenset({"dialog"})
_GROUP: Final = "Actions"
_PEEK: Final = frozenset({"peek"})
_ROUTES: Final = frozenset({"routes"})


def _has_queue(s: ScreenModel) -> bool:
    return s.queues.selected is not None


def _has_worker(s: ScreenModel) -> bool:
    return s.workers.selected is not None


def _task_commands(op: Operator, tasks: TaskActions) -> list[Command]:
    def has_task(_s: ScreenModel) -> bool:
        return op.task() is not None

    return [
        Command("task.retry", "Retry the task: re-send it with its real args (dry run first)",
                lambda s: tasks.retry_selected(), keys=("r",), contexts=TASK_VIEWS,
                when=has_task, group=_GROUP, footer="retry"),
        Command("task.revoke", "Revoke the task (queued or ETA: it will not run)",
                lambda s: tasks.revoke_selected(), keys=("x",), contexts=TASK_VIEWS,
                when=has_task, group=_GROUP),
        Command("task.terminate", "Terminate the running task (choose the signal)",
                lambda s: tasks.terminate_selected(), keys=("X",), contexts=TASK_VIEWS,
                when=has_task, group=_GROUP),
        Command("task.reveal", "Reveal the masked values: the real args from the result "
                "backend, shown once, audited (asks first)",
                lambda s: tasks.reveal_selected(), keys=("V",), contexts=frozenset({"detail"}),
                when=has_task, group=_GROUP),
        Command("view.retry", "Retry all failed in view (dry run first)",
                lambda s: tasks.retry_in_view(), contexts=TASK_VIEWS, group=_GROUP),
        Command("view.revoke", "Revoke all unfinished in view",
                lambda s: tasks.revoke_in_view(), contexts=TASK_VIEWS, group=_GROUP),
        Command("queue.purge", "Purge the queue (shows the count first)",
                lambda s: tasks.purge_selected(), keys=("P",), contexts=frozenset({"queues"}),
                when=_has_queue, group=_GROUP, footer="purge"),
        Command("task.replay", "Replay the task: run it again (succeeded too) with the same "
                "args and routing, as its child (dry run first)",
                lambda s: tasks.replay_selected(), keys=("R",), contexts=TASK_VIEWS,
                when=has_task, group=_GROUP),
    ]


def _queue_commands(queues: QueueActions) -> list[Command]:
    on_queues = frozenset({"queues"})
    return [
        Command("queue.requeue-dead", "Requeue the queue's dead letters to where they came from "
                "(shows the count first)", lambda s: queues.requeue_dead_selected(),
                keys=("D",), contexts=on_queues, when=_has_queue, group=_GROUP),
        Command("queue.move", "Move the queue's waiting messages to another queue (asks which, "
                "then the count)", lambda s: queues.move_selected(), keys=("M",),
                contexts=on_queues, when=_has_queue, group=_GROUP),
        Command("peek.delete", "Delete the chosen messages (or the one under the cursor)",
                lambda s: queues.delete_chosen(), keys=("d",), contexts=_PEEK, group=_GROUP,
                footer="delete"),
        Command("peek.move", "Move the chosen messages to another queue",
                lambda s: queues.move_chosen(), keys=("m",), contexts=_PEEK, group=_GROUP,
                footer="move"),
        Command("peek.requeue", "Requeue the chosen dead letters to where they came from",
                lambda s: queues.requeue_chosen(), keys=("R",), contexts=_PEEK, group=_GROUP,
                footer="requeue"),
    ]


def _peek_commands(queues: QueueActions) -> list[Command]:
    """Reading and choosing messages, the routes: allowed in read-only mode (nothing
    changes)."""
    peek, routes = queues.op.screen.peek, queues.op.screen.routes
    return [
        Command("queue.peek", "Peek at the queue's next messages (choose some to delete, move "
                "or requeue)", lambda s: queues.peek_selected(), keys=("v",),
                contexts=frozenset({"queues"}), when=_has_queue, group=_GROUP, footer="peek"),
        Command("peek.down", "Next message", lambda s: peek.move(1), keys=("j", "down"),
                contexts=_PEEK, group=_GROUP, palette=False),
        Command("peek.up", "Previous message", lambda s: peek.move(-1), keys=("k", "up"),
                contexts=_PEEK, group=_GROUP, palette=False),
        Command("peek.choose", "Choose the message (or not)", lambda s: peek.toggle(),
                keys=("space",), contexts=_PEEK, group=_GROUP, footer="choose", palette=False),
        Command("peek.all", "Choose all (or none)", lambda s: peek.toggle_all(), keys=("a",),
                contexts=_PEEK, group=_GROUP, palette=False),
        Command("peek.close", "Close the peek", lambda s: queues.close_peek(),
                keys=("escape",), contexts=_PEEK, group=_GROUP, footer="close", palette=False),
        Command("queue.routes", "Routes: exchanges -> bindings -> queues, their consumers and "
                "the app's task_routes", lambda s: queues.routes(), keys=("t",),
                contexts=frozenset({"queues"}), group=_GROUP, footer="routes"),
        Command("routes.down", "Scroll down", lambda s: routes.scroll(1), keys=("j", "down"),
                contexts=_ROUTES, group=_GROUP, palette=False),
        Command("routes.up", "Scroll up", lambda s: routes.scroll(-1), keys=("k", "up"),
                contexts=_ROUTES, group=_GROUP, palette=False),
        Command("routes.close", "Close the routes", lambda s: queues.close_routes(),
                keys=("escape",), contexts=_ROUTES, group=_GROUP, footer="close",
                palette=False),
    ]


def _worker_commands(workers: WorkerActions) -> list[Command]:
    on_workers = frozenset({"workers"})

    def command(name: str, title: str, run: Callable[[], None]) -> Command:
        return Command(name, title, lambda s: run(), contexts=on_workers, when=_has_worker,
                       group=_GROUP)

    return [
        command("worker.shutdown", "Shut down the worker (warm)", workers.shutdown),
        command("worker.pool-restart", "Restart the worker's pool processes",
                workers.pool_restart),
        command("worker.pool-grow", "Grow the worker's pool by N processes",
                lambda: workers.pool_resize(True)),
        command("worker.pool-shrink", "Shrink the worker's pool by N processes",
                lambda: workers.pool_resize(False)),
        command("worker.autoscale", "Set the worker's autoscale range (max, min)",
                workers.autoscale),
        command("worker.add-consumer", "Worker: start consuming from a queue",
                lambda: workers.consumer(True)),
        command("worker.cancel-consumer", "Worker: stop consuming from a queue",
                lambda: workers.consumer(False)),
        command("worker.rate-limit", "Worker: set a task type's rate limit", workers.rate_limit),
        command("worker.time-limit", "Worker: set a task type's soft / hard time limits",
                workers.time_limit),
        Command("worker.restart", "Restart the worker with the configured restart command",
                lambda s: workers.restart(), contexts=frozenset({"workers", "worker", "charts"}),
                when=_has_worker, group=_GROUP),
    ]


def _dialog_commands(op: Operator) -> list[Command]:
    def dialog_is(kind: str) -> Callable[[ScreenModel], bool]:
        return lambda s: op.dialog is not None and op.dialog.kind == kind

    group = "Dialog"
    return [
        Command("dialog.accept", "Press the focused button / choose / next",
                lambda s: op.accept(), keys=("enter",), contexts=_DIALOG, group=group,
                footer="ok", palette=False),
        Command("dialog.cancel", "Cancel: close the dialog, nothing is sent",
                lambda s: op.cancel(), keys=("escape", "c-c"), contexts=_DIALOG, group=group,
                footer="cancel", palette=False),
        Command("dialog.next", "Next button", lambda s: op.move_focus(1), keys=("tab",),
                contexts=_DIALOG, when=dialog_is(CONFIRM), group=group, footer="button",
                palette=False),
        Command("dialog.prev", "Previous button", lambda s: op.move_focus(-1), keys=("s-tab",),
                contexts=_DIALOG, when=dialog_is(CONFIRM), group=group, palette=False),
        Command("dialog.down", "Next choice", lambda s: op.move_choice(1), keys=("down", "j"),
                contexts=_DIALOG, when=dialog_is(CHOOSE), group=group, footer="choose",
                palette=False),
        Command("dialog.up", "Previous choice", lambda s: op.move_choice(-1), keys=("up", "k"),
                contexts=_DIALOG, when=dialog_is(CHOOSE), group=group, palette=False),
    ]


def _reading_commands(op: Operator, tasks: TaskActions) -> list[Command]:
    """Task commands that change nothing in the cluster: kept in read-only mode."""
    def has_task(_s: ScreenModel) -> bool:
        return op.task() is not None

    return [
        Command("task.workflow", "Workflow links: read groups and chords of the task's "
                "workflow from the result backend (detail's Family section)",
                lambda s: tasks.workflow_links(), keys=("W",), contexts=TASK_VIEWS,
                when=has_task, group=_GROUP),
        Command("view.export", "Export the filtered list to a CSV file (named in the message)",
                lambda s: tasks.export_view(), keys=("O",), contexts=TASK_VIEWS, group=_GROUP),
    ]


def operator_commands(op: Operator, panes: frozenset[str], *,
                      read_only: bool = False) -> list[Command]:
    """The commands of ``op``'s actions (``panes``: the built-in panes, where reconcile and the
    last message work)."""
    tasks = TaskActions(op)
    queues = QueueActions(op)
    mutating = [*_task_commands(op, tasks), *_worker_commands(WorkerActions(op)),
                *_queue_commands(queues)]
    if read_only:
        # out of the footer, help and palette; a key still pressed says why it is refused
        mutating = [replace(c, hidden=True, palette=False, footer=None, when=None)
                    for c in mutating]
    return [
        *mutating,
        *_peek_commands(queues),
        Command("reconcile", "Reconcile now: check unfinished tasks against the result backend "
                "and the workers", lambda s: op.reconcile_now(), contexts=panes, group=_GROUP),
        Command("messages.last", "Show the last action result again",
                lambda s: op.show_last(), contexts=panes, group=_GROUP),
        *_dialog_commands(op),
        *_reading_commands(op, tasks),
    ]
