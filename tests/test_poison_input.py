"""Poison input, no broker: every mutation of tests/mutations.py through every decoder and the
index costs at most its own message, is counted, and leaves the valid events around it applied
exactly as if the bad ones had never been sent."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest

from lazycelery.core.fastpath import DecodeStats, EventDecoder, LocalClock
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest import BatchSink
from lazycelery.core.ingest_amqp import AmqpDecoder
from lazycelery.core.model import TaskRecord, WorkerRecord
from lazycelery.core.sanitize import (
    STRING_MAX,
    BadInput,
    clean_event,
    cut_text,
    is_cut,
)
from tests.mutations import Fuzzer, Message, redis_envelope
from tests.replay import record_dict
from tests.test_fastpath_decode import KombuReference
from tests.test_ingest_amqp_fast import KombuAmqpReference

Decode = Callable[[Message], list[dict[str, Any]]]


class Path:
    """One ingest path without a socket: a decoder feeding a TaskIndex through a BatchSink,
    one BadInput for both (as the Ingestor wires them)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.index = TaskIndex()
        self.stats = DecodeStats(bad=self.index.bad)
        self.sink = BatchSink(self.index, batch_max=64)
        self.close: Callable[[], None] = lambda: None
        if name == "redis-fast":
            decoder = EventDecoder(LocalClock(), self.stats)
            self.decode: Decode = lambda m: decoder.decode(redis_envelope(m), 1.0)
        elif name == "amqp-fast":
            amqp = AmqpDecoder(LocalClock(), self.stats)
            self.decode = lambda m: amqp.decode_body(
                m.body, m.content_type, 1.0, m.headers.get("compression"))
        elif name == "redis-kombu":
            ref = KombuReference()
            ref.receiver.stats = self.stats
            self.decode = lambda m: ref.feed(redis_envelope(m).decode())
            self.close = ref.close
        else:
            aref = KombuAmqpReference()
            aref.receiver.stats = self.stats
            self.decode = lambda m: aref.feed(m.body, _amqp_properties(m))
            self.close = aref.close

    def feed(self, msg: Message) -> None:
        self.sink.extend(self.decode(msg))

    @property
    def transport(self) -> str:
        return self.name.split("-")[0]


def _amqp_properties(msg: Message) -> dict[str, Any]:
    props: dict[str, Any] = {"content_encoding": "utf-8",
                             "application_headers": {"hostname": "fuzz@h", **msg.headers}}
    if msg.content_type is not None:
        props["content_type"] = msg.content_type
    return props


PATHS = ("redis-fast", "redis-kombu", "amqp-fast", "amqp-kombu")


@pytest.fixture(params=PATHS)
def path(request: pytest.FixtureRequest) -> Iterator[Path]:
    p = Path(request.param)
    yield p
    p.close()


def _feedable(path: Path, msg: Message) -> bool:
    # the kombu references build the virtual message where kombu's consumer catches errors;
    # broken Redis envelopes are the integration test's (real kombu channel), not this one's
    return not msg.needs or path.name == "redis-fast"


def reference(messages: list[Message]) -> TaskIndex:
    """The index the valid events alone build."""
    index = TaskIndex()
    for msg in messages:
        index.apply_batch(msg.valid)
    return index


def assert_valid_applied(got: TaskIndex, messages: list[Message]) -> int:
    """Every valid task and worker is in ``got`` exactly as the valid events alone make it."""
    want = reference(messages)
    tasks = {e["uuid"] for m in messages for e in m.valid if "uuid" in e}
    hosts = {e["hostname"] for m in messages for e in m.valid if "uuid" not in e}
    for uuid in tasks:
        rec, expected = got.get(uuid), want.get(uuid)
        assert rec is not None and expected is not None, uuid
        assert record_dict(rec, "last_seen") == record_dict(expected, "last_seen"), uuid
    for host in hosts:
        assert record_dict(got.workers[host], "last_heartbeat") == \
            record_dict(want.workers[host], "last_heartbeat")
    return len(tasks)


# --------------------------------------------------------------------------- each mutation


def test_every_mutation_alone_is_counted_and_costs_nothing_else(path: Path) -> None:
    fuzzer = Fuzzer(seed=1, broker="amqp" if path.transport == "amqp" else "redis")
    seen = 0
    for msg in fuzzer.cases(path.transport):
        if not _feedable(path, msg):
            continue
        before = path.index.bad.total
        path.feed(msg)
        path.sink.flush()
        if msg.counted:
            assert path.index.bad.total > before, (path.name, msg.mutation)
        seen += 1
    assert seen > 20
    assert path.index.bad.skipped > 0 and path.index.bad.counts


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_a_fuzzed_stream_keeps_every_valid_event(path: Path, seed: int) -> None:
    fuzzer = Fuzzer(seed=seed, broker="amqp" if path.transport == "amqp" else "redis")
    stream = [m for m in fuzzer.stream(tasks=60, poison=150, transport=path.transport)
              if _feedable(path, m)]
    for msg in stream:
        path.feed(msg)
    path.sink.flush()
    assert assert_valid_applied(path.index, stream) >= 60  # plus those in mixed lists
    counted = sum(1 for m in stream if m.counted)
    assert counted > 50
    assert path.index.bad.total >= counted


def test_mutations_are_seeded() -> None:
    one = [m.body + (m.envelope or b"") for m in Fuzzer(7, now=1e9).stream(5, 20)]
    two = [m.body + (m.envelope or b"") for m in Fuzzer(7, now=1e9).stream(5, 20)]
    assert one == two


# --------------------------------------------------------------------------- the triggers


def _valid_run(fuzzer: Fuzzer, n: int) -> list[Message]:
    return [fuzzer.valid_message(fuzzer.valid_task()) for _ in range(n)]


TRIGGERS: dict[str, Callable[[dict[str, Any]], bytes]] = {
    # the issue's list: int too large for a float, deep nesting, a list where a string or a
    # number is expected, parent_id as a list or dict, a huge timestamp / freq, loadavg text
    "int too large": lambda e: json.dumps(e).replace(
        f'"timestamp": {json.dumps(e["timestamp"])}', '"timestamp": 1' + "0" * 400).encode(),
    "deep nesting": lambda e: json.dumps(e).replace(
        '"utcoffset": 0.0', '"utcoffset": ' + "[" * 100_000 + "]" * 100_000).encode(),
    "name list": lambda e: json.dumps({**e, "name": ["x"]}).encode(),
    "parent_id list": lambda e: json.dumps({**e, "parent_id": ["x"]}).encode(),
    "parent_id dict": lambda e: json.dumps({**e, "parent_id": {"x": 1}}).encode(),
    "timestamp 1e308": lambda e: json.dumps({**e, "timestamp": 1e308}).encode(),
    "timestamp inf": lambda e: json.dumps({**e, "timestamp": math.inf}).encode(),
    "type list": lambda e: json.dumps({**e, "type": [e["type"]]}).encode(),
    "type dict": lambda e: json.dumps({**e, "type": {"t": e["type"]}}).encode(),
}


@pytest.mark.parametrize("trigger", sorted(TRIGGERS))
def test_the_reported_triggers_cost_one_event(path: Path, trigger: str) -> None:
    fuzzer = Fuzzer(seed=11)
    received = dict(fuzzer.templates["task-received"], uuid="poison-1", root_id="poison-1")
    bad = Message(TRIGGERS[trigger](received), mutation=trigger)
    before, after = _valid_run(fuzzer, 100), _valid_run(fuzzer, 100)
    for msg in [*before, bad, *after]:
        path.feed(msg)
    path.sink.flush()
    assert assert_valid_applied(path.index, before + after) == 200
    assert path.index.bad.total >= 1


def test_worker_triggers_are_repaired_not_raised() -> None:
    index = TaskIndex()
    host = {"type": "worker-heartbeat", "hostname": "w@h", "timestamp": 1.0, "clock": 1,
            "freq": 2.0, "active": 1, "processed": 5, "loadavg": [0.5, 0.5, 0.5], "pid": 3}
    for change in ({"freq": 10 ** 400}, {"freq": 1e308}, {"loadavg": ["x", 1, 2]},
                   {"active": -3}, {"processed": "9"}, {"pid": [1]}, {"sw_ver": {"v": 1}},
                   {"loadavg": [1, 2, 3, 4]}):
        index.apply({**host, **change})
    worker = index.workers["w@h"]
    assert (worker.freq, worker.active, worker.processed, worker.pid) == (2.0, 1, 5, 3)
    assert worker.loadavg == (0.5, 0.5, 0.5) and worker.sw_ver is None
    assert index.bad.repaired == 8 and index.malformed == 0
    assert isinstance(index.workers["w@h"], WorkerRecord)


def test_a_bad_timestamp_is_replaced_by_the_receive_time() -> None:
    index = TaskIndex()
    rec = index.apply({"type": "task-succeeded", "uuid": "u", "timestamp": float("nan"),
                       "local_received": 1700000000.5, "result": ["not", "text"],
                       "runtime": "fast"})
    assert isinstance(rec, TaskRecord)
    assert rec.state == "SUCCESS" and rec.succeeded == 1700000000.5
    assert rec.result is None and rec.runtime is None
    assert index.bad.counts == {"bad field timestamp": 1, "bad field result": 1,
                                "bad field runtime": 1}


def test_the_index_counts_event_types_within_a_bound() -> None:
    index = TaskIndex()
    index.apply_batch([{"type": f"custom-{i}", "timestamp": 1.0} for i in range(1000)])
    assert len(index.events_by_type) <= 257 and index.events_by_type["(other)"] > 700


# --------------------------------------------------------------------------- bounds


def test_clean_event_keeps_a_valid_event_as_is() -> None:
    event = Fuzzer(seed=5).valid_task()[0]
    bad = BadInput()
    assert clean_event(event, bad) is event and bad.total == 0


def test_clean_event_drops_cuts_and_refuses() -> None:
    bad = BadInput()
    event = {"type": "task-failed", "uuid": "u", "n": 10 ** 30, "f": math.nan, "deep": [[[[[[[[[1]]]]]]]]],
             "ok": [[1]], "traceback": "Traceback\n" + "x" * STRING_MAX + "\nValueError: end"}
    cleaned = clean_event(event, bad)
    assert cleaned is not None and cleaned is not event
    assert set(cleaned) == {"type", "uuid", "ok", "traceback"}
    assert cleaned["traceback"].startswith("Traceback") and cleaned["traceback"].endswith("end")
    assert "characters cut by lazycelery" in cleaned["traceback"]
    assert bad.repaired == 4 and bad.skipped == 0
    assert clean_event({"type": "task-started", "uuid": 2 ** 80}, bad) is None
    assert clean_event({"type": "task-started", "clock": math.inf}, bad) is None
    assert bad.skipped == 2 and bad.counts["bad field uuid"] == 1


def test_cut_text_is_marked_and_makes_args_truncated() -> None:
    text = cut_text("a" * (STRING_MAX + 10))
    assert is_cut(text) and text.endswith("[10 characters cut by lazycelery]")
    assert cut_text("short") == "short" and not is_cut("short")
    index = TaskIndex()
    rec = index.apply({"type": "task-received", "uuid": "u", "timestamp": 1.0, "args": text})
    assert isinstance(rec, TaskRecord) and rec.args_truncated


def test_the_screen_refuses_what_needs_a_closer_look() -> None:
    from lazycelery.core.sanitize import SCREEN

    assert SCREEN.decode(b'[{"type": "x", "loadavg": [1, 2.5], "a": null}]')
    for body in (b'{"a": [[1]]}', b'{"a": {"b": 1}}', b'{"a": 99999999999999999999}',
                 b'{"a": "' + b"x" * (STRING_MAX + 1) + b'"}', b'"text"', b"[1]"):
        with pytest.raises(msgspec.ValidationError):
            SCREEN.decode(body)


# --------------------------------------------------------------------------- reporting


def test_reports_are_one_line_a_kind_at_most_every_ten_seconds() -> None:
    now = [100.0]
    bad = BadInput(clock=lambda: now[0])
    assert bad.report() == []
    bad.skip("invalid JSON")
    bad.repair("bad field timestamp", "not an epoch time")
    first = bad.report()
    assert first == [
        "bad events: invalid JSON, 1 skipped (one line a kind every 10 s at most)",
        "bad events: bad field timestamp (not an epoch time), 1 repaired (one line a kind "
        "every 10 s at most)"]
    for _ in range(5):
        bad.skip("invalid JSON")
    now[0] += 3
    assert bad.report() == [] and bad.pending  # the window is 10 s
    now[0] += 7
    assert bad.report() == ["bad events: invalid JSON, 5 more skipped (6 in all)"]
    assert not bad.pending and bad.report() == []
    bad.skip("bad field hostname")
    bad.repair("bad field hostname")
    assert bad.report(force=True) == [
        "bad events: bad field hostname, 1 skipped and 1 repaired (one line a kind every 10 s "
        "at most)"]
    assert (bad.skipped, bad.repaired) == (7, 2)


def test_the_sink_hands_new_bad_input_to_the_ingestor() -> None:
    index = TaskIndex()
    calls: list[int] = []
    sink = BatchSink(index, on_bad=lambda: calls.append(index.bad.total))
    sink.flush()
    assert calls == []
    sink.extend([{"type": "task-started", "uuid": ["x"]}])
    sink.flush()
    assert calls == [1]


def test_the_dashboard_header_shows_the_skipped_count() -> None:
    from lazycelery.core.ingest import IngestStatus
    from lazycelery.tui.panes.header import header_text
    from lazycelery.tui.screen.sources import DashboardInfo
    from tests.tui_harness import FakeIngestor, SizedOutput, headless_dashboard

    with headless_dashboard(TaskIndex(), DashboardInfo(broker="redis://h/0"),
                            SizedOutput(30, 120)) as (d, _inp):
        ingestor = FakeIngestor(status=IngestStatus(state="connected", path="fast"))
        d.attach(ingestor)
        assert "bad events" not in "".join(text for _style, text, *_ in header_text(d.screen))
        ingestor.status = IngestStatus(state="connected", path="fast", skipped=1234, repaired=5)
        assert "1,234 bad events skipped" in "".join(text for _style, text, *_ in header_text(d.screen))


def test_amqp_headers_that_cannot_be_read_cost_one_message() -> None:
    import struct

    from lazycelery.core.ingest_amqp import UNREADABLE_HEADERS, parse_content_header

    ctype = b"application/json"
    table = b"\x0bcompressionZ\x00\x00"  # an unknown field type 'Z'
    props = (struct.pack(">H", 0xA000) + bytes([len(ctype)]) + ctype
             + struct.pack(">I", len(table)) + table)
    size, content_type, compression = parse_content_header(struct.pack(">HHQ", 60, 0, 9) + props)
    assert (size, content_type, compression) == (9, "application/json", UNREADABLE_HEADERS)
    decoder = AmqpDecoder(LocalClock())
    assert decoder.decode_body(b'{"type": "task-started", "uuid": "u"}', content_type, 1.0,
                               compression) == []
    assert decoder.stats.bad.counts == {"bad envelope": 1}
