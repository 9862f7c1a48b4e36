"""Error groups and trends as plain text for a terminal (the CLI's output without --json):
a table, each group's hints under it, the similar-group clusters, and a trend as bars."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from lazycelery.text import counted, visible

__all__ = ["groups_table", "trend_lines"]


def _cut(text: str, width: int) -> str:
    text = visible(text).replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _top(counts: dict[str, int], n: int = 2) -> str:
    names = list(counts)
    more = f" +{len(names) - n}" if len(names) > n else ""
    return ", ".join(f"{name}({count})" for name, count in list(counts.items())[:n]) + more


def groups_table(doc: dict[str, Any], *, top: int | None, width: int = 120) -> list[str]:
    """Lines for ``analysis.report.groups_json``'s document."""
    observed = doc["observed"]
    span = (f" from {observed['from'][11:19]} to {observed['to'][11:19]}"
            if observed["from"] else "")
    lines = [f"{counted(doc['groups_total'], 'error group')}, "
             f"{counted(doc['failures'], 'failure')} ({counted(doc['finished'], 'task')} finished){span}"]
    groups: Sequence[dict[str, Any]] = doc["groups"]
    if not groups:
        return [*lines, "no failures"]
    shown = groups if top is None else groups[:top]
    err_width = max(30, width - 76)
    lines += ["", f"{'GROUP':<12}  {'COUNT':>6}  {'NEW':<3}  {'LAST':<8}  "
                  f"{'ERROR':<{err_width}}  TASKS / WORKERS"]
    for g in shown:
        error = _cut(f"{g['exception']}: {g['message']}", err_width)
        lines.append(f"{g['group']:<12}  {g['count']:>6,}  {'new' if g['new'] else '':<3}  "
                     f"{g['last_seen'][11:19]:<8}  {error:<{err_width}}  "
                     f"{_cut(_top(g['tasks']), 40)} / {_cut(_top(g['workers']), 40)}")
        for hint in g.get("hints", ()):
            lines.append(f"    hint: {_cut(hint['text'], width - 10)}")
    if len(shown) < len(groups):
        lines.append(f"… {len(groups) - len(shown):,} more groups (--top N, or --json)")
    if doc["clusters"]:
        lines += ["", "similar groups (one cause, several fingerprints):"]
        for c in doc["clusters"]:
            lines.append(f"  {' '.join(c['groups'])}  ({counted(c['count'], 'failure')}, similarity "
                         f">= {c['min_similarity']:.2f})")
    return lines


def trend_lines(doc: dict[str, Any], width: int = 50) -> list[str]:
    """``analysis.report.trend_json``'s document as one bar per bucket."""
    buckets = doc["buckets"]
    what = f"group {doc['group']}" if doc["group"] else "all groups"
    lines = [f"failures per {doc['unit']}, {what}: {doc['total']:,}"]
    peak = max((b["count"] for b in buckets), default=0)
    fmt = {"minute": "%Y-%m-%d %H:%M", "hour": "%Y-%m-%d %H:00", "day": "%Y-%m-%d"}[doc["unit"]]
    for b in buckets:
        bar = "█" * round(b["count"] / peak * width) if peak else ""
        when = datetime.fromisoformat(b["start"]).strftime(fmt)
        lines.append(f"{when}  {b['count']:>6,}  {bar}")
    return lines
