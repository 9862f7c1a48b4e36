"""The operator: what the dashboard's actions share (the action thread, the confirm dialogs, the
result messages, reconciliation).

Every action follows one path: the key or palette command resolves its target (the selected
task, queue or worker, or the tasks of the current filtered view), reads what it needs off the UI
thread (the retry dry run, where the tasks are, the queue's count), opens a dialog that names
exactly what will happen with Cancel focused, and only a confirmation sends anything, again off
the UI thread. The result (each worker's answer, who did not answer) is a transient message.
``lazycelery.core.actions`` guards read-only mode, scopes every control command with
``destination=[...]`` and writes the audit line; this module never talks to the cluster itself.
The actions live in ``task_actions`` (tasks, the filtered view, queues) and ``worker_actions``;
their commands in ``operator_commands``. The operator reads the screen model and asks the
application (the ``Shell``) for redraws, focus and background work; it has no Dashboard.

Threads: one action thread runs the blocking calls (``run_in_executor``), the continuation runs
on the UI thread. The reconciler reports from its own thread into an inbox drained before each
render, and pushes the records it corrected into the task feed, so they move between filtered
lists like records touched by events.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

from prompt_toolkit.buffer import Buffer
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout import Window

from lazycelery.core.actions import ActionResult, Placement, RetryBatch, RetryPlan
from lazycelery.core.model import TaskRecord
from lazycelery.errors import LazyCeleryError
from lazycelery.tui.format import clock_time, number, short_id
from lazycelery.tui.panes.dialog import (
    CANCEL,
    CHOOSE,
    CONFIRM,
    INPUT,
    Dialog,
    counted,
    limited,
)
from lazycelery.tui.panes.messages import MessageBoard, styled_lines
from lazycelery.tui.screen.shell import Shell

if TYPE_CHECKING:
    from lazycelery.broker.model import QueueStats
    from lazycelery.core.reconcile import ReconcileReport
    from lazycelery.core.workflow_remote import WorkflowLinks
    from lazycelery.tui.screen.model import ScreenModel

__all__ = ["ON_DEMAND", "ActionsLike", "Operator", "QueueOps", "ReconcilerLike"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: trigger name of a reconciliation asked for from the palette (its report is shown by the caller)
ON_DEMAND: Final = "on demand"
_READ_ONLY: Final = "refused: read-only mode (--read-only or read_only = true in the config)"


class ActionsLike(Protocol):
    """What the dashboard needs from ``lazycelery.core.actions.Actions`` (a fake in unit tests)."""

    def plan_retries(self, targets: Iterable[str | TaskRecord]) -> RetryBatch: ...
    def retry(self, batch: RetryBatch | RetryPlan) -> ActionResult: ...
    def locate(self, task_ids: Sequence[str]) -> Placement: ...
    def revoke(self, task_ids: Sequence[str], *, terminate: bool = ..., signal: str | int = ...,
               placement: Placement | None = ...) -> ActionResult: ...
    def purge(self, queue: str, purge: Callable[[str], int | tuple[int, Sequence[str] | None]],
              *, expected: int | None = ...) -> ActionResult: ...
    def shutdown(self, workers: Sequence[str]) -> ActionResult: ...
    def pool_restart(self, workers: Sequence[str], *, modules: Sequence[str] | None = ...,
                     reload: bool = ...) -> ActionResult: ...
    def pool_grow(self, workers: Sequence[str], n: int = ...) -> ActionResult: ...
    def pool_shrink(self, workers: Sequence[str], n: int = ...) -> ActionResult: ...
    def autoscale(self, workers: Sequence[str], max: int, min: int) -> ActionResult: ...
    def add_consumer(self, workers: Sequence[str], queue: str, *, exchange: str | None = ...,
                     exchange_type: str = ..., routing_key: str | None = ...) -> ActionResult: ...
    def cancel_consumer(self, workers: Sequence[str], queue: str) -> ActionResult: ...
    def rate_limit(self, workers: Sequence[str], task_name: str, rate: str) -> ActionResult: ...
    def time_limit(self, workers: Sequence[str], task_name: str, *, soft: float | None = ...,
                   hard: float | None = ...) -> ActionResult: ...
    def restart(self, worker: str, template: str | None,
                timeout: float | None = ...) -> ActionResult: ...


class QueueOps(Protocol):
    """The broker inspector's part a purge needs: a fresh count, and the purge itself (with
    the ids of the purged tasks when the broker can tell)."""

    def stats(self, queue: str) -> QueueStats: ...
    def purge_tasks(self, queue: str) -> tuple[int, list[str] | None]: ...


class ReconcilerLike(Protocol):
    def run(self, *, trigger: str = ...) -> ReconcileReport: ...
    def on_ingest_status(self, status: Any) -> None: ...
    def start(self) -> None: ...
    def stop(self, timeout: float = ...) -> None: ...


class Operator:
    """The dashboard's operator actions: targets, dialogs, the action thread and messages."""

    def __init__(self, screen: ScreenModel, shell: Shell) -> None:
        self.screen = screen
        self.shell = shell
        self.actions: ActionsLike | None = None
        self.queue_ops: QueueOps | None = None
        self.reconciler: ReconcilerLike | None = None
        #: called after a purge (the queue monitor's ``wake``: the new depth shows at once)
        self.on_purged: Callable[[], None] | None = None
        #: why there are no actions (shown when one is asked for)
        self.unavailable = "actions are not connected to a cluster"
        #: why a read-only dashboard refuses (a remote viewer token's says so)
        self.read_only_reason = _READ_ONLY
        #: the environment's worker restart command (docs/fleet.md); None: none configured
        self.restart_command: str | None = None
        #: the workflow links of a task read by a serve (``--server``: only serve reads the
        #: result backend), for any token role; None: read from the actions' own app
        self.read_links: Callable[[str], WorkflowLinks] | None = None
        self.board = MessageBoard()
        self.dialog: Dialog | None = None
        self.pending: deque[Dialog] = deque()
        self.buffer = Buffer(multiline=False, on_text_changed=self._typed)
        #: the dialog's input line (set by the layout; focused while a dialog asks for text)
        self.input_window: Window | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._inbox: deque[ReconcileReport] = deque()
        self._serial = 0

    # ---------------------------------------------------------------- wiring

    def attach(self, actions: ActionsLike | None = None, *, queue_ops: QueueOps | None = None,
               reconciler: ReconcilerLike | None = None,
               on_purged: Callable[[], None] | None = None) -> None:
        if actions is not None:
            self.actions = actions
        if queue_ops is not None:
            self.queue_ops = queue_ops
        if reconciler is not None:
            self.reconciler = reconciler
        if on_purged is not None:
            self.on_purged = on_purged

    @property
    def read_only(self) -> bool:
        return self.screen.info.read_only or bool(getattr(self.actions, "read_only", False))

    def start(self) -> None:
        if self.reconciler is not None:
            self.reconciler.start()

    def stop(self) -> None:
        if self.reconciler is not None:
            self.reconciler.stop(2.0)
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            # an action already sent finishes (and is audited); queued ones are dropped
            executor.shutdown(wait=False, cancel_futures=True)

    def on_ingest_status(self, status: Any) -> None:
        """Ingest thread: a reconnect after a gap makes the reconciler check what it hid."""
        if self.reconciler is not None:
            self.reconciler.on_ingest_status(status)

    def on_reconcile_report(self, report: ReconcileReport) -> None:
        """Reconciler (or action) thread: hand the corrected records to the task list, the
        report to the UI thread, and ask for a redraw."""
        index = self.screen.index
        records = [rec for c in (*report.corrected, *report.unknown)
                   if (rec := index.get(c.uuid)) is not None]
        if records:
            # the same path as records touched by events: filtered lists gain or lose them
            self.screen.feed.push((), records)
        if report.trigger != ON_DEMAND:
            self._inbox.append(report)
        self.shell.invalidate()

    def pull(self) -> None:
        """UI thread, before each render: show reconciliation news, open a waiting dialog."""
        while self._inbox:
            self._show_reconcile(self._inbox.popleft(), quiet=True)
        self._open_pending()

    # ---------------------------------------------------------------- running off the UI thread

    def _pool(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                # one thread: actions run in the order they were confirmed
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="lazycelery-action")
            return self._executor

    def background(self, label: str, work: Callable[[], T], then: Callable[[T], None]) -> None:
        """Run ``work`` on the action thread, then ``then(result)`` on the UI thread; ``label``
        shows meanwhile. Without a running application (scripts) it runs inline."""
        self._serial += 1
        key = f"job-{self._serial}"
        self.board.post(label, level="working", key=key)
        if self.shell.running:
            self.shell.spawn(self._run(key, work, then))
        else:
            try:
                value = work()
            except Exception as exc:
                self._failed(key, exc)
            else:
                self._finish(key, then, value)
        self.shell.invalidate()

    async def _run(self, key: str, work: Callable[[], T], then: Callable[[T], None]) -> None:
        loop = asyncio.get_running_loop()
        try:
            value = await loop.run_in_executor(self._pool(), work)
        except Exception as exc:
            self._failed(key, exc)
        else:
            self._finish(key, then, value)
        self.shell.invalidate()

    def _finish(self, key: str, then: Callable[[T], None], value: T) -> None:
        self.board.remove(key)
        try:
            then(value)
        except Exception as exc:
            self._failed(key, exc)

    def _failed(self, key: str, exc: BaseException) -> None:
        self.board.remove(key)
        if isinstance(exc, LazyCeleryError):
            self.board.post(str(exc), level="error")
            return
        log.error("action failed", exc_info=exc)
        self.board.post(f"failed: {type(exc).__name__}: {exc}", level="error")

    def execute(self, action: str, work: Callable[[], ActionResult],
                after: Callable[[], None] | None = None) -> None:
        """Send a confirmed action; its result becomes a message."""
        def show(result: ActionResult) -> None:
            if result.marked:  # PURGED / REVOKED in the index: filtered lists follow
                index = self.screen.index
                self.screen.feed.push((), [rec for uuid in result.marked
                                           if (rec := index.get(uuid)) is not None])
            lines = result.lines()
            self.board.post(lines[0], styled_lines(lines[1:]),
                            level="ok" if result.ok else "error")
            if after is not None:
                after()

        self.background(f"{action}: sending…", work, show)

    # ---------------------------------------------------------------- dialogs

    def open(self, dialog: Dialog) -> None:
        """Show ``dialog`` now, or when the current one (or a prompt, or help) closes."""
        self.pending.append(dialog)
        self._open_pending()

    def _open_pending(self) -> None:
        ui = self.screen.ui
        if self.dialog is not None or not self.pending or ui.filter_editing or \
                ui.overlay is not None:
            return
        dialog = self.pending.popleft()
        self.dialog = dialog
        ui.overlay = "dialog"
        self.buffer.set_document(Document(dialog.default, len(dialog.default)),
                                 bypass_readonly=True)
        dialog.error = None
        self.focus()
        self.shell.invalidate()

    def focus(self) -> None:
        """Give the keyboard to the dialog's input line when it has one; otherwise the pane
        keeps the focus (the dialog's keys are bound to the ``dialog`` context)."""
        self.shell.refocus()

    @property
    def wants_input(self) -> bool:
        """A dialog is shown and asks for text: its input line has the keyboard."""
        return self.dialog is not None and self.dialog.has_input

    def _close(self) -> None:
        self.dialog = None
        ui = self.screen.ui
        if ui.overlay == "dialog":
            ui.overlay = None
        self.shell.refocus()

    def cancel(self) -> None:
        """esc, or enter on Cancel: close the dialog; nothing is sent."""
        dialog = self.dialog
        if dialog is None:
            return
        self._close()
        self.board.post(f"{dialog.title}: cancelled, nothing was sent", level="info",
                        seconds=3.0)
        self._open_pending()

    def accept(self) -> None:
        """enter: press the focused button / take the choice / submit the input."""
        dialog = self.dialog
        if dialog is None:
            return
        text = self.buffer.text
        if dialog.kind == CHOOSE:
            value = dialog.options[dialog.selected] if dialog.options else ""
        elif dialog.kind == INPUT:
            error = dialog.validate(text) if dialog.validate is not None else None
            if error:
                dialog.error = error
                return
            value = text.strip()
        else:
            if dialog.focus == CANCEL:
                self.cancel()
                return
            if not dialog.confirm_enabled(text):
                dialog.error = f"type {dialog.require!r} exactly to confirm"
                return
            value = text.strip()
        self._close()
        try:
            dialog.on_confirm(value)
        except LazyCeleryError as exc:
            self.board.post(str(exc), level="error")
        self._open_pending()

    def move_focus(self, delta: int) -> None:
        if self.dialog is not None:
            self.dialog.move_focus(delta)

    def move_choice(self, delta: int) -> None:
        if self.dialog is not None:
            self.dialog.move_choice(delta)

    def _typed(self, _buffer: Buffer) -> None:
        if self.dialog is not None:
            self.dialog.error = None

    def confirm(self, title: str, lines: list[StyleAndTextTuples], label: str,
                run: Callable[[], None], *, require: str | None = None, hint: str = "",
                prompt: str = "") -> None:
        """A confirmation: ``lines`` say what will happen; Cancel is focused; ``run`` on the
        action button (with ``require``: once that text is typed). With an environment, the
        title names it: with several at once, which cluster is acted on must be in sight."""
        env = self.screen.info.env_name
        if env and self.screen.info.env_count > 1:
            title = f"{title} [environment {env}]"
        self.open(Dialog(title=title, lines=lines, kind=CONFIRM, confirm_label=label,
                         on_confirm=lambda _text: run(), require=require, hint=hint,
                         prompt=prompt))

    def ask(self, title: str, lines: list[StyleAndTextTuples], prompt: str, default: str,
            parse: Callable[[str], T], then: Callable[[T], None]) -> None:
        """A small input prompt; ``parse`` raises ValueError with what is wrong."""
        def validate(text: str) -> str | None:
            try:
                parse(text)
            except ValueError as exc:
                return str(exc)
            return None

        self.open(Dialog(title=title, lines=lines, kind=INPUT, prompt=prompt, default=default,
                         validate=validate, on_confirm=lambda text: then(parse(text))))

    # ---------------------------------------------------------------- targets

    def ready(self, action: str) -> ActionsLike | None:
        """The actions object, or None after saying why this action cannot run."""
        if self.read_only:
            self.board.post(f"{action}: {self.read_only_reason}", level="error")
            return None
        if self.actions is None:
            self.board.post(f"{action}: {self.unavailable}", level="error")
            return None
        return self.actions

    def task(self) -> TaskRecord | None:
        """The task the keys act on: the one shown in the detail, else the selected one."""
        if self.screen.ui.pane == "detail":
            return self.screen.detail_record()
        return self.screen.tasks.selected

    def worker(self) -> str | None:
        row = self.screen.workers.selected
        return row.hostname if row is not None else None

    # ---------------------------------------------------------------- reconciliation

    def reconcile_now(self) -> None:
        reconciler = self.reconciler
        if reconciler is None:
            self.board.post(f"reconcile: {self.unavailable}", level="error")
            return
        self.background("reconcile: checking unfinished tasks against the result backend and "
                        "the workers…", lambda: reconciler.run(trigger=ON_DEMAND),
                        self._show_reconcile)

    def _gap_seconds(self) -> float | None:
        gap = getattr(self.screen.ingest_status, "gap", None)
        seconds = getattr(gap, "seconds", None)
        return float(seconds) if isinstance(seconds, (int, float)) else None

    def _show_reconcile(self, report: ReconcileReport, quiet: bool = False) -> None:
        fixed, unknown = len(report.corrected), len(report.unknown)
        if quiet and not fixed and not unknown and not report.errors:
            return
        if not report.checked:
            self.board.post("reconcile: no unfinished task to check", level="info")
            return
        headline = f"reconciled {counted(fixed, 'task')}"
        gap = self._gap_seconds()
        details = [f"{number(report.checked)} checked"]
        if report.trigger == "reconnect" and gap is not None:
            headline += f" after a {gap:.1f} s gap"
        elif report.trigger != ON_DEMAND:
            details.insert(0, f"{report.trigger} check")
        if unknown:
            details.append(f"{unknown} unknown")
        if report.running:
            details.append(f"{report.running} still held by workers")
        headline += f" ({', '.join(details)})"
        lines = [f"  {short_id(c.uuid)}  {c.name or '?'}  {c.old_state} → {c.state}  "
                 f"({c.source})" for c in report.corrected]
        lines += [f"  {short_id(c.uuid)}  {c.name or '?'}  {c.state}  unknown since "
                  f"{clock_time(c.unknown_since)}" for c in report.unknown]
        lines += [f"  error  {e}" for e in report.errors]
        level = "error" if report.errors else "ok" if fixed or not unknown else "info"
        self.board.post(headline, styled_lines(limited(lines)), level=level)

    # ---------------------------------------------------------------- messages

    def show_last(self) -> None:
        if not self.board.history:
            self.board.post("no action result yet", level="info", seconds=3.0)
            return
        last = self.board.history[-1]
        self.board.post(last.headline, last.lines, level=last.level)
