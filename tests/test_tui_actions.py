"""Operator actions in the dashboard, driven headlessly (pipe input + DummyOutput) against a fake
Actions object that records its calls: dialogs default to Cancel, confirmations execute, read-only
hides and refuses, typed confirmation of big purges, results shown per worker, reconciliation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from lazycelery.broker.model import QueueSnapshot, QueueStats
from lazycelery.core.actions import (
    ActionResult,
    Placement,
    Refusal,
    Reply,
    RetryBatch,
    RetryPlan,
)
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest import Gap, IngestStatus
from lazycelery.core.model import TaskRecord
from lazycelery.core.reconcile import Correction, ReconcileReport
from lazycelery.tui.panes.dialog import CANCEL, CHOOSE, INPUT, Dialog
from lazycelery.tui.panes.footer import footer_hints
from lazycelery.tui.panes.help import help_lines
from lazycelery.tui.screen.sources import DashboardInfo
from tests.tui_harness import (
    ESC,
    DashboardHarness,
    FakeIngestor,
    FakeMonitor,
    SizedOutput,
    drive,
    headless_dashboard,
    screen_lines,
)

TAB = "\t"
ENTER = "\r"
HOST = "w1@host"
NOW = time.time()


# --------------------------------------------------------------------------- fakes


@dataclass
class FakeActions:
    """Records every call; answers like the real Actions would (no cluster)."""

    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    holders: dict[str, str] = field(default_factory=dict)
    replies: dict[str, Reply] = field(default_factory=lambda: {HOST: Reply(True, "done")})
    missing: tuple[str, ...] = ()
    read_only: bool = False

    def _called(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((name, args, kwargs))

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def call(self, name: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
        [found] = [(a, k) for n, a, k in self.calls if n == name]
        return found

    def _result(self, action: str, targets: Sequence[str]) -> ActionResult:
        ok = all(r.ok for r in self.replies.values()) and not self.missing
        return ActionResult(action, tuple(targets), ok, replies=dict(self.replies),
                            missing=self.missing, message="1 ok" if ok else "trouble")

    def plan_retries(self, targets: Iterable[str | TaskRecord]) -> RetryBatch:
        recs = [t for t in targets if isinstance(t, TaskRecord)]
        self._called("plan_retries", [r.uuid for r in recs])
        plans = tuple(RetryPlan(r.uuid, r.name or "?", (1,), {}, "q1", r.uuid, r.uuid,
                                "result backend", r.state) for r in recs
                      if r.uuid not in self.refuse)
        refusals = tuple(Refusal(r.uuid, self.refuse[r.uuid]) for r in recs
                         if r.uuid in self.refuse)
        return RetryBatch(plans, refusals)

    def retry(self, batch: RetryBatch | RetryPlan) -> ActionResult:
        assert isinstance(batch, RetryBatch)
        self._called("retry", batch)
        return ActionResult("retry", batch.targets, True,
                            replies={p.uuid: Reply(True, f"sent as new-{p.uuid} to q1")
                                     for p in batch.plans},
                            message=f"{len(batch.plans)} of {len(batch.targets)} sent")

    def locate(self, task_ids: Sequence[str]) -> Placement:
        self._called("locate", list(task_ids))
        holders = {t: self.holders[t] for t in task_ids if t in self.holders}
        return Placement(holders=holders, held_as={t: "active" for t in holders},
                         online=(HOST,), source="index")

    def revoke(self, task_ids: Sequence[str], *, terminate: bool = False,
               signal: str | int = "SIGTERM", placement: Placement | None = None) -> ActionResult:
        self._called("revoke", list(task_ids), terminate=terminate, signal=signal,
                     placement=placement)
        return self._result("terminate" if terminate else "revoke", task_ids)

    def purge(self, queue: str, purge: Callable[[str], int | tuple[int, Sequence[str] | None]],
              *, expected: int | None = None) -> ActionResult:
        outcome = purge(queue)
        removed = outcome[0] if isinstance(outcome, tuple) else outcome
        self._called("purge", queue, expected=expected, removed=removed)
        return ActionResult("purge", (queue,), True, replies={queue: Reply(True, f"{removed} "
                                                                         "messages removed")},
                            message=f"{removed} messages removed")

    def shutdown(self, workers: Sequence[str]) -> ActionResult:
        self._called("shutdown", list(workers))
        return self._result("shutdown", workers)

    def pool_restart(self, workers: Sequence[str], *, modules: Sequence[str] | None = None,
                     reload: bool = False) -> ActionResult:
        self._called("pool_restart", list(workers))
        return self._result("pool-restart", workers)

    def pool_grow(self, workers: Sequence[str], n: int = 1) -> ActionResult:
        self._called("pool_grow", list(workers), n)
        return self._result("pool-grow", workers)

    def pool_shrink(self, workers: Sequence[str], n: int = 1) -> ActionResult:
        self._called("pool_shrink", list(workers), n)
        return self._result("pool-shrink", workers)

    def autoscale(self, workers: Sequence[str], max: int, min: int) -> ActionResult:
        self._called("autoscale", list(workers), max, min)
        return self._result("autoscale", workers)

    def add_consumer(self, workers: Sequence[str], queue: str, *, exchange: str | None = None,
                     exchange_type: str = "direct", routing_key: str | None = None
                     ) -> ActionResult:
        self._called("add_consumer", list(workers), queue)
        return self._result("add-consumer", workers)

    def cancel_consumer(self, workers: Sequence[str], queue: str) -> ActionResult:
        self._called("cancel_consumer", list(workers), queue)
        return self._result("cancel-consumer", workers)

    def rate_limit(self, workers: Sequence[str], task_name: str, rate: str) -> ActionResult:
        self._called("rate_limit", list(workers), task_name, rate)
        return self._result("rate-limit", workers)

    def time_limit(self, workers: Sequence[str], task_name: str, *, soft: float | None = None,
                   hard: float | None = None) -> ActionResult:
        self._called("time_limit", list(workers), task_name, soft=soft, hard=hard)
        return self._result("time-limit", workers)


@dataclass
class FakeQueues:
    ready: dict[str, int | None]
    purged: list[str] = field(default_factory=list)

    def stats(self, queue: str) -> QueueStats:
        return QueueStats(name=queue, ready=self.ready[queue], reserved=1)

    def purge_tasks(self, queue: str) -> tuple[int, list[str] | None]:
        self.purged.append(queue)
        removed, self.ready[queue] = self.ready[queue] or 0, 0
        return removed, None


@dataclass
class FakeReconciler:
    statuses: list[Any] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    report: ReconcileReport | None = None
    started: bool = False

    def run(self, *, trigger: str = "on demand") -> ReconcileReport:
        self.runs.append(trigger)
        assert self.report is not None
        return self.report

    def on_ingest_status(self, status: Any) -> None:
        self.statuses.append(status)

    def start(self) -> None:
        self.started = True

    def stop(self, timeout: float = 2.0) -> None:
        self.started = False


# --------------------------------------------------------------------------- events


def task_events(uuid: str, name: str, *states: str, t: float = NOW) -> list[dict[str, Any]]:
    kinds = {"RECEIVED": "task-received", "STARTED": "task-started",
             "FAILURE": "task-failed", "SUCCESS": "task-succeeded"}
    out: list[dict[str, Any]] = []
    for i, state in enumerate(states):
        event: dict[str, Any] = {"type": kinds[state], "uuid": uuid, "hostname": HOST,
                                 "timestamp": t + i * 0.01, "local_received": t + i * 0.01}
        if state == "RECEIVED":
            event.update(name=name, args="(1,)", kwargs="{}")
        if state == "FAILURE":
            event.update(exception="ValueError('x')", traceback="Traceback ...")
        out.append(event)
    return out


def cluster_events() -> list[dict[str, Any]]:
    heartbeat = {"type": "worker-heartbeat", "hostname": HOST, "timestamp": NOW,
                 "local_received": time.time(), "freq": 2.0, "active": 1, "processed": 3,
                 "sw_ver": "5.4.0"}
    return [heartbeat,
            *task_events("fail-1", "app.flaky", "RECEIVED", "STARTED", "FAILURE"),
            *task_events("fail-2", "app.flaky", "RECEIVED", "STARTED", "FAILURE", t=NOW + 1),
            *task_events("ok-1", "app.add", "RECEIVED", "STARTED", "SUCCESS", t=NOW + 2),
            *task_events("run-1", "app.slow", "RECEIVED", "STARTED", t=NOW + 3),
            *task_events("eta-1", "app.later", "RECEIVED", t=NOW + 4)]


# --------------------------------------------------------------------------- harness


@dataclass
class Harness(DashboardHarness):
    index: TaskIndex
    actions: FakeActions
    queues: FakeQueues
    reconciler: FakeReconciler
    ingestor: FakeIngestor

    async def keys(self, text: str) -> None:
        await self.send_keys(text, 0.05)

    async def dialog(self) -> Dialog:
        await self.until(lambda: self.d.operator.dialog is not None)
        dialog = self.d.operator.dialog
        assert dialog is not None
        return dialog

    def select(self, uuid: str) -> None:
        rec = self.index.get(uuid)
        assert rec is not None and self.d.tasks.select(rec)

    def screen(self) -> str:
        return "\n".join(screen_lines(self.d))

    def messages(self) -> str:
        return "\n".join(f"{m.headline}\n" + "\n".join("".join(t for _, t, *_ in line)
                                                       for line in m.lines)
                         for m in self.d.operator.board.visible())


@contextmanager
def harness(read_only: bool = False) -> Iterator[Harness]:
    index = TaskIndex()
    info = DashboardInfo(broker="redis://127.0.0.1:6379/0", env_name="test", read_only=read_only)
    with headless_dashboard(index, info, SizedOutput(40, 130)) as (d, inp):
        ingestor = FakeIngestor()
        d.attach(ingestor, FakeMonitor(QueueSnapshot(taken_at=NOW, source="fake", queues=(
            QueueStats(name="big", ready=5000, reserved=0, consumers=1),
            QueueStats(name="small", ready=12, reserved=1, consumers=1),
        ))))
        actions = FakeActions(read_only=read_only)
        queues = FakeQueues({"big": 5000, "small": 12, "empty": 0})
        reconciler = FakeReconciler()
        d.operator.attach(actions, queue_ops=queues, reconciler=reconciler)
        events = cluster_events()
        d.on_batch(events, index.apply_batch(events))
        yield Harness(d, inp, index, actions, queues, reconciler, ingestor)


def run(h: Harness, scenario: Callable[[Harness], Awaitable[None]]) -> None:
    """Drive the app once the five tasks of ``cluster_events`` are in the list."""
    drive(h, scenario, ready=lambda: len(h.d.tasks) == 5)


# --------------------------------------------------------------------------- dialogs


def test_retry_dialog_defaults_to_cancel_and_enter_cancels() -> None:
    with harness() as h:
        async def scenario(h: Harness) -> None:
            h.select("fail-1")
            await h.keys("r")
            dialog = await h.dialog()
            assert h.d.ui.context == "dialog"
            assert dialog.focus == CANCEL and dialog.title == "Retry 1 task"
            screen = h.screen()
            assert "1 task would be retried, 0 refused" in screen
            assert "fail-1" in screen and "[ Cancel ]" in screen and "  Retry 1  " in screen
            await h.keys(ENTER)  # enter on the focused button: Cancel
            assert h.d.operator.dialog is None and h.d.ui.overlay is None
            await asyncio.sleep(0.1)
            assert h.actions.names() == ["plan_retries"]  # the dry run only: nothing sent
            assert "cancelled, nothing was sent" in h.messages()
            assert h.d.ui.context == "tasks"

        run(h, scenario)


def test_keys_in_the_detail_act_on_the_task_shown() -> None:
    with harness() as h:
        async def scenario(h: Harness) -> None:
            h.select("fail-2")
            await h.keys(ENTER)
            assert h.d.ui.pane == "detail"
            await h.keys("r")
            await h.dialog()
            assert h.actions.call("plan_retries")[0] == (["fail-2"],)
            assert "r retry" not in h.screen().splitlines()[-1]  # the dialog's keys now
            await h.keys(ESC)
            assert h.d.ui.pane == "detail" and h.d.operator.dialog is None

        run(h, scenario)


def test_esc_cancels_a_revoke() -> None:
    with harness() as h:
        async def scenario(h: Harness) -> None:
            h.select("eta-1")
            await h.keys("x")
            dialog = await h.dialog()
            assert dialog.focus == CANCEL
            await h.keys(ESC)
            assert h.d.operator.dialog is None
            await asyncio.sleep(0.1)
            assert "revoke" not in h.actions.names()

        run(h, scenario)


def test_confirm_executes_the_retry_and_shows_the_replies() -> None:
    with harness() as h:
        async def scenario(h: Harness) -> None:
            h.select("fail-1")
            await h.keys("r")
            await h.dialog()
            await h.keys(TAB)  # to the Retry button
            assert h.d.operator.dialog is not None and h.d.operator.dialog.focus == 1
            assert "  Cancel     [ Retry 1 ]" in h.screen()
            await h.keys(ENTER)
            await h.until(lambda: "retry" in h.actions.names())
            [batch], _ = h.actions.call("retry")
            assert [p.uuid for p in batch.plans] == ["fail-1"]
            await h.until(lambda: "1 of 1 sent" in h.messages())
            assert "sent as new-fail-1 to q1" in h.messages()
            assert "1 of 1 sent" in h.screen()  # the message box is drawn

        run(h, scenario)


def test_revoke_names_the_task_and_the_worker_that_holds_it() -> None:
    with harness() as h:
        h.actions.holders["eta-1"] = HOST

        async def scenario(h: Harness) -> None:
            h.select("eta-1")
            await h.keys("x")
            dialog = await h.dialog()
            screen = h.screen()
            assert dialog.title == "Revoke 1 task"
            assert "eta-1" in screen and f"at {HOST} (holds it: active)" in screen
            await h.keys(TAB + ENTER)
            await h.until(lambda: "revoke" in h.actions.names())
            args, kwargs = h.actions.call("revoke")
            assert args == (["eta-1"],) and kwargs["terminate"] is False
            assert kwargs["placement"].holders == {"eta-1": HOST}  # what was shown is used

        run(h, scenario)


def test_terminate_chooses_the_signal_then_confirms() -> None:
    with harness() as h:
        h.actions.holders["run-1"] = HOST

        async def scenario(h: Harness) -> None:
            h.select("run-1")
            await h.keys("X")
            dialog = await h.dialog()
            assert dialog.kind == CHOOSE and dialog.options[0].startswith("SIGTERM")
            await h.keys("j")  # SIGKILL
            await h.keys(ENTER)
            await h.until(lambda: h.d.operator.dialog is not None
                          and h.d.operator.dialog.title == "Terminate 1 task")
            assert "SIGKILL" in h.screen()
            assert (await h.dialog()).focus == CANCEL
            await h.keys(TAB + ENTER)
            await h.until(lambda: "revoke" in h.actions.names())
            args, kwargs = h.actions.call("revoke")
            assert args == (["run-1"],) and kwargs["terminate"] is True
            assert kwargs["signal"] == "SIGKILL"

        run(h, scenario)


def test_bulk_retry_of_the_view_shows_the_dry_run_count_and_refusals() -> None:
    with harness() as h:
        h.actions.refuse["fail-2"] = "events: args were truncated by Celery"

        async def scenario(h: Harness) -> None:
            await h.keys("/state:failure" + ENTER)
            await h.until(lambda: len(h.d.tasks) == 2)
            await h.keys(":retry all failed")
            await h.keys(ENTER)
            dialog = await h.dialog()
            screen = h.screen()
            assert "1 task would be retried, 1 refused" in screen
            assert "events: args were truncated by Celery" in screen
            assert dialog.focus == CANCEL
            assert sorted(h.actions.call("plan_retries")[0][0]) == ["fail-1", "fail-2"]
            await h.keys(TAB + ENTER)
            await h.until(lambda: "retry" in h.actions.names())
            [batch], _ = h.actions.call("retry")
            assert [p.uuid for p in batch.plans] == ["fail-1"]
            assert [r.uuid for r in batch.refusals] == ["fail-2"]

        run(h, scenario)


def test_bulk_retry_never_sends_two_runs_of_one_job() -> None:
    with harness() as h:
        # fail-1 was retried already (copy-1, sent with parent_id=fail-1) and that failed too
        copy = [{"type": "task-sent", "uuid": "copy-1", "name": "app.flaky", "args": "(1,)",
                 "kwargs": "{}", "parent_id": "fail-1", "root_id": "fail-1", "hostname": HOST,
                 "timestamp": NOW + 5, "local_received": NOW + 5},
                *task_events("copy-1", "app.flaky", "RECEIVED", "STARTED", "FAILURE", t=NOW + 6)]
        h.d.on_batch(copy, h.index.apply_batch(copy))

        async def scenario(h: Harness) -> None:
            await h.keys("/state:failure" + ENTER)
            await h.until(lambda: len(h.d.tasks) == 3)
            await h.keys(":retry all failed" + ENTER)
            await h.dialog()
            assert sorted(h.actions.call("plan_retries")[0][0]) == ["copy-1", "fail-2"]
            screen = h.screen()
            assert "2 tasks would be retried, 1 refused" in screen
            assert "an earlier failed run of the same job" in screen
            await h.keys(TAB + ENTER)
            await h.until(lambda: "retry" in h.actions.names())
            [batch], _ = h.actions.call("retry")
            assert sorted(p.uuid for p in batch.plans) == ["copy-1", "fail-2"]
            assert [r.uuid for r in batch.refusals] == ["fail-1"]

        drive(h, scenario, ready=lambda: len(h.d.tasks) == 6)


def test_bulk_revoke_of_the_view_takes_only_unfinished_tasks() -> None:
    with harness() as h:
        async def scenario(h: Harness) -> None:
            await h.keys(":revoke all unfinished")
            await h.keys(ENTER)
            dialog = await h.dialog()
            assert dialog.title == "Revoke 2 tasks"
            await h.keys(TAB + ENTER)
            await h.until(lambda: "revoke" in h.actions.names())
            assert sorted(h.actions.call("revoke")[0][0]) == ["eta-1", "run-1"]

        run(h, scenario)


# --------------------------------------------------------------------------- purge


def test_purge_shows_the_count_before_asking() -> None:
    with harness() as h:
        async def scenario(h: Harness) -> None:
            await h.keys("2")
            await h.until(lambda: h.d.queues.selected is not None)
            await h.keys("j")  # "small": 12 messages
            assert h.d.queues.selected is not None and h.d.queues.selected.name == "small"
            await h.keys("P")
            dialog = await h.dialog()
            assert dialog.require is None and dialog.focus == CANCEL
            screen = h.screen()
            assert "12 waiting messages will be deleted from queue 'small'" in screen
            assert "1 reserved" in screen and "[ Cancel ]     Purge 12" in screen
            await h.keys(TAB + ENTER)
            await h.until(lambda: "purge" in h.actions.names())
            args, kwargs = h.actions.call("purge")
            assert args == ("small",) and kwargs["expected"] == 12
            assert h.queues.purged == ["small"]
            await h.until(lambda: "12 messages removed" in h.messages())

        run(h, scenario)


def test_purge_of_more_than_1000_needs_the_typed_queue_name() -> None:
    with harness() as h:
        async def scenario(h: Harness) -> None:
            await h.keys("2")
            await h.until(lambda: h.d.queues.selected is not None)
            assert h.d.queues.selected is not None and h.d.queues.selected.name == "big"
            await h.keys("P")
            dialog = await h.dialog()
            assert dialog.require == "big" and dialog.focus == CANCEL
            assert "5,000 waiting messages" in h.screen()
            assert "type the queue name to confirm" in h.screen()
            await h.keys(TAB + ENTER)  # the Purge button without the name: refused
            assert h.d.operator.dialog is dialog and "type 'big' exactly" in (dialog.error or "")
            await h.keys("bi" + ENTER)  # a wrong name: still refused
            assert h.d.operator.dialog is dialog and dialog.error
            await asyncio.sleep(0.1)
            assert "purge" not in h.actions.names()
            await h.keys("g" + ENTER)  # "big": the focused Purge button now works
            await h.until(lambda: "purge" in h.actions.names())
            assert h.actions.call("purge")[1]["expected"] == 5000

        run(h, scenario)


def test_typed_confirmation_still_defaults_to_cancel() -> None:
    with harness() as h:
        async def scenario(h: Harness) -> None:
            await h.keys("2")
            await h.until(lambda: h.d.queues.selected is not None)
            await h.keys("P")
            await h.dialog()
            await h.keys("big" + ENTER)  # typed, but enter presses the focused Cancel
            assert h.d.operator.dialog is None
            await asyncio.sleep(0.1)
            assert "purge" not in h.actions.names()

        run(h, scenario)


# --------------------------------------------------------------------------- read-only


def test_read_only_hides_the_actions_and_refuses_them() -> None:
    with harness(read_only=True) as h:
        async def scenario(h: Harness) -> None:
            d = h.d
            h.select("fail-1")
            labels = [label for _, label in footer_hints(d.registry, d.screen)]
            assert "retry" not in labels and "revoke" not in labels
            help_text = "\n".join("".join(t for _, t, *_ in line)
                                  for line in help_lines(d.registry, d.screen, "tasks"))
            assert "task.retry" not in help_text and "queue.purge" not in help_text
            assert "reconcile" in help_text  # reading is allowed
            await h.keys(":")
            assert d.palette is not None
            names = {c.name for c in d.palette.candidates}
            assert not names & {"view.retry", "view.revoke", "task.retry", "task.terminate"}
            assert "reconcile" in names
            await h.keys(ESC)
            await h.keys("r")  # the key still answers: it says why nothing happens
            await h.until(lambda: "read-only" in h.messages())
            assert "retry: refused: read-only mode" in h.messages()
            assert d.operator.dialog is None
            for name in ("task.revoke", "task.terminate", "view.retry", "queue.purge",
                         "worker.shutdown", "worker.pool-grow"):
                d.run(name)
                assert d.operator.dialog is None, name
            assert h.actions.calls == []

        run(h, scenario)


# --------------------------------------------------------------------------- workers


def test_pool_grow_asks_for_n_validates_then_confirms() -> None:
    with harness() as h:
        async def scenario(h: Harness) -> None:
            await h.keys("1")
            await h.until(lambda: h.d.workers.selected is not None)
            await h.keys(":grow")
            await h.keys(ENTER)
            dialog = await h.dialog()
            assert dialog.kind == INPUT and h.d.operator.buffer.text == "1"
            await h.keys("\x7f0" + ENTER)  # backspace, 0: refused inline
            assert dialog.error == "must be at least 1" and h.d.operator.dialog is dialog
            await h.keys("\x7f2" + ENTER)
            await h.until(lambda: h.d.operator.dialog is not None
                          and h.d.operator.dialog.kind == "confirm")
            screen = h.screen()
            assert f"{HOST} will add 2 pool processes" in screen
            assert "never broadcast" in screen
            await h.keys(TAB + ENTER)
            await h.until(lambda: "pool_grow" in h.actions.names())
            assert h.actions.call("pool_grow")[0] == ([HOST], 2)

        run(h, scenario)


def test_worker_results_show_each_reply_and_who_did_not_answer() -> None:
    with harness() as h:
        h.actions.replies = {HOST: Reply(False, "ValueError('Autoscale not enabled')")}
        h.actions.missing = ("w2@host",)

        async def scenario(h: Harness) -> None:
            await h.keys("1")
            await h.until(lambda: h.d.workers.selected is not None)
            await h.keys(":autoscale" + ENTER)
            await h.dialog()
            await h.keys("4" + ENTER)  # max
            await h.until(lambda: h.d.operator.dialog is not None
                          and h.d.operator.dialog.prompt == "min processes:")
            await h.keys(ENTER)  # min: the default 0
            await h.until(lambda: h.d.operator.dialog is not None
                          and h.d.operator.dialog.kind == "confirm")
            await h.keys(TAB + ENTER)
            await h.until(lambda: "trouble" in h.messages())
            text = h.messages()
            assert f"{HOST}  error  ValueError('Autoscale not enabled')" in text
            assert "w2@host  error  no reply (timed out)" in text
            assert h.actions.call("autoscale")[0] == ([HOST], 4, 0)
            [message] = [m for m in h.d.operator.board.visible() if "trouble" in m.headline]
            assert message.level == "error"

        run(h, scenario)


def test_rate_and_time_limit_prompts() -> None:
    with harness() as h:
        async def scenario(h: Harness) -> None:
            h.select("fail-1")  # its task name is offered as the default
            await h.keys("1")
            await h.until(lambda: h.d.workers.selected is not None)
            await h.keys(":rate limit" + ENTER)
            await h.dialog()
            assert h.d.operator.buffer.text == "app.flaky"
            await h.keys(ENTER)
            await h.until(lambda: h.d.operator.dialog is not None
                          and "rate" in h.d.operator.dialog.prompt)
            await h.keys("ten" + ENTER)
            assert h.d.operator.dialog is not None and h.d.operator.dialog.error
            await h.keys("\x15" + "10/m" + ENTER)  # ctrl-u clears the line
            await h.until(lambda: h.d.operator.dialog is not None
                          and h.d.operator.dialog.kind == "confirm")
            await h.keys(TAB + ENTER)
            await h.until(lambda: "rate_limit" in h.actions.names())
            assert h.actions.call("rate_limit")[0] == ([HOST], "app.flaky", "10/m")

            await h.keys(":time limit" + ENTER)
            await h.dialog()
            await h.keys(ENTER)  # task name: app.flaky
            await h.until(lambda: h.d.operator.dialog is not None
                          and "soft" in h.d.operator.dialog.prompt)
            await h.keys("30" + ENTER)
            await h.until(lambda: h.d.operator.dialog is not None
                          and "hard" in h.d.operator.dialog.prompt)
            await h.keys("20" + ENTER)  # below the soft limit: refused
            assert h.d.operator.dialog is not None and h.d.operator.dialog.error
            await h.keys("\x15" + "60" + ENTER)
            await h.until(lambda: h.d.operator.dialog is not None
                          and h.d.operator.dialog.kind == "confirm")
            await h.keys(TAB + ENTER)
            await h.until(lambda: "time_limit" in h.actions.names())
            assert h.actions.call("time_limit") == (([HOST], "app.flaky"),
                                                    {"soft": 30.0, "hard": 60.0})

        run(h, scenario)


def test_shutdown_and_consumers() -> None:
    with harness() as h:
        async def scenario(h: Harness) -> None:
            await h.keys("1")
            await h.until(lambda: h.d.workers.selected is not None)
            await h.keys(":shut down" + ENTER)
            dialog = await h.dialog()
            assert dialog.title == f"Shut down {HOST}" and dialog.focus == CANCEL
            await h.keys(TAB + ENTER)
            await h.until(lambda: "shutdown" in h.actions.names())
            assert h.actions.call("shutdown")[0] == ([HOST],)
            await h.keys(":start consuming" + ENTER)
            await h.dialog()
            assert h.d.operator.buffer.text == "big"  # the queue selected in the queues pane
            await h.keys("\x15" + "reports" + ENTER)
            await h.until(lambda: h.d.operator.dialog is not None
                          and h.d.operator.dialog.kind == "confirm")
            await h.keys(TAB + ENTER)
            await h.until(lambda: "add_consumer" in h.actions.names())
            assert h.actions.call("add_consumer")[0] == ([HOST], "reports")

        run(h, scenario)


# --------------------------------------------------------------------------- reconciliation


def test_reconciled_records_move_between_filtered_lists_and_are_announced() -> None:
    with harness() as h:
        h.ingestor.status = IngestStatus(state="connected", path="fast",
                                         gap=Gap(start=NOW, end=NOW + 4.2, seconds=4.2,
                                                 reason="broker restart"))

        async def scenario(h: Harness) -> None:
            d = h.d
            await h.keys("/state:started" + ENTER)
            await h.until(lambda: [r.uuid for r in d.tasks.rows(0, 10)] == ["run-1"])
            # what the reconciler does from its thread: correct the index, then report
            assert h.index.mark_reconciled("run-1", "SUCCESS", expect_state="STARTED",
                                           succeeded=NOW + 5, result="2")
            h.index.mark_reconciled("eta-1", "RECEIVED", unknown_since=NOW)
            report = ReconcileReport(
                "reconnect", 2, (Correction("run-1", "app.slow", "STARTED", "SUCCESS",
                                            "result backend"),),
                (Correction("eta-1", "app.later", "RECEIVED", "RECEIVED", "no worker holds it",
                            unknown_since=NOW),), 0, (), 0.01)
            await asyncio.get_running_loop().run_in_executor(
                None, d.operator.on_reconcile_report, report)
            await h.until(lambda: len(d.tasks) == 0)  # left the "started" list
            await h.until(lambda: "reconciled 1 task after a 4.2 s gap" in h.messages())
            assert "(2 checked, 1 unknown)" in h.messages()
            assert "eta-1  app.later  RECEIVED  unknown since" in h.messages()
            await h.keys(ESC)
            await h.keys("/state:success" + ENTER)
            await h.until(lambda: "run-1" in [r.uuid for r in d.tasks.rows(0, 10)])
            await h.keys(ESC)
            await h.until(lambda: d.tasks.filter_text == "")
            h.select("eta-1")
            stamp = time.strftime("%H:%M:%S", time.localtime(NOW))
            assert f"unknown since {stamp}" in h.screen()  # in the task list
            await h.keys(ENTER)
            assert d.ui.pane == "detail"
            assert "since " + stamp in h.screen()

        run(h, scenario)


def test_status_changes_reach_the_reconciler_and_reconcile_now_reports() -> None:
    with harness() as h:
        h.reconciler.report = ReconcileReport("on demand", 3, (), (), 3, (), 0.01)

        async def scenario(h: Harness) -> None:
            assert h.reconciler.started
            status = IngestStatus(state="connected", path="fast")
            h.d.on_status(status)
            assert h.reconciler.statuses == [status]
            await h.keys(":reconcile now" + ENTER)
            await h.until(lambda: h.reconciler.runs == ["on demand"])
            await h.until(lambda: "reconciled 0 tasks (3 checked, 3 still held by workers)"
                          in h.messages())

        run(h, scenario)
    assert not h.reconciler.started  # stopped with the dashboard


def test_a_dialog_waits_while_the_filter_prompt_is_open() -> None:
    with harness() as h:
        async def scenario(h: Harness) -> None:
            h.select("fail-1")
            await h.keys("/")
            assert h.d.ui.filter_editing
            h.d.run("task.retry")
            await h.until(lambda: "plan_retries" in h.actions.names())
            await asyncio.sleep(0.1)
            assert h.d.operator.dialog is None and h.d.operator.pending
            await h.keys(ESC)
            await h.dialog()
            assert h.d.ui.context == "dialog"

        run(h, scenario)


def test_actions_without_a_cluster_say_why() -> None:
    with harness() as h:
        h.d.operator.actions = None
        h.d.operator.unavailable = "unavailable: cannot import proj.celery"

        async def scenario(h: Harness) -> None:
            h.select("fail-1")
            await h.keys("r")
            await h.until(lambda: "cannot import proj.celery" in h.messages())
            assert h.d.operator.dialog is None

        run(h, scenario)
