"""Benchmark 6: gaps. Kill and restart the private redis-server, and overflow a frozen subscriber;
read what the consumer reports (``Ingestor.status.gap``) and count what was really lost."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import e2e_procs
from bench_e2e import Consumer, Publishers, wait_drained, warm_up
from common import RedisServer, log


class SteadyPublisher(threading.Thread):
    """Task events at a steady rate through celery's dispatcher; survives broker loss by
    rebuilding its connection (and counts what could not be sent)."""

    def __init__(self, url: str, rate: float) -> None:
        super().__init__(name="bench-steady-publisher", daemon=True)
        self.url, self.rate = url, rate
        self.stop = threading.Event()
        self.sent: list[float] = []  # send time of every event published without error
        self.failed = 0  # events that fell due while the broker was unreachable (not sent)

    def run(self) -> None:
        from celery import Celery
        from common import UuidMap, publish_plan

        plan = [m for m in publish_plan() if not m.multi]  # task-sent events, one a message
        fresh = UuidMap()
        app = Celery("bench-steady", broker=self.url, set_as_current=False)
        i = 0
        t0 = time.time()
        while not self.stop.is_set():
            try:
                with app.connection_for_write() as conn:
                    conn.ensure_connection(max_retries=1)
                    disp = app.events.Dispatcher(conn, hostname="bench-steady@localhost",
                                                 buffer_while_offline=False)
                    while not self.stop.is_set():
                        due = t0 + i / self.rate
                        now = time.time()
                        if due > now:
                            time.sleep(due - now)
                        kind, fields = plan[i % len(plan)].events[0]
                        ev = dict(fields, uuid=fresh(fields["uuid"]))
                        ev["root_id"], ev["parent_id"] = ev["uuid"], None
                        i += 1
                        disp.send(kind, **ev)
                        self.sent.append(time.time())
            except Exception:
                self.stop.wait(0.1)
                skip_to = int((time.time() - t0) * self.rate)  # what fell due meanwhile is dropped
                self.failed += max(1, skip_to - i)
                i = max(i + 1, skip_to)


def _gap_fields(stats: dict[str, Any]) -> dict[str, Any]:
    status = stats.get("status") or {}
    return {"state": status.get("state"), "gap": status.get("gap"),
            "status_repr": status.get("repr"), "last_error": status.get("last_error")}


def restart_scenario(kind: str, down_s: float = 3.0) -> dict[str, Any]:
    """Redis is SIGKILLed while events flow and restarted on the same port ``down_s`` later."""
    redis = RedisServer()
    redis.start()
    consumer = Consumer(kind, redis.url)
    pub = SteadyPublisher(redis.url, 1000)
    try:
        warm_up(redis.url, consumer)
        base = consumer.stats()["task"]
        pub.start()
        time.sleep(3.0)
        killed = time.time()
        redis.kill()
        time.sleep(down_s)
        redis.start()
        restarted = time.time()
        # the consumer reconnects with backoff (1, 2, 4 ... s): give it time, then stop publishing
        deadline = time.time() + 20
        stats = consumer.stats()
        while time.time() < deadline:
            stats = consumer.stats()
            status = stats.get("status") or {}
            if status.get("state") == "connected" and status.get("gap") is not None:
                break
            time.sleep(0.2)
        time.sleep(2.0)
        pub.stop.set()
        pub.join(5)
        stats = wait_drained(consumer, base, len(pub.sent), time.time(), quiet=1.0, limit=10)
        received = stats["task"] - base
        published = len(pub.sent)
        result = {"scenario": "redis-server killed and restarted", "kind": kind,
                  "broker_down_s": restarted - killed, "published": published,
                  "not_publishable": pub.failed, "received": received, "lost": published - received,
                  **_gap_fields(stats)}
        if kind in (e2e_procs.CELERY, e2e_procs.RECEIVER):
            result["receiver_errors"] = stats.get("errors")
            result["last_error"] = stats.get("last_error")
        return result
    finally:
        pub.stop.set()
        consumer.stop()
        redis.kill()


def overflow_scenario(kind: str, backlog: int = 80_000) -> dict[str, Any]:
    """The subscriber is frozen (SIGSTOP) while a burst of ~60 MB is published with Redis'
    default ``client-output-buffer-limit pubsub 32mb 8mb 60``: Redis drops it."""
    with RedisServer() as redis:
        pubs = Publishers(redis.url, 2, e2e_procs.REPLAY, backlog // 2 + 1000)
        consumer = Consumer(kind, redis.url)
        try:
            warm_up(redis.url, consumer)
            base = consumer.stats()["task"]
            frozen = time.time()
            os.kill(consumer.pid, signal.SIGSTOP)
            try:
                rep = pubs.run(None, backlog, 2, start_in=0.1)
                time.sleep(0.5)
            finally:
                resumed = time.time()
                os.kill(consumer.pid, signal.SIGCONT)
            deadline = time.time() + 15
            stats = consumer.stats()
            while time.time() < deadline:
                stats = consumer.stats()
                status = stats.get("status") or {}
                if kind not in (e2e_procs.FAST, e2e_procs.KOMBU):
                    if stats.get("errors"):
                        break
                elif status.get("state") == "connected" and status.get("gap") is not None:
                    break
                time.sleep(0.2)
            time.sleep(1.0)
            stats = consumer.stats()
            received = stats["task"] - base
            result = {"scenario": "subscriber overflow (frozen consumer, 32 MB limit)", "kind": kind,
                      "published": rep["events"], "received": received,
                      "frozen_s": resumed - frozen, "burst_s": rep["end"] - rep["start"],
                      "lost": rep["events"] - received, **_gap_fields(stats)}
            if kind in (e2e_procs.CELERY, e2e_procs.RECEIVER):
                result["receiver_errors"] = stats.get("errors")
                result["last_error"] = stats.get("last_error")
            return result
        finally:
            consumer.stop()
            pubs.close()


def run(quick: bool) -> dict[str, Any]:
    try:
        import lazycelery.core.ingest  # noqa: F401
    except ImportError as exc:
        return {"skipped": f"lazycelery.core.ingest not importable: {exc}"}
    runs: list[dict[str, Any]] = []
    restart_kinds = [e2e_procs.FAST] if quick else [e2e_procs.FAST, e2e_procs.KOMBU, e2e_procs.CELERY]
    overflow_kinds = [e2e_procs.FAST] if quick else [e2e_procs.FAST, e2e_procs.KOMBU, e2e_procs.CELERY]
    for kind in restart_kinds:
        log(f"gap: {kind}: kill -9 redis-server for 3 s while 1,000 events/s flow")
        runs.append(restart_scenario(kind))
        log(f"  -> {runs[-1].get('gap')} (lost {runs[-1]['lost']})")
    for kind in overflow_kinds:
        log(f"gap: {kind}: freeze the consumer, publish 80,000 events (~60 MB), resume")
        runs.append(overflow_scenario(kind))
        log(f"  -> {runs[-1].get('gap')} (lost {runs[-1]['lost']})")
    return {"runs": runs}
