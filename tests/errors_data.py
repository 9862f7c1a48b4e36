"""The recorded real failures of tests/data/errors (see record.py there), replayed through a
TaskIndex into ErrorGroups the way the dashboard and the CLI feed them."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from lazycelery.analysis import ErrorGroup, ErrorGroups
from lazycelery.core.index import TaskIndex

EVENTS = Path(__file__).resolve().parent / "data" / "errors" / "events.jsonl.gz"


def recorded_events() -> list[dict[str, Any]]:
    with gzip.open(EVENTS, "rt") as f:
        return [json.loads(line) for line in f]


def replay(events: Iterable[dict[str, Any]] | None = None, batch: int = 20) -> ErrorGroups:
    items = list(recorded_events() if events is None else events)
    index, groups = TaskIndex(), ErrorGroups()
    for i in range(0, len(items), batch):
        chunk = items[i:i + batch]
        groups.observe_batch(chunk, index.apply_batch(chunk))
    return groups


def by_task(groups: ErrorGroups, name: str,
            where: Callable[[ErrorGroup], bool] = lambda g: True) -> ErrorGroup:
    found = [g for g in groups if name in g.names.counts and where(g)]
    assert len(found) == 1, [g.fp.title for g in found]
    return found[0]
