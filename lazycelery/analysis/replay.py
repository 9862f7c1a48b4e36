"""Stored events replayed into an index and error groups in chunks (``lazycelery errors`` and
``lazycelery export --group`` read the history store this way); the gaps are passed over and
counted."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from lazycelery.store import StoredGap

if TYPE_CHECKING:
    from lazycelery.analysis.groups import ErrorGroups
    from lazycelery.core.index import TaskIndex

__all__ = ["CHUNK", "replay_stored"]

#: events per batch (each ``apply_batch`` / ``observe_batch`` call)
CHUNK: Final = 500


def replay_stored(items: Iterable[dict[str, Any] | StoredGap], groups: ErrorGroups,
                  index: TaskIndex, chunk: int = CHUNK) -> int:
    """Feed ``items`` (``store.history.history_events``) to ``index`` and ``groups``; the
    number of gaps passed over."""
    gaps, batch = 0, []
    for item in items:
        if isinstance(item, StoredGap):
            gaps += 1
            continue
        batch.append(item)
        if len(batch) >= chunk:
            groups.observe_batch(batch, index.apply_batch(batch))
            batch = []
    if batch:
        groups.observe_batch(batch, index.apply_batch(batch))
    return gaps
