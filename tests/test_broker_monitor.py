"""QueueMonitor with a scripted inspector: whole-snapshot swaps, stale on error, rates, prompt stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

import pytest

from conftest import wait_for
from lazycelery.broker.model import PeekedMessage, QueueSnapshot, QueueStats, Source
from lazycelery.broker.monitor import QueueMonitor, with_rates
from lazycelery.broker.rates import SmoothedRates
from lazycelery.broker.workers import merge_consumers
from lazycelery.errors import BrokerError


class ScriptedInspector:
    """Replays depths (or errors) one snapshot at a time: pure logic, no broker."""

    transport = "script"
    source = "script"

    def __init__(self, script: Iterable[dict[str, int] | Exception], start: float = 1000.0,
                 step: float = 1.0) -> None:
        self.script = list(script)
        self.clock = start
        self.step = step
        self.calls = 0
        self.watched: set[str] = set()
        self.block = threading.Event()
        self.block.set()

    def snapshot(self) -> QueueSnapshot:
        self.block.wait()
        item = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        self.clock += self.step
        if isinstance(item, Exception):
            raise item
        queues = tuple(QueueStats(name=n, ready=r, sources={"ready": Source.REDIS_LLEN})
                       for n, r in sorted(item.items()))
        return QueueSnapshot(taken_at=self.clock, queues=queues, source="script")

    def stats(self, queue: str) -> QueueStats:
        raise NotImplementedError

    def peek(self, queue: str, n: int = 10) -> list[PeekedMessage]:
        raise NotImplementedError

    def purge(self, queue: str) -> int:
        raise NotImplementedError

    def watch_queues(self, names: Iterable[str]) -> None:
        self.watched.update(names)

    def worker_hostnames(self) -> list[str]:
        return []

    def close(self) -> None:
        pass


def test_error_keeps_last_good_snapshot_marked_stale() -> None:
    inspector = ScriptedInspector([{"a": 5}, BrokerError("cannot reach redis"), {"a": 7}])
    monitor = QueueMonitor(inspector)
    assert monitor.snapshot.stale and monitor.snapshot.error == "no snapshot yet"
    good = monitor.refresh()
    assert not good.stale and good.get("a") is not None
    stale = monitor.refresh()
    assert stale.stale and stale.error == "cannot reach redis"
    assert stale.taken_at == good.taken_at and stale.queues == good.queues
    fresh = monitor.refresh()
    assert not fresh.stale and fresh.error is None
    assert fresh.get("a") == QueueStats(name="a", ready=7, net_rate=pytest.approx(1.0),
                                        sources={"ready": Source.REDIS_LLEN,
                                                 "net_rate": Source.DEPTH_DELTA})


def test_error_before_any_success_is_stale_and_empty() -> None:
    monitor = QueueMonitor(ScriptedInspector([BrokerError("refused")]))
    snapshot = monitor.refresh()
    assert snapshot.stale and snapshot.error == "refused" and snapshot.queues == ()


def test_unexpected_exception_does_not_escape() -> None:
    monitor = QueueMonitor(ScriptedInspector([RuntimeError("bug")]))
    assert monitor.refresh().error == "RuntimeError: bug"


def test_net_rate_from_successive_snapshots() -> None:
    inspector = ScriptedInspector([{"a": 0, "b": 10}, {"a": 4, "b": 6}, {"a": 4, "b": 6}],
                                  step=2.0)
    monitor = QueueMonitor(inspector, half_life_s=2.0)
    first = monitor.refresh()
    assert all(q.net_rate is None for q in first.queues)
    second = monitor.refresh()
    assert [q.net_rate for q in second.queues] == [pytest.approx(2.0), pytest.approx(-2.0)]
    third = monitor.refresh()  # one half-life of zero change halves the rate
    assert [q.net_rate for q in third.queues] == [pytest.approx(1.0), pytest.approx(-1.0)]


def test_with_rates_leaves_unknown_depths_alone() -> None:
    snapshot = QueueSnapshot(taken_at=1.0, source="s",
                             queues=(QueueStats(name="x", ready=None, missing=True),))
    assert with_rates(snapshot, SmoothedRates()) == snapshot


def test_listeners_get_every_snapshot_and_can_unsubscribe() -> None:
    monitor = QueueMonitor(ScriptedInspector([{"a": 1}]))
    seen: list[QueueSnapshot] = []
    unsubscribe = monitor.on_update(seen.append)
    monitor.on_update(lambda s: 1 / 0)  # a failing listener must not stop the others
    first = monitor.refresh()
    unsubscribe()
    monitor.refresh()
    assert seen == [first]


def test_thread_publishes_and_stops_promptly() -> None:
    inspector = ScriptedInspector([{"a": 1}])
    monitor = QueueMonitor(inspector, interval=600.0).start()
    wait_for(lambda: not monitor.snapshot.stale, timeout=60, what="first snapshot")
    assert inspector.calls == 1  # then it waits 600 s ...
    started = time.monotonic()
    monitor.stop()  # ... but stop() interrupts the wait (10 s: room for a loaded machine)
    assert time.monotonic() - started < 10
    assert not monitor.running


def test_wake_refreshes_before_the_interval() -> None:
    inspector = ScriptedInspector([{"a": 1}])
    monitor = QueueMonitor(inspector, interval=30.0).start()
    try:
        wait_for(lambda: inspector.calls == 1, timeout=5, what="first snapshot")
        monitor.wake()
        wait_for(lambda: inspector.calls == 2, timeout=5, what="a woken snapshot")
    finally:
        monitor.stop()


def test_refresh_in_caller_delays_the_threads_first_read() -> None:
    inspector = ScriptedInspector([{"a": 1}])
    monitor = QueueMonitor(inspector, interval=30.0)
    monitor.refresh()
    monitor.start()
    try:
        time.sleep(0.3)  # asserting that something does NOT happen needs a wait
        assert inspector.calls == 1
    finally:
        monitor.stop()


def test_worker_probe_watches_queues_and_fills_consumers() -> None:
    inspector = ScriptedInspector([{"a": 1, "b": 2}])
    monitor = QueueMonitor(inspector, workers=lambda: {"a": ["w1@h", "w2@h"], "c": ["w1@h"]})
    snapshot = monitor.refresh()
    assert inspector.watched == {"a", "c"}
    assert [(q.name, q.consumers, q.sources.get("consumers")) for q in snapshot.queues] == [
        ("a", 2, Source.WORKERS), ("b", 0, Source.WORKERS)]


def test_failing_worker_probe_is_a_note_not_an_outage() -> None:
    def probe() -> dict[str, list[str]]:
        raise TimeoutError("no reply")

    snapshot = QueueMonitor(ScriptedInspector([{"a": 1}]), workers=probe).refresh()
    assert not snapshot.stale
    assert any("no reply" in note for note in snapshot.notes)


def test_broker_consumer_counts_win_over_workers() -> None:
    snapshot = QueueSnapshot(taken_at=1.0, source="s", queues=(
        QueueStats(name="a", ready=0, consumers=3, sources={"consumers": Source.AMQP_DECLARE}),))
    merged = merge_consumers(snapshot, {"a": ["w1"]})
    assert merged.queues[0].consumers == 3
    assert merged.queues[0].sources["consumers"] == Source.AMQP_DECLARE


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError):
        QueueMonitor(ScriptedInspector([{}]), interval=0)


def test_workers_are_asked_again_soon_until_one_answers() -> None:
    # the dashboard started before its workers: the first answers are empty
    answers: list[dict[str, list[str]]] = [{}, {}, {"a": ["w1@h"]}]
    calls: list[float] = []

    def probe() -> dict[str, list[str]]:
        calls.append(time.monotonic())
        return answers[min(len(calls), len(answers)) - 1]

    monitor = QueueMonitor(ScriptedInspector([{"a": 1}]), interval=0.05, workers=probe,
                           workers_every_s=3600.0)
    first = monitor.refresh().get("a")
    assert first is not None and first.consumers == 0
    # not 3600 s later: after the interval, then twice that
    wait_for(lambda: (q := monitor.refresh().get("a")) is not None and q.consumers == 1,
             timeout=10, interval=0.01, what="consumers from the third probe")
    assert len(calls) == 3 and calls[2] - calls[1] >= calls[1] - calls[0] > 0
    for _ in range(20):  # once a worker answered, the next probe waits workers_every_s
        monitor.refresh()
    assert len(calls) == 3
