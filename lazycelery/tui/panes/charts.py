"""The charts pane: the fleet as the dashboard's memory holds it, in block characters. Finished
tasks per worker per bucket (sparklines), each worker's share of the tasks (bars), the p95
runtime heatmap (task name x bucket, colour scale and legend), SLA breaches when ``[sla]``
targets are set, and each worker's heartbeat ages, missed beats, flips and load average.
``b`` changes the bucket (1 min, 10 min, 1 h; 60 buckets shown), ``R`` restarts the worker
selected in the workers pane through the configured restart command (operator action).

Imports without prompt_toolkit (``lazycelery plugins`` loads it to list the pane); its control
is made when the dashboard creates the pane. The numbers are ``lazycelery.analysis.fleet``'s,
the same as ``lazycelery stats``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from lazycelery.analysis.fleet.render import bar, fmt_seconds, heat_chart, sparkline, time_axis
from lazycelery.panes_api import PaneCommand
from lazycelery.text import counted
from lazycelery.tui.format import fit, one_line
from lazycelery.tui.panes.scroll_view import ScrollTextView
from lazycelery.tui.screen.builtin import BODY, BuiltinPane, ScreenContext

if TYPE_CHECKING:
    from prompt_toolkit.formatted_text import StyleAndTextTuples

    from lazycelery.tui.screen.charts import ChartsModel, FleetView

__all__ = ["HEAT_STYLES", "PANE", "ChartsView", "chart_lines", "charts_title"]

#: heat level -> style, low to high (ANSI colour names: light and dark terminals)
HEAT_STYLES: Final = ("fg:ansigreen", "fg:ansiyellow", "fg:ansimagenta", "fg:ansired")
_LABEL: Final = 22
_SECTION: Final = "class:detail.section"
_DIM: Final = "class:detail.label"


def _label(text: str) -> str:
    # cut and padded by terminal cells, not characters: a wide name keeps the row in its width
    return fit(one_line(text), _LABEL) + " "


def _bucket_text(bucket: float) -> str:
    return {60.0: "minute", 600.0: "10 minutes", 3600.0: "hour"}.get(bucket, fmt_seconds(bucket))


def _throughput(v: FleetView) -> list[StyleAndTextTuples]:
    t = v.throughput
    out: list[StyleAndTextTuples] = [[(_SECTION, f"Finished tasks per {_bucket_text(v.bucket)}"
                                                 " by worker (each row to its own peak)")]]
    rows = [("all", t.total), *((s.key, s.counts) for s in t.series[:12])]
    for key, counts in rows:
        out.append([("", _label(key)), ("class:spark.ok", sparkline([float(c) for c in counts])),
                    (_DIM, f"  {sum(counts):,} total, peak {max(counts, default=0):,}")])
    out.append([("", " " * (_LABEL + 1)), (_DIM, time_axis(v.columns, 1, v.bucket))])
    return out


def _load(v: FleetView, width: int) -> list[StyleAndTextTuples]:
    out: list[StyleAndTextTuples] = [[(_SECTION, "Load: each worker's share of the finished "
                                                 "tasks")]]
    bar_width = max(10, min(40, width - _LABEL - 30))
    for x in v.load[:12]:
        out.append([("", _label(x.worker)), ("class:spark.ok", bar(x.share, 1.0, bar_width)),
                    ("", f" {x.share * 100:5.1f}%  {counted(x.tasks, 'task')}, {x.failed:,} failed")])
    return out or [[(_DIM, "  no finished task yet")]]


def _heatmap(v: FleetView) -> list[StyleAndTextTuples]:
    h = v.heatmap
    out: list[StyleAndTextTuples] = [[(_SECTION, f"p95 runtime per task name per "
                                                 f"{_bucket_text(v.bucket)}")]]
    if not h.rows:
        return [*out, [(_DIM, "  no finished task yet")]]
    chart = heat_chart(h.rows[:15], h.cells[:15], seconds=True)
    for label, cells in chart.rows:
        line: StyleAndTextTuples = [("", _label(label))]
        line += [(HEAT_STYLES[level] if level is not None else "", text)
                 for level, text in cells]
        out.append(line)
    out.append([("", " " * (_LABEL + 1)), (_DIM, time_axis(v.columns, 1, v.bucket))])
    out.append([(HEAT_STYLES[level] if level is not None else _DIM, text)
                for level, text in chart.legend])
    return out


def _sla(v: FleetView) -> list[StyleAndTextTuples]:
    report = v.sla
    if report is None:
        return [[(_SECTION, "SLA")], [(_DIM, '  no target: [sla."proj.task"] runtime = "2s" in '
                                             "the config (docs/fleet.md)")]]
    out: list[StyleAndTextTuples] = [[(_SECTION, f"SLA: {report.total_breaches:,} breaches")]]
    for r in report.rows[:10]:
        bad = r.runtime_breaches + r.wait_breaches
        out.append([("", _label(r.name)),
                    ("class:task.state.failure" if bad else "class:task.state.success",
                     f"{r.runtime_breaches:,} over runtime, {r.wait_breaches:,} over wait"),
                    (_DIM, f"  of {r.checked:,}")])
    for b in report.breaches[:5]:
        out.append([(_DIM, f"  {b.uuid[:8]} {one_line(b.name)} {b.kind} {fmt_seconds(b.value)}"
                           f" > {fmt_seconds(b.limit)} on {one_line(b.worker)}")])
    return out


def _heartbeats(v: FleetView) -> list[StyleAndTextTuples]:
    out: list[StyleAndTextTuples] = [[(_SECTION, "Heartbeats: oldest age per bucket (taller = "
                                                 "older), missed beats, flips, load1")]]
    for b in v.heartbeats[:12]:
        flips = ", ".join(f.status for f in b.flips[-3:])
        loads = [x for _, x in b.loads[-10:]]
        style = "class:task.state.failure" if b.missed else ""
        out.append([("", _label(b.worker)), ("class:spark.ok", sparkline(list(b.ages))),
                    (style, f"  {b.missed} missed"), (_DIM, f"  max {fmt_seconds(b.max_age or 0)}"
                                                            f"  {flips}  load1 "),
                    ("", (f"{loads[-1]:.2f} " if loads else "–") + sparkline(loads))])
    return out if len(out) > 1 else [*out, [(_DIM, "  no heartbeat yet")]]


def chart_lines(view: FleetView, width: int) -> list[StyleAndTextTuples]:
    """Every section, one blank line apart."""
    out: list[StyleAndTextTuples] = []
    for section in (_throughput(view), _load(view, width), _heatmap(view), _sla(view),
                    _heartbeats(view)):
        out += section
        out.append([])
    return [[(line[0][0], fit(line[0][1], width))] if len(line) == 1 else line for line in out]


def charts_title(model: ChartsModel) -> StyleAndTextTuples:
    return [("bold", f" {PANE.key} {PANE.title} "),
            ("", f" per {_bucket_text(model.bucket)}, last {60} buckets, from memory"),
            ("class:task.history", "  computing…" if model.computing else ""),
            (_DIM, "  b bucket · R restart worker")]


class ChartsView(ScrollTextView):
    """The charts of the fleet, scrollable."""

    def __init__(self, ctx: ScreenContext) -> None:
        self.ctx = ctx
        screen = ctx.screen
        model = self.model = screen.charts
        model.on_done = ctx.invalidate

        def lines(width: int) -> list[StyleAndTextTuples]:
            found = model.view()
            waiting: list[StyleAndTextTuples] = [[(_DIM, " analysing what memory holds…")]]
            return chart_lines(found, width) if found is not None else waiting

        self._mount(screen, PANE.name, lambda: charts_title(model), lines, model)

    def commands(self) -> Sequence[PaneCommand]:
        return (
            PaneCommand("bucket", "Charts: next bucket size (1 min, 10 min, 1 h)", self._bucket,
                        keys=("b",), footer="bucket"),
            PaneCommand("restart", "Restart the selected worker with the configured restart "
                        "command (confirmation first)", self._restart, keys=("R",),
                        footer="restart"),
        )

    def _bucket(self) -> None:
        self.model.cycle_bucket()
        self.ctx.invalidate()

    def _restart(self) -> None:
        self.ctx.run_command("worker.restart")




#: what the ``lazycelery.panes`` entry point ``charts`` names
PANE = BuiltinPane(name="charts", title="Charts", key="m", slot=BODY, view=ChartsView,
                   command_title="Go to fleet charts")
