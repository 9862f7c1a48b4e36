"""Bulk message operations' shared shapes: what to take from a queue, and what happened to each
message (moved, deleted, no longer there), counted exactly."""

from __future__ import annotations

from collections.abc import Collection

import msgspec

__all__ = ["DEFAULT_SCAN_LIMIT", "BulkOutcome", "Selection"]

#: How many messages from the head of a queue are examined to find the selected ones.
DEFAULT_SCAN_LIMIT = 10_000


class Selection(msgspec.Struct, frozen=True, kw_only=True):
    """Which messages: the ones with these task ids, or every one (``ids`` None), among the
    first ``limit`` in consumption order."""

    ids: frozenset[str] | None = None
    limit: int = DEFAULT_SCAN_LIMIT

    @classmethod
    def of(cls, ids: Collection[str] | None, limit: int = DEFAULT_SCAN_LIMIT) -> Selection:
        return cls(ids=None if ids is None else frozenset(ids), limit=max(1, int(limit)))

    def wants(self, task_id: str | None) -> bool:
        return self.ids is None or (task_id is not None and task_id in self.ids)

    @property
    def complete_after(self) -> int | None:
        """Stop scanning once this many were found (every selected id seen), None: never."""
        return None if self.ids is None else len(self.ids)


class BulkOutcome(msgspec.Struct, kw_only=True):
    """What one bulk operation did, message by message (ids may repeat: counts are of messages).

    ``done`` were moved/deleted; ``gone`` were seen but had left the queue (a worker took them)
    before the operation reached them; ``not_found`` are selected ids never seen among the
    ``scanned`` messages; ``skipped`` maps a task id to why it was left in place.
    """

    action: str
    source: str
    #: target queue per moved message id (move, requeue-dead), else empty
    targets: dict[str, str] = msgspec.field(default_factory=dict)
    done: list[str] = msgspec.field(default_factory=list)
    gone: list[str] = msgspec.field(default_factory=list)
    not_found: list[str] = msgspec.field(default_factory=list)
    skipped: dict[str, str] = msgspec.field(default_factory=dict)
    scanned: int = 0
    #: how the broker guarantees it (one line, shown with the counts)
    guarantee: str = ""

    def finish(self, selection: Selection, seen: Collection[str]) -> BulkOutcome:
        if selection.ids is not None:
            self.not_found = sorted(selection.ids - set(seen))
        return self
