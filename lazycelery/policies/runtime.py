"""Starting the policies inside ``serve`` and ``record``: the rules from the config file, the
``Actions`` each rule acts through (audited as ``policy:<rule>``), the ledger rebuilt from the
audit log (file and store), and the dead-letter requeuer. None when the file has no rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lazycelery.config_file import load_file
from lazycelery.core import audit
from lazycelery.core.actions import Actions, environment_label
from lazycelery.policies.engine import PolicyEngine
from lazycelery.policies.requeue import Requeuer
from lazycelery.policies.rules import PolicyConfig, load_policies
from lazycelery.policies.switch import PauseSwitch
from lazycelery.urls import error_line

if TYPE_CHECKING:
    from lazycelery.broker.inspector import BrokerInspector
    from lazycelery.config import Settings
    from lazycelery.core.index import TaskIndex

__all__ = ["Policies", "policy_config", "routing", "start_policies", "tee"]

#: audit entries read back to rebuild the ledger
HISTORY: int = 500_000


def policy_config(settings: Settings) -> PolicyConfig:
    """The ``[policies]`` of the settings' config file (ConfigError: one line)."""
    if not settings.config_path.exists():
        return PolicyConfig()
    return load_policies(load_file(settings.config_path).policies, settings.config_path)


class Policies:
    """What ``start_policies`` started: the retry engine (fed every batch) and the dead-letter
    requeuer (a thread of its own); either may be absent."""

    def __init__(self, engine: PolicyEngine | None, requeuer: Requeuer | None) -> None:
        self.engine = engine
        self.requeuer = requeuer

    def on_batch(self, events: Any, records: Any) -> None:
        if self.engine is not None:
            self.engine.on_batch(events, records)

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.stop()
        if self.requeuer is not None:
            self.requeuer.stop()


def start_policies(settings: Settings, *, index: TaskIndex | None,
                   say: Callable[[str], None]) -> Policies | None:
    config = policy_config(settings)
    if config.empty:
        return None
    from lazycelery.store.audit import store_sink

    sink = store_sink(settings.store_url) if settings.store_url else None
    app = settings.celery_app()
    environment = environment_label(settings)

    def actions_for(user: str) -> Actions:
        return Actions(app, read_only=settings.read_only, environment=environment, index=index,
                       audit_sink=sink, user=user)

    engine = None
    switch = PauseSwitch()
    if config.retry:
        engine = PolicyEngine(config, actions_for, read_only=settings.read_only, switch=switch,
                              environment=environment, audit_sink=sink, say=say)
        engine.start(_history(settings, say))
    requeuer = None
    if config.requeue:
        requeuer = Requeuer(config.requeue, lambda: _inspector(settings), actions_for,
                            consumers=lambda inspector, queue: _named_consumers(
                                settings, inspector, queue),
                            switch=switch, dry_run=config.dry_run,
                            read_only=settings.read_only, say=say).start()
    mode = "read-only: nothing is sent" if settings.read_only else (
        "dry run: nothing is sent" if config.dry_run else "acting")
    say(f"policies: {_rules_text(len(config.retry), 'retry')}, "
        f"{_rules_text(len(config.requeue), 'requeue')} ({mode}; "
        f"{switch.read().describe(switch.clock())})")
    return Policies(engine, requeuer)


def routing(settings: Settings) -> Callable[[str], str | None] | None:
    """The ``[[policies.route]]`` rules as ``Actions.route``: where a retried or replayed task
    of this name goes (None: no rules)."""
    config = policy_config(settings)
    if not config.route:
        return None
    return lambda name: config.queue_for(None, name)


def _rules_text(n: int, kind: str) -> str:
    return f"{n} {kind} rule{'s' if n != 1 else ''}"


def _inspector(settings: Settings) -> BrokerInspector:
    from lazycelery.broker import open_inspector

    return open_inspector(settings.broker_url, settings.transport_options, settings.queues,
                          management_url=settings.management_url,
                          dead_letter=settings.dead_letter, ssl_options=settings.broker_ssl())


def _named_consumers(settings: Settings, inspector: BrokerInspector, queue: str) -> int:
    """Workers consuming ``queue`` when the broker cannot count them (Redis): the workers it
    names, asked by name (never a broadcast)."""
    from lazycelery.broker.workers import worker_probe

    return len(worker_probe(settings.celery_app, inspector)().get(queue, ()))


def _history(settings: Settings, say: Callable[[str], None]) -> list[audit.AuditEntry]:
    entries = audit.read(limit=HISTORY)
    if settings.store_url:
        try:
            from lazycelery.store import open_store
            from lazycelery.store.audit import read_audit

            store = open_store(settings.store_url, writer=False)
            try:
                entries = read_audit(store, limit=HISTORY) + entries
            finally:
                store.close()
        except Exception as exc:  # the file still has every entry this machine wrote
            say(f"policies: audit history not read from the store: {error_line(exc)}")
    return entries


def tee(first: Callable[..., None] | None, engine: Policies | None) -> Any:
    """An ``on_batch`` calling ``first`` then the policies' (``first`` alone without rules)."""
    if engine is None or engine.engine is None:
        return first
    if first is None:
        return engine.on_batch
    mine = engine.on_batch

    def both(events: Any, records: Any) -> None:
        first(events, records)
        mine(events, records)

    return both
