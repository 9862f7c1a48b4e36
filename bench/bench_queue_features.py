"""Benchmark: broker round trips (and time) the queue features add to a queue snapshot.

Counts, in the same run, per ``snapshot()`` of a monitor in its steady state:
  redis     round trips (pipelines, SCAN/HSCAN pages, single commands) and commands sent, with
            and without the dead-letter pattern, over 50 queues with 3 waiting messages each
  rabbitmq  management API requests over 21 snapshots at 1 s (the monitor's interval), with
            and without a dead-letter exchange on a queue; the listing's bytes with the two
            extra columns (arguments, policy)
Queue waits (analytics) read the event stream the dashboard already receives: 0 round trips.

Usage: python bench/bench_queue_features.py --redis redis://127.0.0.1:6379/9
                                             --amqp amqp://guest:guest@127.0.0.1:5672/VHOST
The Redis db is flushed before and after. The RabbitMQ vhost must exist (its queues named
``lcb-*`` are deleted after).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import redis
from celery import Celery

from lazycelery.broker.amqp import AmqpInspector
from lazycelery.broker.redis import RedisInspector

QUEUES = 50


class Counted:
    """Counts calls of one bound method on one object (the bench's own instrument)."""

    def __init__(self, owner: Any, name: str, size: Callable[..., int] | None = None) -> None:
        self.calls = 0
        self.units = 0
        original = getattr(owner, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            self.units += size(*args, **kwargs) if size else 1
            return original(*args, **kwargs)

        setattr(owner, name, counted)


def redis_case(url: str, pattern: str | None, rounds: int = 30) -> dict[str, float]:
    queues = [f"lcb-{i}" for i in range(QUEUES)]
    inspector = RedisInspector(url, {}, queues, dead_letter=pattern)
    sends = Counted(inspector, "_send", size=lambda _payload, count: count)
    commands = Counted(inspector._client, "execute_command")
    inspector.snapshot()  # discovery, packing
    sends.calls = sends.units = commands.calls = 0
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        inspector.snapshot()
        times.append(time.perf_counter() - started)
    inspector.close()
    return {"round_trips": (sends.calls + commands.calls) / rounds,
            "commands": (sends.units + commands.calls) / rounds,
            "median_ms": statistics.median(times) * 1000}


def amqp_case(url: str, api_url: str, dead_letters: bool, seconds: int = 20
              ) -> dict[str, float]:
    from kombu import Connection

    name = "lcb-dlx" if dead_letters else "lcb-plain"
    with Connection(url) as conn:
        channel = conn.channel()
        arguments = {"x-dead-letter-exchange": "lcb-dlx-ex"} if dead_letters else {}
        channel.exchange_declare("lcb-dlx-ex", "direct", durable=True)
        channel.queue_declare(f"{name}.dlq", durable=True, auto_delete=False)
        channel.queue_bind(f"{name}.dlq", "lcb-dlx-ex", routing_key=name)
        channel.queue_declare(name, durable=True, auto_delete=False, arguments=arguments)
    inspector = AmqpInspector(url, {}, (), management_url=api_url)
    assert inspector._api is not None
    gets = Counted(inspector._api, "_get")
    times = []
    for _ in range(seconds + 1):
        started = time.perf_counter()
        inspector.snapshot()
        times.append(time.perf_counter() - started)
        time.sleep(max(0.0, 1.0 - (time.perf_counter() - started)))
    listing = len(inspector._api._get(f"{inspector._api.base}queues/"
                                      f"{urllib.request.quote(inspector._api.vhost, safe='')}"
                                      "?columns=name,arguments,effective_policy_definition"))
    inspector.close()
    with Connection(url) as conn:
        channel = conn.channel()
        for queue in (name, f"{name}.dlq"):
            channel.queue_delete(queue)
    return {"requests_per_s": gets.calls / seconds, "median_ms": statistics.median(times) * 1000,
            "listing_bytes_two_columns": listing}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", required=True)
    parser.add_argument("--amqp", required=True)
    parser.add_argument("--management-url", default="http://127.0.0.1:15672/api/")
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis)
    client.flushdb()
    app = Celery("bench", broker=args.redis, set_as_current=False)
    for i in range(QUEUES):
        for _ in range(3):
            app.send_task("bench.add", queue=f"lcb-{i}")
    results: dict[str, Any] = {
        "redis_baseline": redis_case(args.redis, None),
        "redis_dead_letter_pattern": redis_case(args.redis, "{queue}.dlq"),
        "amqp_baseline": amqp_case(args.amqp, args.management_url, False),
        "amqp_dead_letter_exchange": amqp_case(args.amqp, args.management_url, True),
    }
    client.flushdb()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
