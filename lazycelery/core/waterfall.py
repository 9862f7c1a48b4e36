"""A workflow's trace waterfall, headless: every task of the tree under a root (a chain, group
or chord: parent links from the events), each as a bar on one time axis, its queued part
(sent or received until started) apart from its running part (started until it finished).

The dashboard's task detail draws it (``lazycelery.tui.panes.detail``); the same rows suit a
CLI or an API. Times are the senders' epoch seconds; a task whose times are missing or of an
odd type gets no bar, never an error."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from lazycelery.core.model import TaskRecord

__all__ = ["QUEUED", "RUNNING", "Span", "bar", "spans", "time_range"]

#: the cells of a bar: waiting in a queue, running on a worker
QUEUED: Final = "░"
RUNNING: Final = "█"


@dataclass(frozen=True)
class Span:
    """One task of the workflow: its place in the tree and its times (None: not known)."""

    uuid: str
    depth: int
    record: TaskRecord | None  # None: a child id seen in a parent link, not in memory
    queued: float | None
    started: float | None
    ended: float | None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _times(rec: TaskRecord) -> tuple[float | None, float | None, float | None]:
    queued = _number(rec.sent) if rec.sent is not None else _number(rec.received)
    started = _number(rec.started)
    ends = [t for t in (_number(rec.succeeded), _number(rec.failed), _number(rec.revoked),
                        _number(rec.rejected)) if t is not None]
    ended = max(ends) if ends else None
    if ended is None and rec.retried is not None:  # waiting for its next attempt
        ended = _number(rec.retried)
    return queued, started, ended


def spans(root: str, get: Callable[[str], TaskRecord | None],
          children_of: Callable[[str], Sequence[str]], *, max_rows: int = 300,
          max_depth: int = 40) -> list[Span]:
    """The tree under ``root`` depth first, siblings in the order they were queued."""
    out: list[Span] = []
    seen: set[str] = set()

    def start_key(uuid: str) -> float:
        rec = get(uuid)
        if rec is None:
            return float("inf")
        queued, started, _ = _times(rec)
        first = queued if queued is not None else started
        return first if first is not None else float("inf")

    def walk(uuid: str, depth: int) -> None:
        if len(out) >= max_rows or uuid in seen:
            return
        seen.add(uuid)
        rec = get(uuid)
        queued, started, ended = _times(rec) if rec is not None else (None, None, None)
        out.append(Span(uuid, depth, rec, queued, started, ended))
        if depth >= max_depth:
            return
        for child in sorted(children_of(uuid), key=start_key):
            walk(child, depth + 1)

    walk(root, 0)
    return out


def time_range(rows: Sequence[Span]) -> tuple[float, float] | None:
    """The axis: the first time any task was queued or started, to the last end (or start)."""
    points = [t for s in rows for t in (s.queued, s.started, s.ended) if t is not None]
    if not points:
        return None
    return min(points), max(points)


def bar(span: Span, axis: tuple[float, float], width: int) -> list[tuple[str, str]]:
    """The span's cells on ``axis`` in ``width`` cells: (kind, text) runs, kind one of
    ``"gap"``, ``"queued"``, ``"running"``."""
    t0, t1 = axis
    scale = (t1 - t0) / width if t1 > t0 else 0.0

    def cell(t: float) -> int:
        return 0 if scale == 0.0 else min(width - 1, max(0, int((t - t0) / scale)))

    begin = span.queued if span.queued is not None else span.started
    if begin is None or width <= 0:
        return [("gap", " " * max(0, width))]
    a = cell(begin)
    # exclusive ends; a part with no end yet (still queued, still running) reaches the axis end
    if span.started is None:
        stop = cell(span.ended) + 1 if span.ended is not None else width
        parts = [("gap", a), ("queued", max(1, stop - a))]
    else:
        b = max(a, cell(span.started))
        stop = cell(span.ended) + 1 if span.ended is not None else width
        parts = [("gap", a), ("queued", b - a), ("running", max(1, stop - b))]
    used = sum(n for _, n in parts)
    parts.append(("gap", max(0, width - used)))
    glyph = {"gap": " ", "queued": QUEUED, "running": RUNNING}
    return [(kind, glyph[kind] * n) for kind, n in parts if n > 0]
