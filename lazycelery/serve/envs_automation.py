"""What a multi-environment ``serve`` runs besides the HTTP API: per environment its alert rules
(the top-level ``[[alerts.rules]]`` and its own ``[[environments.NAME.alerts.rules]]``), the
policies acting on its cluster, and its report schedules (environments with a ``store`` of their
own); one notification dispatcher for them all (``[notify]`` is one table: one queue, one
dead-letter file, every notification naming its environment).

Each environment's threads are its own: one whose broker is down only has nothing to evaluate,
the others go on. A bad rule is one ConfigError line at start, as in a single-environment serve.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from lazycelery.alerts.hook import configured_rules, start_alerts
from lazycelery.config_file import ConfigFile, load_file
from lazycelery.config_notify import ReportsTable
from lazycelery.policies.runtime import Policies, policy_config, start_policies, tee
from lazycelery.reports.schedule import ReportScheduler
from lazycelery.reports.service import TICK_SECONDS, schedules_line
from lazycelery.text import counted

if TYPE_CHECKING:
    from lazycelery.config import Settings
    from lazycelery.notify.dispatcher import Dispatcher
    from lazycelery.serve.envs import EnvServices

__all__ = ["EnvAutomation"]

Say = Callable[[str], None]
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class EnvAutomation:
    """Started after ``EnvServices.build`` (the Services and observers exist) and before the
    ingest threads start, so no batch goes unseen by the rules."""

    def __init__(self, config_path: Path, say: Say) -> None:
        self.config_path = config_path
        self._say = say
        self.dispatcher: Dispatcher | None = None
        self.policies: dict[str, Policies] = {}
        self.schedulers: dict[str, ReportScheduler] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._services: EnvServices | None = None

    def start(self, services: EnvServices) -> None:
        """Everything the config file asks for, per environment that has a Service. Raises
        ConfigError (one line) on a bad rule; call ``stop`` whatever happens."""
        self._services = services
        config = load_file(self.config_path) if self.config_path.exists() else None
        for name in services.services:  # a mistake is one line before anything starts
            settings = services.envs[name].settings
            assert settings is not None  # a Service exists only for settings that resolved
            configured_rules(settings)
            policy_config(settings)
        if config is not None and config.notify.channels:
            from lazycelery.notify.setup import dispatcher_for

            self.dispatcher = dispatcher_for(config.notify, say=self._say)
            self.dispatcher.start()
        for name, service in services.services.items():
            settings = services.envs[name].settings
            assert settings is not None  # a Service exists only for settings that resolved
            say = _prefixed(self._say, name)
            service.alerts = start_alerts(settings, say, queues=service.queues,
                                          notifier=self.dispatcher)
            policies = start_policies(settings, index=service.index, say=say)
            if policies is not None:
                self.policies[name] = policies
                observer = services.observers[name]
                setattr(observer, "on_batch", tee(observer.on_batch, policies))  # noqa: B010
            if config is not None and config.reports.schedules:
                self._schedule(name, settings, config, say)
        if self.schedulers:
            self._thread = threading.Thread(target=self._tick, daemon=True,
                                            name="lazycelery-reports")
            self._thread.start()

    def _schedule(self, name: str, settings: Settings, config: ConfigFile, say: Say) -> None:
        """The report schedules of one environment, over its own store; a ``file`` gets the
        environment's name (``{env}``, else before the suffix) so no two write one file."""
        url = settings.store_url
        if not url:
            say("report schedules off: this environment has no store of its own")
            return
        from lazycelery.store import open_store

        table = _with_env_files(config.reports, name)
        scheduler = ReportScheduler(
            table, open_store=lambda: open_store(url, writer=False), notifier=self.dispatcher,
            environment=settings.env_name, say=say)
        self.schedulers[name] = scheduler
        say(schedules_line(scheduler))

    def _tick(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            for scheduler in list(self.schedulers.values()):
                scheduler.tick()  # one schedule's failure is said by the scheduler itself

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30.0)
        for policies in self.policies.values():
            policies.stop()
        if self._services is not None:
            for service in self._services.services.values():
                if service.alerts is not None:
                    service.alerts.stop()
        if self.dispatcher is not None:
            self.dispatcher.stop()
            s = self.dispatcher.snapshot()
            self._say(f"notifications: {s.sent:,} sent, {counted(s.retried, 'retry', 'retries')}, "
                      f"{s.dead_lettered:,} dead-lettered, {s.redelivered:,} redelivered, "
                      f"{s.lost:,} lost (queue full)")


def _prefixed(say: Say, name: str) -> Say:
    return lambda text: say(f"{name}: {text}")


def env_file(template: str, env: str) -> str:
    """A report file name for one environment: ``{env}`` replaced, else ``-ENV`` put before the
    suffix (``daily-{date}.md`` -> ``daily-{date}-prod.md``)."""
    safe = _UNSAFE.sub("_", env)
    if "{env}" in template:
        return template.replace("{env}", safe)
    path = Path(template)
    return str(path.with_name(f"{path.stem}-{safe}{path.suffix}"))


def _with_env_files(reports: ReportsTable, env: str) -> ReportsTable:
    """``reports`` with every schedule's ``file`` made the environment's own."""
    return msgspec.structs.replace(reports, schedules=tuple(
        msgspec.structs.replace(s, file=env_file(s.file, env)) if s.file else s
        for s in reports.schedules))
