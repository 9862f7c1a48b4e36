"""What a long-running process (``record``, ``serve --store``) starts from the config file's
``[notify]`` and ``[reports]`` tables: the notification dispatcher (its thread retries the dead
letters of earlier runs first) and a thread ticking the report schedules.

Nothing configured, nothing started. Problems are said in one line each and never stop the
recording."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from lazycelery.config_file import ConfigFile, load_file
from lazycelery.errors import ConfigError
from lazycelery.notify.dispatcher import Dispatcher
from lazycelery.notify.setup import dispatcher_for
from lazycelery.reports.schedule import ReportScheduler
from lazycelery.store.backend import Store
from lazycelery.text import counted

__all__ = ["Automation", "start_automation"]

#: how often the report schedules are looked at (a cron minute is never missed)
TICK_SECONDS = 10.0


@dataclass
class Automation:
    dispatcher: Dispatcher | None
    scheduler: ReportScheduler | None
    _stop: threading.Event
    _thread: threading.Thread | None
    _say: Callable[[str], None]

    def stop(self) -> None:
        """Stop the report thread, then the dispatcher; say what the notifications did."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30.0)
        if self.dispatcher is not None:
            self.dispatcher.stop()
            s = self.dispatcher.snapshot()
            self._say(f"notifications: {s.sent:,} sent, {counted(s.retried, 'retry', 'retries')}, "
                      f"{s.dead_lettered:,} dead-lettered, {s.redelivered:,} redelivered, "
                      f"{s.lost:,} lost (queue full)")


def _loop(scheduler: ReportScheduler, stop: threading.Event) -> None:
    while not stop.wait(TICK_SECONDS):
        scheduler.tick()


def schedules_line(scheduler: ReportScheduler) -> str:
    """``report schedules: 2, the next at 2026-12-07 08:00 UTC``, said at start."""
    first = datetime.fromtimestamp(min(run.due for run in scheduler.runs), timezone.utc)
    return (f"report schedules: {len(scheduler.runs)}, the next at "
            f"{first.strftime('%Y-%m-%d %H:%M')} UTC")


def start_automation(config_path: Path, *, open_store: Callable[[], Store],
                     environment: str | None, say: Callable[[str], None],
                     config: ConfigFile | None = None) -> Automation | None:
    """Start the dispatcher and the report thread the config file asks for; None if none."""
    if config is None:
        if not config_path.exists():
            return None
        try:
            config = load_file(config_path)
        except ConfigError as exc:  # already said at start-up by whoever resolved it
            say(f"notifications and reports off: {exc}")
            return None
    dispatcher = None
    if config.notify.channels:
        dispatcher = dispatcher_for(config.notify, say=say)
        dispatcher.start()
    scheduler = None
    thread = None
    stop = threading.Event()
    if config.reports.schedules:
        scheduler = ReportScheduler(config.reports, open_store=open_store, notifier=dispatcher,
                                    environment=environment, say=say)
        thread = threading.Thread(target=_loop, args=(scheduler, stop), daemon=True,
                                  name="lazycelery-reports")
        thread.start()
        say(schedules_line(scheduler))
    if dispatcher is None and scheduler is None:
        return None
    return Automation(dispatcher, scheduler, stop, thread, say)
