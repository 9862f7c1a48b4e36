"""Dashboard queue actions: requeue dead letters and move waiting messages, from the queues pane;
counted first, Cancel focused, refused read-only, audited with exact counts."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from celery import Celery

from lazycelery.broker.bulk import BulkOutcome, Selection
from lazycelery.broker.model import PeekedMessage, QueueSnapshot, QueueStats
from lazycelery.core.actions import Actions
from lazycelery.core.index import TaskIndex
from lazycelery.tui.panes.dialog import CANCEL
from lazycelery.tui.screen.sources import DashboardInfo
from tests.tui_harness import (
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


@dataclass
class FakeBulk:
    """The inspector's bulk part: records calls; one of three dead letters was taken meanwhile."""

    ready: dict[str, int]
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def stats(self, queue: str) -> QueueStats:
        return QueueStats(name=queue, ready=self.ready.get(queue, 0))

    def purge_tasks(self, queue: str) -> tuple[int, list[str] | None]:
        raise AssertionError("not a purge")

    def peek(self, queue: str, n: int = 10) -> list[PeekedMessage]:
        self.calls.append(("peek", queue))
        return [PeekedMessage(position=i, task="t.charge", id=f"id-{i}", priority=0,
                              argsrepr="('4111 1111 1111 1111',)", kwargsrepr="{'password': 'x'}")
                for i in range(4)]

    def delete(self, source: str, selection: Selection) -> BulkOutcome:
        self.calls.append(("delete", source, ",".join(sorted(selection.ids or ()))))
        return BulkOutcome(action="delete", source=source, done=sorted(selection.ids or ()),
                           scanned=4)

    def move(self, source: str, target: str, selection: Selection) -> BulkOutcome:
        self.calls.append(("move", source, target, str(selection.ids)))
        return BulkOutcome(action="move", source=source, done=["a", "b"],
                           targets={"a": target, "b": target}, scanned=2)

    def requeue_dead(self, source: str, selection: Selection) -> BulkOutcome:
        self.calls.append(("requeue-dead", source, str(selection.ids)))
        return BulkOutcome(action="requeue-dead", source=source, done=["a", "b"], gone=["c"],
                           targets={"a": "work", "b": "work"}, scanned=3)


@dataclass
class Harness(DashboardHarness):
    bulk: FakeBulk
    audit: Path

    async def keys(self, text: str) -> None:
        await self.send_keys(text, 0.05)

    def messages(self) -> str:
        return "\n".join(m.headline for m in self.d.operator.board.visible())


@contextmanager
def harness(tmp_path: Path, read_only: bool = False) -> Iterator[Harness]:
    info = DashboardInfo(broker="redis://127.0.0.1:6379/0", env_name="test", read_only=read_only)
    with headless_dashboard(TaskIndex(), info, SizedOutput(40, 160)) as (d, inp):
        d.attach(FakeIngestor(), FakeMonitor(QueueSnapshot(taken_at=time.time(), source="fake",
                                                           queues=(
            QueueStats(name="work", ready=5, dead_letter="work.dlq", dead_letter_ready=3),
            QueueStats(name="work.dlq", ready=3, dead_letter_of="work"),
        ))))
        audit = tmp_path / "audit.log"
        actions = Actions(Celery("t", broker="memory://", set_as_current=False),
                          read_only=read_only, environment="test", audit_path=audit)
        bulk = FakeBulk({"work": 5, "work.dlq": 3})
        d.operator.attach(actions, queue_ops=bulk)  # type: ignore[arg-type]
        yield Harness(d, inp, bulk, audit)


def run(h: Harness, scenario: Callable[[Harness], Awaitable[None]]) -> None:
    drive(h, scenario)


def test_requeue_dead_counts_asks_and_reports_exactly(tmp_path: Path) -> None:
    with harness(tmp_path) as h:
        async def scenario(h: Harness) -> None:
            await h.keys("2")
            await h.until(lambda: h.d.queues.selected is not None)
            assert h.d.queues.selected is not None and h.d.queues.selected.name == "work"
            await h.keys("D")
            await h.until(lambda: h.d.operator.dialog is not None)
            dialog = h.d.operator.dialog
            assert dialog is not None and dialog.focus == CANCEL
            assert "3 dead letters in 'work.dlq'" in "".join(
                t for line in dialog.lines for _, t, *_ in line)
            await h.keys(TAB + ENTER)
            await h.until(lambda: "requeue-dead: 2 requeued" in h.messages())
            assert h.bulk.calls == [("requeue-dead", "work.dlq", "None")]
            assert "1 no longer there" in h.messages()
            entry = json.loads(h.audit.read_text().splitlines()[-1])
            assert entry["action"] == "requeue-dead" and entry["result"]["count"] == 2
            assert entry["result"]["replies"]["c"] == {"ok": False, "text": "no longer there"}

        run(h, scenario)


def test_move_asks_for_the_target_then_confirms(tmp_path: Path) -> None:
    with harness(tmp_path) as h:
        async def scenario(h: Harness) -> None:
            await h.keys("2")
            await h.until(lambda: h.d.queues.selected is not None)
            await h.keys("M")
            await h.until(lambda: h.d.operator.dialog is not None)
            await h.keys("work" + ENTER)  # the same queue: refused by the prompt
            dialog = h.d.operator.dialog
            assert dialog is not None and dialog.error == "that is the same queue"
            h.d.operator.buffer.text = ""
            await h.keys("slow" + ENTER)
            await h.until(lambda: h.d.operator.dialog is not None
                          and h.d.operator.dialog.title == "Move messages of work")
            await h.keys(ENTER)  # Cancel is focused: nothing moves
            await asyncio.sleep(0.1)
            assert h.bulk.calls == [] and not h.audit.exists()
            await h.keys("M")
            await h.until(lambda: h.d.operator.dialog is not None)
            await h.keys("slow" + ENTER)
            await h.until(lambda: h.d.operator.dialog is not None
                          and h.d.operator.dialog.title == "Move messages of work")
            await h.keys(TAB + ENTER)
            await h.until(lambda: "move: 2 moved" in h.messages())
            assert h.bulk.calls == [("move", "work", "slow", "None")]

        run(h, scenario)


def test_read_only_refuses_before_counting(tmp_path: Path) -> None:
    with harness(tmp_path, read_only=True) as h:
        async def scenario(h: Harness) -> None:
            await h.keys("2")
            await h.until(lambda: h.d.queues.selected is not None)
            await h.keys("D")
            await h.until(lambda: "read-only" in h.messages())
            assert h.d.operator.dialog is None and h.bulk.calls == []

        run(h, scenario)


def test_peek_choose_and_delete_exactly_those(tmp_path: Path) -> None:
    with harness(tmp_path) as h:
        async def scenario(h: Harness) -> None:
            await h.keys("2")
            await h.until(lambda: h.d.queues.selected is not None)
            await h.keys("v")
            await h.until(lambda: h.d.ui.overlay == "peek")
            screen = "\n".join(screen_lines(h.d))
            assert "work: next 4 messages, 0 chosen" in screen and "id-3" in screen
            assert "4111 1111 1111 1111" not in screen and "'x'" not in screen  # masked
            await h.keys(" j ")  # choose id-0, skip id-1, choose id-2
            assert h.d.screen.peek.selected_ids() == ["id-0", "id-2"]
            await h.keys("d")
            await h.until(lambda: h.d.operator.dialog is not None)
            assert h.d.ui.overlay == "dialog"
            await h.keys(TAB + ENTER)
            await h.until(lambda: "delete: 2 deleted" in h.messages())
            assert h.bulk.calls[-1] == ("delete", "work", "id-0,id-2")
            entry = json.loads(h.audit.read_text().splitlines()[-1])
            assert entry["action"] == "delete" and sorted(entry["result"]["replies"]) == [
                "id-0", "id-2"]

        run(h, scenario)


def test_peek_is_allowed_read_only_but_its_actions_are_not(tmp_path: Path) -> None:
    with harness(tmp_path, read_only=True) as h:
        async def scenario(h: Harness) -> None:
            await h.keys("2")
            await h.until(lambda: h.d.queues.selected is not None)
            await h.keys("v")
            await h.until(lambda: h.d.ui.overlay == "peek")
            await h.keys(" d")
            await h.until(lambda: "read-only" in h.messages())
            assert [c[0] for c in h.bulk.calls] == ["peek"] and h.d.operator.dialog is None
            await h.keys("\x1b")
            await h.until(lambda: h.d.ui.overlay is None)

        run(h, scenario)


def test_routes_overlay_shows_the_tree(tmp_path: Path) -> None:
    from lazycelery.broker.keys import Binding

    with harness(tmp_path, read_only=True) as h:
        def bindings() -> tuple[list[Binding], dict[str, str | None]]:
            return [Binding("work", "work", "", "work")], {"work": "direct"}

        def snapshot() -> QueueSnapshot:
            return QueueSnapshot(taken_at=time.time(), source="fake",
                                 queues=(QueueStats(name="work", ready=5),))

        bulk = h.bulk
        bulk.bindings = bindings  # type: ignore[attr-defined]
        bulk.snapshot = snapshot  # type: ignore[attr-defined]
        bulk.worker_hostnames = lambda: []  # type: ignore[attr-defined]
        bulk.transport = "redis"  # type: ignore[attr-defined]

        async def scenario(h: Harness) -> None:
            await h.keys("2")
            await h.until(lambda: h.d.queues.selected is not None)
            await h.keys("t")
            await h.until(lambda: h.d.ui.overlay == "routes")
            screen = "\n".join(screen_lines(h.d))
            assert "exchange work (direct)" in screen
            assert "└─ work -> queue work  ready 5  consumers: none" in screen
            assert "task_routes (-A t): none" in screen  # the app's (it has no routes)
            await h.keys("\x1b")
            await h.until(lambda: h.d.ui.overlay is None)

        run(h, scenario)


def test_a_broker_that_cannot_peek_offers_the_waiting_tasks_of_the_events(tmp_path: Path) -> None:
    with harness(tmp_path) as h:
        h.bulk.can_peek = False  # type: ignore[attr-defined]  # as AmqpInspector
        sent = [{"type": "task-sent", "uuid": f"t-{i}", "name": "t.charge", "args": f"({i},)",
                 "kwargs": "{}", "queue": "work", "routing_key": "work", "timestamp": 100.0 + i}
                for i in (2, 0, 1)]
        received = {"type": "task-received", "uuid": "t-9", "name": "t.charge", "queue": "work",
                    "hostname": "w1", "timestamp": 99.0}
        other = {**sent[0], "uuid": "t-other", "queue": "elsewhere", "routing_key": "elsewhere"}
        events = [*sent, {**received, "type": "task-sent"}, received, other]
        h.d.on_batch(events, h.d.screen.index.apply_batch(events))

        async def scenario(h: Harness) -> None:
            await h.keys("2")
            await h.until(lambda: h.d.queues.selected is not None)
            await h.keys("v")
            await h.until(lambda: h.d.ui.overlay == "peek")
            assert "work: 3 tasks waiting per the events (RabbitMQ cannot be peeked), 0 chosen" \
                in "\n".join(screen_lines(h.d))
            assert [m.id for m in h.d.screen.peek.messages] == ["t-0", "t-1", "t-2"]
            assert ("peek", "work") not in h.bulk.calls  # the broker was not asked
            await h.keys(" d")
            await h.until(lambda: h.d.operator.dialog is not None)
            await h.keys(TAB + ENTER)
            await h.until(lambda: "delete: 1 deleted" in h.messages())
            assert h.bulk.calls[-1] == ("delete", "work", "t-0")

        run(h, scenario)


def test_a_broker_that_cannot_peek_and_no_waiting_task_says_why_in_one_line(
        tmp_path: Path) -> None:
    with harness(tmp_path) as h:
        h.bulk.can_peek = False  # type: ignore[attr-defined]

        async def scenario(h: Harness) -> None:
            await h.keys("2")
            await h.until(lambda: h.d.queues.selected is not None)
            await h.keys("v")
            await h.until(lambda: "RabbitMQ cannot show a message without taking it" in
                          h.messages())
            assert h.d.ui.overlay != "peek"
            line = next(m for m in h.messages().splitlines() if "RabbitMQ" in m)
            assert line.startswith("peek: ") and "task_send_sent_event" in line

        run(h, scenario)


def test_attached_to_a_serve_the_same_dialogs_forward_the_action(tmp_path: Path) -> None:
    """``--server``: the count comes from serve's queues, the confirmed action is sent to serve
    (``RemoteActions.queue_bulk``) and its answer shown; nothing runs here."""
    from lazycelery.core.action_result import ActionResult
    from lazycelery.core.actions_remote import RemoteActions, RemoteQueueOps

    sent: list[tuple[object, ...]] = []

    class Serve(RemoteActions):  # serve's answer, without the network
        def queue_bulk(self, action: str, source: str, target: str | None,
                       ids: Sequence[str] | None, limit: int = 10_000
                       ) -> tuple[ActionResult, BulkOutcome | None]:
            sent.append((action, source, target, ids))
            return ActionResult(action, (source,), True, message="3 requeued", count=3), None

    class Counts(RemoteQueueOps):
        def stats(self, queue: str) -> QueueStats:
            return QueueStats(name=queue, ready=3)

    with harness(tmp_path) as h:
        h.d.operator.attach(Serve("http://monitor:5555", "t"),
                            queue_ops=Counts("http://monitor:5555", "t"))  # type: ignore[arg-type]

        async def scenario(h: Harness) -> None:
            await h.keys("2")
            await h.until(lambda: h.d.queues.selected is not None)
            await h.keys("D")
            await h.until(lambda: h.d.operator.dialog is not None)
            assert h.d.operator.dialog is not None and h.d.operator.dialog.focus == CANCEL
            await h.keys(ENTER)  # Cancel: nothing is sent
            await asyncio.sleep(0.1)
            assert sent == []
            await h.keys("D")
            await h.until(lambda: h.d.operator.dialog is not None)
            await h.keys(TAB + ENTER)
            await h.until(lambda: "requeue-dead: 3 requeued" in h.messages())
            assert sent == [("requeue-dead", "work.dlq", None, None)]

        run(h, scenario)
    assert h.bulk.calls == [] and not h.audit.exists()  # serve ran and audited it
