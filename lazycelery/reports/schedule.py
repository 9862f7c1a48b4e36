"""Report schedules (``[[reports.schedules]]``): a ``ReportScheduler`` whose ``tick(now)``
serve and record call every few seconds; a report that is due is built from the store and
handed to the notifier (channels) and/or written to its file.

Runs missed while nothing was running are not made up: the first run is the first cron time
after the scheduler starts. ``tick`` builds the report on the caller's thread (a few aggregate
queries); callers run it off the ingest path."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from pathlib import Path

from lazycelery.config_notify import ReportSchedule, ReportsTable
from lazycelery.cron import CronExpr, parse_cron, time_zone
from lazycelery.durations import parse_duration
from lazycelery.notify.message import Notifier
from lazycelery.reports.render import render, report_notification
from lazycelery.reports.summary import build_summary
from lazycelery.store.backend import Store

__all__ = ["ReportScheduler", "ScheduledRun", "report_file_name"]


def report_file_name(template: str, moment: float, zone: tzinfo | None = None) -> Path:
    """``template`` with ``{date}`` (2026-12-06) and ``{time}`` (0800) of ``moment``, on the
    clock of ``zone`` (UTC when None)."""
    when = datetime.fromtimestamp(moment, zone or timezone.utc)
    return Path(template.replace("{date}", when.strftime("%Y-%m-%d"))
                .replace("{time}", when.strftime("%H%M"))).expanduser()


@dataclass
class ScheduledRun:
    schedule: ReportSchedule
    cron: CronExpr
    due: float
    #: the schedule's ``tz`` (None: UTC)
    zone: tzinfo | None = None


def _zone(schedule: ReportSchedule) -> tzinfo | None:
    return None if schedule.tz is None else time_zone(schedule.tz)


class ReportScheduler:
    """Call ``tick()`` periodically; each schedule runs once per matching cron minute."""

    def __init__(self, table: ReportsTable, *, open_store: Callable[[], Store],
                 notifier: Notifier | None, environment: str | None = None,
                 say: Callable[[str], None] | None = None, now: float | None = None) -> None:
        start = time.time() if now is None else now
        self.runs = [ScheduledRun(s, cron, cron.next_after(start, zone), zone)
                     for s in table.schedules
                     for cron, zone in ((parse_cron(s.cron), _zone(s)),)]
        self._open_store = open_store
        self._notifier = notifier
        self._environment = environment
        self._say = say or (lambda line: None)

    def tick(self, now: float | None = None) -> int:
        """Make every report that is due; returns how many were made."""
        moment = time.time() if now is None else now
        made = 0
        for run in self.runs:
            if run.due > moment:
                continue
            run.due = run.cron.next_after(moment, run.zone)
            try:
                self.run_once(run.schedule, moment)
                made += 1
            except Exception as exc:  # one bad schedule (store down, file unwritable) says so
                from lazycelery.urls import error_line

                self._say(f"report {self._label(run.schedule)}: not made: "
                          f"{error_line(exc, with_type=True)}")
        return made

    @staticmethod
    def _label(schedule: ReportSchedule) -> str:
        return schedule.name or repr(schedule.cron)

    def run_once(self, schedule: ReportSchedule, now: float) -> None:
        store = self._open_store()
        try:
            doc = build_summary(store, now - parse_duration(schedule.since), now,
                                environment=self._environment)
        finally:
            store.close()
        if schedule.file:
            path = report_file_name(schedule.file, now, _zone(schedule))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(doc, schedule.format), encoding="utf-8")
        if schedule.channels:
            if self._notifier is None:
                raise RuntimeError("no notifier to send it")
            notification = report_notification(doc, schedule.format, name=schedule.name)
            if not self._notifier.submit(notification, schedule.channels):
                self._say(f"report {self._label(schedule)}: the notification queue is full; "
                          "not sent")
