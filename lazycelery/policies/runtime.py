"""Starting the policies inside ``serve`` and ``record``: the rules from the config file, the
``Actions`` each rule acts through (audited as ``policy:<rule>``), the ledger rebuilt from the
audit log (file and store). None when the file has no retry rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lazycelery.config_file import load_file
from lazycelery.core import audit
from lazycelery.core.actions import Actions, environment_label
from lazycelery.policies.engine import PolicyEngine
from lazycelery.policies.rules import PolicyConfig, load_policies
from lazycelery.urls import error_line

if TYPE_CHECKING:
    from lazycelery.config import Settings
    from lazycelery.core.index import TaskIndex

__all__ = ["policy_config", "start_policies", "tee"]

#: audit entries read back to rebuild the ledger
HISTORY: int = 500_000


def policy_config(settings: Settings) -> PolicyConfig:
    """The ``[policies]`` of the settings' config file (ConfigError: one line)."""
    if not settings.config_path.exists():
        return PolicyConfig()
    return load_policies(load_file(settings.config_path).policies, settings.config_path)


def start_policies(settings: Settings, *, index: TaskIndex | None,
                   say: Callable[[str], None]) -> PolicyEngine | None:
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

    engine = PolicyEngine(config, actions_for, read_only=settings.read_only,
                          environment=environment, audit_sink=sink, say=say)
    engine.start(_history(settings, say))
    mode = "read-only: nothing is sent" if settings.read_only else (
        "dry run: nothing is sent" if config.dry_run else "acting")
    say(f"policies: {len(config.retry)} retry rule{'s' if len(config.retry) != 1 else ''} "
        f"({mode}; {engine.switch.read().describe(engine.clock())})")
    return engine


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


def tee(first: Callable[..., None] | None, engine: PolicyEngine | None) -> Any:
    """An ``on_batch`` calling ``first`` then the engine's (``first`` alone without rules)."""
    if engine is None:
        return first
    if first is None:
        return engine.on_batch
    mine = engine.on_batch

    def both(events: Any, records: Any) -> None:
        first(events, records)
        mine(events, records)

    return both
