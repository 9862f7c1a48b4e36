"""The alerts the dashboard shows, headless: what the running evaluator (``lazycelery serve``
or ``lazycelery record``) last published for this environment (lazycelery.alerts.files). The
dashboard evaluates no rule itself, so several dashboards never notify twice; the file is
read again at most once a second, and only when it changed."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from lazycelery.alerts.files import alerts_dir, read_state, state_path
from lazycelery.alerts.state import FIRING, PENDING
from lazycelery.errors import ConfigError

__all__ = ["STALE_AFTER", "AlertsModel"]

#: a published state older than this is from an evaluator that stopped
STALE_AFTER: Final = 35.0
_ORDER: Final = {FIRING: 0, PENDING: 1}


class AlertsModel:
    def __init__(self, environment: str | None, *, directory: Path | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.environment = environment
        self.directory = directory
        self.clock = clock
        self.rules: list[dict[str, Any]] = []
        self.updated: float | None = None
        self.problem: str | None = None
        self._read_at = -1e18
        self._seen: tuple[int, int] | None = None

    def refresh(self) -> None:
        now = self.clock()
        if now - self._read_at < 1.0:
            return
        self._read_at = now
        directory = self.directory if self.directory is not None else alerts_dir()
        path = state_path(directory, self.environment)
        try:
            stat = path.stat()
            seen: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
        except (OSError, ValueError):  # ValueError: a NUL in $LAZYCELERY_ALERTS_DIR
            seen = None
        if seen == self._seen:
            return
        self._seen = seen
        try:
            data = read_state(directory, self.environment) or {}
            self.problem = None
        except ConfigError as exc:
            data, self.problem = {}, str(exc)
        rules = [r for r in data.get("rules", []) if isinstance(r, dict)]
        rules.sort(key=lambda r: (_ORDER.get(str(r.get("state")), 2), str(r.get("name"))))
        self.rules = rules
        updated = data.get("updated")
        self.updated = float(updated) if isinstance(updated, (int, float)) else None

    @property
    def running(self) -> bool:
        """An evaluator published lately (else the rules shown are its last word)."""
        return self.updated is not None and self.clock() - self.updated < STALE_AFTER

    @property
    def firing(self) -> list[dict[str, Any]]:
        if not self.running:
            return []
        return [r for r in self.rules if r.get("state") == FIRING]
