"""Hostile input in `tail`: every field of recorded real events, set to each hostile value, gives
one line per event (text: control characters as escapes; JSON: valid, with DEL, C1 and bidi
controls escaped too), never a formatting error; `reconciled` lines and stderr notices escape
the same way."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from lazycelery.core.reconcile import Correction
from lazycelery.tail.buffer import LineBuffer
from lazycelery.tail.events import TailIndex
from lazycelery.tail.filters import EventFilter
from lazycelery.tail.format import Formatter, JsonFormatter, TextFormatter, reconciled_line
from lazycelery.tail.sink import TailSink
from lazycelery.tail.status import StatusReporter
from lazycelery.tail.writer import _err_line
from lazycelery.text import visible
from tests.hostile import HOSTILE, RAW, TEXT_HOSTILE, task_variants, worker_variants

SGR = re.compile(r"\x1b\[[0-9;]*m")
# what JSON may not carry raw either (C0 is always escaped by the encoder)
RAW_JSON = re.compile(b"\x7f|\xc2[\x80-\x9f]|\xe2\x80[\xaa-\xae]|\xe2\x81[\xa6-\xa9]")


def run(events: Sequence[Mapping[str, Any]], formatter: Formatter) -> tuple[list[bytes], int]:
    """Events through a TailIndex and a TailSink one at a time, as the ingest thread does; an
    event the index cannot apply is still offered to the sink without a record."""
    index = TailIndex()
    buffer = LineBuffer(max_lines=10**6, max_bytes=1 << 30)
    sink = TailSink(index, EventFilter(heartbeats=True), formatter, buffer,
                    StatusReporter("redis://localhost:6379/0"))
    for event in events:
        try:
            touched = index.apply_batch((event,))
        except Exception:  # the ingest side's problem (it skips such events); format anyway
            touched = [None]
            index.take_after(-1)
        sink.on_batch((event,), touched)
    lines = [item for item in buffer.take(10**9) if isinstance(item, bytes)]
    buffer.close()
    return lines, sink.errors


def variants(value: object) -> list[tuple[str, tuple[dict[str, Any], ...]]]:
    return [(f"{v.story}/{v.kind}/{v.key}", v.events)
            for v in (*task_variants(value), *worker_variants(value))]


@pytest.mark.parametrize("name", list(HOSTILE))
def test_text_lines_of_hostile_events(name: str) -> None:
    value = HOSTILE[name]
    for label, events in variants(value):
        for formatter in (TextFormatter(), TextFormatter(color=True, width=100)):
            lines, errors = run(events, formatter)
            assert errors == 0, label
            assert len(lines) == len(events), label  # heartbeats included: no type filter
            for raw in lines:
                text = raw.decode()
                assert text.endswith("\n") and text.count("\n") == 1, (label, text)
                plain = SGR.sub("", text[:-1]) if formatter.color else text[:-1]
                assert not RAW.search(plain), (label, plain[:200])


@pytest.mark.parametrize("name", list(HOSTILE))
def test_json_lines_of_hostile_events(name: str) -> None:
    value = HOSTILE[name]
    for label, events in variants(value):
        lines, errors = run(events, JsonFormatter())
        assert errors == 0, label
        assert len(lines) == len(events), label
        for raw, event in zip(lines, events, strict=True):
            assert raw.endswith(b"\n") and raw.count(b"\n") == 1, label
            assert not RAW_JSON.search(raw), (label, raw[:200])
            assert json.loads(raw)["type"] == event["type"], label


@pytest.mark.parametrize("name", list(TEXT_HOSTILE))
def test_hostile_names_show_escaped_in_text_lines(name: str) -> None:
    value = TEXT_HOSTILE[name]
    events = next(v.events for v in task_variants(value)
                  if v.story == "task-succeeded" and v.kind == "task-sent" and v.key == "name")
    lines, _ = run(events, TextFormatter())
    shown = visible(value)
    # the name column is cut at 40 cells; the escaped text is there, the raw one is not
    assert all(shown[:30] in line.decode() for line in lines)


@pytest.mark.parametrize("name", list(HOSTILE))
def test_reconciled_lines_escape_like_task_lines(name: str) -> None:
    value = HOSTILE[name]
    fields = {"uuid": "6c0e1f2a-aaaa", "name": "billing.charge", "old_state": "STARTED",
              "state": "SUCCESS", "source": "result backend"}
    for key in (*fields, "unknown_since"):
        correction = Correction(**{**fields, key: value})  # type: ignore[arg-type]
        line = reconciled_line(correction, 1_700_000_000.0).decode()
        assert line.endswith("\n") and line.count("\n") == 1, key
        assert not RAW.search(line[:-1]), (key, line)
        assert " reconciled " in line


def test_reconciled_line_shows_the_escapes() -> None:
    correction = Correction(uuid="\x1b]0;x\x07abcdef", name="evil\x1b[2J", old_state="STARTED",
                            state="SUCCESS", source="result backend")
    line = reconciled_line(correction, 1_700_000_000.0).decode()
    assert "evil\\x1b[2J \\x1b]0;x\\x07a" in line
    assert "STARTED -> SUCCESS [result backend]" in line


def test_stderr_notices_escape_what_brokers_say() -> None:
    err = io.StringIO()
    _err_line(err, "connection lost (Error: \x1b]0;pwned\x07 at redis://h\u202e/0)")
    assert err.getvalue() == ("lazycelery: connection lost (Error: \\x1b]0;pwned\\x07 at "
                              "redis://h\\u202e/0)\n")
