"""The fast path's decoder against the recorded Redis stream, kombu's real decode path, and junk."""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from lazycelery.core.fastpath import DecodeStats, EventDecoder, LocalClock, decode_redis_message
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest_kombu import receiver_class
from tests.replay import record_dict, without

RECORDED = Path(__file__).resolve().parent / "data" / "recorded" / "redis"


def _raw_messages() -> list[dict[str, Any]]:
    with gzip.open(RECORDED / "raw.jsonl.gz", "rt") as fh:
        return [json.loads(line) for line in fh]


def _recorded_events() -> list[dict[str, Any]]:
    with gzip.open(RECORDED / "events.jsonl.gz", "rt") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="module")
def raw() -> list[dict[str, Any]]:
    return _raw_messages()


def _fast_events(raw: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], DecodeStats]:
    decoder = EventDecoder(LocalClock())
    out: list[dict[str, Any]] = []
    for message in raw:
        out.extend(decoder.decode(message["data"].encode(), message["t"]))
    return out, decoder.stats


class KombuReference:
    """kombu's and celery's real decode path without a socket: the envelope parsed with the
    Redis transport's ``loads``, a virtual ``Message`` built by a channel (base64 body), the
    Receiver's consumer (accept, decode, ``on_decode_error``), then our Receiver subclass."""

    def __init__(self) -> None:
        from celery import Celery
        from kombu import Connection, Consumer

        self.app = Celery("lc-decode-test", set_as_current=False)
        self.connection = Connection("memory://")
        channel = self.connection.channel()
        self.events: list[dict[str, Any]] = []
        self.stats = DecodeStats()
        self.receiver = receiver_class(self.app)(channel, handlers={"*": self.events.append},
                                                 app=self.app, stats=self.stats)
        make = partial(Consumer, channel, on_decode_error=self.receiver.on_decode_error)
        self.consumer = self.receiver.get_consumers(make, channel)[0]

    def feed(self, data: str) -> list[dict[str, Any]]:
        from kombu.transport.redis import loads

        start = len(self.events)
        self.consumer._receive_callback(loads(data))
        return self.events[start:]

    def close(self) -> None:
        self.connection.release()


@pytest.fixture
def kombu_ref() -> Iterator[KombuReference]:
    ref = KombuReference()
    yield ref
    ref.close()


def test_decode_matches_the_recorded_receiver_events(raw: list[dict[str, Any]]) -> None:
    decoded, stats = _fast_events(raw)
    recorded = _recorded_events()
    assert len(decoded) == len(recorded) == 12399
    assert stats.malformed == stats.unsupported == 0
    assert stats.messages == len(raw)
    for ours, theirs in zip(decoded, recorded, strict=True):
        assert list(ours) == list(theirs)  # same fields in the same order
        # The recorder sent its tasks from the same app whose clock its Receiver used, so
        # task-sent clocks (= receiver clock - 1) there also counted its own sends; they are
        # compared against kombu with a fresh clock in the next test instead.
        ignore = ("local_received", "clock") if ours["type"] == "task-sent" else ("local_received",)
        assert without(ours, *ignore) == without(theirs, *ignore)


def test_decode_matches_kombus_decode_path(raw: list[dict[str, Any]],
                                           kombu_ref: KombuReference) -> None:
    decoder = EventDecoder(LocalClock())
    batches = 0
    for message in raw:
        ours = decoder.decode(message["data"].encode(), message["t"])
        theirs = kombu_ref.feed(message["data"])
        assert [list(e) for e in ours] == [list(e) for e in theirs]
        assert [without(e, "local_received") for e in ours] == \
            [without(e, "local_received") for e in theirs]
        batches += len(ours) > 1
    assert batches > 1000  # task.multi lists were unrolled
    assert kombu_ref.stats.malformed == kombu_ref.stats.unsupported == 0
    assert decoder.clock.value == kombu_ref.app.clock.value


def test_both_paths_build_the_same_index(raw: list[dict[str, Any]],
                                         kombu_ref: KombuReference) -> None:
    fast_index, kombu_index = TaskIndex(), TaskIndex()
    decoder = EventDecoder(LocalClock())
    for message in raw:
        fast_index.apply_batch(decoder.decode(message["data"], message["t"]))
        kombu_index.apply_batch(kombu_ref.feed(message["data"]))
    assert len(fast_index) == len(kombu_index) == 3000
    fast_tasks = {r.uuid: r for r in fast_index.snapshot()}
    kombu_tasks = {r.uuid: r for r in kombu_index.snapshot()}
    assert fast_tasks.keys() == kombu_tasks.keys()
    for uuid, rec in fast_tasks.items():
        assert record_dict(rec, "last_seen") == record_dict(kombu_tasks[uuid], "last_seen")
    assert fast_index.workers.keys() == kombu_index.workers.keys() == {"rec1@vm", "rec2@vm"}
    for host, worker in fast_index.workers.items():
        assert record_dict(worker, "last_heartbeat") == \
            record_dict(kombu_index.workers[host], "last_heartbeat")
    fast_counts, kombu_counts = fast_index.counts(), kombu_index.counts()
    for key in ("by_state", "by_name", "by_worker", "events", "malformed"):
        assert fast_counts[key] == kombu_counts[key]
    expected = json.loads((RECORDED / "expected.json").read_text())
    assert fast_counts["by_state"] == expected["by_state"]


# --------------------------------------------------------------------------- odd input


def _envelope(body: Any, *, content_type: str = "application/json", encoding: str = "base64",
              headers: dict[str, Any] | None = None, raw_body: bytes | None = None) -> str:
    data = raw_body if raw_body is not None else json.dumps(body).encode()
    text = base64.b64encode(data).decode() if encoding == "base64" else data.decode()
    return json.dumps({
        "body": text, "content-encoding": "utf-8", "content-type": content_type,
        "headers": headers or {"hostname": "w@h"},
        "properties": {"delivery_mode": 1, "priority": 0, "body_encoding": encoding,
                       "delivery_tag": "t-1",
                       "delivery_info": {"exchange": "celeryev", "routing_key": "task.multi"}},
    })


def _event(kind: str = "task-started", **extra: Any) -> dict[str, Any]:
    return {"hostname": "w@h", "utcoffset": -5.5, "pid": 1, "clock": 7, "uuid": "u-1",
            "timestamp": 1700000000.25, "type": kind, **extra}


def test_timestamps_are_not_localized() -> None:
    [event] = decode_redis_message(_envelope(_event()), 5.0)
    # the Receiver's default (localize=True) would shift this by (utcoffset - local) hours
    assert event["timestamp"] == 1700000000.25
    assert event["local_received"] == 5.0


def test_clock_handling_follows_the_receiver() -> None:
    decoder = EventDecoder(LocalClock(10))
    no_clock = without(_event("worker-heartbeat"), "clock")
    sent, other, filled = (decoder.decode(_envelope(e), 1.0)[0] for e in
                           (_event("task-sent", clock=99), _event(clock=3), no_clock))
    assert sent["clock"] == 9          # (local clock or 1) - 1, not the client's 99
    assert other["clock"] == 3         # kept; the local clock moves past it
    assert filled["clock"] == decoder.clock.value
    assert list(filled)[-2:] == ["clock", "local_received"]


MALFORMED = [
    b"not json at all",
    b"[1, 2]",                                          # envelope is not an object
    json.dumps({"body": "eyJ0eXBlIjogMX0="}).encode(),  # no properties
    json.dumps({"body": 5, "properties": {}}).encode(),  # body is not a string
    _envelope(None, raw_body=b"{}").replace('"e30="', '"@@@"').encode(),  # bad base64
    _envelope(None, raw_body=b"{not json").encode(),
    _envelope(None, raw_body=b"").encode(),             # empty body
    _envelope("a string").encode(),                     # body not a dict or list
    _envelope(42).encode(),
    _envelope(None).encode(),                          # JSON null body
    _envelope({"uuid": "u-2"}).encode(),                # no type
    _envelope([_event(), 3, {"no": "type"}, _event("task-succeeded", clock="x")]).encode(),
    _envelope(_event(), raw_body=b'{"type": "task-started", "x": "\xff"}').encode(),
]


@pytest.mark.parametrize("data", MALFORMED)
def test_malformed_input_is_counted_and_skipped(data: bytes) -> None:
    decoder = EventDecoder()
    events = decoder.decode(data, 1.0)
    assert decoder.stats.malformed >= 1
    assert all(isinstance(e, dict) and "type" in e for e in events)


def test_a_batch_keeps_its_good_events() -> None:
    decoder = EventDecoder()
    data = _envelope([_event(), 3, {"no": "type"}, _event("task-succeeded", clock="x"),
                      _event("task-succeeded")])
    events = decoder.decode(data, 1.0)
    assert [e["type"] for e in events] == ["task-started", "task-succeeded"]
    assert decoder.stats.malformed == 3
    assert decoder.stats.events == 2


def test_odd_input_agrees_with_kombu(kombu_ref: KombuReference) -> None:
    decoder = EventDecoder()
    cases = [m.decode() for m in MALFORMED[4:]] + [
        _envelope(_event(), content_type="application/x-python-serialize"),
        _envelope(_event(), content_type="application/x-yaml"),
        _envelope({"type": "task-started", "eta": {"__type__": "datetime",
                                                   "__value__": "2024-01-02T03:04:05"}}),
        _envelope(None, raw_body=b'{"type": "task-succeeded", "runtime": NaN}'),
        _envelope(_event(), encoding="utf-8"),
        _envelope(None, raw_body=zlib.compress(json.dumps(_event()).encode()),
                  headers={"compression": "application/x-gzip"}),
    ]
    for data in cases:
        ours = decoder.decode(data, 1.0)
        theirs = kombu_ref.feed(data)
        assert repr([without(e, "local_received") for e in ours]) == \
            repr([without(e, "local_received") for e in theirs]), data
    skipped = decoder.stats.malformed + decoder.stats.unsupported
    assert skipped == kombu_ref.stats.malformed + kombu_ref.stats.unsupported
    assert decoder.stats.unsupported == 2  # pickle and yaml are not decoded


def test_str_and_bytes_input_agree(raw: list[dict[str, Any]]) -> None:
    for message in raw[:50]:
        as_str = decode_redis_message(message["data"], 1.0)
        as_bytes = decode_redis_message(message["data"].encode(), 1.0)
        assert as_str == as_bytes
