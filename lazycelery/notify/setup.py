"""A ``Dispatcher`` from the config file's ``[notify]`` table: its channels (those whose secret
variable is unset are reported, not fatal), its dead-letter file, queue size and retry period."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from lazycelery.config_notify import NotifyTable
from lazycelery.notify.channels import build_channels
from lazycelery.notify.deadletter import DeadLetterFile, default_path
from lazycelery.notify.dispatcher import Dispatcher

__all__ = ["dead_letter_file", "dispatcher_for"]


def dead_letter_file(table: NotifyTable) -> DeadLetterFile:
    path = Path(table.dead_letter).expanduser() if table.dead_letter else default_path()
    return DeadLetterFile(path)


def dispatcher_for(table: NotifyTable, *, environ: Mapping[str, str] | None = None,
                   say: Callable[[str], None] | None = None) -> Dispatcher:
    """The dispatcher of ``table`` (not started). Each channel that cannot be built is said in
    one line; what is sent to it goes to the dead letters until it is fixed."""
    channels, broken = build_channels(table.channels, environ)
    for problem in broken.values():
        if say is not None:
            say(problem)
    return Dispatcher(channels, dead_letter_file(table), broken=broken,
                      queue_size=table.queue_size, retry_dead_letters=table.retry_dead_letters,
                      say=say)
