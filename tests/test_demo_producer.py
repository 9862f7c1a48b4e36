"""The demo workload: every kind within one deck, routing to the two queues, scoped revokes."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lazycelery.demo.environment import DemoEnvironment
from lazycelery.demo.producer import DECK, Producer, parse_destinations

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
