"""Starting the alert rules beside an ingest (``serve``, ``record``): the rules of the active
environment from the config file (a bad rule: one ConfigError line, before anything starts),
their evaluator and the thread that runs it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from lazycelery.alerts.engine import Evaluator
from lazycelery.alerts.files import SilenceReader, alerts_dir
from lazycelery.alerts.runner import AlertRunner
from lazycelery.alerts.spec import Rule, rules_for
from lazycelery.broker.model import QueueSnapshot
from lazycelery.config_file import load_file
from lazycelery.notify.message import Notifier

if TYPE_CHECKING:
    from lazycelery.config import Settings

__all__ = ["configured_rules", "start_alerts"]


def configured_rules(settings: Settings) -> list[Rule]:
    """The rules in effect for the settings' environment ([] without a config file)."""
    path = settings.config_path
    if not path.exists():
        return []
    return rules_for(load_file(path), settings.env_name, path)


def start_alerts(settings: Settings, say: Callable[[str], None], *,
                 queues: Callable[[], QueueSnapshot | None] | None = None,
                 notifier: Notifier | None = None,
                 interval: float = 1.0) -> AlertRunner | None:
    """The running alert thread, or None when no rule is configured. Without a notifier each
    transition is one line through ``say``."""
    rules = configured_rules(settings)
    if not rules:
        return None
    directory = alerts_dir()
    evaluator = Evaluator(rules, now=time.time(), environment=settings.env_name,
                          notifier=notifier, silences=SilenceReader(directory, say), say=say)
    say(f"alerts: {len(rules)} rule(s) evaluated every {interval:g} s "
        f"(state in {directory})")
    return AlertRunner(evaluator, interval=interval, directory=directory, queues=queues).start()
