"""Several recorders feeding one store (``lazycelery record --shard I/N`` / ``--shared-queue``).

On RabbitMQ the recorders share one durable queue bound to the event exchange: each event
reaches one of them. On Redis every subscriber receives every event, so each recorder keeps the
task events of its shard of task ids (a stable hash: CRC-32 of the id, modulo N) and drops the
rest before its index sees them. Worker events are kept by every shard (the index needs them for
reconciliation) but written as worker samples by shard 0 only, which also samples queue depths:
one row per sample, as with one recorder. The writes of several recorders commute: task records
are merged order-independently, in one transaction that holds the rows it merges
(``PostgresStore`` locks them; SQLite has one writer at a time).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Shard", "Topology", "parse_shard", "shard_of"]


def shard_of(task_id: str, count: int) -> int:
    """The shard (0 .. count-1) a task id belongs to: the same in every process and version."""
    return zlib.crc32(task_id.encode("utf-8", "surrogatepass")) % count


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @property
    def label(self) -> str:
        return f"shard {self.index}/{self.count}"

    def owns(self, task_id: str) -> bool:
        return shard_of(task_id, self.count) == self.index

    def event_filter(self) -> Callable[[Mapping[str, Any]], bool]:
        """For the ingest thread: keep worker events and the task events of this shard."""
        index, count = self.index, self.count
        crc32 = zlib.crc32

        def keep(event: Mapping[str, Any]) -> bool:
            uuid = event.get("uuid")
            if uuid.__class__ is not str:
                return True  # a worker event (or a task event with no id: the index skips it)
            assert isinstance(uuid, str)
            return crc32(uuid.encode("utf-8", "surrogatepass")) % count == index

        return keep


def parse_shard(text: str) -> Shard:
    """``I/N`` with 0 <= I < N (e.g. ``0/2`` and ``1/2``); ValueError with a one-line reason."""
    index_text, sep, count_text = text.strip().partition("/")
    try:
        if not sep:
            raise ValueError
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise ValueError(f"expected I/N, e.g. 0/2 (shard 0 of 2), not {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {text!r}: I must be from 0 to N-1 (N >= 1)")
    return Shard(index, count)


@dataclass(frozen=True)
class Topology:
    """How this recorder shares the work with others (neither: it records everything)."""

    shard: Shard | None = None
    shared_queue: str | None = None

    @property
    def several(self) -> bool:
        return self.shard is not None or self.shared_queue is not None

    @property
    def label(self) -> str | None:
        """What the ``recorders`` table's broker column gets after the broker URL: recorders
        with the same label take over each other's work (a restarted one looks for its own)."""
        if self.shard is not None:
            return self.shard.label
        if self.shared_queue is not None:
            return f"shared queue {self.shared_queue}"
        return None

    @property
    def writes_samples(self) -> bool:
        """Worker and queue samples: by every recorder of a shared queue (each worker event
        reaches one of them), by shard 0 only on Redis (each receives all of them)."""
        return self.shard is None or self.shard.index == 0

    def owns(self, task_id: str) -> bool:
        return self.shard is None or self.shard.owns(task_id)
