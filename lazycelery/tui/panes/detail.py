"""The task detail pane: every field, state history, args/kwargs/result with truncation marks,
the full traceback (scrollable), the parent/root/children tree and the workflow's waterfall
(queued and running time of each task on one axis), whose lines open that task.

Every value is shown whatever its type (``lazycelery.tui.format``: control characters as
escapes, odd numbers as ``?``); a section that still fails to build shows a marker line.

Imports without prompt_toolkit (``lazycelery plugins`` loads it to list the pane); its control is
made when the dashboard creates the pane. The cursor and the task shown are the screen model's
(``screen.detail``); this module makes the lines."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from lazycelery.core import waterfall
from lazycelery.core.index import BACKFILLED, FROM_HISTORY, TaskIndex
from lazycelery.core.model import TaskRecord
from lazycelery.core.workflow import tree_lines
from lazycelery.core.workflow_fetch import gather
from lazycelery.panes_api import PaneViewBase
from lazycelery.text import counted
from lazycelery.tui.format import clock_time, duration, lines_of, one_line, short_id, wrap
from lazycelery.tui.screen.builtin import BODY, BuiltinPane, ScreenContext
from lazycelery.tui.screen.model import LOADING
from lazycelery.tui.screen.render_errors import MARKER_STYLE, SECTION_MARKER, RenderErrors
from lazycelery.tui.style import state_class

if TYPE_CHECKING:
    from prompt_toolkit.formatted_text import StyleAndTextTuples
    from prompt_toolkit.layout import Container

    from lazycelery.tui.detail_control import DetailControl
    from lazycelery.tui.screen.model import ScreenModel

__all__ = ["PANE", "SECTIONS", "DetailLine", "DetailView", "build_detail", "detail_title"]

#: section headings, in order (``]``/``[`` jump between them)
SECTIONS: Final = ("Fields", "History", "Args", "Kwargs", "Result", "Exception", "Traceback",
                   "Family", "Waterfall")
TRUNCATED: Final = ("⚠ truncated by Celery (its repr is cut at 1024 characters; "
                    "the rest is not in any event)")
_MAX_TREE_LINES: Final = 300
_MAX_DEPTH: Final = 40
_LABEL_W: Final = 10


@dataclass(frozen=True)
class DetailLine:
    """One screen line; ``link`` is a task id that enter opens, ``section`` marks headings."""

    fragments: StyleAndTextTuples
    link: str | None = None
    section: str | None = None

    @property
    def text(self) -> str:
        return "".join(frag[1] for frag in self.fragments)


def _heading(name: str, note: str = "", note_style: str = "") -> DetailLine:
    frags: StyleAndTextTuples = [("class:detail.section", name)]
    if note:
        frags += [("", "  "), (note_style, note)]
    return DetailLine(frags, section=name)


def _field(label: str, value: object, style: str = "", width: int = 80,
           link: object = None) -> list[DetailLine]:
    link = link if isinstance(link, str) else None  # an id of another type opens nothing
    chunks = wrap(one_line(value), max(8, width - _LABEL_W - 2))
    lines = [DetailLine([("class:detail.label", f"  {label:<{_LABEL_W}}"), (style, chunks[0])],
                        link=link)]
    lines += [DetailLine([("", " " * (_LABEL_W + 2)), (style, c)], link=link) for c in chunks[1:]]
    return lines


def _block(value: object, width: int, style: str = "") -> list[DetailLine]:
    """Multi-line text (a traceback), each line wrapped with a two-space indent."""
    out: list[DetailLine] = []
    lines = lines_of(value)
    while len(lines) > 1 and not lines[-1]:
        lines.pop()
    for raw in lines:
        for chunk in wrap(raw, max(8, width - 2)):
            out.append(DetailLine([(style, "  " + chunk)]))
    return out


def origin_text(origin: int) -> str | None:
    """What the detail says of a record that came from the history store."""
    if origin & BACKFILLED:
        return ("backfilled: read from the result backend after a gap in the record (no "
                "event of it was recorded; times and worker may be missing)")
    if origin & FROM_HISTORY:
        return "from history (the store; events seen live are merged in)"
    return None


def _fields(rec: TaskRecord, width: int, origin: int = 0) -> list[DetailLine]:
    out = [_heading("Fields")]
    out += _field("id", rec.uuid, width=width)
    text = origin_text(origin)
    if text is not None:
        style = "class:task.backfilled" if origin & BACKFILLED else "class:task.history"
        out += _field("source", text, style, width)
    state_note = " (reconciled: corrected from the result backend or a worker after missed " \
        "events)" if rec.reconciled and rec.unknown_since is None else ""
    out += _field("state", one_line(rec.state) + state_note, state_class(rec.state), width)
    if rec.unknown_since is not None:
        out += _field("unknown", f"since {clock_time(rec.unknown_since)}: events were missed and "
                      "neither the result backend nor a worker accounts for it (state kept)",
                      "class:task.unknown", width)
    out += _field("name", rec.name or "? (no task-sent/received event seen)", width=width)
    out += _field("worker", rec.worker or "–", width=width)
    if rec.queue or rec.routing_key:
        route = one_line(rec.queue or "?")
        if rec.exchange or rec.routing_key:
            exchange = one_line(rec.exchange or '""')
            route += f"  (exchange {exchange}, routing key {one_line(rec.routing_key)})"
        out += _field("queue", route, width=width)
    if rec.client:
        out += _field("sent by", rec.client, width=width)
    out += _field("runtime", duration(rec.runtime) or "–", width=width)
    out += _field("retries", rec.retries, width=width)
    if rec.eta:
        out += _field("eta", rec.eta, width=width)
    if rec.expires:
        out += _field("expires", rec.expires, width=width)
    if rec.revoked is not None:
        how = "terminated" if rec.terminated else "expired" if rec.expired else "revoked"
        if rec.signum is not None:
            how += f" (signal {one_line(rec.signum)})"
        out += _field("revoked", how, "class:task.state.revoked", width)
    if rec.rejected is not None:
        out += _field("rejected", "requeued" if rec.requeue else "not requeued", width=width)
    if rec.note:  # what lazycelery did to it: a purge, a revoke the workers confirmed
        out += _field("note", rec.note, width=width)
    if rec.parent_id:
        out += _field("parent", rec.parent_id, "class:detail.link", width, link=rec.parent_id)
    if rec.root_id and not _same(rec.root_id, rec.uuid):
        out += _field("root", rec.root_id, "class:detail.link", width, link=rec.root_id)
    return out


def _same(a: object, b: object) -> bool:
    try:
        return bool(a == b)
    except Exception:  # an odd value's __eq__
        return False


def _history(rec: TaskRecord) -> list[DetailLine]:
    out = [_heading("History")]
    history = rec.history()
    if not history:
        return [*out, DetailLine([("class:detail.label", "  no timestamps seen")])]
    start = history[0][1]
    for state, ts in history:
        # within an attempt the order is the lifecycle's; another host's clock may put a step
        # a little before the one it follows (shown as a negative offset, not reordered)
        delta = "" if _same(ts, start) else _delta(ts, start)
        out.append(DetailLine([
            ("class:detail.label", f"  {clock_time(ts, millis=True)}  "),
            (state_class(state), f"{one_line(state):<9}"), ("class:detail.label", f" {delta}"),
        ]))
    return out


def _delta(ts: object, start: object) -> str:
    """``+1.20s`` after the first event, ``-3ms`` before it; ``?`` for times of odd types."""
    try:
        diff = ts - start  # type: ignore[operator]
        return f"+{duration(diff)}" if diff >= 0 else f"-{duration(-diff)}"
    except Exception:  # times of odd types: no difference to show
        return "?"


def _text_section(name: str, value: object, truncated: bool, width: int,
                  style: str = "") -> list[DetailLine]:
    if value is None:
        return []
    note = TRUNCATED if truncated else ""
    out = [_heading(name, note, "class:detail.truncated")]
    return out + _block(value, width, style)


def _root_of(rec: TaskRecord, index: TaskIndex) -> str:
    if rec.root_id and isinstance(rec.root_id, str):
        return rec.root_id
    uuid, seen = rec.uuid, {rec.uuid}
    parent = rec.parent_id
    while isinstance(parent, str) and parent and parent not in seen and len(seen) < _MAX_DEPTH:
        seen.add(parent)
        uuid = parent
        node = index.get(parent)
        parent = node.parent_id if node is not None else None
    return uuid


def _family(rec: TaskRecord, index: TaskIndex, width: int,
            metas: Mapping[str, Mapping[str, Any]] | None = None) -> list[DetailLine]:
    """The whole workflow (``core.workflow``): chains nested, groups as one node, a chord's
    callback waiting on its header, counts per state. Group links need the result backend's
    metas (``metas``: fetched off the UI thread); without them the tree is what events link."""
    known = metas or {}
    wf = gather(rec.uuid, get=index.get, children_of=index.children_of, known=known)
    lines = tree_lines(wf.root, rec.uuid)
    if len(lines) == 1:
        out = [_heading("Family"),
               DetailLine([("class:detail.label", "  no parent or children seen")])]
    else:
        out = [_heading("Family", "enter opens a task", "class:detail.label")]
        for text, node in lines[:_MAX_TREE_LINES]:
            style = state_class(node.state) if node.kind == "task" and node.state else \
                "class:detail.label"
            if node.id == rec.uuid:
                style = "class:detail.current"
            link = node.id if node.kind == "task" and node.id != rec.uuid else None
            out.append(DetailLine([(style, "  " + one_line(text))], link=link))
        if len(lines) > _MAX_TREE_LINES:
            out.append(DetailLine([("class:detail.label", "  … (tree cut)")]))
    if not known and rec.parent_id is None:
        out.append(DetailLine([("class:detail.label",
                                "  group and chord links come from the result backend: "
                                "W reads them (or `lazycelery task tree ID`)")]))
    return out


def _waterfall(rec: TaskRecord, index: TaskIndex, width: int) -> list[DetailLine]:
    """The workflow's tasks as bars on one time axis: queued (░) apart from running (█)."""
    root = _root_of(rec, index)
    rows = waterfall.spans(root, index.get, index.children_of, max_rows=_MAX_TREE_LINES,
                           max_depth=_MAX_DEPTH)
    axis = waterfall.time_range(rows)
    if len(rows) < 2 or axis is None:
        return []  # a lone task: its History says it all
    total = axis[1] - axis[0]
    out = [_heading("Waterfall", f"{counted(len(rows), 'task')} over {duration(total) or '0s'}  "
                    f"{waterfall.QUEUED} queued  {waterfall.RUNNING} running  "
                    "enter opens a task", "class:detail.label")]
    label_w = max(12, min(32, width // 3))
    bar_w = max(10, width - label_w - 14)
    for span in rows:
        node = span.record
        name = one_line(node.name or "?") if node is not None else \
            f"{short_id(span.uuid)} (not in memory)"
        label = ("  " + "  " * min(span.depth, 8) + name)[:label_w].ljust(label_w)
        style = "class:detail.current" if node is rec else ""
        frags: StyleAndTextTuples = [(style, label), ("", " ")]
        state = state_class(node.state) if node is not None else "class:detail.label"
        for kind, cells in waterfall.bar(span, axis, bar_w):
            frags.append((state if kind == "running" else "class:detail.label", cells))
        took = (span.ended - span.queued if span.ended is not None and span.queued is not None
                else None)
        frags.append(("class:detail.label", f" {duration(took) or '':>8}"))
        out.append(DetailLine(frags, link=span.uuid if node is not rec else None))
    return out


def build_detail(rec: TaskRecord, index: TaskIndex, width: int,
                 errors: RenderErrors | None = None, *, origin: int = 0,
                 metas: Mapping[str, Mapping[str, Any]] | None = None) -> list[DetailLine]:
    """Every line of the detail view for ``rec`` at ``width`` cells; a section that raises
    shows a marker line (counted in ``errors``) and the others are still shown. ``origin``:
    the record's FROM_HISTORY / BACKFILLED / LOADING bits."""
    if origin & LOADING:
        return [DetailLine([("class:detail.title", short_id(rec.uuid)), ("", "  "),
                            ("class:task.history", "loading from history…")]),
                DetailLine([]),
                DetailLine([("class:detail.label", f"  {one_line(rec.uuid)} is not in memory; "
                             "reading it from the store")])]
    title: StyleAndTextTuples = [("class:detail.title", one_line(rec.name or "?")), ("", "  "),
                                 (state_class(rec.state), one_line(rec.state))]
    lines = [DetailLine(title), DetailLine([])]
    sections: list[tuple[str, Callable[[], list[DetailLine]]]] = [
        ("Fields", lambda: _fields(rec, width, origin)),
        ("History", lambda: _history(rec)),
        ("Args", lambda: _text_section("Args", rec.args, rec.args_truncated, width)),
        ("Kwargs", lambda: _text_section("Kwargs", rec.kwargs, rec.kwargs_truncated, width)),
        ("Result", lambda: _text_section("Result", rec.result, rec.result_truncated, width)),
        ("Exception", lambda: _text_section("Exception", rec.exception, False, width,
                                            "class:task.state.failure")),
        ("Traceback", lambda: _text_section("Traceback", rec.traceback, False, width,
                                            "class:detail.traceback")),
        ("Family", lambda: _family(rec, index, width, metas)),
        ("Waterfall", lambda: _waterfall(rec, index, width)),
    ]
    for name, build in sections:
        try:
            section = build()
        except Exception as exc:
            if errors is not None:
                errors.record(f"detail {name}", exc)
            section = [_heading(name), DetailLine([(MARKER_STYLE, f"  {SECTION_MARKER}")])]
        if section:
            lines += section
            lines.append(DetailLine([]))
    return lines


def detail_title(screen: ScreenModel) -> StyleAndTextTuples:
    rec = screen.detail.record
    out: StyleAndTextTuples = [("bold", f" {PANE.key} {PANE.title} ")]
    if rec is not None:
        out.append(("", f" {one_line(rec.uuid)}"))
        if screen.ui.detail_stack:
            out.append(("", f"  (opened from the family tree; esc goes back "
                        f"{len(screen.ui.detail_stack)})"))
        origin = screen.origin(rec)
        if origin & LOADING:
            out.append(("class:task.history", "  loading from history…"))
        elif origin & BACKFILLED:
            out.append(("class:task.backfilled", "  BACKFILLED"))
        elif screen.index.get(rec.uuid) is not rec:
            out.append(("bold", "  FROM HISTORY" if origin & FROM_HISTORY
                        else "  EVICTED from memory"))
        elif origin & FROM_HISTORY:
            out.append(("class:task.history", "  from history"))
    if screen.stale:
        out.append(("bold", "  STALE"))
    return out


class DetailView(PaneViewBase):
    """The detail of the selected task (or of one opened from its family tree)."""

    def __init__(self, ctx: ScreenContext) -> None:
        from lazycelery.tui.detail_control import DetailControl
        from lazycelery.tui.panes.common import pane

        screen = ctx.screen
        screen.detail.build = build_detail
        self.control: DetailControl = DetailControl(screen.detail, lambda: "no task selected")
        self._container = pane(lambda: detail_title(screen), self.control,
                               lambda: screen.ui.pane == "detail", lambda: screen.stale)

    def container(self) -> Container:
        return self._container


#: what the ``lazycelery.panes`` entry point ``detail`` names
PANE = BuiltinPane(name="detail", title="Task detail", key="4", slot=BODY, view=DetailView,
                   command_title="Go to task detail")
