"""The worker detail's model, on replies recorded from a real prefork worker on Redis
(tests/data/worker_detail_replies.json: 2 tasks running, 2 reserved, 1 revoked id)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lazycelery.core.model import WorkerRecord
from lazycelery.core.worker_detail import (
    QUERIES,
    WorkerNotAnswering,
    detail_rows,
    fetch_replies,
    summarize,
)

DATA = Path(__file__).parent / "data" / "worker_detail_replies.json"
HOST = "lcw-rec@testhost"


@pytest.fixture
def recorded() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DATA.read_text())
    return data


def replies_of(recorded: dict[str, Any]) -> dict[str, Any]:
    return {m: recorded[m][HOST] for m in QUERIES}


def test_summary_of_a_real_prefork_worker(recorded: dict[str, Any]) -> None:
    now = recorded["_recorded_at"]
    d = summarize(HOST, replies_of(recorded), now=now)
    stats = recorded["stats"][HOST]
    assert d.pool == "prefork:TaskPool"
    assert d.pool_size == 2
    assert d.processes == tuple(stats["pool"]["processes"]) and len(d.processes) == 2
    assert d.prefetch_count == 2
    assert d.transport == "redis"
    assert d.utime == pytest.approx(0.551473) and d.stime == pytest.approx(0.112596)
    assert d.maxrss_kib == 63100
    assert d.queues == (("lcq-rec", "lcq-rec", "lcq-rec"),)
    assert "workerapp.sleepy" in d.registered and list(d.registered) == sorted(d.registered)
    assert (d.reserved, d.scheduled, d.revoked) == (2, 0, 1)
    assert len(d.active) == 2
    assert {t.pid for t in d.active} == set(d.processes)
    for task in d.active:
        assert task.name == "workerapp.sleepy"
        assert task.runtime is not None and 0.5 < task.runtime < 2.0
    assert d.missing == ()
    assert d.heartbeat_age is None and d.loadavg is None


def test_heartbeat_facts_come_from_the_workers_events(recorded: dict[str, Any]) -> None:
    now = recorded["_recorded_at"]
    rec = WorkerRecord(hostname=HOST)
    rec.last_heartbeat = now - 4.0
    rec.loadavg = (0.5, 0.25, 0.125)
    rec.sw_ver, rec.sw_sys = "5.6.0", "Linux"
    d = summarize(HOST, replies_of(recorded), now=now, record=rec)
    assert d.heartbeat_age == pytest.approx(4.0)
    rows = dict(detail_rows(d))["Worker"]
    assert ("load avg", "0.50 0.25 0.12") in rows or ("load avg", "0.50 0.25 0.13") in rows
    assert ("software", "5.6.0 Linux") in rows
    assert ("heartbeat", "4s ago") in rows


def test_rows_show_what_the_worker_said(recorded: dict[str, Any]) -> None:
    d = summarize(HOST, replies_of(recorded), now=recorded["_recorded_at"])
    sections = dict(detail_rows(d))
    worker = dict(sections["Worker"])
    assert worker["processes"] == ", ".join(str(p) for p in d.processes)
    assert worker["prefetch"] == "2"
    assert dict(sections["Resources (inspect stats rusage: main process only, not its pool)"])[
        "max rss"].startswith("61.6 MiB")
    assert dict(sections["Tasks"])["revoked"] == "1"
    assert ("", "workerapp.add") in sections["Registered tasks (7)"]
    assert len(sections["Active tasks"]) == 2
    json.dumps(d.as_json())  # serialisable as it is


def test_missing_and_odd_replies_do_not_raise(recorded: dict[str, Any]) -> None:
    replies = replies_of(recorded)
    replies.update(active=None, registered=None, reserved="odd", active_queues=[{"name": 3}, 7])
    replies["stats"] = {**replies["stats"], "pool": "odd", "rusage": None, "clock": "x"}
    d = summarize(HOST, replies, now=0.0)
    assert d.pool is None and d.processes == () and d.utime is None
    assert "active" in d.missing and "registered" in d.missing
    sections = dict(detail_rows(d))
    assert dict(sections["Tasks"])["active"] == "no reply"
    assert sections["Registered tasks (0)"] == [("", "no reply")]
    assert sections["Queues"] == [("", "none")]


def test_escape_sequences_in_replies_are_made_visible(recorded: dict[str, Any]) -> None:
    replies = replies_of(recorded)
    replies["registered"] = ["evil\x1b[2Jtask"]
    rows = dict(detail_rows(summarize(HOST, replies, now=0.0)))["Registered tasks (1)"]
    assert "\x1b" not in rows[0][1]


class _Inspect:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __getattr__(self, method: str) -> Any:
        def call() -> Any:
            self.asked.append(method)
            return self.answers.get(method)
        return call


class _App:
    def __init__(self, inspect: _Inspect) -> None:
        self._inspect = inspect
        self.destinations: list[Any] = []
        self.control = self

    def inspect(self, destination: Any = None, timeout: float = 1.0) -> _Inspect:
        self.destinations.append(destination)
        return self._inspect


def test_fetch_names_the_worker_and_fails_in_one_line_when_it_is_silent(
        recorded: dict[str, Any]) -> None:
    full = _Inspect({m: recorded[m] for m in QUERIES})
    app = _App(full)
    replies = fetch_replies(app, HOST, timeout=0.5)
    assert app.destinations == [[HOST]]  # never a broadcast
    assert full.asked == list(QUERIES) and replies["stats"]["pid"] == 25656
    silent = _App(_Inspect({}))
    with pytest.raises(WorkerNotAnswering, match=r"^worker w9@h did not answer inspect stats "
                                                 r"within 0\.5s$"):
        fetch_replies(silent, "w9@h", timeout=0.5)


def test_model_fetches_off_thread_throttles_and_drops_a_stale_answer(
        recorded: dict[str, Any]) -> None:
    import threading

    from lazycelery.tui.screen.worker_detail import WorkerDetailModel

    now = [100.0]  # a still clock: the second refresh falls within the throttle
    release = threading.Event()
    threads: list[str] = []

    def fetch(host: str) -> Any:
        threads.append(threading.current_thread().name)
        release.wait(5)
        return summarize(host, replies_of(recorded), now=0.0)

    model = WorkerDetailModel(clock=lambda: now[0])
    model.fetcher = fetch
    model.show("a@h")
    assert model.fetching and model.refresh() == "already fetching"
    model.show("b@h")  # another worker while a's answer is on its way
    release.set()
    model.wait()
    # a's answer is not shown as b's; b is asked as soon as a's fetch ended
    assert model.hostname == "b@h" and model.detail is not None
    assert model.detail.hostname == "b@h" and len(threads) == 2
    assert threads[1].endswith("b@h")
    assert model.refresh() is not None and "again in" in str(model.refresh())
    assert threads and all(name.startswith("lazycelery-worker-detail-") for name in threads)
