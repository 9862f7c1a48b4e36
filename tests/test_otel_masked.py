"""Spans carry masked values: events holding a kwargs password, a bearer token and an exception
message with a card number go through the ingest's masker, the index and the span pipeline into
the SDK's InMemorySpanExporter; no secret reaches a span's name, attributes, status or events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lazycelery.core.index import TaskIndex
from lazycelery.mask import Masker
from lazycelery.otel.pipeline import SpanPipeline
from lazycelery.otel.settings import OtelSettings

PASSWORD = "hunter2-s3cret"
CARD = "4111111111111111"  # passes the Luhn check
TOKEN = "Bearer abcdefghijklmnopqrstuvwxyz0123456789"
SECRETS = (PASSWORD, CARD, "4111 1111 1111 1111", "abcdefghijklmnopqrstuvwxyz0123456789")
TB = ('Traceback (most recent call last):\n  File "/app/billing.py", line 9, in charge\n'
      "    raise ValueError(f'card {card} declined')\n")


def _events() -> list[dict[str, Any]]:
    t = 1_795_825_000.0
    base = {"hostname": "w1@vm", "utcoffset": 0.0, "pid": 1, "clock": 1}
    out: list[dict[str, Any]] = []
    for n, uuid in enumerate(("11111111-1111-4111-8111-111111111111",
                              "22222222-2222-4222-8222-222222222222")):
        at = t + n
        out += [
            {**base, "type": "task-received", "uuid": uuid, "name": "billing.charge",
             "args": f"('{CARD}',)", "kwargs": f"{{'password': '{PASSWORD}', 'user': 'bob'}}",
             "root_id": uuid, "parent_id": None, "retries": 0, "timestamp": at},
            {**base, "type": "task-started", "uuid": uuid, "timestamp": at + 0.1},
            {**base, "type": "task-retried", "uuid": uuid, "timestamp": at + 0.2,
             "exception": f"RuntimeError('auth {TOKEN} refused')",
             "traceback": TB + f"RuntimeError: auth {TOKEN} refused\n"},
            {**base, "type": "task-started", "uuid": uuid, "timestamp": at + 0.3},
            {**base, "type": "task-failed", "uuid": uuid, "timestamp": at + 0.4,
             "exception": f"ValueError('card {CARD} declined')",
             "traceback": TB + f"ValueError: card {CARD} declined\n"},
        ]
    return out


def _strings(span: Any) -> Iterator[str]:
    yield span.name
    yield str(span.status.description)
    yield from map(str, span.attributes.values())
    for event in span.events:
        yield event.name
        yield from map(str, event.attributes.values())


def _export(masker: Masker | None) -> list[Any]:
    events = _events()
    if masker is not None:
        masker.apply(events)  # what the ingest does before anything else sees a batch
    memory = InMemorySpanExporter()
    pipeline = SpanPipeline(OtelSettings(), memory)
    index = TaskIndex()
    for event in events:  # one batch per event: the retried attempt keeps its own exception
        pipeline.on_batch([event], index.apply_batch([event]))
    pipeline.stop()
    return list(memory.get_finished_spans())


def test_no_secret_reaches_a_span() -> None:
    masker = Masker()
    spans = _export(masker)
    assert len(spans) == 4  # per task: the retried attempt and the failure
    failed = [s for s in spans if s.attributes["celery.state"] == "FAILURE"]
    assert len(failed) == 2
    for span in failed:
        assert span.attributes["exception.type"] == "ValueError"
        assert "chars)" in span.attributes["exception.message"]  # masked, keeping its shape
        stack = next(e for e in span.events if e.name == "exception").attributes
        assert "ValueError: card '***' (text, 16 chars) declined" in stack["exception.stacktrace"]
    retried = [s for s in spans if s.attributes["celery.state"] == "RETRY"]
    assert [s.attributes["exception.type"] for s in retried] == ["RuntimeError"] * 2
    leaks = [(s.name, text) for s in spans for text in _strings(s)
             if any(secret in text for secret in SECRETS)]
    assert leaks == []
    assert sum(masker.counts.values()) >= 4


def test_the_check_can_fail_without_the_masker() -> None:
    """The same events unmasked do carry the secrets into the spans: the check above bites."""
    spans = _export(None)
    texts = [text for s in spans for text in _strings(s)]
    assert any(CARD in text for text in texts)
    assert any("abcdefghijklmnopqrstuvwxyz0123456789" in text for text in texts)
