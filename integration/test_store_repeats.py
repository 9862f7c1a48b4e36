"""A store that fails on every batch says so once, not on every retry: `lazycelery serve
--store` recording a real Redis event stream into a real PostgreSQL database whose tables are
dropped under it. Its stderr has each error once (the first words of each kind), then one
"(repeated N times in S s)" line each when it stops, instead of two lines a batch."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable

import httpx
import pytest
from test_serve_helpers import Server, servers  # noqa: F401

from conftest import wait_for
from lazycelery.store.repeats import notice_key

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
pytest.importorskip("starlette", reason="the serve extra")
psycopg = pytest.importorskip("psycopg", reason="the postgres extra")


def _publish(broker: str, count: int) -> None:
    """``count`` task-received events, one every 20 ms (one batch each, about)."""
    from celery import Celery

    app = Celery("probe", broker=broker, set_as_current=False)
    with app.connection_for_write() as conn:
        sender = app.events.Dispatcher(conn, hostname="probe@repeats", enabled=True)
        for _ in range(count):
            task = str(uuid.uuid4())
            sender.send("task-received", uuid=task, name="probe.repeats", args="()",
                        kwargs="{}", retries=0)
            time.sleep(0.02)
        sender.close()
    app.close()


ROUNDS = 15


def _lost(url: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("lazycelery_store_events_lost_total "):
            return float(line.split()[-1])
    return 0.0


def test_a_dropped_schema_is_said_once_and_counted(redis_url: str, postgres_url: str,
                                                   servers: Callable[..., Server],  # noqa: F811
                                                   ) -> None:
    serve = servers("serve", redis_url, "lc-repeats", args=["--store", postgres_url])
    _publish(redis_url, 20)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        wait_for(lambda: admin.execute("SELECT count(*) FROM tasks").fetchone()[0] >= 20,
                 timeout=60, what="the first events recorded")
        admin.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    # 150 events, each round of 10 refused (counted lost) before the next is sent: at least
    # one refused write a round, however a loaded machine batches them (a time-paced stream
    # could be merged into fewer writes than the count below needs)
    for round_ in range(1, ROUNDS + 1):
        _publish(redis_url, 10)
        wait_for(lambda round_=round_: _lost(serve.url) >= 10 * round_, timeout=60,
                 what=f"round {round_} of events refused")
    wait_for(lambda: "does not exist" in serve.output(), timeout=60, what="the error said")
    assert serve.stop() == 0, serve.output()[-3000:]
    lines = [line for line in serve.output().splitlines() if "does not exist" in line]
    full = [line for line in lines if "(repeated" not in line]
    summaries = [line for line in lines if "(repeated" in line]
    # one line per kind of error (the events', the gap's; PostgreSQL words its first one
    # with "at character N"; the recorder row's at stop; and more kinds - its alive mark,
    # the gaps' - the longer the writes fail, which a loaded machine makes longer), never one
    # per batch: fewer lines than the ROUNDS (at least) refused writes, none said twice
    kinds = [notice_key(line) for line in full]
    assert full and len(kinds) == len(set(kinds)), "\n".join(lines)
    assert len(full) < ROUNDS, "\n".join(lines)
    assert summaries, "\n".join(lines)
    repeated = sum(int(m.group(1)) for line in summaries
                   if (m := re.search(r"\(repeated (\d+) times? in ", line)))
    assert repeated >= 10, "\n".join(lines)  # the batches not said one by one
    assert "Traceback" not in serve.output()
