"""`lazycelery tail` formatting, JSON schema and filters, on the recorded real event streams."""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import re
import time
import uuid as uuidlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from lazycelery.cli import build_parser
from lazycelery.core.model import STATES
from lazycelery.errors import UsageError
from lazycelery.tail import (
    JSON_KEYS,
    EventFilter,
    Formatter,
    JsonFormatter,
    LineBuffer,
    StatusReporter,
    TailEvent,
    TailIndex,
    TailSink,
    TextFormatter,
    filter_from_args,
    type_warnings,
    use_color,
)

BROKERS = ("redis", "amqp")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
Recorded = tuple[str, Sequence[dict[str, Any]]]


@cache
def _load(path: str) -> tuple[dict[str, Any], ...]:
    with gzip.open(path, "rt") as fh:
        return tuple(json.loads(line) for line in fh)


@pytest.fixture(params=BROKERS)
def recorded(request: pytest.FixtureRequest, shared_fixtures: Path) -> tuple[str, Sequence[dict[str, Any]]]:
    broker = request.param
    return broker, _load(str(shared_fixtures / broker / "events.jsonl.gz"))


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time = UTC, so HH:MM:SS in text lines is predictable."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def replay(events: Sequence[Mapping[str, Any]], *, batch: int = 8,
           event_filter: EventFilter | None = None,
           formatter: Formatter | None = None) -> list[bytes]:
    """Feed events through a TailIndex and a TailSink the way the ingest thread does."""
    index = TailIndex()
    buffer = LineBuffer(max_lines=10**7, max_bytes=1 << 40)
    sink = TailSink(index, event_filter or EventFilter(), formatter or JsonFormatter(), buffer,
                    StatusReporter("redis://localhost:6379/0"))
    for start in range(0, len(events), batch):
        chunk = events[start:start + batch]
        sink.on_batch(chunk, index.apply_batch(chunk))
    lines = [item for item in buffer.take(10**9) if isinstance(item, bytes)]
    buffer.close()
    return lines


def replay_json(events: Sequence[Mapping[str, Any]], **kwargs: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in replay(events, **kwargs)]


def replay_text(events: Sequence[Mapping[str, Any]], **kwargs: Any) -> list[str]:
    formatter = kwargs.pop("formatter", None) or TextFormatter()
    lines = [line.decode() for line in replay(events, formatter=formatter, **kwargs)]
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    return [line[:-1] for line in lines]


def first(events: Sequence[Mapping[str, Any]], kind: str, **fields: Any) -> Mapping[str, Any]:
    return next(e for e in events if e["type"] == kind
                and all(e.get(k) == v for k, v in fields.items()))


def task_events(events: Sequence[Mapping[str, Any]], uuid: str) -> list[Mapping[str, Any]]:
    return [e for e in events if e.get("uuid") == uuid]


# --------------------------------------------------------------------------- JSON schema


def test_every_json_line_has_the_documented_keys_first(recorded: Recorded) -> None:
    _, events = recorded
    docs = replay_json(events)
    heartbeats = sum(e["type"] == "worker-heartbeat" for e in events)
    assert len(docs) == len(events) - heartbeats
    for doc, event in zip(docs, (e for e in events if e["type"] != "worker-heartbeat"),
                          strict=True):
        assert tuple(doc)[:len(JSON_KEYS)] == JSON_KEYS
        for key, value in event.items():  # every field of the event is there, unchanged
            if value is not None:
                assert doc[key] == value, key
        assert isinstance(doc["timestamp"], float)
        assert isinstance(doc["local_received"], float)
        parsed = datetime.fromisoformat(doc["time"])
        assert parsed.tzinfo is not None
        assert abs(parsed.timestamp() - doc["timestamp"]) < 0.001
        for flag in ("args_truncated", "kwargs_truncated", "result_truncated"):
            assert isinstance(doc[flag], bool)
        if doc["type"].startswith("task-"):
            assert doc["uuid"] == event["uuid"]
            assert doc["state"] in STATES
        else:
            assert doc["uuid"] is None and doc["state"] is None and doc["name"] is None
            assert doc["worker"] == event["hostname"]


def test_succeeded_line_is_enriched_from_the_record(recorded: Recorded) -> None:
    _, events = recorded
    done = first(events, "task-succeeded")
    assert "name" not in done and "args" not in done  # the event itself carries neither
    sent = first(events, "task-sent", uuid=done["uuid"])
    docs = replay_json(events)
    doc = next(d for d in docs if d["type"] == "task-succeeded" and d["uuid"] == done["uuid"])
    assert doc["name"] == sent["name"]
    assert doc["args"] == sent["args"] and doc["kwargs"] == sent["kwargs"]
    assert doc["queue"] == sent["queue"]
    assert doc["root_id"] == sent["root_id"]
    assert doc["result"] == done["result"] and doc["runtime"] == done["runtime"]
    assert doc["state"] == "SUCCESS"
    assert doc["worker"] == done["hostname"]


def test_state_is_the_state_right_after_each_event_whatever_the_batching(
        recorded: Recorded) -> None:
    """received + started + succeeded of one task in one batch still print three states."""
    _, events = recorded
    one = [(d["type"], d["uuid"], d["state"], d["worker"], d["retries"])
           for d in replay_json(events, batch=1)]
    big = [(d["type"], d["uuid"], d["state"], d["worker"], d["retries"])
           for d in replay_json(events, batch=512)]
    assert one == big


def test_lifecycle_states_of_a_plain_task(recorded: Recorded) -> None:
    _, events = recorded
    done = first(events, "task-succeeded")
    mine = task_events(events, done["uuid"])
    docs = replay_json(mine, batch=len(mine))
    expected = {"task-sent": "PENDING", "task-received": "RECEIVED",
                "task-started": "STARTED", "task-succeeded": "SUCCESS"}
    assert [(d["type"], d["state"]) for d in docs] == [(e["type"], expected[e["type"]]) for e in mine]


def test_retry_lifecycle_keeps_one_uuid_and_counts_retries(recorded: Recorded) -> None:
    _, events = recorded
    retried = first(events, "task-retried")
    mine = task_events(events, retried["uuid"])
    docs = replay_json(mine, batch=len(mine))
    # The re-sent message (retries=1) may arrive before task-retried: the new attempt is
    # then already PENDING, so the retried line shows PENDING rather than RETRY.
    states = [(d["type"], d["state"]) for d in docs]
    assert ("task-received", "RECEIVED") in states[[t for t, _ in states].index("task-retried"):]
    assert docs[-1]["retries"] >= 1 and docs[-1]["state"] in ("SUCCESS", "FAILURE")
    line = next(d for d in docs if d["type"] == "task-retried")
    assert line["exception"] == retried["exception"] and line["traceback"]


def test_last_line_per_task_agrees_with_the_oracle(recorded: Recorded,
                                                   shared_fixtures: Path) -> None:
    broker, events = recorded
    expected = json.loads((shared_fixtures / broker / "expected.json").read_text())
    last: dict[str, dict[str, Any]] = {}
    for doc in replay_json(events, batch=64):
        if doc["uuid"]:
            last[doc["uuid"]] = doc
    assert len(last) == expected["tasks"]
    for uuid, want in expected["tasks_by_uuid"].items():
        got = last[uuid]
        assert (got["state"], got["name"], got["root_id"]) == (
            want["state"], want["name"], want["root_id"]), uuid


def test_failed_line_carries_exception_and_traceback(recorded: Recorded) -> None:
    _, events = recorded
    failed = first(events, "task-failed")
    doc = next(d for d in replay_json(events) if d["type"] == "task-failed")
    assert doc["uuid"] == failed["uuid"]
    assert doc["state"] == "FAILURE"
    assert doc["exception"] == failed["exception"] and "ValueError" in doc["exception"]
    assert doc["traceback"].startswith("Traceback")
    assert doc["name"] == "benchapp.always_fail"


def test_revoked_expired_line(recorded: Recorded) -> None:
    _, events = recorded
    revoked = next(e for e in events if e["type"] == "task-revoked" and e.get("expired"))
    doc = next(d for d in replay_json(events) if d.get("uuid") == revoked["uuid"]
               and d["type"] == "task-revoked")
    assert doc["state"] == "REVOKED" and doc["expired"] is True and doc["terminated"] is False


def test_values_json_cannot_hold_become_json_not_reprs() -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque-value"

    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    event = {
        "type": "task-custom", "uuid": "u1", "hostname": "w@h", "timestamp": 1.5,
        "when": when, "took": timedelta(seconds=3), "price": Decimal("1.10"),
        "id": uuidlib.UUID(int=1), "raw": b"\xff\x00", "tags": {"a"}, "pair": (1, 2),
        "nan": math.nan, "inf": math.inf, "obj": Opaque(), "nested": {1: [when]},
    }
    doc = json.loads(JsonFormatter().format(TailEvent(event=event, type="task-custom", uuid="u1")))
    assert doc["when"] == "2026-01-02T03:04:05Z"
    assert doc["took"] == "PT3S"
    assert doc["price"] == "1.10"
    assert doc["id"] == "00000000-0000-0000-0000-000000000001"
    assert doc["raw"] == "/wA="
    assert doc["tags"] == ["a"] and doc["pair"] == [1, 2]
    assert doc["nan"] is None and doc["inf"] is None
    assert doc["obj"] == "opaque-value"
    assert doc["nested"] == {"1": ["2026-01-02T03:04:05Z"]}
    odd = {"type": "task-x", "bad": "\ud800", "keys": {(1, 2): "tuple key"}}
    doc = json.loads(JsonFormatter().format(TailEvent(event=odd, type="task-x")))
    assert doc["bad"] == "\\ud800" and doc["keys"] == {"(1, 2)": "tuple key"}


def test_event_fields_cannot_override_computed_keys() -> None:
    event = {"type": "task-started", "uuid": "u", "state": "FAKE", "worker": "fake", "time": "x"}
    item = TailEvent(event=event, type="task-started", uuid="u", state="STARTED", worker="w@h")
    doc = json.loads(JsonFormatter().format(item))
    assert (doc["state"], doc["worker"], doc["time"]) == ("STARTED", "w@h", None)


# --------------------------------------------------------------------------- text lines


def test_text_lines_one_per_event_with_all_columns(utc: None, recorded: Recorded) -> None:
    _, events = recorded
    done = first(events, "task-succeeded")
    mine = task_events(events, done["uuid"])
    lines = replay_text(mine, batch=len(mine))
    assert len(lines) == len(mine)
    for line, event in zip(lines, mine, strict=True):
        clock = time.strftime("%H:%M:%S", time.gmtime(event["timestamp"]))
        assert line.startswith(clock + ".")
        fields = line.split()
        assert fields[1] == event["type"]
        assert fields[2] == "benchapp.add" or fields[2].startswith("benchapp.")
        assert fields[3] == done["uuid"][:8]
        assert "\x1b" not in line and "\n" not in line
    sent_line, received_line, _started, succeeded_line = lines
    assert "args=" in sent_line and "args=" in received_line
    assert succeeded_line.split()[4] == done["hostname"]
    assert re.search(r" \d+(\.\d+)?(µs|ms|s) -> ", succeeded_line)
    assert succeeded_line.endswith(f"-> {done['result']}")


def test_text_line_exact_shape(utc: None) -> None:
    uuid = "20bfd4e8-f0c0-4976-91a3-d59ff08b12ce"
    event = {"type": "task-failed", "uuid": uuid,
             "hostname": "rec1@vm", "timestamp": 1795825492.6071703,
             "exception": "ValueError(\"bad payload: 'x-5'\")", "traceback": "Traceback ..."}
    item = TailEvent(event=event, type="task-failed", uuid=uuid,
                     name="benchapp.always_fail", state="FAILURE", worker="rec1@vm")
    line = TextFormatter().format_text(item)
    assert line == ("00:24:52.607 task-failed      benchapp.always_fail 20bfd4e8 rec1@vm      "
                    "ValueError(\"bad payload: 'x-5'\")")


@pytest.mark.parametrize(("event", "summary"), [
    ({"type": "task-revoked", "terminated": True, "signum": 15, "expired": False},
     "terminated (SIGTERM)"),
    ({"type": "task-revoked", "terminated": False, "signum": None, "expired": True}, "expired"),
    ({"type": "task-revoked", "terminated": False, "signum": None, "expired": False}, "revoked"),
    ({"type": "task-rejected", "requeue": True}, "requeued"),
    ({"type": "task-received", "args": "(1, 2)", "kwargs": "{'a': 1}", "retries": 2,
      "eta": "2026-01-01T00:00:00"},
     "args=(1, 2) kwargs={'a': 1} retries=2 eta=2026-01-01T00:00:00"),
    ({"type": "task-sent", "args": "()", "kwargs": "{}", "retries": 0}, "args=()"),
    ({"type": "task-succeeded", "result": "3", "runtime": 0.0012345}, "1.2ms -> 3"),
    ({"type": "task-succeeded", "result": "None", "runtime": 9.853e-05}, "99µs -> None"),
    ({"type": "task-succeeded", "result": "1", "runtime": 3.14159}, "3.14s -> 1"),
    ({"type": "task-succeeded", "result": "1", "runtime": 3600.4}, "3600s -> 1"),
    ({"type": "task-retried", "exception": "RuntimeError('x')"}, "RuntimeError('x')"),
    ({"type": "worker-online", "hostname": "w@h", "active": 0, "processed": 12,
      "loadavg": [0.5, 0.25, 0.1], "freq": 2.0}, "active=0 processed=12 load=0.5,0.25,0.1"),
    ({"type": "worker-heartbeat", "hostname": "w@h", "freq": 5}, "freq=5"),
    ({"type": "task-progress", "uuid": "u", "hostname": "w@h", "done": 3}, "done=3"),
])
def test_text_summaries(event: dict[str, Any], summary: str) -> None:
    item = TailEvent(event={"timestamp": 0.0, **event}, type=event["type"],
                     uuid="0123456789", worker="w@h")
    line = TextFormatter().format_text(item)
    assert line.endswith(" " + summary)


def test_started_line_has_no_trailing_space() -> None:
    item = TailEvent(event={"type": "task-started", "timestamp": 0.0}, type="task-started",
                     uuid="abc", name="n", worker="w")
    assert not TextFormatter().format_text(item).endswith(" ")


def test_terminal_width_cuts_long_summaries_only_on_a_terminal() -> None:
    event = {"type": "task-succeeded", "timestamp": 0.0, "result": "x" * 1000, "runtime": 0.5}
    item = TailEvent(event=event, type="task-succeeded", uuid="0123456789", name="a.b",
                     state="SUCCESS", worker="w@h")
    cut = TextFormatter(width=100).format_text(item)
    assert len(cut) == 99 and cut.endswith("…")  # the last column stays free: no auto-wrap
    narrow = TextFormatter(width=20).format_text(item)  # never below 12 characters of summary
    assert narrow.endswith("…") and len(narrow.split(" ", 5)[-1].lstrip()) >= 12
    whole = TextFormatter(width=None).format_text(item)
    assert whole.endswith("x" * 1000)


def test_control_characters_never_reach_the_terminal() -> None:
    event = {"type": "task-succeeded", "timestamp": 0.0, "result": "'\x1b[2J\x07ok'",
             "runtime": 1.0}
    item = TailEvent(event=event, type="task-succeeded", uuid="u", name="evil\x1b]0;x\x07",
                     worker="w\rh")
    line = TextFormatter(color=True).format_text(item)
    assert "\x07" not in line and "\r" not in line
    assert "\\x1b[2J\\x07ok" in line and "evil\\x1b]0;x\\x07" in line
    assert ANSI.sub("", line).count("\x1b") == 0


def test_columns_widen_for_long_names_and_stay_aligned(utc: None) -> None:
    formatter = TextFormatter()
    def line(name: str) -> str:
        item = TailEvent(event={"type": "task-started", "timestamp": 0.0}, type="task-started",
                         uuid="0123456789", name=name, worker="w@h")
        return formatter.format_text(item)
    line("a" * 30)
    short, long_ = line("short"), line("b" * 30)
    assert short.index("01234567") == long_.index("01234567")


def test_text_encoding_never_fails() -> None:
    item = TailEvent(event={"type": "task-succeeded", "timestamp": 0.0, "result": "'é☃'"},
                     type="task-succeeded", uuid="u", name="n", worker="w")
    assert TextFormatter(encoding="ascii").format(item).endswith(b"-> '\\xe9\\u2603'\n")


# --------------------------------------------------------------------------- colour


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_colour_only_on_a_terminal_without_no_color() -> None:
    assert use_color(_Stream(tty=True), no_color=False, environ={}) is True
    assert use_color(_Stream(tty=False), no_color=False, environ={}) is False
    assert use_color(_Stream(tty=True), no_color=True, environ={}) is False
    assert use_color(_Stream(tty=True), no_color=False, environ={"NO_COLOR": "1"}) is False
    assert use_color(_Stream(tty=True), no_color=False, environ={"NO_COLOR": ""}) is True
    assert use_color(_Stream(tty=True), no_color=False, environ={"TERM": "dumb"}) is False


def test_coloured_lines_use_state_colours(recorded: Recorded) -> None:
    _, events = recorded
    done = first(events, "task-succeeded")
    failed = first(events, "task-failed")
    mine = task_events(events, done["uuid"]) + task_events(events, failed["uuid"])
    lines = replay_text(mine, formatter=TextFormatter(color=True))
    by_type = {ANSI.sub("", line).split()[1]: line for line in lines}
    assert "\x1b[32mtask-succeeded" in by_type["task-succeeded"]
    assert "\x1b[1;31mtask-failed" in by_type["task-failed"]
    assert all(line.endswith("\x1b[0m") or not ANSI.search(line.split()[-1]) for line in lines)
    plain = replay_text(mine, formatter=TextFormatter(color=False))
    assert [ANSI.sub("", line) for line in lines] == plain


# --------------------------------------------------------------------------- filters


_EVERYTHING: dict[str, list[dict[str, Any]]] = {}


def _everything(broker: str, events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every line with no filter, once per broker (the oracle the filters are checked against)."""
    if broker not in _EVERYTHING:
        _EVERYTHING[broker] = replay_json(events, batch=32)
    return _EVERYTHING[broker]


def _oracle(docs: list[dict[str, Any]], pred: Any) -> list[tuple[str, str | None]]:
    return [(d["type"], d["uuid"]) for d in docs if pred(d)]


@pytest.mark.parametrize(("kwargs", "pred"), [
    ({"types": ("task-failed",)}, lambda d: d["type"] == "task-failed"),
    ({"types": ("task-*",)}, lambda d: d["type"].startswith("task-")),
    ({"types": ("TASK-FAILED", "task-retried")},
     lambda d: d["type"] in ("task-failed", "task-retried")),
    ({"states": frozenset({"failure"})}, lambda d: d["state"] == "FAILURE"),
    ({"states": frozenset({"SUCCESS", "RETRY"})}, lambda d: d["state"] in ("SUCCESS", "RETRY")),
    ({"names": ("benchapp.fl*",)}, lambda d: (d["name"] or "").startswith("benchapp.fl")),
    ({"names": ("*.add", "*.sleepy")},
     lambda d: d["name"] in ("benchapp.add", "benchapp.sleepy")),
    ({"workers": ("rec1@*",)},
     lambda d: (d["worker"] or "").startswith("rec1@") or d["hostname"].startswith("rec1@")),
    ({"workers": ("gen*",)}, lambda d: d["hostname"].startswith("gen")),
    ({"types": ("task-succeeded",), "names": ("benchapp.add",), "workers": ("rec2@vm",)},
     lambda d: d["type"] == "task-succeeded" and d["name"] == "benchapp.add"
     and d["worker"] == "rec2@vm"),
])
def test_filters_select_what_the_printed_fields_say(
        recorded: Recorded, kwargs: dict[str, Any], pred: Any) -> None:
    broker, events = recorded
    everything = _everything(broker, events)
    got = replay_json(events, batch=32, event_filter=EventFilter(**kwargs))
    want = _oracle(everything, pred)
    assert want, "the filter should select something in the recorded stream"
    assert [(d["type"], d["uuid"]) for d in got] == want


def test_state_filter_failure_prints_only_failures(recorded: Recorded) -> None:
    """Received/started of a failing task in the same batch as its failure are not FAILURE."""
    _, events = recorded
    docs = replay_json(events, batch=512, event_filter=EventFilter(states=frozenset({"FAILURE"})))
    assert {d["type"] for d in docs} == {"task-failed"}
    assert len(docs) == sum(e["type"] == "task-failed" for e in events)


def test_task_id_prefix_filter(recorded: Recorded) -> None:
    _, events = recorded
    target = first(events, "task-succeeded")["uuid"]
    docs = replay_json(events, event_filter=EventFilter(task_ids=(target[:6].upper(),)))
    assert docs and all(d["uuid"].startswith(target[:6]) for d in docs)
    assert {d["uuid"] for d in docs} >= {target}
    exact = replay_json(events, event_filter=EventFilter(task_ids=(target,)))
    assert [d["type"] for d in exact] == [e["type"] for e in task_events(events, target)]


def test_heartbeats_hidden_unless_asked_for(recorded: Recorded) -> None:
    _, events = recorded
    beats = sum(e["type"] == "worker-heartbeat" for e in events)
    assert beats

    def count(**kwargs: Any) -> int:
        docs = replay_json(events, event_filter=EventFilter(**kwargs))
        return sum(d["type"] == "worker-heartbeat" for d in docs)

    assert count() == 0
    assert count(types=("worker-*",)) == 0
    assert count(heartbeats=True) == beats
    assert count(types=("worker-heartbeat",)) == beats
    assert count(types=("task-*",), heartbeats=True) == 0


def test_worker_events_never_match_task_filters() -> None:
    item = TailEvent(event={"type": "worker-online", "hostname": "w@h"}, type="worker-online",
                     worker="w@h")
    assert EventFilter().matches(item)
    assert not EventFilter(states=frozenset({"SUCCESS"})).matches(item)
    assert not EventFilter(names=("*",)).matches(item)
    assert not EventFilter(task_ids=("",)).matches(item)
    assert EventFilter(workers=("w@*",)).matches(item)


def _tail_args(*argv: str) -> Any:
    return build_parser().parse_args(["tail", *argv])


def test_command_line_options_build_the_filter() -> None:
    args = _tail_args("--json", "--type", "task-*", "--state", "failure, retry", "--state",
                      "Success", "--name", "billing.*", "--worker", "w1@*", "--task-id", "3f2a",
                      "--task-id", "77", "--heartbeats", "--limit", "5", "--timeout", "2.5")
    assert args.handler == "lazycelery.commands.tail:run"
    assert (args.json, args.limit, args.timeout) == (True, 5, 2.5)
    flt = filter_from_args(args)
    assert flt.types == ("task-*",)
    assert flt.states == frozenset({"FAILURE", "RETRY", "SUCCESS"})
    assert flt.names == ("billing.*",) and flt.workers == ("w1@*",)
    assert flt.task_ids == ("3f2a", "77") and flt.heartbeats


def test_unknown_state_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"unknown state 'FAILED'.*FAILURE"):
        filter_from_args(_tail_args("--state", "failed"))


@pytest.mark.parametrize("argv", [("--limit", "0"), ("--limit", "x"), ("--timeout", "0"),
                                  ("--timeout", "-1"), ("--timeout", "nan")])
def test_bad_limit_or_timeout_is_rejected(argv: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _tail_args(*argv)
    assert exc.value.code == 2
    assert "tail: error: argument" in capsys.readouterr().err


def test_type_typos_get_a_hint_but_custom_types_pass() -> None:
    (warning,) = type_warnings(["task-failure", "task-*", "task-failed", "worker-online"])
    assert "did you mean task-failed?" in warning
    assert EventFilter(types=("task-progress",)).type_matches("task-progress")


def test_no_color_environment_reaches_the_formatter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    assert use_color(_Stream(tty=True), no_color=False) is False
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.delenv("TERM", raising=False)
    assert use_color(_Stream(tty=True), no_color=False) is True
    assert os.environ.get("NO_COLOR") is None


def test_filter_language_selects_by_the_task_after_each_event() -> None:
    """``--filter`` uses the dashboard's language on the task as it was after the event."""
    import argparse

    from lazycelery.tail import TailIndex, enrich, filter_from_args
    from tests.replay import load_events

    args = argparse.Namespace(query="state:failure name:*.always_fail", type=None, state=None,
                              name=None, worker=None, task_id=None, heartbeats=False)
    event_filter = filter_from_args(args)
    assert event_filter.query is not None
    index = TailIndex(max_tasks=1_000_000)
    from lazycelery.tail.filters import _query_matches

    kinds: dict[str, int] = {}
    for event in load_events("redis"):
        [record] = index.apply_batch([event])
        after = index.take_after(1)
        item = enrich(event, record, after[0] if after else None)
        if item is None or not event_filter.matches(item):
            continue
        if _query_matches(event_filter.query, record, item):
            kinds[item.type] = kinds.get(item.type, 0) + 1
    # always_fail tasks: only their task-failed events match (received/started were not FAILURE)
    assert kinds == {"task-failed": 97}


def test_bad_filter_is_one_line_usage_error() -> None:
    import argparse

    import pytest

    from lazycelery.errors import UsageError
    from lazycelery.tail import filter_from_args

    args = argparse.Namespace(query="state:nosuch", type=None, state=None, name=None,
                              worker=None, task_id=None, heartbeats=False)
    with pytest.raises(UsageError) as info:
        filter_from_args(args)
    assert "\n" not in str(info.value)
