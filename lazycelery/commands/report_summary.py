"""`lazycelery report --since 24h [--format md|html|json] [--send CHANNEL]`: the activity
report of a period from the history store, printed and optionally sent on channels.
``--listen SECONDS``: without a store, the report of a live window, captured into a throw-away
SQLite store through the recorder's own writer (the same figures, the same code)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lazycelery.errors import UsageError

if TYPE_CHECKING:
    from lazycelery.config import Settings
    from lazycelery.config_file import ConfigFile
    from lazycelery.notify.message import Notification

__all__ = ["run_summary"]


def run_summary(args: argparse.Namespace) -> int:
    from lazycelery import config
    from lazycelery.config_file import ConfigFile, load_file
    from lazycelery.reports.render import render, report_notification
    from lazycelery.reports.summary import build_summary
    from lazycelery.store import StoreError, default_store_url, open_store
    from lazycelery.tail.history import parse_since

    settings = config.resolve(args)
    file = load_file(settings.config_path) if settings.config_path.exists() else ConfigFile()
    for name in args.send:
        if name not in file.notify.channels:
            known = ", ".join(sorted(file.notify.channels)) or "none defined"
            raise UsageError(f"--send: unknown channel {name!r} (known: {known})")
    if args.listen is not None:
        doc = _live_report(settings, args.listen)
    else:
        now = time.time()
        since = parse_since(args.summary_since, now)
        if since >= now:
            raise UsageError(f"--since: {args.summary_since!r} is not in the past")
        url = settings.store_url or default_store_url()
        try:
            store = open_store(url, create=False, writer=False)
        except StoreError as exc:
            raise UsageError(f"report: {exc}; or --listen SECONDS for a live window, or "
                             "`report compliance`") from None
        try:
            doc = build_summary(store, since, now, environment=settings.env_name)
        finally:
            store.close()
    print(render(doc, args.summary_format), end="")
    if not args.send:
        return 0
    return _send(report_notification(doc, args.summary_format), args.send, file)


def _live_report(settings: Settings, seconds: float) -> dict[str, Any]:
    """Listen for ``seconds`` into a temporary store, then report on that window."""
    import os
    import socket
    import tempfile

    from lazycelery.commands.listen import ListenWatch
    from lazycelery.core.index import TaskIndex
    from lazycelery.core.ingest import Ingestor
    from lazycelery.mask.settings import masker_for
    from lazycelery.reports.summary import build_summary
    from lazycelery.store import open_store
    from lazycelery.store.writer import StoreWriter

    if not 0 < seconds <= 86400:
        raise UsageError(f"--listen: expected seconds between 0 and 86400, got {seconds:g}")
    watch = ListenWatch()

    with tempfile.TemporaryDirectory(prefix="lazycelery-report-") as folder:
        store = open_store(f"sqlite:///{Path(folder) / 'window.sqlite3'}")
        try:
            run_id, _ = store.begin_recorder(socket.gethostname(), os.getpid(),
                                             settings.masked_broker())
            writer = StoreWriter(store, recorder=run_id)
            ingestor = Ingestor(settings.broker_url, TaskIndex(max_tasks=settings.max_tasks),
                                mode=settings.ingest, read_ahead=settings.read_ahead,
                                app=settings.celery_app() if settings.app_spec else None,
                                transport_options=settings.transport_options,
                                on_batch=writer.on_batch, on_status=watch.on_status, wakeup=False,
                                masker=masker_for(settings, save_counts=False))
            writer.start()
            ingestor.start()
            since = time.time()
            try:
                if watch.connected.wait(min(seconds, 30.0)):
                    print(f"lazycelery: listening to {settings.masked_broker()} for "
                          f"{seconds:g} s", file=sys.stderr, flush=True)
                    time.sleep(seconds)  # counted from here, as the line says
            finally:
                ingestor.stop(timeout=3.0)
                writer.stop(timeout=15.0)
            until = time.time()
            watch.check(settings.masked_broker())
            store.end_recorder(run_id, until)
            return build_summary(store, since, until, environment=settings.env_name)
        finally:
            store.close()


def _send(notification: Notification, channels: list[str], file: ConfigFile) -> int:
    """Send now; one line per channel on stderr; what fails is kept in the dead letters."""
    from lazycelery.notify.setup import dispatcher_for

    def say(line: str) -> None:
        print(f"lazycelery: {line}", file=sys.stderr)

    dispatcher = dispatcher_for(file.notify, say=say)
    try:
        outcomes = dispatcher.send_now(notification, channels)
    finally:
        dispatcher.stop(timeout=0)
    for outcome in outcomes:
        if outcome.delivered:
            say(f"report sent on {outcome.channel} ({outcome.attempts} attempt(s))")
    return 0 if all(o.delivered for o in outcomes) else 1
