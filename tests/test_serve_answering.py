"""serve answering under load: a page's records are encoded straight from the struct
(``record_json``, the same JSON ``record_dict`` gives, and never a stale one: an updated task
shows its new state on the next request), and the live stream's writers wait for the requests
in flight (``Admission.quiet``), at most ``YIELD_MAX`` each time."""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import msgspec
import pytest

pytest.importorskip("starlette", reason="the serve extra")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from lazycelery.core.index import TaskIndex
from lazycelery.serve.admission import Admission
from lazycelery.serve.app import build_app
from lazycelery.serve.auth import AuthConfig, Guard
from lazycelery.serve.v1.hub import StreamHub
from lazycelery.serve.v1.stream import _Client
from lazycelery.serve.v1.tasks import record_dict, record_json
from tests.replay import load_events
from tests.test_serve_v1 import make_service


def test_record_json_is_record_dicts_json() -> None:
    index = TaskIndex()
    index.apply_batch(load_events("redis"))
    records = index.records()
    assert records
    for rec in records:
        kids = index.children_of(rec.uuid)
        assert msgspec.json.decode(record_json(rec, kids)) == \
            msgspec.json.decode(msgspec.json.encode(record_dict(rec, kids)))


def test_an_updated_task_shows_its_new_state_on_the_next_request() -> None:
    index = TaskIndex()
    index.apply_batch([{"type": "task-received", "uuid": "u1", "name": "t", "timestamp": 1.0},
                       {"type": "task-started", "uuid": "u1", "timestamp": 2.0}])
    with TestClient(build_app(make_service(index), Guard(AuthConfig({}))),
                    raise_server_exceptions=False) as c:
        first = c.get("/api/v1/tasks").json()["tasks"]
        assert [(t["uuid"], t["state"]) for t in first] == [("u1", "STARTED")]
        index.apply_batch([{"type": "task-succeeded", "uuid": "u1", "timestamp": 3.0,
                            "result": "42", "runtime": 1.0}])
        again = c.get("/api/v1/tasks").json()["tasks"]
        assert [(t["uuid"], t["state"], t["result"], t["timestamp"]) for t in again] == \
            [("u1", "SUCCESS", "42", 3.0)]
        for key in ("api/v1/snapshot", "api/v1/tasks/u1"):
            body = c.get(f"/{key}").json()
            task = body["tasks"][0] if "tasks" in body else body["task"]
            assert task["state"] == "SUCCESS"


def test_quiet_waits_for_the_requests_in_flight() -> None:
    admission = Admission(8)

    async def main() -> list[Any]:
        assert await admission.quiet(0.01)  # nothing in flight: at once
        admission.inflight = 2
        waiting = asyncio.create_task(admission.quiet(30))
        await asyncio.sleep(0)
        admission.done()
        await asyncio.sleep(0)
        still = waiting.done()
        admission.done()  # the last one answered: the waiter goes on
        answered = await asyncio.wait_for(waiting, 30)
        admission.inflight = 1
        timed_out = await admission.quiet(0.01)  # bounded: a stream is never held for long
        admission.done()
        return [still, answered, timed_out, admission.inflight]

    assert asyncio.run(main()) == [False, True, False, 0]


def test_a_stream_write_waits_for_the_requests_then_sends_everything() -> None:
    hub = StreamHub(size=64)
    index = TaskIndex()
    admission = Admission(8)
    evs = [{"type": "task-received", "uuid": f"u{n}", "name": "t", "timestamp": 1.0 + n}
           for n in range(5)]

    async def main() -> tuple[bool, bytes]:
        client = _Client(hub, None, True, 0, 30.0, admission.quiet)
        frames = client.frames(b"hello")
        assert await frames.__anext__() == b"hello"
        hub.publish(evs, index.apply_batch(evs), index.lock)
        admission.inflight = 1  # a request in flight: the write waits for it
        write = asyncio.create_task(frames.__anext__())
        await asyncio.sleep(0.05)
        held = not write.done()
        admission.done()
        data = await asyncio.wait_for(write, 30)
        await frames.aclose()
        return held, data

    held, data = asyncio.run(main())
    assert held
    assert data.count(b"event: task\n") == 5 and b"event: loss" not in data


def test_quiet_works_on_a_new_event_loop() -> None:
    """A future left from another loop (a test client's, a restarted server's) is not
    awaited on this one."""
    admission = Admission(8)
    admission.inflight = 1
    assert asyncio.run(admission.quiet(0.01)) is False

    async def answered_meanwhile() -> bool:
        asyncio.get_running_loop().call_later(0.01, admission.done)
        return await admission.quiet(30)

    assert asyncio.run(answered_meanwhile()) is True
