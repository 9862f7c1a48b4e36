"""Shared pieces of the alert tests: rules from TOML text, replaying a recorded stream
through a TaskIndex into an Evaluator on the stream's own clock, a Notifier that keeps."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lazycelery.alerts.engine import Evaluator
from lazycelery.alerts.spec import Rule, parse_rules
from lazycelery.core.index import TaskIndex
from lazycelery.notify.message import Notification

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

PATH = Path("alerts.toml")


def rules(text: str) -> list[Rule]:
    return parse_rules(tomllib.loads(text).get("alerts", {}), PATH, ("alerts",))


class KeepingNotifier:
    def __init__(self) -> None:
        self.sent: list[tuple[Notification, tuple[str, ...]]] = []

    def submit(self, notification: Notification, channels: Sequence[str]) -> bool:
        self.sent.append((notification, tuple(channels)))
        return True


def batches(events: Sequence[dict[str, Any]], size: int = 50) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(events), size):
        yield [dict(e) for e in events[start:start + size]]


def replay(evaluator: Evaluator, events: Sequence[dict[str, Any]], *,
           tick_every: float = 1.0) -> tuple[TaskIndex, float, list[Any]]:
    """Feed every batch at the time of its last event; tick every ``tick_every`` seconds of
    stream time. Returns the index, the last clock and every transition."""
    index = TaskIndex(max_tasks=100_000)
    transitions: list[Any] = []
    next_tick: float | None = None
    now = 0.0
    for batch in batches(events):
        now = float(batch[-1]["timestamp"])
        evaluator.feed(batch, index.apply_batch(batch), now)
        if next_tick is None:
            next_tick = now
        while now >= next_tick:
            transitions += evaluator.tick(next_tick)
            next_tick += tick_every
    return index, now, transitions
