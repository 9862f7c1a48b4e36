"""The fleet charts as text lines for the CLI (``lazycelery stats ...``): each function takes
the analysis result and returns lines, ``colour(level, text)`` painting heat cells (the CLI
passes ANSI codes, or nothing)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from lazycelery.analysis.fleet.heartbeats import WorkerBeats
from lazycelery.analysis.fleet.render import bar, fmt_seconds, heat_chart, sparkline, time_axis
from lazycelery.analysis.fleet.resources import SCOPE, ResourcePoint
from lazycelery.analysis.fleet.sla import SlaReport
from lazycelery.analysis.fleet.tasks import Heatmap, PerfRow, Throughput, Trend, WorkerLoad
from lazycelery.text import counted, visible

__all__ = ["Painter", "heartbeat_lines", "heatmap_lines", "load_lines", "perf_lines",
           "plain", "resource_lines", "sla_lines", "throughput_lines", "trend_lines"]

Painter = Callable[[int | None, str], str]


def plain(level: int | None, text: str) -> str:
    return text


def _clock(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def _label(text: str, width: int) -> str:
    text = visible(text)
    return text[: width - 1] + "…" if len(text) > width else text.ljust(width)


def _seconds(v: float | None) -> str:
    return fmt_seconds(v) if v is not None else "–"


def _pct(v: float | None) -> str:
    return f"{v * 100:.1f}%" if v is not None else "–"


def heatmap_lines(h: Heatmap, colour: Painter = plain, cell_width: int = 2) -> list[str]:
    if not h.rows:
        return ["no finished task in this range"]
    chart = heat_chart(h.rows, h.cells, seconds=h.value != "count", cell_width=cell_width)
    w = chart.label_width
    what = {"p95": "p95 runtime", "mean": "mean runtime", "count": "tasks"}[h.value]
    out = [f"{what} per task name per {_bucket(h.bucket)} (UTC, by finish time)"]
    for label, cells in chart.rows:
        out.append(f"{_label(label, w)} " + "".join(colour(level, text) for level, text in cells))
    out.append(" " * (w + 1) + time_axis(h.columns, cell_width, h.bucket))
    out.append("".join(colour(level, text) for level, text in chart.legend))
    return out


def _bucket(seconds: float) -> str:
    """``minute``, ``10 minutes``, ``hour``, ``2 days``, ``5.00s``: the bucket in words."""
    for unit, size in (("day", 86_400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds / size
            return unit if n == 1 else f"{n:g} {unit}s"
    return fmt_seconds(seconds)


def load_lines(loads: Sequence[WorkerLoad], width: int = 30) -> list[str]:
    if not loads:
        return ["no finished task in this range"]
    w = min(32, max(len(x.worker) for x in loads))
    out = [f"{'WORKER':<{w}} {'SHARE':>6} {'TASKS':>8} {'FAILED':>6}  {'':<{width}}  TOP TASKS"]
    for x in loads:
        top = ", ".join(f"{visible(n)} {c:,}" for n, c in x.names[:3])
        out.append(f"{_label(x.worker, w)} {x.share * 100:5.1f}% {x.tasks:>8,} {x.failed:>6,}  "
                   f"{bar(x.share, 1.0, width)}  {top}")
    return out


def throughput_lines(t: Throughput, top: int = 15) -> list[str]:
    if not t.columns or not any(t.total):
        return ["no finished task in this range"]
    w = min(32, max([len(s.key) for s in t.series[:top]] + [5]))
    n = len(t.columns)
    out = [f"finished tasks per {_bucket(t.bucket)} by {t.by} (UTC; each row scaled to its "
           "own busiest bucket, PEAK)",
           f"{'':<{w}} {'':<{n}}  {'TOTAL':>8} {'PEAK':>6}",
           f"{'ALL':<{w}} {sparkline([float(c) for c in t.total])}  {sum(t.total):>8,} "
           f"{max(t.total):>6,}"]
    for s in t.series[:top]:
        out.append(f"{_label(s.key, w)} {sparkline([float(c) for c in s.counts])}  "
                   f"{s.total:>8,} {max(s.counts):>6,}")
    if len(t.series) > top:
        out.append(f"… {len(t.series) - top} more (--json has them all)")
    out.append(" " * (w + 1) + time_axis(t.columns, 1, t.bucket))
    return out


def perf_lines(rows: Sequence[PerfRow]) -> list[str]:
    if not rows:
        return ["no finished task in this range"]
    w = min(32, max(len(r.worker) for r in rows))
    out = [f"{'BUCKET (UTC)':<19} {'WORKER':<{w}} {'TASKS':>7} {'PER S':>7} {'FAILED':>7} "
           f"{'MEAN':>8} {'P95':>8}"]
    for r in rows:
        out.append(f"{_clock(r.start):<19} {_label(r.worker, w)} {r.stats.tasks:>7,} "
                   f"{r.per_second:>7.2f} {_pct(r.stats.failure_rate):>7} "
                   f"{_seconds(r.stats.mean_runtime):>8} {_seconds(r.stats.p95_runtime):>8}")
    return out


def _change(t: Trend, field: str) -> str:
    c = t.change(field)
    return f"{c * 100:+.0f}%" if c is not None else ""


def trend_lines(found: Sequence[Trend], window: float) -> list[str]:
    w = min(32, max(len(t.key) for t in found))
    out = [f"the last {_bucket(window)} against the {_bucket(window)} before",
           f"{'TASK':<{w}} {'TASKS':>7} {'(BEFORE)':>9} {'CHANGE':>7} {'FAILED':>7} "
           f"{'(BEFORE)':>9} {'P95':>8} {'(BEFORE)':>9} {'CHANGE':>7}"]
    for t in found:
        out.append(f"{_label(t.key, w)} {t.current.tasks:>7,} {t.previous.tasks:>9,} "
                   f"{_change(t, 'tasks'):>7} {_pct(t.current.failure_rate):>7} "
                   f"{_pct(t.previous.failure_rate):>9} {_seconds(t.current.p95_runtime):>8} "
                   f"{_seconds(t.previous.p95_runtime):>9} {_change(t, 'p95_runtime'):>7}")
    return out


def sla_lines(report: SlaReport, listed: int = 20) -> list[str]:
    if not report.rows:
        return ["no finished task under an SLA target in this range"]
    w = min(32, max(len(r.name) for r in report.rows))
    out = [f"{'TASK':<{w}} {'RUNTIME ≤':>9} {'WAIT ≤':>8} {'CHECKED':>8} {'RUNTIME X':>9} "
           f"{'WAIT X':>7} {'WORST':>8}"]
    for r in report.rows:
        worst = max(r.worst.values()) if r.worst else None
        out.append(f"{_label(r.name, w)} {_seconds(r.target.runtime):>9} "
                   f"{_seconds(r.target.wait):>8} {r.checked:>8,} {r.runtime_breaches:>9,} "
                   f"{r.wait_breaches:>7,} {_seconds(worst):>8}")
    out.append(f"{report.total_breaches:,} breaches"
               + (f"; the newest {min(listed, len(report.breaches))}:" if report.breaches else ""))
    for b in report.breaches[:listed]:
        out.append(f"  {_clock(b.finished)}  {b.uuid}  {visible(b.name)}  {b.kind} "
                   f"{fmt_seconds(b.value)} > {fmt_seconds(b.limit)}  on {visible(b.worker)}")
    return out


def heartbeat_lines(found: Sequence[WorkerBeats], columns: Sequence[float],
                    bucket: float) -> list[str]:
    if not found:
        return ["no worker heartbeat in this range"]
    w = min(32, max(len(b.worker) for b in found))
    out = [f"oldest heartbeat age per {_bucket(bucket)} (UTC; taller = older)",
           f"{'WORKER':<{w}} {'AGES':<{len(columns)}}  {'BEATS':>6} {'MISSED':>6} "
           f"{'MAX AGE':>8}  FLIPS"]
    for b in found:
        flips = ", ".join(f"{f.status} {time.strftime('%H:%M:%S', time.gmtime(f.time))}"
                          for f in b.flips[-4:])
        more = f" (+{len(b.flips) - 4})" if len(b.flips) > 4 else ""
        out.append(f"{_label(b.worker, w)} {sparkline(list(b.ages))}  {b.beats:>6,} "
                   f"{b.missed:>6,} {_seconds(b.max_age):>8}  {flips}{more}")
    out.append(" " * (w + 1) + time_axis(columns, 1, bucket))
    return out


def resource_lines(worker: str, points: Sequence[ResourcePoint],
                   loads: Sequence[tuple[float, float]]) -> list[str]:
    out = [visible(worker)]
    if loads:
        values = [v for _, v in loads]
        out.append(f"  load1  {sparkline(values)}  last {values[-1]:.2f}  max {max(values):.2f}"
                   f"  ({len(values)} heartbeats)")
    cpu = [p.cpu_percent for p in points]
    known = [c for c in cpu if c is not None]
    if known:
        out.append(f"  cpu %  {sparkline(cpu)}  last {known[-1]:.1f}%  max {max(known):.1f}%"
                   f"  ({counted(len(points), 'sample')}, {SCOPE})")
    rss = [p.maxrss_kib for p in points if p.maxrss_kib is not None]
    if rss:
        out.append(f"  maxrss {sparkline([float(r) for r in rss])}  last {rss[-1] / 1024:.1f} MiB"
                   f"  ({SCOPE})")
    children = next((p.pool_processes for p in reversed(points) if p.pool_processes), None)
    if children and (known or rss):
        out.append(f"  not counted: its {counted(children, 'pool process', 'pool processes')}, "
                   f"where the tasks run (celery's rusage is the main process's own)")
    if len(out) == 1:
        out.append("  no heartbeat load average and no rusage sample")
    return out
