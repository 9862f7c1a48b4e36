"""The activity report (``summary.build_summary``) as Markdown, HTML or JSON, and as the
``Notification`` a scheduled report hands to its channels."""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from lazycelery.notify.message import Notification
from lazycelery.text import counted, visible

__all__ = ["RENDERERS", "render", "render_html", "render_json", "render_md",
           "report_notification"]


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _secs(value: float) -> str:
    return f"{value:,.2f} s" if value < 120 else f"{value / 60:,.1f} min"


def _sections(doc: dict[str, Any]) -> list[tuple[str, Sequence[str], list[Sequence[Any]], str]]:
    """(title, header, rows, text when no row) of each section: both formats read these."""
    volume = doc["volume"]
    states = ", ".join(f"{state} {n:,}" for state, n in volume["states"].items()) or "none"
    queues = doc["queues"]
    gaps = doc["gaps"]
    return [
        ("Volume", ("tasks", "failure rate", "by state"),
         [(f"{volume['total']:,}", _pct(volume["failure_rate"]), states)], ""),
        ("Busiest tasks", ("task", "count", "failed", "failure rate"),
         [(t["name"], f"{t['count']:,}", f"{t['failed']:,}", _pct(t["failure_rate"]))
          for t in doc["tasks"]], "No task in this period."),
        ("Top error groups", ("error", "count", "tasks", "filter", "examples"),
         [(e["title"], f"{e['count']:,}", ", ".join(e["task_names"]), e["filter"],
           ", ".join(e["tasks"][:3])) for e in doc["errors"]], "No failure in this period."),
        ("Slowest tasks", ("task", "runs", "mean", "max", "slowest run"),
         [(s["name"], f"{s['count']:,}", _secs(s["mean_s"]), _secs(s["max_s"]),
           s["slowest_task"] or "") for s in doc["slowest"]], "No runtime recorded."),
        ("Queue peaks", ("queue", "max ready", "min consumers"),
         [(q["queue"], f"{q['max_ready']:,}",
           "?" if q["min_consumers"] is None else q["min_consumers"]) for q in queues["peaks"]],
         queues.get("note", "")),
        ("Worker availability", ("worker", "available", "went offline", "last seen"),
         [(w["hostname"], _pct(w["availability"]), w["offline"], w["last_seen"])
          for w in doc["workers"]], "No worker heard from in this period."),
        ("Monitoring gaps", ("start", "end", "cause", "events lost"),
         [(g["start"], g["end"], g["cause"], g["lost_events"] or 0) for g in gaps["gaps"]],
         "No gap recorded in this period."),
    ]


def _coverage_line(gaps: dict[str, Any]) -> str:
    share = gaps["recorded_s"] / gaps["period_s"] if gaps["period_s"] > 0 else 0.0
    return (f"A recorder ran {_pct(share)} of the period; {gaps['count']:,} gap(s) in its "
            f"record ({_secs(gaps['seconds'])}, {counted(gaps['lost_events'], 'event')} counted lost). "
            "Figures cover what was recorded.")


def _title(doc: dict[str, Any]) -> str:
    where = f" ({doc['environment']})" if doc.get("environment") else ""
    return f"lazycelery report{where} {doc['since']} to {doc['until']}"


def _md_cell(value: Any) -> str:
    return visible(str(value)).replace("|", "\\|")


def _md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]


def render_md(doc: dict[str, Any]) -> str:
    out = [f"# {_title(doc)}", ""]
    for title, header, rows, empty in _sections(doc):
        out += [f"## {title}", ""]
        out += _md_table(header, rows) if rows else [empty]
        out.append("")
    out += [_coverage_line(doc["gaps"]), ""]
    out.append(f"Failures in the dashboard: filter `{doc['links']['filter']}`")
    return "\n".join(out).rstrip("\n") + "\n"


def render_html(doc: dict[str, Any]) -> str:
    e = html.escape
    out = ["<!doctype html>", '<html><head><meta charset="utf-8">',
           f"<title>{e(_title(doc))}</title></head><body>", f"<h1>{e(_title(doc))}</h1>"]
    for title, header, rows, empty in _sections(doc):
        out.append(f"<h2>{e(title)}</h2>")
        if rows:
            out.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>"
                    for row in rows]
            out.append("</table>")
        else:
            out.append(f"<p>{e(empty)}</p>")
    out.append(f"<p>{e(_coverage_line(doc['gaps']))}</p>")
    out.append(f"<p>Failures in the dashboard: filter <code>{e(doc['links']['filter'])}</code>"
               "</p></body></html>")
    return "\n".join(out) + "\n"


def render_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "md": render_md, "html": render_html, "json": render_json}


def render(doc: dict[str, Any], fmt: str) -> str:
    return RENDERERS[fmt](doc)


def report_notification(doc: dict[str, Any], fmt: str, *, name: str | None = None
                        ) -> Notification:
    """A ``kind="report"`` notification: the Markdown as text (what Slack and plain email
    show), the document in the payload, and the HTML too when that is the format."""
    volume = doc["volume"]
    severity = "warning" if doc["errors"] or doc["gaps"]["count"] else "info"
    payload: dict[str, Any] = {"report": doc, "format": fmt}
    if fmt == "html":
        payload["html"] = render_html(doc)
    tasks = ",".join(t for group in doc["errors"][:3] for t in group["tasks"][:2])
    links = {"filter": doc["links"]["filter"], **({"tasks": tasks} if tasks else {})}
    return Notification(
        kind="report", key=f"report:{name or 'on-demand'}",
        title=f"{_title(doc)}: {counted(volume['total'], 'task')}, {_pct(volume['failure_rate'])} failed",
        text=render_md(doc), created=time.time(), severity=severity,
        environment=doc.get("environment"), labels={"report": name or "on-demand"},
        links=links, payload=payload)
