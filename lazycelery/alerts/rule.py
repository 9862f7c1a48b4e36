"""One validated alert rule (``Rule``), as ``spec`` builds it from the config file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["DEFAULT_COOLDOWN", "DEFAULT_WINDOW", "Rule"]

DEFAULT_WINDOW: Final = 300.0
DEFAULT_COOLDOWN: Final = 300.0


@dataclass(frozen=True)
class Rule:
    """One validated rule. Durations are seconds; ``threshold`` is a count, a ratio or seconds
    depending on the kind (docs/alerts.md)."""

    name: str
    kind: str
    window: float = DEFAULT_WINDOW
    for_: float = 0.0
    severity: str = "warning"
    notify: tuple[str, ...] = ()
    cooldown: float = DEFAULT_COOLDOWN
    description: str = ""
    filter: str = ""
    count: float | None = None
    rate: float | None = None
    ratio: float | None = None
    min_tasks: int = 1
    queue: str = "*"
    worker: str = "*"
    threshold: float | None = None
    interval: float | None = None
    slack: float = 0.0
    #: the environment whose table defined it (None: the top level)
    environment: str | None = None
