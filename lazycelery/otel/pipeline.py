"""The span pipeline: a tap on the ingest thread that only queues finished task records, and an
exporter thread that samples them, builds the spans and hands them to the SDK's
BatchSpanProcessor (OTLP over HTTP or gRPC).

The ingest thread never waits: ``on_batch`` appends snapshots of the records an event finished
(and the ``traceparent`` reports of the worker-side companion) to a bounded deque; when it is
full the snapshot is counted as lost. Exporting is the SDK's own batching thread's; spans it
could not queue or send are counted too, and every loss is reported (``stats``, ``summary``).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from lazycelery.core.model import FAILURE, TaskRecord
from lazycelery.otel.ids import ParentContext, parse_traceparent, trace_id_of
from lazycelery.otel.sampling import TailSampler
from lazycelery.otel.settings import GRPC, OtelSettings
from lazycelery.otel.stats import OtelStats, summary_line
from lazycelery.otel.tap import _DONE, _RETRY, _TP, TRACEPARENT_EVENT, Tap
from lazycelery.text import counted
from lazycelery.urls import error_line

__all__ = ["TRACEPARENT_EVENT", "OtelStats", "SpanPipeline", "build_exporter"]

#: in "keep everything" mode a finished span still waits this long, so a ``traceparent`` that
#: arrives a little after its task's last event is not missed
SETTLE: Final = 0.5
#: task ids remembered: reported traceparents, spans already exported (a duplicate terminal
#: event must not export a second span)
REMEMBER: Final = 100_000
#: seconds without progress after which the stop gives up on the collector
STOP_TIMEOUT: Final = 5.0
#: seconds the stop waits at most for the collector to take what is held
MAX_DRAIN: Final = 60.0
_ERRNO: Final = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")
#: spans the SDK's batch processor holds while it exports (OTEL_BSP_MAX_QUEUE_SIZE overrides)
BSP_QUEUE: Final = 16_384
#: spans kept free in the batch processor's queue (a batch being exported, say)
BSP_HEADROOM: Final = 1_024
#: seconds between two loss reports
REPORT_EVERY: Final = 30.0


class _CountingExporter:
    """Wraps the real exporter: counts the spans each export sent or failed to send."""

    def __init__(self, inner: Any) -> None:
        from opentelemetry.sdk.trace.export import SpanExportResult

        self.inner = inner
        self._success = SpanExportResult.SUCCESS
        self._failure = SpanExportResult.FAILURE
        self.exported = 0
        self.failed = 0
        self.last_error: str | None = None

    def export(self, spans: Sequence[Any]) -> Any:
        try:
            result = self.inner.export(spans)
        except Exception as exc:
            self.last_error = error_line(exc, with_type=True, limit=200)
            result = self._failure
        if result == self._success:
            self.exported += len(spans)
        else:
            self.failed += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        flush = getattr(self.inner, "force_flush", None)
        return bool(flush(timeout_millis)) if flush is not None else True


class _LastLine(logging.Handler):
    """Keeps why the SDK's last export failed (one short line, URLs masked) instead of
    printing its warnings on the user's terminal."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.line: str | None = None
        self._cause: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:
            text = str(record.msg)
        errno = _ERRNO.search(text)
        short = errno.group(0) if errno else error_line(Exception(text), limit=200)
        if text.startswith("Transient error"):
            self._cause = short
        if "due to timeout, max retries" in text and self._cause:
            short = f"{self._cause} (gave up after retrying)"
        self.line = short


def build_exporter(settings: OtelSettings) -> Any:
    """The OTLP exporter the settings name (HTTP/protobuf or gRPC)."""
    headers = dict(settings.headers) or None
    if settings.protocol == GRPC:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        # http:// is plain text, https:// TLS; no scheme: the SDK decides (OTEL_EXPORTER_OTLP_INSECURE)
        scheme = settings.endpoint.partition("://")[0].lower() if "://" in settings.endpoint else ""
        insecure = {"http": True, "https": False}.get(scheme)
        return OTLPSpanExporter(endpoint=settings.endpoint, insecure=insecure,
                                headers=headers, timeout=STOP_TIMEOUT)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter(endpoint=settings.endpoint, headers=headers, timeout=STOP_TIMEOUT)


class SpanPipeline(Tap):
    """Ingest tap + exporter thread, in this process. ``exporter`` defaults to the OTLP one of
    ``settings`` (tests pass the SDK's InMemorySpanExporter). ``record --otel`` and
    ``tail --otel`` run it in a child process instead (``process.ProcessPipeline``)."""

    def __init__(self, settings: OtelSettings, exporter: Any = None, *,
                 notify: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from lazycelery.otel.spans import SpanBuilder

        super().__init__(settings.queue_size)
        self.settings = settings
        self.notify = notify
        self.clock = clock
        self._stop = threading.Event()
        self._abandon = threading.Event()
        self._thread: threading.Thread | None = None
        self.built = 0
        self.handed = 0
        self._parents: OrderedDict[str, ParentContext] = OrderedDict()
        self._exported_ids: OrderedDict[tuple[str, int | None], None] = OrderedDict()
        self._attempts: OrderedDict[str, int] = OrderedDict()
        self._settling: deque[tuple[float, Any]] = deque()
        self.sampler: TailSampler[Any] = TailSampler(
            settings.sample_ratio, wait=settings.decision_wait,
            max_spans=settings.max_buffered_spans, clock=clock)
        self.builder = SpanBuilder(settings.service_name, self._parents)
        self._log = _LastLine()
        sdk_log = logging.getLogger("opentelemetry")
        sdk_log.addHandler(self._log)
        sdk_log.propagate = False  # no SDK warning on the user's terminal: counted and reported
        self.exporter = _CountingExporter(exporter if exporter is not None
                                          else build_exporter(settings))
        options = _bsp_options()
        self._bsp_queue = options.get("max_queue_size", _env_int("OTEL_BSP_MAX_QUEUE_SIZE", 2048))
        self.processor = BatchSpanProcessor(self.exporter, **options)  # type: ignore[arg-type]
        self._reported_failed = 0
        self._reported_lost = 0
        self._next_report = 0.0

    # ------------------------------------------------------------ the exporter thread

    def start(self) -> SpanPipeline:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lazycelery-otel", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Export what is held (every waiting trace is decided now), flush, shut the SDK down.
        Waits while the collector keeps taking spans (at most ``MAX_DRAIN`` seconds) and gives
        up after ``timeout`` seconds without progress: what is left is counted as dropped."""
        self._stop.set()
        self._wake.set()
        worker = self._thread
        if worker is None:
            worker = threading.Thread(target=self.pump, kwargs={"final": True}, daemon=True)
            worker.start()
        self._watch(lambda: not worker.is_alive(), timeout)
        done = threading.Event()

        def close() -> None:
            try:
                self.processor.force_flush(int(MAX_DRAIN * 1000))
                self.processor.shutdown()  # type: ignore[no-untyped-call]
            finally:
                done.set()

        threading.Thread(target=close, name="lazycelery-otel-close", daemon=True).start()
        self._watch(done.is_set, timeout)
        logging.getLogger("opentelemetry").removeHandler(self._log)

    def _watch(self, finished: Callable[[], bool], stall: float) -> None:
        """Wait until ``finished()`` while the exporter makes progress; else give up."""
        def progress() -> int:  # spans the collector took (failures are no progress)
            return self.exporter.exported

        start = last_change = time.monotonic()
        last = progress()
        while not finished():
            time.sleep(0.05)
            now, current = time.monotonic(), progress()
            if current != last:
                last, last_change = current, now
            elif now - last_change > stall or now - start > MAX_DRAIN:
                self._abandon.set()
                return

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.1)
            self._wake.clear()
            try:
                self.pump()
            except Exception as exc:  # never kill the thread; say it once
                self._say(f"otel: {error_line(exc, with_type=True, limit=200)}")
        self.pump(final=True)

    def pump(self, final: bool = False) -> None:
        """Take what the ingest thread queued, release what is due (everything if ``final``)."""
        queue = self._queue
        now = self.clock()
        sampler = self.sampler
        tail = self.settings.tail_sampling
        while queue:
            item = queue.popleft()
            kind = item[0]
            if kind == _TP:
                self._remember_parent(item[1], item[2])
                continue
            from lazycelery.otel.spans import Finished

            rec: TaskRecord = item[1]
            if kind == _DONE:
                finished = Finished(rec)
            else:
                finished = Finished(rec, self._next_attempt(rec.uuid), _time(item[2]))
            if not tail:
                self._settling.append((now + SETTLE, finished))
                continue
            root = rec.root_id or rec.uuid
            slow = self.settings.slow_seconds
            duration = _duration(rec)
            interesting = (kind == _RETRY or rec.state == FAILURE or rec.retries > 0
                           or (slow is not None and duration is not None and duration > slow))
            self._export(sampler.add(root, trace_id_of(root), finished,
                                     root_done=kind == _DONE and root == rec.uuid,
                                     interesting=interesting))
        settling = self._settling
        while settling and (final or settling[0][0] <= now):
            self._export([settling.popleft()[1]])
        self._export(sampler.flush() if final else sampler.due())
        self._report()

    def _next_attempt(self, task_id: str) -> int:
        """Attempts of a task that were retried, counted in the order their events came."""
        attempts = self._attempts
        number = attempts.pop(task_id, -1) + 1
        attempts[task_id] = number
        if len(attempts) > REMEMBER:
            attempts.popitem(last=False)
        return number

    def _remember_parent(self, task_id: str, value: object) -> None:
        parent = parse_traceparent(value)
        if parent is None:
            return
        parents = self._parents
        parents[task_id] = parent
        parents.move_to_end(task_id)
        while len(parents) > REMEMBER:
            parents.popitem(last=False)

    def _export(self, items: Sequence[Any]) -> None:
        seen = self._exported_ids
        for item in items:
            key = (item.rec.uuid, item.attempt)
            if key in seen:
                continue
            seen[key] = None
            if len(seen) > REMEMBER:
                seen.popitem(last=False)
            span = self.builder.build(item)
            self.built += 1
            self._room()
            self.processor.on_end(span)
            self.handed += 1

    def _room(self) -> None:
        """Wait while the batch processor holds nearly its whole queue (counted from the spans
        handed to it and those its exporter finished with; no private attribute read): the
        backlog then stays in this pipeline's bounded queue (in the child process: in the
        pipe, then the ingesting process's queue, which counts what it cannot hold) instead of
        the processor dropping spans silently. Not once the stop gave up on the collector: what
        no longer fits is then dropped and counted."""
        exporter = self.exporter
        high = self._bsp_queue - BSP_HEADROOM
        while (self.handed - exporter.exported - exporter.failed >= high
               and not self._abandon.is_set()):
            self._abandon.wait(0.01)

    # ------------------------------------------------------------ reporting

    def stats(self) -> OtelStats:
        exported, failed = self.exporter.exported, self.exporter.failed
        dropped = max(0, self.handed - exported - failed) if self._stop.is_set() else 0
        return OtelStats(queued=self.queued, lost=self.lost, built=self.built,
                         sampled_out=self.sampler.dropped_spans, exported=exported,
                         export_failed=failed, export_dropped=dropped,
                         waiting=self.sampler.held + len(self._settling) + len(self._queue),
                         last_error=self.exporter.last_error or self._log.line)

    def summary(self) -> str:
        return summary_line(self.stats(), self.settings.masked_endpoint)

    def _report(self) -> None:
        """At most one line per ``REPORT_EVERY`` seconds about new losses."""
        now = self.clock()
        if now < self._next_report:
            return
        failed, lost = self.exporter.failed, self.lost
        if failed > self._reported_failed:
            reason = self.exporter.last_error or self._log.line or "the collector refused them"
            self._say(f"otel: {counted(failed - self._reported_failed, 'span')} not delivered to "
                      f"{self.settings.masked_endpoint}: {reason}")
        if lost > self._reported_lost:
            self._say(f"otel: {lost - self._reported_lost:,} finished tasks lost (span queue "
                      "full: the exporter is behind)")
        if failed > self._reported_failed or lost > self._reported_lost:
            self._next_report = now + REPORT_EVERY
        self._reported_failed, self._reported_lost = failed, lost

    def _say(self, text: str) -> None:
        if self.notify is not None:
            with contextlib.suppress(Exception):
                self.notify(text)


def _env_int(name: str, default: int) -> int:
    import os

    try:
        return max(1, int(os.environ.get(name, "")))
    except ValueError:
        return default


def _bsp_options(environ: Mapping[str, str] | None = None) -> dict[str, int]:
    """Bigger batches than the SDK's defaults (a busy cluster finishes thousands of tasks a
    second), unless the standard OTEL_BSP_* variables say otherwise."""
    import os

    env = os.environ if environ is None else environ
    options: dict[str, int] = {}
    if not env.get("OTEL_BSP_MAX_QUEUE_SIZE"):
        options["max_queue_size"] = BSP_QUEUE
    if not env.get("OTEL_BSP_SCHEDULE_DELAY"):
        options["schedule_delay_millis"] = 1000
    return options


def _time(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _duration(rec: TaskRecord) -> float | None:
    first = rec.first_seen
    end = rec.timestamp
    if first is None or end is None:
        return None
    return end - first
