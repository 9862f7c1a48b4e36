"""What became of the spans: the counters both pipelines report, and their one-line summary."""

from __future__ import annotations

from dataclasses import dataclass

from lazycelery.text import counted

__all__ = ["OtelStats", "summary_line"]


@dataclass(frozen=True)
class OtelStats:
    #: finished task records (and traceparent reports) the ingest thread handed over
    queued: int
    #: ... and those it could not (the bounded queue was full)
    lost: int
    built: int
    #: spans of traces the sampling rules dropped
    sampled_out: int
    exported: int
    #: spans the collector did not take (refused, unreachable, timed out)
    export_failed: int
    #: spans the SDK's batch processor dropped (its queue full) or still held at the end
    export_dropped: int
    waiting: int
    last_error: str | None


def summary_line(s: OtelStats, endpoint: str) -> str:
    text = (f"otel: {counted(s.exported, 'span')} exported to {endpoint}, {s.lost:,} lost (queue full), "
            f"{s.export_failed + s.export_dropped:,} not delivered, {s.sampled_out:,} sampled out")
    if s.export_failed + s.export_dropped and s.last_error:
        text += f" (last error: {s.last_error})"
    return text
