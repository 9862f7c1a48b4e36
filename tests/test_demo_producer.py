"""The demo workload: every kind within one deck, routing to the two queues, scoped revokes."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lazycelery.demo.environment import DemoEnvironment
from lazycelery.demo.producer import (
    BURST,
    DECK,
    PAUSE_FIRST,
    LongTask,
    Producer,
    QueuePause,
    parse_destinations,
)

pytest.importorskip("celery")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Any]:
    """The demo app's configuration on kombu's in-memory transport and a memory backend."""
    from lazycelery.demo.factory import create_app

    environment = DemoEnvironment("memory://", tmp_path, "cache+memory://", "t-")
    app = create_app(environment)
    yield app
    app.close()


@pytest.fixture
def published() -> Iterator[list[dict[str, Any]]]:
    from celery.signals import before_task_publish

    sent: list[dict[str, Any]] = []

    def record(sender: str | None = None, headers: dict[str, Any] | None = None,
               routing_key: str | None = None, properties: dict[str, Any] | None = None,
               **_: Any) -> None:
        sent.append({"name": sender, "routing_key": routing_key,
                     "priority": (properties or {}).get("priority"),
                     "eta": (headers or {}).get("eta"), "expires": (headers or {}).get("expires")})

    before_task_publish.connect(record, weak=False)
    yield sent
    before_task_publish.disconnect(record)


class Revokes:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, task_id: str, **kwargs: Any) -> None:
        self.calls.append((task_id, kwargs))


def test_one_deck_holds_every_kind_at_its_weight(app: Any, published: list[dict[str, Any]],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app.control, "revoke", Revokes())
    producer = Producer(app, random.Random(7), ["demo1@h", "demo2@h"])
    kinds = [producer.step() for _ in DECK]
    assert sorted(kinds) == sorted(DECK)
    names = {p["name"] for p in published}
    assert {"demo.add", "demo.charge_card", "demo.fetch_url", "demo.generate_report",
            "demo.send_reminder", "demo.fetch_rows", "demo.resize_image", "demo.count_words",
            "demo.send_email", "demo.notify"} <= names


def test_routing_priorities_and_eta(app: Any, published: list[dict[str, Any]],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app.control, "revoke", Revokes())
    producer = Producer(app, random.Random(1), ["demo1@h"])
    for _ in range(3 * len(DECK)):
        producer.step()
    by_name: dict[str, list[dict[str, Any]]] = {}
    for message in published:
        by_name.setdefault(message["name"], []).append(message)
    assert {m["routing_key"] for m in by_name["demo.send_email"]} == {"t-priority"}
    assert {m["routing_key"] for m in by_name["demo.notify"]} == {"t-priority"}
    assert {m["priority"] for m in by_name["demo.notify"]} == {9}
    assert {m["routing_key"] for m in by_name["demo.add"]} == {"t-default"}
    assert all(m["eta"] for m in by_name["demo.send_reminder"])


def test_revokes_go_only_to_the_demo_workers(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    revokes = Revokes()
    monkeypatch.setattr(app.control, "revoke", revokes)
    now = [0.0]
    producer = Producer(app, random.Random(3), ["demo1@h", "demo2@h"], clock=lambda: now[0])
    for _ in range(10):
        producer._send_revoke()
    scheduled = list(producer.pending)
    assert scheduled, "no revoke was scheduled in ten tries"
    now[0] = 100.0
    producer.send_due_revokes()
    assert producer.pending == []
    assert [task_id for task_id, _ in revokes.calls] == [r.task_id for r in scheduled]
    for _, kwargs in revokes.calls:
        assert kwargs["destination"] == ["demo1@h", "demo2@h"]
    assert {kwargs["terminate"] for _, kwargs in revokes.calls} <= {True, False}


def test_no_destinations_means_no_revokes_and_no_backend_no_chords(app: Any) -> None:
    producer = Producer(app, random.Random(5), [], chords=False)
    kinds = [producer.next_kind() for _ in range(4 * len(DECK))]
    assert "revoke" not in kinds
    assert "chord" not in kinds
    assert {"add", "chain", "group", "fetch_url"} <= set(kinds)


def test_every_kind_in_the_deck_has_a_sender(app: Any) -> None:
    assert set(DECK) == set(Producer(app, random.Random(), [])._senders)


def test_parse_destinations() -> None:
    assert parse_destinations(" demo1@a, ,demo2@a ") == ["demo1@a", "demo2@a"]
    assert parse_destinations(None) == []


class Control:
    """Records cancel_consumer / add_consumer; answers like the workers named in ``up``."""

    def __init__(self, up: list[str]) -> None:
        self.up = up
        self.calls: list[tuple[str, str, list[str]]] = []

    def _call(self, command: str, queue: str, destination: list[str], **kwargs: Any
              ) -> list[dict[str, Any]]:
        assert kwargs["reply"] is True  # scoped and answered, never a silent broadcast
        self.calls.append((command, queue, list(destination)))
        return [{name: {"ok": command}} for name in destination if name in self.up]

    def cancel_consumer(self, queue: str, destination: list[str], **kwargs: Any
                        ) -> list[dict[str, Any]]:
        return self._call("cancel", queue, destination, **kwargs)

    def add_consumer(self, queue: str, destination: list[str], **kwargs: Any
                     ) -> list[dict[str, Any]]:
        return self._call("add", queue, destination, **kwargs)


def test_the_priority_queue_is_paused_then_resumed_on_its_workers_only() -> None:
    control = Control(up=[])
    bursts: list[float] = []
    pause = QueuePause(SimpleNamespace(control=control), "t-priority", ["demo2@h"], start=100.0,
                       burst=lambda: bursts.append(1), first=4, length=20, every=60)
    pause.step(103.9)
    assert control.calls == []
    pause.step(104.0)  # no worker up yet: nobody answered, so no pause; tried again in 2 s
    assert control.calls == [("cancel", "t-priority", ["demo2@h"])] and not pause.paused
    control.up.append("demo2@h")
    pause.step(105.0)
    assert len(control.calls) == 1
    pause.step(106.0)
    assert pause.paused and pause.pauses == 1 and bursts == [1]
    pause.step(125.9)
    assert pause.paused
    pause.step(126.0)
    assert not pause.paused
    assert control.calls[-1] == ("add", "t-priority", ["demo2@h"])
    pause.step(165.9)
    assert not pause.paused
    pause.step(166.0)  # every 60 s from the start of the last pause
    assert pause.paused and pause.pauses == 2
    pause.resume_now()  # the producer stops: the queue is consumed again
    assert control.calls[-1][0] == "add" and not pause.paused
    pause.resume_now()
    assert [c[0] for c in control.calls] == ["cancel", "cancel", "add", "cancel", "add"]


def test_no_priority_workers_no_pauses() -> None:
    control = Control(up=["demo1@h"])
    pause = QueuePause(SimpleNamespace(control=control), "priority", [], start=0.0)
    for now in range(0, 300, 5):
        pause.step(float(now))
    assert control.calls == []


def test_the_pause_sends_a_burst_with_priorities(app: Any, published: list[dict[str, Any]],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    control = Control(up=["demo2@h"])
    monkeypatch.setattr(app.control, "cancel_consumer", control.cancel_consumer)
    now = [0.0]
    producer = Producer(app, random.Random(2), ["demo1@h", "demo2@h"], clock=lambda: now[0],
                        pause_workers=["demo2@h"], long_task=False)
    assert producer.pause.queue == "t-priority"
    now[0] = PAUSE_FIRST
    producer.step()
    emails = [m for m in published if m["name"] == "demo.send_email"]
    assert len(emails) >= BURST
    assert {m["routing_key"] for m in emails} == {"t-priority"}
    assert {m["priority"] for m in emails} == set(range(10))  # every Redis priority sub-list


def test_one_long_task_at_a_time(app: Any, published: list[dict[str, Any]]) -> None:
    long_task = LongTask(app, seconds=240, check_every=15)
    ended = {"yes": False}
    long_task._ended = lambda task_id, now: ended["yes"]  # type: ignore[method-assign]
    long_task.step(0.0)
    long_task.step(5.0)  # not time to check yet
    long_task.step(15.0)  # still running
    assert long_task.sent == 1
    ended["yes"] = True  # finished, or terminated from the dashboard
    long_task.step(30.0)
    assert long_task.sent == 2
    sent = [m for m in published if m["name"] == "demo.rebuild_search_index"]
    assert len(sent) == 2 and {m["routing_key"] for m in sent} == {"t-default"}


def test_without_a_backend_the_long_task_is_sent_again_after_its_run(tmp_path: Path) -> None:
    from lazycelery.demo.factory import create_app

    app = create_app(DemoEnvironment("memory://", tmp_path, None, "t-"))
    long_task = LongTask(app, seconds=100, check_every=10)
    assert not long_task._ended("x", 50.0)
    assert long_task._ended("x", 110.0)
    app.close()
