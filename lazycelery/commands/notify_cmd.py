"""`lazycelery notify`: send a test notification on a channel, list or retry the dead letters
(notifications a channel could not take)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from lazycelery.errors import UsageError

if TYPE_CHECKING:
    from lazycelery.config_file import ConfigFile
    from lazycelery.notify.dispatcher import DeliveryOutcome

__all__ = ["register", "run"]

HANDLER = "lazycelery.commands.notify_cmd:run"

EPILOG = """\
examples:
  lazycelery notify test ops-webhook
  lazycelery notify dead-letters
  lazycelery notify dead-letters --retry
channels are [notify.channels.NAME] tables of the config file (docs/notifications.md)
"""


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    parser = subparsers.add_parser(
        "notify", parents=[common],
        help="notification channels: send a test, list or retry undelivered notifications",
        description="Notification channels ([notify.channels.NAME] in the config file: "
                    "webhook, slack, email).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="notify_action", metavar="ACTION")
    test = actions.add_parser(
        "test", parents=[common], help="send a test notification on CHANNEL, print the outcome",
        description="Send a notification of kind 'test' on CHANNEL now (with its retries) and "
                    "print the outcome in one line; exit 1 when it was not delivered. A test "
                    "that fails is not kept in the dead letters.")
    test.add_argument("channel", metavar="CHANNEL", help="a [notify.channels.NAME] name")
    letters = actions.add_parser(
        "dead-letters", parents=[common], help="list (or --retry) what could not be delivered",
        description="The notifications a channel could not take after its retries, kept in the "
                    "dead-letter file ([notify] dead_letter, default in the user state "
                    "directory) and retried at each start and periodically by serve/record.")
    letters.add_argument("--retry", action="store_true",
                         help="try each once more now (with its channel's retries); exit 1 "
                              "when some are still undelivered")
    letters.add_argument("--json", action="store_true", help="one JSON object per line")
    letters.add_argument("--path", action="store_true", help="print the file's path and exit")
    parser.set_defaults(handler=HANDLER)


def _config(args: argparse.Namespace) -> ConfigFile:
    from lazycelery import config
    from lazycelery.config_file import ConfigFile, load_file

    settings = config.resolve(args)
    if not settings.config_path.exists():
        return ConfigFile()
    return load_file(settings.config_path)


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "notify_action", None)
    if action == "test":
        return _test(args)
    if action == "dead-letters":
        return _dead_letters(args)
    raise UsageError("notify: expected an action: test CHANNEL, dead-letters")


def _say(line: str) -> None:
    print(f"lazycelery: {line}", file=sys.stderr)


def _test(args: argparse.Namespace) -> int:
    import getpass
    import socket
    import time

    from lazycelery.notify.channels import build_channel
    from lazycelery.notify.dispatcher import Dispatcher
    from lazycelery.notify.message import Notification
    from lazycelery.notify.setup import dead_letter_file

    config = _config(args)
    name = args.channel
    table = config.notify.channels.get(name)
    if table is None:
        known = ", ".join(sorted(config.notify.channels)) or "none defined"
        raise UsageError(f"notify test: unknown channel {name!r} (known: {known})")
    channel = build_channel(name, table)
    where = f"{socket.gethostname()} by {getpass.getuser()}"
    notification = Notification(
        kind="test", key=f"test:{name}", title=f"lazycelery test notification ({name})",
        text=f"If you can read this, the channel {name!r} works. Sent from {where}.",
        created=time.time(), severity="info", labels={"channel": name},
        links={"filter": "state:FAILURE"})
    dispatcher = Dispatcher({name: channel}, dead_letter_file(config.notify))
    try:
        outcome = dispatcher.deliver(notification, name)
    finally:
        channel.close()
    print(_outcome_line(outcome, channel.describe()))
    return 0 if outcome.delivered else 1


def _outcome_line(outcome: DeliveryOutcome, where: str) -> str:
    tries = f"{outcome.attempts} attempt{'s' if outcome.attempts != 1 else ''}"
    if outcome.delivered:
        return f"{outcome.channel}: delivered to {where} ({tries}, {outcome.seconds:.2f} s)"
    return (f"{outcome.channel}: NOT delivered to {where} after {tries}: {outcome.error} "
            f"(a test is not kept in the dead letters)")


def _dead_letters(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    import msgspec

    from lazycelery.notify.setup import dead_letter_file, dispatcher_for
    from lazycelery.text import counted, visible

    config = _config(args)
    file = dead_letter_file(config.notify)
    if args.path:
        print(file.path)
        return 0
    if args.retry:
        dispatcher = dispatcher_for(config.notify, say=_say)
        try:
            delivered, kept = dispatcher.retry_dead_letters()
        finally:
            dispatcher.stop(timeout=0)
        print(f"dead letters: {delivered} delivered, {kept} kept in {file.path}")
        return 1 if kept else 0
    letters, unreadable = file.read()
    if unreadable:
        _say(f"{file.path}: {unreadable} line(s) not readable, left as they are")
    for letter in letters:
        if args.json:
            print(msgspec.json.encode(letter).decode())
            continue
        when = datetime.fromtimestamp(letter.failed, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        n = letter.notification
        print(visible(f"{when}  {letter.channel}  {n.kind}  {n.title}  "
                      f"({counted(letter.attempts, 'attempt')}: {letter.error})"))
    if not letters and not args.json:
        print(f"no dead letters ({file.path})")
    return 0
