"""`lazycelery report --since 24h [--format md|html|json] [--send CHANNEL]`: the activity
report of a period from the history store, printed and optionally sent on channels."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

from lazycelery.errors import UsageError

if TYPE_CHECKING:
    from lazycelery.config_file import ConfigFile
    from lazycelery.notify.message import Notification

__all__ = ["run_summary"]


def run_summary(args: argparse.Namespace) -> int:
    from lazycelery import config
    from lazycelery.config_file import ConfigFile, load_file
    from lazycelery.reports.render import render, report_notification
    from lazycelery.reports.summary import build_summary
    from lazycelery.store import StoreError, default_store_url, mask_store_url, open_store
    from lazycelery.tail.history import parse_since

    now = time.time()
    since = parse_since(args.summary_since, now)
    if since >= now:
        raise UsageError(f"--since: {args.summary_since!r} is not in the past")
    settings = config.resolve(args)
    file = load_file(settings.config_path) if settings.config_path.exists() else ConfigFile()
    for name in args.send:
        if name not in file.notify.channels:
            known = ", ".join(sorted(file.notify.channels)) or "none defined"
            raise UsageError(f"--send: unknown channel {name!r} (known: {known})")
    url = settings.store_url or default_store_url()
    try:
        store = open_store(url, create=False, writer=False)
    except StoreError as exc:
        raise UsageError(f"report: no history store to read ({exc}); the report is made from "
                         f"what `lazycelery record` keeps (store {mask_store_url(url)})") from None
    try:
        doc = build_summary(store, since, now, environment=settings.env_name)
    finally:
        store.close()
    print(render(doc, args.summary_format), end="")
    if not args.send:
        return 0
    return _send(report_notification(doc, args.summary_format), args.send, file)


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
