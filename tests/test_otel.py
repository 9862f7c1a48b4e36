"""Span export (lazycelery/otel) replaying the recorded real event streams into the SDK's
InMemorySpanExporter: one trace per workflow, deterministic ids, failure status, retries and
revocations, the tail-sampling rules, the bounded hand-off, the traceparent companion's event,
and the settings."""

from __future__ import annotations

import argparse
import collections
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode

from lazycelery.core.index import TaskIndex
from lazycelery.errors import ConfigError
from lazycelery.otel.hook import start_tracing
from lazycelery.otel.ids import (
    attempt_span_id,
    parse_traceparent,
    span_id_of,
    trace_id_of,
)
from lazycelery.otel.pipeline import SpanPipeline
from lazycelery.otel.sampling import TailSampler, ratio_keeps
from lazycelery.otel.settings import GRPC, HTTP, OtelSettings, otel_settings
from lazycelery.otel.spans import split_exception
from tests.replay import BROKERS, load_events

EVENTS = {broker: load_events(broker) for broker in BROKERS}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def replay(events: Sequence[Mapping[str, Any]], pipeline: SpanPipeline, batch: int = 64,
           clock: Clock | None = None, step: float = 0.0) -> None:
    index = TaskIndex()
    for i in range(0, len(events), batch):
        chunk = events[i:i + batch]
        pipeline.on_batch(chunk, index.apply_batch(chunk))
        if clock is not None:
            clock.now += step
            pipeline.pump()


def export(events: Sequence[Mapping[str, Any]], **settings: Any) -> tuple[list[Any], SpanPipeline]:
    memory = InMemorySpanExporter()
    pipeline = SpanPipeline(OtelSettings(**settings), memory)
    replay(events, pipeline)
    pipeline.stop()
    return list(memory.get_finished_spans()), pipeline


def tasks_of(events: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """uuid -> its task-sent/received event (name, root_id, parent_id)."""
    out: dict[str, Mapping[str, Any]] = {}
    for e in events:
        if e["type"] in ("task-sent", "task-received"):
            out.setdefault(e["uuid"], e)
    return out


def final_spans(spans: Sequence[Any]) -> dict[str, Any]:
    return {s.attributes["celery.task_id"]: s for s in spans if s.attributes["celery.state"] != "RETRY"}


@pytest.fixture(scope="module", params=BROKERS)
def exported(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[Any]]]:
    spans, _ = export(EVENTS[request.param])
    yield request.param, spans


# --------------------------------------------------------------------------- ids


def test_ids_come_from_the_task_ids() -> None:
    root = "4cae991c-9040-448b-8635-af1c44ef2955"
    assert trace_id_of(root) == 0x4CAE991C9040448B8635AF1C44EF2955
    assert span_id_of(root) == 0x8635AF1C44EF2955
    assert trace_id_of("my-custom-id") == trace_id_of("my-custom-id") != 0
    assert span_id_of("my-custom-id") < 1 << 64
    assert attempt_span_id(root, 0) != attempt_span_id(root, 1) != span_id_of(root)


def test_traceparent_parsing() -> None:
    good = parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    assert good is not None
    assert good.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert good.span_id == 0xB7AD6B7169203331
    assert good.sampled
    for bad in ("", "garbage", None, 42, "00-" + "0" * 32 + "-b7ad6b7169203331-01",
                "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "00-x" * 40):
        assert parse_traceparent(bad) is None


def test_exception_text_is_split_into_type_and_message() -> None:
    assert split_exception("ValueError(\"bad payload: 'x-5'\")") == ("ValueError", "bad payload: 'x-5'")
    assert split_exception("NotRegistered('x')") == ("NotRegistered", "x")
    assert split_exception("something odd") == (None, "something odd")
    assert split_exception(None) == (None, None)


# --------------------------------------------------------------------------- replayed spans


def test_one_span_per_finished_task_and_per_retried_attempt(exported: tuple[str, list[Any]]) -> None:
    broker, spans = exported
    events = EVENTS[broker]
    counts = collections.Counter(e["type"] for e in events)
    finals = final_spans(spans)
    terminal = {e["uuid"] for e in events
                if e["type"] in ("task-succeeded", "task-failed", "task-revoked")}
    assert set(finals) == terminal
    retries = [s for s in spans if s.attributes["celery.state"] == "RETRY"]
    assert 0 < len(retries) <= counts["task-retried"]
    assert len({(s.context.trace_id, s.context.span_id) for s in spans}) == len(spans)


def test_a_workflow_is_one_trace_with_parents_from_parent_id(exported: tuple[str, list[Any]]) -> None:
    broker, spans = exported
    tasks = tasks_of(EVENTS[broker])
    finals = final_spans(spans)
    chains = chords = 0
    by_root: dict[str, list[str]] = collections.defaultdict(list)
    for uuid, event in tasks.items():
        by_root[event.get("root_id") or uuid].append(uuid)
    for root, members in by_root.items():
        present = [finals[m] for m in members if m in finals]
        if len(members) < 2 or len(present) < 2:
            continue
        assert {s.context.trace_id for s in present} == {trace_id_of(root)}
        for uuid in members:
            span = finals.get(uuid)
            if span is None:
                continue
            parent = tasks[uuid].get("parent_id")
            if parent:
                assert span.parent.span_id == span_id_of(parent)
                assert span.parent.trace_id == trace_id_of(root)
            else:
                assert span.parent is None
        names = {tasks[m]["name"] for m in members}
        chains += len(members) == 3
        chords += "benchapp.tsum" in names
    assert chains > 50 and chords > 50  # the chains of 3 and the chords' bodies with their root


def test_ids_are_deterministic_across_runs(exported: tuple[str, list[Any]]) -> None:
    broker, spans = exported
    again, _ = export(EVENTS[broker], queue_size=10**6)

    def ids(items: Sequence[Any]) -> set[tuple[int, int, int | None]]:
        return {(s.context.trace_id, s.context.span_id, s.parent.span_id if s.parent else None)
                for s in items}

    assert ids(again) == ids(spans)


def test_failures_are_errors_with_the_exception(exported: tuple[str, list[Any]]) -> None:
    broker, spans = exported
    failed = {e["uuid"] for e in EVENTS[broker] if e["type"] == "task-failed"}
    finals = final_spans(spans)
    assert failed
    for uuid in failed:
        span = finals[uuid]
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes["exception.type"] in ("ValueError", "RuntimeError")
        event = next(e for e in span.events if e.name == "exception")
        assert event.attributes["exception.stacktrace"].startswith("Traceback")
    ok = [s for s in finals.values() if s.attributes["celery.state"] == "SUCCESS"]
    assert ok and all(s.status.status_code is StatusCode.UNSET for s in ok)
    assert all(s.start_time <= s.end_time for s in spans)


def test_a_span_covers_the_wait_and_the_run(exported: tuple[str, list[Any]]) -> None:
    broker, spans = exported
    by_uuid = collections.defaultdict(dict)
    for e in EVENTS[broker]:
        by_uuid[e.get("uuid", "")].setdefault(e["type"], e)
    span = next(s for s in final_spans(spans).values()
                if s.attributes["celery.state"] == "SUCCESS" and s.attributes["celery.retries"] == 0
                and "task-sent" in by_uuid[s.attributes["celery.task_id"]])
    seen = by_uuid[span.attributes["celery.task_id"]]
    assert span.start_time == int(seen["task-sent"]["timestamp"] * 1e9)
    assert span.end_time == int(seen["task-succeeded"]["timestamp"] * 1e9)
    names = [e.name for e in span.events]
    assert names[:2] == ["received", "started"]
    assert span.events[0].attributes["celery.wait_seconds"] >= 0
    assert span.attributes["celery.worker"] and span.attributes["celery.queue"]
    assert span.attributes["celery.runtime"] > 0


def test_retries_and_revocations_are_span_events(exported: tuple[str, list[Any]]) -> None:
    _broker, spans = exported
    finals = final_spans(spans)
    retried = [s for s in finals.values() if s.attributes["celery.retries"] > 0]
    assert retried
    for span in retried:
        assert "retry" in [e.name for e in span.events]
    attempts = [s for s in spans if s.attributes["celery.state"] == "RETRY"]
    for span in attempts:
        assert span.status.status_code is StatusCode.ERROR
        final = finals.get(span.attributes["celery.task_id"])
        if final is not None:
            assert span.context.trace_id == final.context.trace_id
            assert span.parent == final.parent
    revoked = [s for s in finals.values() if s.attributes["celery.state"] == "REVOKED"]
    assert revoked
    for span in revoked:
        event = next(e for e in span.events if e.name == "revoked")
        assert "celery.expired" in event.attributes


# --------------------------------------------------------------------------- sampling


def test_the_ratio_uses_the_random_bits_of_uuid4_trace_ids() -> None:
    """uuid4's low 64 bits start with the variant bits (always 10): a rule on them would keep
    nothing under 50 %. The rightmost 56 bits are random."""
    import uuid

    ids = [trace_id_of(str(uuid.uuid4())) for _ in range(4000)]
    for ratio in (0.01, 0.1, 0.3, 0.7):
        kept = sum(ratio_keeps(t, ratio) for t in ids) / len(ids)
        assert abs(kept - ratio) < 0.05
    assert all(ratio_keeps(t, 1.0) and not ratio_keeps(t, 0.0) for t in ids[:50])


def _decided(broker: str, ratio: float, slow: float | None = None) -> tuple[list[Any], SpanPipeline]:
    memory = InMemorySpanExporter()
    clock = Clock()
    pipeline = SpanPipeline(OtelSettings(sample_ratio=ratio, slow_seconds=slow, decision_wait=2.0),
                            memory, clock=clock)
    replay(EVENTS[broker], pipeline, clock=clock, step=0.05)
    pipeline.stop()
    return list(memory.get_finished_spans()), pipeline


@pytest.mark.parametrize("broker", BROKERS)
def test_tail_rules_keep_every_failed_or_retried_trace(broker: str) -> None:
    spans, pipeline = _decided(broker, ratio=0.0)
    events = EVENTS[broker]
    tasks = tasks_of(events)
    root = {u: (e.get("root_id") or u) for u, e in tasks.items()}
    bad_roots = {root.get(e["uuid"], e["uuid"]) for e in events
                 if e["type"] in ("task-failed", "task-retried")}
    kept_roots = {root.get(s.attributes["celery.task_id"], s.attributes["celery.task_id"])
                  for s in spans}
    assert bad_roots <= kept_roots
    # nothing else: the ratio is 0
    assert kept_roots <= bad_roots
    stats = pipeline.stats()
    assert stats.sampled_out > 0 and stats.lost == 0
    assert stats.exported == len(spans)


@pytest.mark.parametrize("broker", BROKERS)
def test_a_ratio_keeps_whole_traces(broker: str) -> None:
    spans, _ = _decided(broker, ratio=0.3)
    full, _ = export(EVENTS[broker])
    by_trace_all = collections.Counter(s.context.trace_id for s in full)
    by_trace_kept = collections.Counter(s.context.trace_id for s in spans)
    for trace_id, count in by_trace_kept.items():
        assert count == by_trace_all[trace_id], "a kept trace lost spans"
    plain = [t for t in by_trace_all if all(
        s.status.status_code is StatusCode.UNSET and s.attributes["celery.retries"] == 0
        for s in full if s.context.trace_id == t)]
    kept_plain = [t for t in plain if t in by_trace_kept]
    assert 0.2 < len(kept_plain) / len(plain) < 0.4
    assert all(ratio_keeps(t, 0.3) for t in kept_plain)


def test_slow_traces_are_kept() -> None:
    events = EVENTS["redis"]
    spans, _ = _decided("redis", ratio=0.0, slow=0.5)
    slow = {s.attributes["celery.task_id"] for s in spans
            if s.status.status_code is StatusCode.UNSET and s.attributes["celery.retries"] == 0
            and (s.end_time - s.start_time) > 0.5e9}
    assert slow, "the recording has tasks slower than 0.5 s (sleepy)"
    assert any(tasks_of(events)[u]["name"] == "benchapp.sleepy" for u in slow)


def test_the_sampler_waits_for_the_root_then_decides() -> None:
    clock = Clock()
    sampler: TailSampler[str] = TailSampler(0.0, wait=5.0, max_spans=100, clock=clock)
    assert sampler.add("r", 1, "child-ok", root_done=False, interesting=False) == []
    assert sampler.add("r", 1, "root", root_done=True, interesting=False) == []
    clock.now += 4.9
    assert sampler.add("r", 1, "late-fail", root_done=False, interesting=True) == []
    assert sampler.due() == []
    clock.now += 0.2
    assert sampler.due() == ["child-ok", "root", "late-fail"]
    # decided "keep": a later span goes out at once
    assert sampler.add("r", 1, "later", root_done=False, interesting=False) == ["later"]
    # a plain trace is dropped, but a failure after the drop is still kept
    sampler.add("p", 2, "ok", root_done=True, interesting=False)
    clock.now += 6
    assert sampler.due() == []
    assert sampler.add("p", 2, "ok2", root_done=False, interesting=False) == []
    assert sampler.add("p", 2, "failed", root_done=False, interesting=True) == ["failed"]
    assert sampler.dropped_spans == 2


def test_the_sampler_is_bounded() -> None:
    clock = Clock()
    sampler: TailSampler[int] = TailSampler(1.0, wait=60.0, max_spans=10, max_decisions=5,
                                            clock=clock)
    released: list[int] = []
    for i in range(100):
        released += sampler.add(f"t{i}", i + 1, i, root_done=False, interesting=False)
    assert sampler.held <= 10
    assert released == list(range(90))  # the oldest traces were decided early, in order
    assert len(sampler._decided) == 5
    # a trace whose root is never seen is decided after max_age
    clock.now += sampler.max_age
    assert sampler.due() == list(range(90, 100))


# --------------------------------------------------------------------------- the hand-off


def test_a_full_queue_loses_counted_and_never_blocks() -> None:
    memory = InMemorySpanExporter()
    pipeline = SpanPipeline(OtelSettings(queue_size=100), memory)  # not started: nobody drains
    replay(EVENTS["redis"], pipeline)
    assert pipeline.queued == 100
    assert pipeline.lost > 2000
    pipeline.stop()
    assert len(memory.get_finished_spans()) == 100
    assert f"{pipeline.lost:,} lost (queue full)" in pipeline.summary()


def test_the_exporter_thread_exports_while_ingest_runs() -> None:
    memory = InMemorySpanExporter()
    pipeline = SpanPipeline(OtelSettings(), memory).start()
    replay(EVENTS["amqp"], pipeline)
    from conftest import wait_for

    wait_for(lambda: pipeline.built >= 3000, timeout=30, what="spans built by the thread")
    pipeline.stop()
    assert pipeline.stats().exported == pipeline.built == len(memory.get_finished_spans())


class FailingExporter(InMemorySpanExporter):
    def export(self, spans: Sequence[Any]) -> Any:
        raise ConnectionRefusedError("collector down")


def test_an_exporter_failure_is_counted_and_reported() -> None:
    lines: list[str] = []
    pipeline = SpanPipeline(OtelSettings(), FailingExporter(), notify=lines.append)
    replay(EVENTS["redis"][:400], pipeline)
    pipeline.stop()
    stats = pipeline.stats()
    assert stats.exported == 0 and stats.export_failed + stats.export_dropped == pipeline.built > 0
    assert "collector down" in pipeline.summary()


# --------------------------------------------------------------------------- traceparent


def test_the_companion_traceparent_puts_the_workflow_under_the_producer() -> None:
    events = EVENTS["redis"]
    tasks = tasks_of(events)
    root = next(u for u, e in tasks.items()
                if e.get("root_id") == u and sum(1 for t in tasks.values() if t.get("root_id") == u) == 3)
    producer_trace, producer_span = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331
    report = {"type": "task-traceparent", "uuid": root, "hostname": "w@h", "timestamp": 1.0,
              "traceparent": f"00-{producer_trace:032x}-{producer_span:016x}-01"}
    first = next(i for i, e in enumerate(events) if e.get("uuid") == root)
    spans, _ = export([*events[:first], report, *events[first:]])
    workflow = [s for s in spans if s.attributes.get("celery.root_id") == root]
    assert len(workflow) == 3
    assert {s.context.trace_id for s in workflow} == {producer_trace}
    top = next(s for s in workflow if s.attributes["celery.task_id"] == root)
    assert top.parent.span_id == producer_span and top.parent.is_remote
    # the report is a task event lazycelery tolerates: it does not change the task
    index = TaskIndex()
    index.apply_batch([*events[:first], report, *events[first:]])
    assert index.get(root).state == "SUCCESS"


# --------------------------------------------------------------------------- settings


def test_settings_from_the_standard_variables() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
           "OTEL_EXPORTER_OTLP_HEADERS": "x-honeycomb-team=abc%3D,other=1",
           "OTEL_SERVICE_NAME": "billing-workers",
           "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
    s = otel_settings(None, env)
    assert s.protocol == HTTP
    assert s.endpoint == "http://collector:4318/v1/traces"
    assert dict(s.headers) == {"x-honeycomb-team": "abc=", "other": "1"}
    assert s.service_name == "billing-workers" and s.sample_ratio == 0.1
    grpc = otel_settings(None, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert grpc.protocol == GRPC and grpc.endpoint == "http://localhost:4317"
    traces = otel_settings(None, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://x/otlp"})
    assert traces.endpoint == "https://x/otlp"


def test_settings_from_the_config_file_and_env_wins(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[otel]\nendpoint = "http://tempo:4318"\nservice_name = "celery-prod"\n'
                    'sample_ratio = 0.05\nslow_seconds = 30\nheaders = { authorization = "Bearer t" }\n')
    s = otel_settings(path, {})
    assert (s.endpoint, s.service_name, s.sample_ratio, s.slow_seconds) == (
        "http://tempo:4318/v1/traces", "celery-prod", 0.05, 30.0)
    assert dict(s.headers) == {"authorization": "Bearer t"}
    s = otel_settings(path, {"OTEL_SERVICE_NAME": "from-env"})
    assert s.service_name == "from-env"


@pytest.mark.parametrize(("env", "text", "message"), [
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "", "OTLP protocol"),
    ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, "", "between 0 and 1"),
    ({"OTEL_EXPORTER_OTLP_HEADERS": "novalue"}, "", "key=value"),
    ({}, "[otel]\nsample_ratio = 3\n", "sample_ratio"),
    ({}, "[otel]\nendpoint = \"collector\"\n", "expected a URL"),
    ({}, "[otel]\nbogus = 1\n", "unknown key"),
])
def test_bad_settings_are_one_line(tmp_path: Path, env: dict[str, str], text: str,
                                   message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        otel_settings(path, env)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_no_flag_no_pipeline() -> None:
    assert start_tracing(argparse.Namespace(otel=False), None, print) is None


# --------------------------------------------------------------------------- the child process's wire


def test_frames_carry_records_and_reports_unchanged() -> None:
    import io

    import msgspec

    from lazycelery.core.model import TaskRecord
    from lazycelery.otel.child import Item, read_frame, write_frame

    rec = TaskRecord(uuid="u1", state="FAILURE", name="n", exception="ValueError('x')",
                     failed=1.5, retries=2, root_id="r")
    items = [Item(0, rec), Item(1, rec, None, 1.25), Item(2, None, "u1", "00-ab-cd-01")]
    stream = io.BytesIO()
    write_frame(stream, msgspec.msgpack.encode(items))
    write_frame(stream, b"")
    stream.write(b"\x00\x00")  # a cut frame ends the stream
    stream.seek(0)
    decoded = msgspec.msgpack.Decoder(list[Item]).decode(read_frame(stream) or b"")
    assert decoded == items
    assert read_frame(stream) == b""
    assert read_frame(stream) is None


def test_a_missing_sdk_is_one_usage_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from lazycelery.errors import UsageError
    from lazycelery.otel import process

    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name.startswith("opentelemetry.exporter.otlp.proto.grpc") else real(name, *args)

    monkeypatch.setattr(process.importlib.util, "find_spec", find_spec)
    assert process.missing_packages(OtelSettings(protocol=GRPC)) == [
        "opentelemetry.exporter.otlp.proto.grpc"]
    assert process.missing_packages(OtelSettings()) == []
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(UsageError, match=r"pip install 'lazycelery\[otel\]'"):
        start_tracing(argparse.Namespace(otel=True), None, print)


# --------------------------------------------------------------------------- the worker-side companion


def test_the_companion_injects_the_current_span_and_keeps_an_existing_header() -> None:
    import sys

    from opentelemetry.sdk.trace import TracerProvider

    plugin = Path(__file__).resolve().parent.parent / "plugins" / "lazycelery-traceparent"
    sys.path.insert(0, str(plugin))
    try:
        import lazycelery_traceparent as companion
    finally:
        sys.path.remove(str(plugin))

    headers: dict[str, Any] = {}
    companion._on_publish(headers=headers)
    assert headers == {}  # no current span: nothing to say
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("request") as span:
        companion._on_publish(headers=headers)
        kept = {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
        companion._on_publish(headers=kept)
    context = span.get_span_context()
    parsed = parse_traceparent(headers["traceparent"])
    assert parsed is not None
    assert (parsed.trace_id, parsed.span_id) == (context.trace_id, context.span_id)
    assert kept["traceparent"].startswith("00-111")

    class Request:
        id = "t1"
        traceparent = headers["traceparent"]

    class Task:
        request = Request()

        def __init__(self) -> None:
            self.sent: list[tuple[str, dict[str, Any]]] = []

        def send_event(self, type_: str, **fields: Any) -> None:
            self.sent.append((type_, fields))

    task = Task()
    companion._on_prerun(task_id="t1", task=task)
    assert task.sent == [("task-traceparent", {"traceparent": headers["traceparent"], "retry": False})]


def test_hostile_events_never_break_the_tap() -> None:
    memory = InMemorySpanExporter()
    pipeline = SpanPipeline(OtelSettings(), memory)
    index = TaskIndex()
    events: list[dict[str, Any]] = [
        {"type": ["task-succeeded"], "uuid": "a"},
        {"type": "task-succeeded", "uuid": {"x": 1}},
        {"type": "task-retried", "uuid": "b", "timestamp": "soon"},
        {"type": "task-traceparent", "uuid": "b", "traceparent": {"deep": [1, 2]}},
        {"type": "task-succeeded", "uuid": "b", "timestamp": 5.0, "hostname": "w"},
    ]
    pipeline.on_batch(events, index.apply_batch(events))
    pipeline.stop()
    spans = memory.get_finished_spans()
    assert sorted(s.attributes["celery.state"] for s in spans) == ["RETRY", "SUCCESS"]
    assert all(s.parent is None for s in spans)
