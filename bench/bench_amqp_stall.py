"""The AMQP fast path while its ingest thread is held past the event queue's 5 s TTL: events lost.

A consumer process (this tree, or ``--before DIR``: another version's ``lazycelery`` package)
runs ``Ingestor(mode="fast")`` on a private vhost; its ``on_batch`` is held (as a busy process
holds the ingest thread off the GIL) while ``--rate`` events/s are published for ``--seconds``;
it is released once the last event has been in the queue for longer than the TTL. Reported:
events applied, lost (expired in RabbitMQ's queue: nobody is told), and how long the consumer
took to apply what it had once released.

    git archive main lazycelery | tar -x -C /tmp/before
    .venv/bin/python bench/bench_amqp_stall.py --rate 5000 --seconds 8 --before /tmp/before
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import RabbitVhost, log, rabbit_available

TTL = 5.0  # celery's event_queue_ttl: the consumer's queue drops older messages

CHILD = r"""
import sys, threading, time
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest import CONNECTED, Ingestor

hold, release = threading.Event(), threading.Event()

def on_batch(events, records):
    if hold.is_set() and not release.is_set():
        release.wait(600)

index = TaskIndex()
ingestor = Ingestor(sys.argv[1], index, mode="fast", wakeup=False, on_batch=on_batch)
ingestor.start()
while ingestor.status.state != CONNECTED:
    time.sleep(0.05)
print("ready", ingestor.path, flush=True)
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "hold":
        hold.set()
    elif cmd == "release":
        release.set()
    elif cmd == "cpu":
        print(int(time.process_time() * 1e6), flush=True)
        continue
    elif cmd == "stop":
        break
    print(index.events_total, flush=True)
ingestor.stop()
"""


def _body(i: int, padding: int) -> bytes:
    return json.dumps({"hostname": "stall@bench", "utcoffset": 0, "pid": 1, "clock": i,
                       "uuid": f"stall-{i}", "name": "bench.stall", "args": "x" * padding,
                       "kwargs": "{}", "retries": 0, "timestamp": time.time(),
                       "type": "task-received"}).encode()


def one_run(url: str, source: Path | None, rate: int, seconds: float, padding: int,
            hold: bool = True) -> dict[str, Any]:
    import amqp

    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    child = subprocess.Popen([sys.executable, "-c", CHILD, url], env=env, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             cwd=str(source) if source is not None else None)
    assert child.stdin is not None and child.stdout is not None

    def ask(cmd: str) -> int:
        child.stdin.write(cmd + "\n")  # type: ignore[union-attr]
        child.stdin.flush()  # type: ignore[union-attr]
        return int(child.stdout.readline())  # type: ignore[union-attr]

    try:
        ready = child.stdout.readline().split()
        assert ready and ready[0] == "ready" and ready[1] == "fast", ready
        conn = amqp.Connection(host="127.0.0.1:5672", virtual_host=url.rsplit("/", 1)[1])
        conn.connect()
        ch = conn.channel()

        def publish(i: int) -> None:
            ch.basic_publish(amqp.Message(_body(i, padding), content_type="application/json",
                                          content_encoding="utf-8"),
                             exchange="celeryev", routing_key="task.received")

        cpu0 = ask("cpu")
        if hold:
            ask("hold")
        publish(0)  # the batch that holds the ingest thread
        total = int(rate * seconds)
        started = time.monotonic()
        for i in range(1, total + 1):
            publish(i)
            ahead = started + i / rate - time.monotonic()
            if ahead > 0.005:
                time.sleep(ahead)
        published = time.monotonic()
        if hold:  # the last event has outlived the queue's TTL (the point here)
            time.sleep(TTL + 1.0)
        held = time.monotonic() - started
        conn.close()
        released = time.monotonic()
        applied = ask("release")
        last_change = time.monotonic()
        while time.monotonic() - last_change < 2.0 and applied < total + 1:
            time.sleep(0.05)
            now = ask("count")
            if now != applied:
                applied, last_change = now, time.monotonic()
        catch_up = last_change - released
        cpu_us = (ask("cpu") - cpu0) / max(applied, 1)
        child.stdin.write("stop\n")
        child.stdin.flush()
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)
    return {"published": total + 1, "applied": applied, "lost": total + 1 - applied,
            "publish_s": round(published - started, 2), "held_s": round(held, 1),
            "catch_up_s": round(catch_up, 2), "cpu_us": round(cpu_us, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--padding", type=int, default=300, help="bytes of args per event")
    parser.add_argument("--before", type=Path, help="a directory with another lazycelery")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-hold", action="store_true",
                        help="the ingest thread is never held (the cost of reading ahead)")
    args = parser.parse_args()
    if not rabbit_available():
        sys.exit("no RabbitMQ on 127.0.0.1:5672")
    rows: list[tuple[str, dict[str, Any]]] = []
    with RabbitVhost() as vhost:
        for run in range(1, args.repeats + 1):
            for label, source in (("before", args.before), ("after", None)):
                if label == "before" and source is None:
                    continue
                out = one_run(vhost.url, source, args.rate, args.seconds, args.padding,
                              hold=not args.no_hold)
                log(f"{label} run {run}: {out}")
                rows.append((f"{label}, run {run}", out))
    print("| consumer | published | applied | lost | held | catch-up after release "
          "| consumer CPU/event applied |")
    print("|---|---|---|---|---|---|---|")
    for label, r in rows:
        print(f"| {label} | {r['published']:,} | {r['applied']:,} | **{r['lost']:,}** | "
              f"{r['held_s'] if not args.no_hold else '-'} s | {r['catch_up_s']} s "
              f"| {r['cpu_us']} µs |")


if __name__ == "__main__":
    main()
