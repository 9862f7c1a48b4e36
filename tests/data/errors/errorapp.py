"""The tasks `record.py` runs in real workers: each fails by running real code (sqlite3, redis-py,
requests, psycopg, kombu, celery itself), so the recorded tracebacks are the real ones.

Ports come from the environment: ERR_CLOSED_PORT (nothing listens), ERR_SILENT_PORT (accepts,
never answers). A worker started with ERR_BAD_WORKER=1 cannot write its resize output."""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

from celery import Celery

app = Celery("shop", broker=os.environ.get("LC_BROKER", "redis://127.0.0.1:6379/0"),
             set_as_current=True)
app.conf.update(task_send_sent_event=True, worker_send_task_events=True,
                task_default_queue=os.environ.get("LC_QUEUE", "shop"),
                worker_prefetch_multiplier=1, broker_connection_retry_on_startup=True,
                worker_hijack_root_logger=False)

CLOSED = int(os.environ.get("ERR_CLOSED_PORT", "1"))
SILENT = int(os.environ.get("ERR_SILENT_PORT", "1"))
OUTPUT = "/nonexistent/resize" if os.environ.get("ERR_BAD_WORKER") else "/tmp"


def _db() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT UNIQUE)")
    return db


def _card_limit(order_id: int, amount: float) -> None:
    if amount > 100:
        raise ValueError(f"card declined for order {order_id}: amount {amount:.2f} over limit")


@app.task(name="shop.charge")
def charge(order_id: int, amount: float) -> None:
    _card_limit(order_id, amount)


@app.task(name="shop.lookup_user")
def lookup_user(email: str) -> None:
    users: dict[str, Any] = {}
    users[email]  # KeyError with the quoted email


@app.task(name="shop.cache_get")
def cache_get(key: str) -> Any:
    import redis

    return redis.Redis(host="127.0.0.1", port=CLOSED, socket_connect_timeout=1).get(key)


@app.task(name="shop.cache_slow")
def cache_slow(key: str) -> Any:
    import redis

    return redis.Redis(host="127.0.0.1", port=SILENT, socket_timeout=0.2).get(key)


@app.task(name="shop.fetch_profile")
def fetch_profile(user_id: int) -> Any:
    import requests

    return requests.get(f"http://127.0.0.1:{SILENT}/users/{user_id}", timeout=0.2).json()


@app.task(name="shop.fetch_orders")
def fetch_orders(user_id: int) -> Any:
    import requests

    return requests.get(f"http://127.0.0.1:{SILENT}/orders?user={user_id}", timeout=0.3).json()


@app.task(name="shop.fetch_refused")
def fetch_refused(user_id: int) -> Any:
    import requests

    return requests.get(f"http://127.0.0.1:{CLOSED}/users/{user_id}", timeout=1).json()


@app.task(name="shop.save_user")
def save_user(email: str) -> None:
    db = _db()
    db.execute("INSERT INTO users (email) VALUES (?)", (email,))
    db.execute("INSERT INTO users (email) VALUES (?)", (email,))


@app.task(name="shop.daily_report")
def daily_report(day: str) -> Any:
    return _db().execute(f"SELECT * FROM report_{day.replace('-', '_')}").fetchall()


@app.task(name="shop.pg_sync")
def pg_sync(batch: int) -> None:
    import psycopg

    psycopg.connect(f"postgresql://shop@127.0.0.1:{CLOSED}/shop", connect_timeout=1)


@app.task(name="shop.publish")
def publish(event_id: int) -> None:
    from kombu import Connection

    with Connection(f"redis://127.0.0.1:{CLOSED}//", connect_timeout=1) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0)


@app.task(name="shop.slow_export", soft_time_limit=0.2)
def slow_export(n: int) -> None:
    time.sleep(2)


@app.task(name="shop.sync_inventory", bind=True, max_retries=2, default_retry_delay=0.1)
def sync_inventory(self: Any, sku: int) -> Any:
    import redis

    try:
        return redis.Redis(host="127.0.0.1", port=CLOSED, socket_connect_timeout=1).get(sku)
    except redis.ConnectionError as exc:
        raise self.retry(exc=exc, countdown=0.1) from exc


@app.task(name="shop.resize")
def resize(image_id: int) -> str:
    path = f"{OUTPUT}/{image_id}.png"
    with open(path, "wb") as out:
        out.write(b"png")
    os.unlink(path)
    return path


@app.task(name="shop.render_page")
def render_page(user_id: int) -> None:
    cached: dict[int, Any] = {}
    if user_id not in cached:
        raise LookupError(f"profile of user {user_id} missing from cache")
