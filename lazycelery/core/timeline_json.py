"""A timeline layout as JSON (lanes, rows, bars): ``lazycelery timeline --json`` and
``GET /api/v1/timeline`` answer this same document."""

from __future__ import annotations

from typing import Any, Final

from lazycelery.core.timeline import Bar, Layout

__all__ = ["JSON_BARS", "layout_json"]

#: JSON lists at most this many bars per row (the newest); the counts stay whole
JSON_BARS: Final = 10_000


def layout_json(layout: Layout, since: float, until: float) -> dict[str, Any]:
    def bar(b: Bar) -> dict[str, Any]:
        rec = b.record
        return {"id": rec.uuid, "name": rec.name, "state": b.state, "worker": rec.worker,
                "queue": rec.queue, "start": b.start, "end": b.end}

    return {
        "grouping": layout.grouping, "since": since, "until": until,
        "first": layout.first, "last": layout.last, "bars": layout.bars,
        "untimed": layout.untimed, "skewed": layout.skewed, "hidden": layout.hidden,
        "lanes": [{"key": lane.key, "hidden": lane.hidden,
                   "rows": [[bar(b) for b in row.bars[-JSON_BARS:]] for row in lane.rows]}
                  for lane in layout.lanes],
    }
