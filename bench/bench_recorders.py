"""Benchmark 9b: several `lazycelery record` processes feeding one PostgreSQL store.

* RabbitMQ, ``--shared-queue``: the shared durable queue is filled with N task events (the
  recorded Redis stream, fresh task ids, as JSON bodies on the ``celeryev`` exchange), then 1 or
  2 recorders are started on it and drain it. Events per second = stored transitions / time from
  the first stored row to the last; per recorder = its own ``stopped: N events recorded`` line.
* Redis, ``--shard I/N``: the same events are published by a paced publisher (PUB/SUB keeps
  nothing: every recorder must keep up live) to 1 recorder (everything) or 2 (``0/2``, ``1/2``).

Loss = events published - transitions stored (task events only are published, so every one is a
row). The recorders are real subprocesses; PostgreSQL is the local server. Each setting runs
``repeats`` times, 1 and 2 recorders alternating; medians, and 2 recorders / 1 as a ratio.

* Row locks: what the PostgreSQL merge under row locks (several writers safe) costs one writer,
  against the plain read-merge-upsert (safe for one writer only), in-process as in
  bench_store.py, alternating in the same run.

    python bench/bench_recorders.py [--quick] [--only amqp,redis]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from bench_store import _postgres_url
from common import (
    REPO,
    RabbitVhost,
    RedisServer,
    log,
    median,
    rabbit_available,
    redis_stream_copies,
)

PACED_RATE = 20_000


def _messages(copies: int) -> tuple[list[tuple[str, bytes, bytes]], int]:
    """(routing key, body, whole kombu envelope) of each message holding task events, and the
    number of task events in them (worker events are left out: they are not task rows)."""
    out = []
    events = 0
    for data in redis_stream_copies(copies):
        env = json.loads(data)
        body = json.loads(base64.b64decode(env["body"]))
        evs = body if isinstance(body, list) else [body]
        tasks = [e for e in evs if str(e.get("type", "")).startswith("task-")]
        if len(tasks) != len(evs) or not tasks:
            continue
        events += len(tasks)
        key = env["properties"]["delivery_info"]["routing_key"]
        out.append((key, json.dumps(body).encode(), data))
    return out, events


def _recorder(broker: str, store: str, *extra: str, name: str, tmp: Path) -> Any:
    err = (tmp / f"{name}.stderr").open("wb")
    env = dict(os.environ)
    env.pop("LAZYCELERY_STORE", None)
    proc = subprocess.Popen([sys.executable, "-m", "lazycelery", "record", "--broker", broker,
                             "--store", store, "--status-every", "0", "--no-backfill", *extra],
                            cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    proc.err_path = tmp / f"{name}.stderr"  # type: ignore[attr-defined]
    return proc


def _gaps(store: str) -> list[str]:
    """The gaps the recorders wrote (source: cause, events lost)."""
    import psycopg

    with psycopg.connect(store, autocommit=True) as conn:
        rows = conn.execute("SELECT source, cause, lost_events FROM gaps ORDER BY gap_start")
        return [f"{r[0]}: {r[1]}" + (f" ({r[2]:,} events)" if r[2] else "") for r in rows]


def _stop(procs: list[Any]) -> list[int]:
    written = []
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        text = proc.err_path.read_text(errors="replace")
        found = re.search(r"stopped: ([\d,]+) events recorded", text)
        written.append(int(found.group(1).replace(",", "")) if found else -1)
    return written


def _count(conn: Any) -> int:
    return int(conn.execute("SELECT count(*) FROM transitions").fetchone()[0])


def _follow(store: str, expected: int, idle: float = 15.0, limit: float = 600.0,
            start: float | None = None) -> tuple[int, float | None, float | None]:
    """Poll the stored transitions until ``expected`` (or no progress for ``idle`` s): the
    count, and the times (``time.monotonic``) the first and the last rows appeared (``start``
    instead of the first when given)."""
    import psycopg

    first, last = start, None
    count = 0
    deadline = time.monotonic() + limit
    with psycopg.connect(store, autocommit=True) as conn:
        while time.monotonic() < deadline:
            try:
                now_count = _count(conn)
            except psycopg.errors.UndefinedTable:
                now_count = 0
            now = time.monotonic()
            if now_count > count:
                first = now if first is None else first
                last, count = now, now_count
            if count >= expected or (last is not None and now - last > idle):
                break
            time.sleep(0.05)
    return count, first, last


def _result(events: int, count: int, first: float | None, last: float | None,
            per_recorder: list[int]) -> dict[str, Any]:
    seconds = (last - first) if first is not None and last is not None else None
    return {"events": events, "stored": count, "lost": events - count,
            "seconds": seconds, "events_per_s": count / seconds if seconds else None,
            "per_recorder_written": per_recorder}


def _amqp_step(url: str, messages: list[tuple[str, bytes, bytes]], events: int,
               recorders: int, tmp: Path) -> dict[str, Any]:
    import amqp

    from lazycelery.core.ingest_amqp import parse_amqp_url, shared_event_queue

    name = f"lc.bench.{uuid.uuid4().hex[:8]}"
    queue = shared_event_queue(name)
    ep = parse_amqp_url(url)
    conn = amqp.Connection(host=ep.address, userid=ep.userid, password=ep.password,
                           virtual_host=ep.virtual_host)
    conn.connect()
    ch = conn.channel()
    ch.exchange_declare(queue.exchange, "topic", durable=True, auto_delete=False)
    ch.queue_declare(name, durable=True, exclusive=False, auto_delete=False,
                     arguments=queue.arguments)
    ch.queue_bind(name, queue.exchange, "#")
    for key, body, _ in messages:
        ch.basic_publish(amqp.Message(body, content_type="application/json",
                                      content_encoding="utf-8"), exchange=queue.exchange,
                         routing_key=key)
    while ch.queue_declare(name, passive=True).message_count < len(messages):
        time.sleep(0.1)
    with _postgres_url() as store:
        procs = [_recorder(url, store, "--shared-queue", name, name=f"amqp{recorders}-{i}",
                           tmp=tmp) for i in range(recorders)]
        try:
            count, first, last = _follow(store, events)
        finally:
            per = _stop(procs)
        gaps = _gaps(store)
    ch.queue_delete(name)
    conn.close()
    return {**_result(events, count, first, last, per), "gaps": gaps}


def _redis_step(url: str, messages: list[tuple[str, bytes, bytes]], events: int,
                recorders: int, tmp: Path) -> dict[str, Any]:
    import redis

    client = redis.Redis.from_url(url)
    db = int(url.rsplit("/", 1)[1])
    with _postgres_url() as store:
        procs = [_recorder(url, store, *(("--shard", f"{i}/{recorders}") if recorders > 1
                                         else ()), name=f"redis{recorders}-{i}", tmp=tmp)
                 for i in range(recorders)]
        try:
            # every recorder subscribed: pub/sub keeps nothing for a late subscriber
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                subs = sum(1 for c in client.client_list() if int(c.get("psub", 0)) > 0)
                if subs >= recorders:
                    break
                time.sleep(0.1)
            time.sleep(0.5)
            started = time.monotonic()
            start = time.perf_counter()
            pipe = client.pipeline(transaction=False)
            for sent, (key, _, envelope) in enumerate(messages, 1):
                pipe.publish(f"/{db}.celeryev/{key}", envelope)
                if sent % 200 == 0:
                    pipe.execute()
                    due = start + sent * (events / len(messages)) / PACED_RATE
                    pause = due - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)
            pipe.execute()
            publish_s = time.perf_counter() - start
            count, first, last = _follow(store, events, start=started)
        finally:
            per = _stop(procs)
        gaps = _gaps(store)
    client.close()
    out = {**_result(events, count, first, last, per), "gaps": gaps}
    out["publish_rate"] = events / publish_s
    return out


def _summary(steps: dict[int, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n, runs in steps.items():
        rates = [r["events_per_s"] or 0.0 for r in runs]
        per = [sorted(r["per_recorder_written"]) for r in runs]
        out[str(n)] = {"events_per_s_median": median(rates), "events_per_s": rates,
                       "lost_total": sum(r["lost"] for r in runs),
                       "lost": [r["lost"] for r in runs],
                       "per_recorder_written_median": [median([p[i] for p in per])
                                                       for i in range(n)],
                       "runs": runs}
    one, two = out.get("1"), out.get("2")
    if one and two and one["events_per_s_median"]:
        out["ratio_2_vs_1"] = two["events_per_s_median"] / one["events_per_s_median"]
    return out


def _lock_cost(copies: int, repeats: int) -> dict[str, Any]:
    """One in-process writer into PostgreSQL (bench_store.py's feed): the merge under row locks
    against the plain read-merge-upsert, alternating."""
    from bench_store import _one, _stream

    from lazycelery.store.backend import Store
    from lazycelery.store.postgres import PostgresStore

    events = _stream(copies)
    locked = PostgresStore._write_tasks
    rates: dict[str, list[float]] = {"row_locks": [], "plain": []}
    try:
        for _ in range(repeats):
            for name in ("plain", "row_locks"):
                PostgresStore._write_tasks = (  # type: ignore[method-assign]
                    Store._write_tasks if name == "plain" else locked)
                with _postgres_url() as url:
                    rates[name].append(_one(url, events, None)["events_per_s"])
    finally:
        PostgresStore._write_tasks = locked  # type: ignore[method-assign]
    out: dict[str, Any] = {"events": len(events), "events_per_s": rates,
                           "row_locks_median": median(rates["row_locks"]),
                           "plain_median": median(rates["plain"])}
    out["ratio_row_locks_vs_plain"] = out["row_locks_median"] / out["plain_median"]
    return out


def run(quick: bool, only: tuple[str, ...] = ("amqp", "redis", "locks")) -> dict[str, Any]:
    import tempfile

    copies = 4 if quick else 12
    repeats = 1 if quick else 3
    messages, events = _messages(copies)
    log(f"recorders: {events:,} task events in {len(messages):,} messages ({copies} copies)")
    out: dict[str, Any] = {"events": events, "paced_rate": PACED_RATE, "cpus": os.cpu_count(),
                           "repeats": repeats}
    with tempfile.TemporaryDirectory(prefix="lc-bench-rec-") as tmp_name:
        tmp = Path(tmp_name)
        if "amqp" in only:
            if not rabbit_available():
                out["amqp"] = {"skipped": "no RabbitMQ"}
            else:
                steps: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
                with RabbitVhost() as vhost:
                    for _ in range(repeats):
                        for n in (1, 2):
                            step = _amqp_step(vhost.url, messages, events, n, tmp)
                            steps[n].append(step)
                            log(f"amqp shared queue, {n} recorder(s): {step}")
                out["amqp"] = _summary(steps)
        if "redis" in only:
            steps = {1: [], 2: []}
            with RedisServer() as server:
                for _ in range(repeats):
                    for n in (1, 2):
                        step = _redis_step(server.url, messages, events, n, tmp)
                        steps[n].append(step)
                        log(f"redis, {n} recorder(s): {step}")
            out["redis"] = _summary(steps)
    if "locks" in only:
        out["locks"] = _lock_cost(8 if quick else 20, repeats)
        log(f"row locks: {out['locks']['row_locks_median']:,.0f} events/s, plain "
            f"{out['locks']['plain_median']:,.0f} ({out['locks']['ratio_row_locks_vs_plain']:.2f}x)")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="amqp,redis,locks")
    args = parser.parse_args()
    result = run(args.quick, tuple(n.strip() for n in args.only.split(",") if n.strip()))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
