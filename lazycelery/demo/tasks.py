"""The demo's tasks: a small shop backend whose tasks succeed, fail, retry, crawl or fan out."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from lazycelery.demo.app import app

__all__ = [
    "CardDeclined",
    "UpstreamTimeout",
    "add",
    "charge_card",
    "cleanup_sessions",
    "count_words",
    "demo_task",
    "fetch_rows",
    "fetch_url",
    "generate_report",
    "merge_counts",
    "notify",
    "rebuild_search_index",
    "resize_image",
    "send_email",
    "send_reminder",
    "store_rows",
    "sync_inventory",
    "transform_rows",
]


P = ParamSpec("P")
R = TypeVar("R")


def demo_task(name: str, **options: Any) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """``app.task(name=name, ...)`` with a type: calling a task runs its function here."""
    decorator: Callable[[Callable[P, R]], Callable[P, R]] = app.task(name=name, **options)
    return decorator


class CardDeclined(Exception):
    """The payment provider said no (a failure with a traceback several frames deep)."""


class UpstreamTimeout(Exception):
    """A flaky upstream that answers after a retry or two."""


# ---------------------------------------------------------------------- quick successes


@demo_task("demo.add")
def add(x: int, y: int) -> int:
    return x + y


@demo_task("demo.resize_image")
def resize_image(image_id: int, width: int) -> dict[str, Any]:
    time.sleep(random.uniform(0.1, 1.2))
    return {"image_id": image_id, "width": width, "bytes": width * random.randint(90, 140)}


@demo_task("demo.send_email")
def send_email(to: str, subject: str) -> str:
    time.sleep(random.uniform(0.05, 0.3))
    return f"sent {subject!r} to {to}"


@demo_task("demo.notify")
def notify(user_id: int, channel: str) -> str:
    return f"notified user {user_id} by {channel}"


@demo_task("demo.send_reminder")
def send_reminder(user_id: int) -> str:
    return f"reminded user {user_id}"


# ---------------------------------------------------------------------- failures and retries


def _authorize(order_id: int, amount: float) -> None:
    if amount > 500:
        raise CardDeclined(f"order {order_id}: card declined for {amount:.2f} EUR (limit 500)")


def _capture(order_id: int, amount: float) -> str:
    _authorize(order_id, amount)
    return f"order {order_id}: captured {amount:.2f} EUR"


@demo_task("demo.charge_card")
def charge_card(order_id: int, amount: float) -> str:
    return _capture(order_id, amount)


@demo_task("demo.fetch_url", bind=True, max_retries=3, default_retry_delay=1)
def fetch_url(self: Any, url: str, fail_times: int) -> dict[str, Any]:
    """Fails ``fail_times`` times, retrying after a second each time (gives up after 3)."""
    if self.request.retries < fail_times:
        exc = UpstreamTimeout(f"GET {url}: no answer within 2.0 s "
                              f"(attempt {self.request.retries + 1})")
        raise self.retry(exc=exc)
    return {"url": url, "status": 200, "attempts": self.request.retries + 1}


# ---------------------------------------------------------------------- slow work


@demo_task("demo.generate_report")
def generate_report(report_id: int, seconds: float) -> dict[str, Any]:
    time.sleep(seconds)
    return {"report_id": report_id, "pages": int(seconds * 3)}


@demo_task("demo.rebuild_search_index")
def rebuild_search_index(shards: int, seconds: float) -> dict[str, Any]:
    """The long one (minutes): there to be found running, and terminated from the dashboard."""
    for _ in range(shards):
        time.sleep(seconds / shards)
    return {"shards": shards, "documents": shards * 25_000}


# ---------------------------------------------------------------------- sent by celery beat


@demo_task("demo.cleanup_sessions")
def cleanup_sessions() -> int:
    time.sleep(random.uniform(0.05, 0.2))
    return random.randint(0, 40)


@demo_task("demo.sync_inventory")
def sync_inventory(source: str) -> dict[str, Any]:
    time.sleep(random.uniform(1.0, 3.0))
    return {"source": source, "items": random.randint(800, 1200)}


# ---------------------------------------------------------------------- canvas: chain, chord


@demo_task("demo.fetch_rows")
def fetch_rows(source: str, n: int) -> list[dict[str, Any]]:
    time.sleep(random.uniform(0.1, 0.5))
    return [{"source": source, "row": i, "value": random.randint(1, 100)} for i in range(n)]


@demo_task("demo.transform_rows")
def transform_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**row, "value": row["value"] * 2} for row in rows]


@demo_task("demo.store_rows")
def store_rows(rows: list[dict[str, Any]]) -> int:
    time.sleep(random.uniform(0.05, 0.2))
    return len(rows)


@demo_task("demo.count_words")
def count_words(text: str) -> dict[str, int]:
    return dict(Counter(text.split()))


@demo_task("demo.merge_counts")
def merge_counts(counts: list[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for part in counts:
        total.update(part)
    return dict(total.most_common(5))
