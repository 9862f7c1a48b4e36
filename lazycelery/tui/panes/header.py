"""Header (who/where/connection/totals), the metrics strip, and the connection-loss banner."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prompt_toolkit.filters import Condition
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout import ConditionalContainer, Container, Window
from prompt_toolkit.layout.controls import FormattedTextControl

from lazycelery.core.ingest_status import short_reason
from lazycelery.core.model import FAILURE, RECEIVED, RETRY, REVOKED, STARTED, SUCCESS
from lazycelery.tui.format import age, clock_time, number, one_line, percent, sparkline
from lazycelery.tui.screen.envs import header_style
from lazycelery.tui.style import state_class

if TYPE_CHECKING:
    from lazycelery.tui.screen.model import ScreenModel

__all__ = ["banner", "banner_text", "header", "header_text", "metrics_strip", "metrics_text"]

_SEP = ("class:header.label", " │ ")
_SHOWN_STATES = ((SUCCESS, "ok"), (FAILURE, "failed"), (RETRY, "retry"), (STARTED, "started"),
                 (RECEIVED, "received"), (REVOKED, "revoked"))


def header_text(screen: ScreenModel) -> StyleAndTextTuples:
    status = screen.ingest_status
    state = status.state if status is not None else "offline"
    out: StyleAndTextTuples = [("class:header.app", " lazycelery"), _SEP]
    out.append((header_style(screen.info.env_color),
                one_line(screen.info.env_name or "default")))
    out += [_SEP, ("", one_line(screen.info.broker)), _SEP]
    out.append((f"class:conn.{state}", f"● {state}"))
    if status is not None and state == "reconnecting":
        out.append((f"class:conn.{state}", f" (attempt {status.attempt})"))
    gap = getattr(status, "gap", None) if status is not None else None
    if gap is not None and state == "connected":
        out.append(("class:conn.gap", f"  after a {gap.seconds:.0f}s gap"))
    out += [_SEP, ("class:header.value", f"{screen.events_per_second():,.0f}"),
            ("class:header.label", " ev/s")]
    if screen.info.read_only:
        out += [_SEP, ("class:header.readonly", "READ-ONLY")]
    screen.alerts.refresh()  # the published state: a stat at most once a second
    firing = len(screen.alerts.firing)
    if firing:
        out += [_SEP, ("class:alert.firing", f"! {firing} alert{'s' if firing > 1 else ''} "
                                              "firing")]
    failures = screen.render_errors.last_frame
    if failures:
        noun = "row or pane" if failures == 1 else "rows or panes"
        out += [_SEP, ("class:render.error", f"⚠ {number(failures)} {noun} not shown")]
    out.append(("", "\n "))
    index = screen.index
    out += [("class:header.label", "tasks "), ("class:header.value", number(len(index)))]
    by_state = index.by_state  # single lookups are safe without the index lock
    for st, label in _SHOWN_STATES:
        count = by_state.get(st, 0)
        if count:
            out += [("", "  "), (state_class(st), f"{label} {number(count)}")]
    out += [_SEP, ("class:header.label", "success (5m) "),
            ("class:header.value", percent(screen.rates.success_rate(300)))]
    if index.evicted:
        out += [_SEP, ("class:header.label", f"evicted {number(index.evicted)}")]
    history = screen.history
    if history is not None and history.status:
        style = "class:header.label" if history.on else "class:conn.reconnecting"
        out += [_SEP, (style, one_line(history.status))]
    skipped = getattr(status, "skipped", 0)
    if isinstance(skipped, int) and skipped > 0:  # bad input (lazycelery.core.sanitize)
        out += [_SEP, ("class:header.label", f"{number(skipped)} bad events skipped")]
    return out


def metrics_text(screen: ScreenModel, width: int) -> StyleAndTextTuples:
    """ok/s and failed/s over the last minutes (5 s buckets), then queue depths."""
    spark_w = max(8, min(36, (width - 60) // 3))
    bucket = 5
    ok = screen.rates.series("ok", spark_w, bucket)
    failed = screen.rates.series("failed", spark_w, bucket)
    minutes = spark_w * bucket / 60
    out: StyleAndTextTuples = [
        ("class:metrics.label", " ok/s "), ("class:spark.ok", sparkline(ok)),
        ("", f" {ok[-1] if ok else 0:.1f}"),
        ("class:metrics.label", "  failed/s "), ("class:spark.failed", sparkline(failed)),
        ("", f" {failed[-1] if failed else 0:.1f}"),
        ("class:metrics.label", f"  ({minutes:.0f} min)  "),
    ]
    snap = screen.queue_snapshot
    if snap is not None and snap.queues:
        out.append(("class:metrics.label", "depth "))
        for q in sorted(snap.queues, key=lambda q: -q.ready if isinstance(q.ready, int) else 0)[:4]:
            out += [("", f"{one_line(q.name)} {number(q.ready)} "),
                    ("class:spark.queue", sparkline(screen.queue_history.series(q.name), 8)),
                    ("", "  ")]
    return out


def banner_text(screen: ScreenModel) -> StyleAndTextTuples:
    status = screen.ingest_status
    if status is None:
        return []
    now = time.time()
    text = f" ⚠ {status.describe()}"
    retry_at = getattr(status, "retry_at", None)
    if isinstance(retry_at, (int, float)) and status.state == "reconnecting":
        # describe() gives the delay as scheduled; show the live countdown instead
        text = f" ⚠ reconnecting: attempt {status.attempt}, next try in " \
               f"{max(0.0, retry_at - now):.0f} s"
        if status.last_error:
            text += f" ({short_reason(status.last_error)})"
    last = screen.last_event_at
    if last is not None:
        text += f" · stale: showing data as of {clock_time(last)} ({age(now - last)} ago)"
    else:
        text += " · no data yet; retrying"
    return [("class:banner", one_line(text))]


def header(screen: ScreenModel) -> Container:
    return Window(FormattedTextControl(lambda: header_text(screen)), height=2, style="class:header")


def metrics_strip(screen: ScreenModel) -> Container:
    return Window(FormattedTextControl(lambda: metrics_text(screen, screen.size()[0])), height=1,
                  style="class:metrics")


def banner(screen: ScreenModel) -> Container:
    return ConditionalContainer(
        Window(FormattedTextControl(lambda: banner_text(screen)), height=1, style="class:banner",
               wrap_lines=False),
        filter=Condition(lambda: screen.stale),
    )
