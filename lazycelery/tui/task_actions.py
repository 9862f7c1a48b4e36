"""Operator actions on tasks and queues: retry, revoke, terminate (one task or the view), purge."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec
from prompt_toolkit.formatted_text import StyleAndTextTuples

from lazycelery.core.actions import (
    RETRYABLE_STATES,
    TYPED_CONFIRM_THRESHOLD,
    Refusal,
    RetryBatch,
    RetryPlan,
    one_retry_per_job,
)
from lazycelery.core.export import row, write_to_file
from lazycelery.core.model import READY_STATES, STARTED, TaskRecord
from lazycelery.core.reveal import Revealed, reveal
from lazycelery.tui.format import number, short_id
from lazycelery.tui.panes.dialog import CHOOSE, SHOWN, Dialog, counted, limited, text_lines
from lazycelery.tui.panes.messages import styled_lines

if TYPE_CHECKING:
    from lazycelery.broker.model import QueueStats
    from lazycelery.core.actions import Placement
    from lazycelery.tui.operator import ActionsLike, Operator, QueueOps

__all__ = ["BULK_LIMIT", "SIGNALS", "TaskActions"]

#: the most tasks one bulk action from the dashboard takes (narrow the filter beyond that)
BULK_LIMIT: Final = 10_000
#: signals offered by terminate, with what each does to the pool process
SIGNALS: Final = (
    ("SIGTERM", "ask the process to stop (the task may clean up)"),
    ("SIGKILL", "kill the process at once (no cleanup)"),
    ("SIGINT", "interrupt (KeyboardInterrupt in the task)"),
    ("SIGQUIT", "quit and dump core"),
    ("SIGHUP", "hang up"),
    ("SIGUSR1", "user signal 1 (the task decides)"),
)


def _describe(rec: TaskRecord) -> str:
    return f"{rec.uuid}  {rec.name or '?'}  {rec.state}"


class TaskActions:
    """The selected task (or the one shown in the detail), the tasks of the filtered view, and
    the selected queue: each action reads first, asks in a dialog, then sends."""

    def __init__(self, op: Operator) -> None:
        self.op = op

    def _view(self, action: str) -> list[TaskRecord] | None:
        view = self.op.screen.tasks
        if view.busy:
            self.op.board.post(f"{action}: the list is still being filtered; try again when it "
                               "is done", level="error")
            return None
        return view.rows(0, len(view))

    # ---------------------------------------------------------------- retry

    def retry_selected(self) -> None:
        rec = self.op.task()
        if rec is None:
            self.op.board.post("retry: no task selected", level="error")
            return
        self._plan_retry([rec], f"retry: checking where the args of {short_id(rec.uuid)} "
                                "can come from…")

    def retry_in_view(self) -> None:
        records = self._view("retry")
        if records is None:
            return
        targets = [r for r in records if r.state in RETRYABLE_STATES]
        if not targets:
            self.op.board.post("retry: no FAILURE, REVOKED or REJECTED task in view", level="info")
            return
        if len(targets) > BULK_LIMIT:
            self.op.board.post(f"retry: {number(len(targets))} tasks in view; at most "
                               f"{number(BULK_LIMIT)} at once: narrow the filter", level="error")
            return
        self._plan_retry(targets, f"retry: dry run for {counted(len(targets), 'task')}…")

    def _plan_retry(self, records: list[TaskRecord], label: str) -> None:
        actions = self.op.ready("retry")
        if actions is None:
            return
        index = self.op.screen.index

        def plan() -> RetryBatch:
            with index.lock:  # the ingest thread updates records in place: plan from copies
                copies = [msgspec.structs.replace(r) for r in records]
            # one retry per job: never an earlier failure of a job retried in the same batch,
            # nor one whose retry is queued, running or succeeded
            kept, skipped = one_retry_per_job(copies, index)
            batch = actions.plan_retries(kept) if kept else RetryBatch(plans=(), refusals=())
            return RetryBatch(plans=batch.plans, refusals=(*batch.refusals, *skipped))

        self.op.background(label, plan, lambda batch: self._confirm_retry(actions, batch))

    def _confirm_retry(self, actions: ActionsLike, batch: RetryBatch) -> None:
        refusals = limited([f"  refuse  {r.uuid}  {r.reason}" for r in batch.refusals])
        if not batch.plans:
            self.op.board.post(f"{batch.summary()}: nothing to retry", styled_lines(refusals),
                               level="error")
            return
        plans = limited([f"  retry   {p.uuid}  {p.describe()}" for p in batch.plans])
        notes = limited(sorted({f"  note: {note}" for p in batch.plans for note in p.notes}), 4)
        lines: list[StyleAndTextTuples] = [
            [("class:dialog.headline", batch.summary())],
            *styled_lines(plans), *text_lines(*notes, style="class:dialog.hint"),
            *styled_lines(refusals),
            *text_lines("Each is re-sent with its real args under a new id, as a child of the "
                        "failed run; the original record stays as it is.")]
        n = len(batch.plans)
        self.op.confirm(f"Retry {counted(n, 'task')}", lines, f"Retry {n}",
                        lambda: self.op.execute("retry", lambda: actions.retry(batch)))

    # ---------------------------------------------------------------- reveal

    def reveal_selected(self) -> None:
        """Show the real args of the task in the detail (masked at ingest): asks first, reads
        them from the result backend now, audits, and shows them in a dialog only."""
        rec = self.op.task()
        if rec is None:
            self.op.board.post("reveal: no task selected", level="error")
            return
        actions = self.op.ready("reveal")
        if actions is None:
            return
        app = getattr(actions, "app", None)
        forwarded = getattr(actions, "reveal", None)  # a serve's (--server): it reads them
        if app is None and forwarded is None:
            self.op.board.post(f"reveal: {self.op.unavailable}", level="error")
            return
        uuid = rec.uuid

        def fetch() -> Revealed:
            if app is None:
                assert forwarded is not None
                revealed: Revealed = forwarded(uuid)
                return revealed
            return reveal(app, uuid, read_only=self.op.read_only,
                          environment=getattr(actions, "environment", None),
                          audit_path=getattr(actions, "audit_path", None),
                          audit_sink=getattr(actions, "audit_sink", None))

        where = ("the result backend now" if app is not None else
                 f"serve's result backend now ({getattr(actions, 'label', 'the server')})")
        lines: list[StyleAndTextTuples] = [
            [("class:dialog.headline", _describe(rec))],
            *text_lines(f"The real args, kwargs and result are read from {where} and shown in "
                        "a dialog only, never stored; the reveal is written to the audit "
                        "log.")]
        self.op.confirm(f"Reveal the masked values of {short_id(uuid)}", lines, "Reveal",
                        lambda: self.op.background(f"reveal: reading {short_id(uuid)}…", fetch,
                                                   self._show_revealed))

    def _show_revealed(self, revealed: Revealed) -> None:
        note = [f"audit log not written: {revealed.audit_error}"] if revealed.audit_error else []
        if not revealed.fields:
            self.op.board.post(f"reveal: {revealed.reason}", styled_lines(note), level="error")
            return
        body = [line for name, text in revealed.fields.items()
                for line in (f"{name}:", f"  {text}")]
        self.op.open(Dialog(title=f"Real values of {short_id(revealed.uuid)}",
                            lines=[*text_lines(*body), *text_lines(*note)],
                            confirm_label="Close", on_confirm=lambda _text: None))
        self.op.board.post(f"reveal: {short_id(revealed.uuid)} revealed (audited)", level="ok")

    # ---------------------------------------------------------------- replay

    def replay_selected(self) -> None:
        """Run the task again (succeeded too): dry run on the action thread, then a dialog
        (default Cancel), then the send; refused read-only, audited."""
        rec = self.op.task()
        if rec is None:
            self.op.board.post("replay: no task selected", level="error")
            return
        actions = self.op.ready("replay")
        if actions is None:
            return
        plan_replay = getattr(actions, "plan_replay", None)
        send = getattr(actions, "replay", None)
        if plan_replay is None or send is None:
            self.op.board.post("replay: not available with these actions", level="error")
            return
        with self.op.screen.index.lock:  # updated in place by the ingest thread
            copy = msgspec.structs.replace(rec)

        def then(plan: RetryPlan | Refusal) -> None:
            if isinstance(plan, Refusal):
                self.op.board.post(f"replay: refused: {plan.reason}", level="error")
                return
            route = plan.queue or plan.routing_key or "default routing"
            lines: list[StyleAndTextTuples] = [
                [("class:dialog.headline", f"{plan.uuid}  {plan.describe()}")],
                *text_lines(f"routing: queue {plan.queue or '-'}, exchange "
                            f"{plan.exchange or '-'}, routing key {plan.routing_key or '-'}",
                            *(f"note: {n}" for n in plan.notes), style="class:dialog.hint"),
                *text_lines(f"Sent under a new id to {route}, as a child of this task; the "
                            "replay is written to the audit log.")]
            self.op.confirm(f"Replay {short_id(plan.uuid)}", lines, "Replay",
                            lambda: self.op.execute("replay", lambda: send(plan)))

        self.op.background(f"replay: checking where the args of {short_id(rec.uuid)} can "
                           "come from…", lambda: plan_replay(copy), then)

    # ---------------------------------------------------------------- workflow links

    def workflow_links(self) -> None:
        """Read the shown task's workflow from the result backend (group ids, a chord's
        header): the detail's Family section then shows groups and chords. Reads only; with
        ``--server`` serve reads its backend (``op.read_links``)."""
        rec = self.op.task()
        if rec is None:
            self.op.board.post("workflow: no task selected", level="error")
            return
        index, uuid = self.op.screen.index, rec.uuid
        read_links = self.op.read_links
        if read_links is not None:
            def remote() -> tuple[dict[str, Mapping[str, Any]], int, str | None]:
                links = read_links(uuid)
                return links.metas, links.count, links.note

            self.op.background(f"workflow: asking serve for the links of {short_id(uuid)}…",
                               remote, self._show_links)
            return
        app = getattr(self.op.actions, "app", None)
        if app is None:
            self.op.board.post(f"workflow: {self.op.unavailable}", level="error")
            return

        def fetch() -> tuple[dict[str, Mapping[str, Any]], int, str | None]:
            from lazycelery.core.reconcile import NoResultBackend, fetch_metas, result_backend
            from lazycelery.core.workflow_fetch import gather

            try:
                result_backend(app)
            except NoResultBackend as exc:
                return {}, 0, str(exc)
            metas: dict[str, Mapping[str, Any]] = {}

            def read(ids: Sequence[str]) -> Mapping[str, Mapping[str, Any]]:
                got = fetch_metas(app, ids)
                metas.update(got)
                return got

            wf = gather(uuid, get=index.get, children_of=index.children_of,
                        records=index.records, fetch=read)
            return metas, len(wf.ids), wf.note

        self.op.background(f"workflow: reading the links of {short_id(uuid)}…", fetch,
                           self._show_links)

    def _show_links(self, found: tuple[dict[str, Mapping[str, Any]], int, str | None]) -> None:
        metas, n, note = found
        if note:
            self.op.board.post(f"workflow: {note}", level="error")
            return
        self.op.screen.detail.links = metas
        self.op.board.post(f"workflow: {n} task{'' if n == 1 else 's'} linked "
                           "(groups and chords from the result backend)", level="ok")

    # ---------------------------------------------------------------- export

    def export_view(self) -> None:
        """Write the filtered list to a file in the current directory, named in the message
        (CSV; masked values stay masked)."""
        records = self._view("export")
        if records is None:
            return
        path = Path(f"lazycelery-export-{time.strftime('%Y%m%d-%H%M%S')}.csv").resolve()
        lock = self.op.screen.index.lock

        def write() -> int:
            # off the UI thread; the ingest thread updates records in place, so each chunk is
            # read under the lock (held briefly: the writer never waits long)
            rows: list[dict[str, Any]] = []
            for start in range(0, len(records), 10_000):
                with lock:
                    rows.extend(row(r) for r in records[start:start + 10_000])
            return write_to_file(rows, "csv", path)

        def then(n: int) -> None:
            self.op.board.post(f"export: {counted(n, 'task')} written to {path}", level="ok")

        self.op.background(f"export: writing {counted(len(records), 'task')}…", write, then)

    # ---------------------------------------------------------------- revoke / terminate

    def revoke_selected(self) -> None:
        rec = self.op.task()
        if rec is None:
            self.op.board.post("revoke: no task selected", level="error")
            return
        self._plan_revoke([rec], terminate=False, signal="SIGTERM")

    def revoke_in_view(self) -> None:
        records = self._view("revoke")
        if records is None:
            return
        targets = [r for r in records if r.state not in READY_STATES]
        if not targets:
            self.op.board.post("revoke: no unfinished task in view", level="info")
            return
        if len(targets) > BULK_LIMIT:
            self.op.board.post(f"revoke: {number(len(targets))} tasks in view; at most "
                               f"{number(BULK_LIMIT)} at once: narrow the filter", level="error")
            return
        self._plan_revoke(targets, terminate=False, signal="SIGTERM")

    def terminate_selected(self) -> None:
        rec = self.op.task()
        if rec is None:
            self.op.board.post("terminate: no task selected", level="error")
            return
        if self.op.ready("terminate") is None:
            return
        lines = text_lines(f"Terminate {_describe(rec)}.",
                           "Which signal goes to the pool process that runs it?")
        options = tuple(f"{name:<8} {what}" for name, what in SIGNALS)
        self.op.open(Dialog(title=f"Terminate task {short_id(rec.uuid)}", lines=lines,
                            kind=CHOOSE, options=options,
                            on_confirm=lambda option: self._plan_revoke(
                                [rec], terminate=True, signal=option.split()[0])))

    def _plan_revoke(self, records: list[TaskRecord], *, terminate: bool, signal: str) -> None:
        action = "terminate" if terminate else "revoke"
        actions = self.op.ready(action)
        if actions is None:
            return
        ids = [r.uuid for r in records]
        self.op.background(
            f"{action}: finding the workers that hold {counted(len(ids), 'task')}…",
            lambda: actions.locate(ids),
            lambda placement: self._confirm_revoke(actions, records, placement, terminate,
                                                   signal))

    def _confirm_revoke(self, actions: ActionsLike, records: list[TaskRecord],
                        placement: Placement, terminate: bool, signal: str) -> None:
        action = "terminate" if terminate else "revoke"
        sendable = [r for r in records if placement.destination(r.uuid)]
        skipped = [r for r in records if not placement.destination(r.uuid)]
        if not sendable:
            self.op.board.post(f"{action}: no online worker to tell (none seen online): "
                               "nothing to send", level="error")
            return
        what = f"with {signal}" if terminate else ""
        lines: list[StyleAndTextTuples] = [
            [("class:dialog.headline",
              f"{action.capitalize()} {counted(len(sendable), 'task')} {what}".rstrip())]]
        described: list[str] = []
        for rec in sendable:
            holder = placement.holders.get(rec.uuid)
            where = (f"at {holder} (holds it: {placement.held_as.get(rec.uuid, rec.state)})"
                     if holder else "at the online workers (no worker holds it: queued?)")
            described.append(f"  {_describe(rec)}  {where}")
        lines += text_lines(*limited(described))
        unheld = sum(1 for r in sendable if not placement.holders.get(r.uuid))
        if unheld:
            lines += text_lines(f"Sent to: {', '.join(placement.online)} (they keep the id "
                                "and discard the task when it arrives).")
        if terminate:
            idle = [r for r in sendable if r.state != STARTED]
            lines += text_lines(f"The pool process running each task gets {signal}.")
            if idle:
                lines += text_lines(f"{counted(len(idle), 'task')} not seen running: only "
                                    "flagged as revoked.", style="class:dialog.warning")
        else:
            lines += text_lines("A revoked id lives in each worker's memory: a worker started "
                                "later would still run the task.")
        if skipped:
            lines += text_lines(f"Skipped, no online worker to tell: "
                                f"{', '.join(short_id(r.uuid) for r in skipped[:SHOWN])}",
                                style="class:dialog.warning")
        ids = [r.uuid for r in sendable]
        title = f"{action.capitalize()} {counted(len(ids), 'task')}"
        label = f"Terminate ({signal})" if terminate else f"Revoke {len(ids)}"
        self.op.confirm(title, lines, label, lambda: self.op.execute(
            action, lambda: actions.revoke(ids, terminate=terminate, signal=signal,
                                           placement=placement)))

    # ---------------------------------------------------------------- purge

    def purge_selected(self) -> None:
        queue = self.op.screen.queues.selected
        if queue is None:
            self.op.board.post("purge: no queue selected", level="error")
            return
        actions = self.op.ready("purge")
        if actions is None:
            return
        ops = self.op.queue_ops
        if ops is None:
            why = self.op.screen.info.queues_unavailable or "queue introspection is not available"
            self.op.board.post(f"purge: {why}", level="error")
            return
        name = queue.name
        self.op.background(f"purge: counting the messages in {name}…", lambda: ops.stats(name),
                           lambda stats: self._confirm_purge(actions, ops, name, stats))

    def _confirm_purge(self, actions: ActionsLike, ops: QueueOps, name: str,
                       stats: QueueStats) -> None:
        ready = stats.ready
        if ready == 0:
            self.op.board.post(f"purge: queue {name} has no waiting messages: nothing to purge",
                               level="info")
            return
        typed = ready is None or ready > TYPED_CONFIRM_THRESHOLD
        count = "An unknown number of" if ready is None else number(ready)
        noun = "message" if ready == 1 else "messages"
        reserved = ("Reserved messages (delivered to workers, not acknowledged yet) are not "
                    "touched." if not stats.reserved else
                    f"{counted(stats.reserved, 'reserved message')} (delivered to workers, not "
                    f"acknowledged yet) {'is' if stats.reserved == 1 else 'are'} not touched.")
        lines: list[StyleAndTextTuples] = [
            [("class:dialog.headline",
              f"{count} waiting {noun} will be deleted from queue {name!r} (every priority).")],
            *text_lines(reserved, "This cannot be undone: those tasks will never run.")]
        hint = (f"More than {number(TYPED_CONFIRM_THRESHOLD)} messages (or an unknown count): "
                "type the queue name to confirm." if typed else "")
        label = f"Purge {number(ready)}" if ready is not None else "Purge"
        self.op.confirm(f"Purge queue {name}", lines, label,
                        lambda: self.op.execute("purge", lambda: actions.purge(
                            name, ops.purge_tasks, expected=ready), after=self._purged),
                        require=name if typed else None, hint=hint, prompt="queue name:")

    def _purged(self) -> None:
        if self.op.on_purged is not None:
            self.op.on_purged()
