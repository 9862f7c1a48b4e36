"""One span per task attempt, built from the merged task record (OpenTelemetry SDK, lazily
imported by the caller: this module imports it at the top and is only imported when tracing is on).

The span of a task's last attempt starts when the task was sent (else received) and ends when it
finished; the wait in the queue ends at its ``received`` span event. An attempt that was retried
is a span of its own (status ERROR), a sibling of the last one. Ids come from ``ids``: the trace
is the workflow's root task id, a span's parent is its ``parent_id`` task, so a chain or a chord
launched by a task is one trace; when the worker-side companion reported the root task's
``traceparent``, the workflow joins the producer's trace under the producer's span.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from lazycelery import __version__
from lazycelery.core.model import FAILURE, REJECTED, REVOKED, TaskRecord
from lazycelery.otel.ids import ParentContext, attempt_span_id, span_id_of, trace_id_of

__all__ = ["Finished", "SpanBuilder", "split_exception"]

_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)
_EXCEPTION: Final = re.compile(r"^([A-Za-z_][\w.]*)\((.*)\)$", re.DOTALL)
#: longest exception text parsed as a Python literal for its message
_LITERAL_MAX: Final = 4096


@dataclass(frozen=True, slots=True)
class Finished:
    """A snapshot of a task record when an attempt ended: ``attempt`` is None for the last
    attempt (the task finished), else the number of the attempt that was retried."""

    rec: TaskRecord
    attempt: int | None = None
    #: when a retried attempt ended (its task-retried event's time)
    end: float | None = None


def _ns(t: float | None) -> int | None:
    return None if t is None else int(t * 1e9)


def split_exception(text: str | None) -> tuple[str | None, str | None]:
    """``"ValueError('boom')"`` -> ``("ValueError", "boom")``; anything else is the message."""
    if not text:
        return None, None
    match = _EXCEPTION.match(text.strip())
    if match is None:
        return None, text
    inner = match.group(2).strip()
    message = inner
    if len(inner) <= _LITERAL_MAX and inner[:1] in "'\"":
        try:
            value = ast.literal_eval(inner)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            value = None
        if isinstance(value, str):
            message = value
    return match.group(1), message


def _end_time(rec: TaskRecord) -> float | None:
    for state, value in ((FAILURE, rec.failed), (REVOKED, rec.revoked), (REJECTED, rec.rejected)):
        if rec.state == state:
            return value
    return rec.timestamp


class _Resource(Resource):
    """A Resource whose hash is computed once: the OTLP encoder groups spans by resource and
    the SDK's ``__hash__`` serialises the attributes to JSON on every call (12% of encoding)."""

    def __init__(self, attributes: Any, schema_url: str | None = None) -> None:
        super().__init__(attributes, schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return super().__eq__(other)


class SpanBuilder:
    """Turns ``Finished`` snapshots into SDK ``ReadableSpan``s. ``parents`` maps a task id to
    the ``traceparent`` its worker reported (kept by the caller, bounded)."""

    def __init__(self, service_name: str, parents: Mapping[str, ParentContext] | None = None,
                 resource: Resource | None = None) -> None:
        base = resource or Resource.create({"service.name": service_name})
        self.resource = _Resource(base.attributes, base.schema_url)
        self.scope = InstrumentationScope("lazycelery", __version__)
        self.parents: Mapping[str, ParentContext] = parents if parents is not None else {}

    def trace_id(self, rec: TaskRecord) -> int:
        root = rec.root_id or rec.uuid
        remote = self.parents.get(root)
        return remote.trace_id if remote is not None else trace_id_of(root)

    def build(self, item: Finished) -> ReadableSpan:
        rec, attempt = item.rec, item.attempt
        trace_id = self.trace_id(rec)
        span_id = span_id_of(rec.uuid) if attempt is None else attempt_span_id(rec.uuid, attempt)
        context = SpanContext(trace_id, span_id, is_remote=False, trace_flags=_SAMPLED)
        parent: SpanContext | None = None
        if rec.parent_id and rec.parent_id != rec.uuid:
            parent = SpanContext(trace_id, span_id_of(rec.parent_id), is_remote=True,
                                 trace_flags=_SAMPLED)
        else:
            remote = self.parents.get(rec.uuid)
            if remote is not None and remote.trace_id == trace_id:
                parent = SpanContext(trace_id, remote.span_id, is_remote=True,
                                     trace_flags=_SAMPLED)
        end = (item.end or rec.retried) if attempt is not None else _end_time(rec)
        events: list[Event] = []
        start = self._start(rec, attempt, end, events)
        if end is None or end < start:
            end = start
        status, exc_type, exc_message = self._status(rec, attempt, end, events)
        events.sort(key=lambda e: e.timestamp)
        return ReadableSpan(
            name=rec.name or "celery.task", context=context, parent=parent,
            resource=self.resource, attributes=self._attributes(rec, attempt, exc_type, exc_message),
            events=events, kind=SpanKind.CONSUMER, status=status,
            start_time=_ns(start), end_time=_ns(end), instrumentation_scope=self.scope)

    def _start(self, rec: TaskRecord, attempt: int | None, end: float | None,
               events: list[Event]) -> float:
        received, sent, started = rec.received, rec.sent, rec.started
        same_attempt = rec.sent_attempt == rec.received_attempt or received is None
        candidates = [t for t in (sent if same_attempt else None, received, started)
                      if t is not None and (end is None or t <= end)]
        start = min(candidates) if candidates else (end if end is not None else 0.0)
        if received is not None and start < received and (end is None or received <= end):
            events.append(Event("received", {"celery.wait_seconds": received - start},
                                _ns(received)))
        if started is not None and start < started and (end is None or started <= end):
            events.append(Event("started", {}, _ns(started)))
        if attempt is None and rec.retried is not None and rec.retries and rec.retried <= (
                end if end is not None else rec.retried):
            events.append(Event("retry", {"celery.retries": rec.retries}, _ns(rec.retried)))
        return start

    def _status(self, rec: TaskRecord, attempt: int | None, end: float,
                events: list[Event]) -> tuple[Status, str | None, str | None]:
        if attempt is None and rec.state == REVOKED:
            attrs: dict[str, Any] = {"celery.terminated": rec.terminated,
                                     "celery.expired": rec.expired}
            if rec.signum is not None:
                attrs["celery.signum"] = rec.signum
            events.append(Event("revoked", attrs, _ns(end)))
            return Status(StatusCode.UNSET), None, None
        if attempt is None and rec.state == REJECTED:
            events.append(Event("rejected", {"celery.requeue": rec.requeue}, _ns(end)))
            return Status(StatusCode.ERROR, "rejected"), None, None
        if attempt is None and rec.state != FAILURE:
            return Status(StatusCode.UNSET), None, None
        exc_type, exc_message = split_exception(rec.exception)
        attrs = {"exception.type": exc_type or "Exception",
                 "exception.message": exc_message or ""}
        if rec.traceback:
            attrs["exception.stacktrace"] = rec.traceback
        if attempt is not None:
            attrs["celery.retry"] = True
        events.append(Event("exception", attrs, _ns(end)))
        description = rec.exception or ("retried" if attempt is not None else "failed")
        return Status(StatusCode.ERROR, description), exc_type, exc_message

    @staticmethod
    def _attributes(rec: TaskRecord, attempt: int | None, exc_type: str | None,
                    exc_message: str | None) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "messaging.system": "celery", "celery.task_id": rec.uuid,
            "celery.state": "RETRY" if attempt is not None else rec.state,
            "celery.retries": rec.retries if attempt is None else attempt,
        }
        optional: tuple[tuple[str, object], ...] = (
            ("celery.task_name", rec.name), ("celery.worker", rec.worker),
            ("celery.queue", rec.queue),
            ("celery.routing_key", rec.routing_key), ("celery.exchange", rec.exchange or None),
            ("celery.parent_id", rec.parent_id), ("celery.root_id", rec.root_id),
            ("celery.client", rec.client), ("exception.type", exc_type),
            ("exception.message", exc_message),
        )
        for key, value in optional:
            if value is not None:
                attrs[key] = value
        if attempt is None and rec.runtime is not None:
            attrs["celery.runtime"] = rec.runtime
        return attrs
