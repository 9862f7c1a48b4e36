"""`lazycelery report --since 24h`: the activity report (volume, failures, error groups, slow
tasks, queues, workers, gaps; lazycelery.reports) from the history store.
`lazycelery report compliance`: actions taken (the audit log) per user, environment and kind,
the masking rules in force and how many values each masked, retention and read-only settings,
monitoring coverage (the history store's recorder runs and gaps); as Markdown, JSON or CSV."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lazycelery.commands.argtypes import seconds
from lazycelery.errors import UsageError
from lazycelery.text import counted

if TYPE_CHECKING:
    from lazycelery.config import Settings
    from lazycelery.core.audit import AuditEntry
    from lazycelery.mask.counts import CountsEntry

__all__ = ["build_compliance", "register", "render_csv", "render_md", "run"]

HANDLER = "lazycelery.commands.report:run"
SCHEMA = "lazycelery.compliance/1"

EPILOG = """\
examples:
  lazycelery report --since 24h
  lazycelery report --since 7d --format html > week.html
  lazycelery report --since 24h --send ops-mail
  lazycelery -A proj.celery report --listen 300      # no store: a 5-minute live window
  lazycelery report compliance --since 30d
  lazycelery --env prod report compliance --since 7d --format json > compliance.json
  lazycelery report compliance --since 2026-11-01T00:00 --format csv
"""


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    parser = subparsers.add_parser(
        "report",
        parents=[common],
        help="reports: activity (--since 24h) and compliance (actions taken, masking, retention)",
        description="Reports over what lazycelery recorded. Without REPORT: the activity "
                    "report of the period from the history store (volume, failure rate, top "
                    "error groups, slowest tasks, queue peaks, worker availability, monitoring "
                    "gaps; docs/reports.md).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--since", dest="summary_since", metavar="AGE", default="24h",
                        help="activity report: the period, a duration (24h, 7d) or an ISO time "
                             "(default 24h)")
    parser.add_argument("--format", dest="summary_format", choices=("md", "html", "json"),
                        default="md", help="activity report: Markdown (default), HTML or JSON")
    parser.add_argument("--listen", metavar="SECONDS", type=seconds, default=None,
                        help="activity report: without a history store, listen to the live "
                             "events for SECONDS and report on that window")
    parser.add_argument("--send", metavar="CHANNEL", action="append", default=[],
                        help="activity report: also send it on this [notify.channels] channel "
                             "(repeatable); one outcome line each on stderr")
    kinds = parser.add_subparsers(dest="report_kind", metavar="REPORT")
    compliance = kinds.add_parser(
        "compliance", parents=[common],
        help="actions taken per user, environment and kind; masking rules and counts; "
             "retention and read-only settings",
        description="The compliance report: actions from the audit log ($LAZYCELERY_AUDIT_LOG) "
                    "per user, environment and kind; the masking rules in force and how many "
                    "values each masked at ingest (the counts log, $LAZYCELERY_MASK_COUNTS); "
                    "retention; read-only environments.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    compliance.add_argument("--since", metavar="AGE", default="30d",
                            help="the period: a duration (30d, 12h) or an ISO time (default 30d)")
    compliance.add_argument("--format", choices=("md", "json", "csv"), default="md",
                            help="Markdown (default), one JSON document, or CSV rows")
    parser.set_defaults(handler=HANDLER)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "report_kind", None) is None:
        from lazycelery.commands.report_summary import run_summary

        return run_summary(args)
    if getattr(args, "report_kind", None) != "compliance":
        raise UsageError("report: expected a report: compliance")
    import time

    from lazycelery import config
    from lazycelery.core import audit
    from lazycelery.mask import counts
    from lazycelery.tail.history import parse_since

    now = time.time()
    since = parse_since(args.since, now)
    if since > now:
        raise UsageError(f"--since: {args.since!r} is in the future")
    settings = config.resolve(args)
    document = build_compliance(
        since=since, until=now, settings=settings,
        actions=_actions(settings.store_url, audit.read(audit.default_path())),
        counts=counts.read(counts.default_path()),
        audit_path=audit.default_path(), counts_path=counts.default_path(),
        coverage=coverage(settings, since, now),
    )
    render = {"md": render_md, "json": _render_json, "csv": render_csv}[args.format]
    print(render(document), end="")
    return 0


def _actions(store_url: str | None, in_file: list[AuditEntry]) -> list[AuditEntry]:
    """This machine's audit file and, with a store configured, the store's audit table (every
    operator's actions on that cluster); an entry in both counts once. A store that cannot be
    read: one line on stderr, the file alone."""
    if store_url is None:
        return in_file
    import sys

    from lazycelery.store import StoreError, open_store
    from lazycelery.store.audit import read_audit

    try:
        store = open_store(store_url, create=False, writer=False)
        try:
            stored = read_audit(store)
        finally:
            store.close()
    except StoreError as exc:
        print(f"lazycelery: report: audit entries of the store left out: {exc}", file=sys.stderr)
        return in_file
    seen = {(e.time, e.user, e.host, e.action, tuple(e.targets)) for e in stored}
    extra = [e for e in in_file if (e.time, e.user, e.host, e.action, tuple(e.targets)) not in seen]
    return sorted([*stored, *extra], key=lambda e: e.time)


def _when(text: str) -> float | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


def _within(entries: Iterable[Any], since: float, until: float) -> list[Any]:
    out = []
    for entry in entries:
        moment = _when(entry.time)
        if moment is not None and since <= moment <= until:
            out.append(entry)
    return out


def api_accounts(settings: Settings) -> dict[str, Any]:
    """``lazycelery serve``'s users and tokens with their roles, from the config file's
    ``[serve]`` table (names and roles only), or why they could not be read."""
    from lazycelery.config_file import load_file
    from lazycelery.errors import ConfigError
    from lazycelery.serve.auth import AuthError, accounts

    try:
        config = load_file(settings.config_path) if settings.config_path.exists() else None
        return {"accounts": accounts(config.serve if config is not None else None)}
    except (ConfigError, OSError, AuthError) as exc:
        return {"accounts": [], "error": str(exc)}


def _environments(settings: Settings) -> list[dict[str, Any]]:
    from lazycelery.config_file import load_file
    from lazycelery.errors import ConfigError

    try:
        config = load_file(settings.config_path) if settings.config_path.exists() else None
    except (ConfigError, OSError):
        config = None
    if config is None or not config.environments:
        return [{"environment": settings.env_name or "-", "read_only": settings.read_only}]
    return [{"environment": name, "read_only": bool(env.read_only or config.read_only)}
            for name, env in sorted(config.environments.items())]


def _merged_seconds(intervals: Iterable[tuple[float, float]], since: float,
                    until: float) -> float:
    """Seconds of [since, until] covered by the union of ``intervals``."""
    total, reach = 0.0, since
    for start, end in sorted((max(a, since), min(b, until)) for a, b in intervals):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


def coverage(settings: Settings, since: float, until: float) -> dict[str, Any]:
    """Monitoring coverage from the history store: the time a recorder ran, the gaps in its
    record (ingest, store or recorder), events lost; ``error`` when the store cannot be read."""
    from lazycelery.store import StoreError, default_store_url, open_store
    from lazycelery.urls import error_line

    url = settings.store_url or default_store_url()
    out: dict[str, Any] = {"store": settings.masked_store(), "period_s": until - since}
    try:
        store = open_store(url, create=False, writer=False)
    except StoreError as exc:
        return {**out, "error": str(exc)}
    try:
        runs = store.query("SELECT started, alive FROM recorders WHERE alive >= ? AND started <= ?",
                           (since, until))
        gaps = store.gaps(since, until)
    except Exception as exc:  # a schema this version does not know: say so, report the rest
        return {**out, "error": f"cannot read the store: {error_line(exc)}"}
    finally:
        store.close()
    recorded = _merged_seconds(((float(a), float(b)) for a, b in runs), since, until)
    missing = _merged_seconds(((g.start, g.end) for g in gaps), since, until)
    lost = sum(g.lost_events or 0 for g in gaps)
    covered = max(0.0, recorded - missing)
    return {**out, "recorded_s": recorded, "gaps": len(gaps), "gap_s": missing,
            "lost_events": lost, "covered_s": covered,
            "coverage": covered / out["period_s"] if out["period_s"] > 0 else 0.0}


def build_compliance(*, since: float, until: float, settings: Settings,
                     actions: Sequence[AuditEntry], counts: Sequence[CountsEntry],
                     audit_path: Path, counts_path: Path,
                     coverage: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report as one JSON-able document (``render_md`` / ``render_csv`` format it);
    ``coverage`` is what ``coverage()`` read from the history store."""
    from lazycelery.mask.settings import masker_for
    from lazycelery.store.retention import DEFAULT_RETENTION

    taken = _within(actions, since, until)
    per_kind: Counter[tuple[str, str, str, bool]] = Counter(
        (a.user, a.environment, a.action, bool(a.result.get("ok"))) for a in taken)
    masked: Counter[tuple[str, str]] = Counter()
    events: Counter[str] = Counter()
    for entry in _within(counts, since, until):
        events[entry.environment] += entry.events
        for rule, n in entry.counts.items():
            masked[(entry.environment, rule)] += n
    masker = masker_for(settings, save_counts=False)
    return {
        "schema": SCHEMA,
        "since": _iso(since),
        "until": _iso(until),
        "environment": settings.env_name,
        "actions": [
            {"user": user, "environment": env, "kind": kind, "ok": ok, "count": n}
            for (user, env, kind, ok), n in sorted(per_kind.items())],
        "actions_total": len(taken),
        "masking": {
            "rules": masker.rules.describe(),
            "problems": list(masker.problems),
            "masked": [{"environment": env, "rule": rule, "count": n}
                       for (env, rule), n in sorted(masked.items())],
            "events_checked": dict(sorted(events.items())),
        },
        "retention": {
            "store": settings.masked_store(),
            "store_default_age": DEFAULT_RETENTION,
            "note": "each recorder sets its own: lazycelery record --retention AGE "
                    "--retention-tasks N",
            "audit_log": f"{audit_path} (append-only, kept until removed)",
            "mask_counts_log": f"{counts_path} (append-only, kept until removed)",
        },
        "read_only": _environments(settings),
        "api": api_accounts(settings),
        "coverage": coverage or {},
    }


def _render_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


def _md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |"
              for row in rows]
    return lines


def render_md(doc: dict[str, Any]) -> str:
    from lazycelery.text import visible

    out = [f"# Compliance report {doc['since']} to {doc['until']}", ""]
    out += [f"## Actions taken ({doc['actions_total']:,})", ""]
    if doc["actions"]:
        out += _md_table(("user", "environment", "kind", "result", "count"),
                         ((a["user"], a["environment"], a["kind"],
                           "ok" if a["ok"] else "failed", a["count"]) for a in doc["actions"]))
    else:
        out.append("No action was taken in this period.")
    masking = doc["masking"]
    out += ["", "## Masking rules in force", ""]
    keys = [rule.removeprefix("key:") for rule in masking["rules"] if rule.startswith("key:")]
    if keys:
        out.append(f"- key names: {', '.join(keys)}")
    out += [f"- `{rule}`" for rule in masking["rules"] if not rule.startswith("key:")]
    out += [f"- rule skipped: {problem}" for problem in masking["problems"]]
    out += ["", "## Values masked at ingest", ""]
    if masking["masked"]:
        out += _md_table(("environment", "rule", "values masked"),
                         ((m["environment"], m["rule"], f"{m['count']:,}")
                          for m in masking["masked"]))
        checked = ", ".join(f"{env} {n:,}" for env, n in masking["events_checked"].items())
        out += ["", f"Events carrying values checked: {checked}."]
    else:
        out.append("No value was masked in this period (or no ingest ran).")
    retention = doc["retention"]
    out += ["", "## Retention", "",
            f"- history store: {retention['store']}; default age {retention['store_default_age']}"
            f" ({retention['note']})",
            f"- audit log: {retention['audit_log']}",
            f"- masking counts: {retention['mask_counts_log']}",
            "", "## Read-only environments", ""]
    out += _md_table(("environment", "read-only"),
                     ((e["environment"], "yes" if e["read_only"] else "no")
                      for e in doc["read_only"]))
    api = doc.get("api") or {}
    out += ["", "## API users and roles (`lazycelery serve`)", ""]
    if api.get("error"):
        out.append(f"Not read: {api['error']}")
    elif api.get("accounts"):
        out += _md_table(("name", "kind", "role"),
                         ((a["name"], a["kind"], a["role"]) for a in api["accounts"]))
    else:
        out.append("None configured: serve answers only on 127.0.0.1 without authentication "
                   "(or was started with --insecure-no-auth).")
    out += ["", "## Monitoring coverage", "", _coverage_line(doc.get("coverage") or {})]
    return "".join(visible(line) + "\n" for line in out)


def _hours(seconds: float) -> str:
    """``42 s``, ``17 min``, ``3.5 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:,.1f} h"


def _coverage_line(cov: dict[str, Any]) -> str:
    if not cov:
        return "Not measured."
    if "error" in cov:
        return f"History store {cov['store']}: not read ({cov['error']})."
    return (f"History store {cov['store']}: a recorder ran {_hours(cov['recorded_s'])} of "
            f"{_hours(cov['period_s'])}; {cov['gaps']:,} gap(s) in its record "
            f"({_hours(cov['gap_s'])}, {counted(cov['lost_events'], 'event')} counted lost); "
            f"covered {cov['coverage']:.1%} of the period.")


def render_csv(doc: dict[str, Any]) -> str:
    """One row per figure: ``section,environment,user,name,value``."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("section", "environment", "user", "name", "value"))
    for a in doc["actions"]:
        writer.writerow(("action", a["environment"], a["user"],
                         f"{a['kind']} {'ok' if a['ok'] else 'failed'}", a["count"]))
    for rule in doc["masking"]["rules"]:
        writer.writerow(("mask_rule", doc["environment"] or "-", "", rule, ""))
    for m in doc["masking"]["masked"]:
        writer.writerow(("masked", m["environment"], "", m["rule"], m["count"]))
    retention = doc["retention"]
    writer.writerow(("retention", doc["environment"] or "-", "", "store_default_age",
                     retention["store_default_age"]))
    for e in doc["read_only"]:
        writer.writerow(("read_only", e["environment"], "", "read_only",
                         str(e["read_only"]).lower()))
    for account in (doc.get("api") or {}).get("accounts", []):
        writer.writerow(("api_account", doc["environment"] or "-", account["name"],
                         account["kind"], account["role"]))
    cov = doc.get("coverage") or {}
    for key in ("recorded_s", "gaps", "gap_s", "lost_events", "coverage"):
        if key in cov:
            writer.writerow(("coverage", doc["environment"] or "-", "", key, cov[key]))
    return buffer.getvalue()
