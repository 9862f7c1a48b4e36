"""The error groups of any recent window, kept up to date as tasks change: each task's last
outcome (``sources.outcome_of``) filed by its time in one-minute segments, each segment's
``ErrorGroups`` (unbounded) kept until one of its tasks changes, and those of ten whole
segments absorbed into their block's, kept likewise. The groups of ``[since, now)`` are the
blocks' and segments' groups absorbed in time order (the segment ``since`` falls in fed
afresh, as are the tasks of a segment last active before ``since``), which
is what ``events_from_records`` + ``observe_batch`` over the same records gives, without
copying or feeding the whole window per request. A window where absorbing could differ from
that (a bound reached, see ``ErrorGroups.absorb``) answers None: the caller rebuilds.

One writer (``put`` / ``drop``) and readers, all under ``lock``."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from lazycelery.analysis.groups import ErrorGroups

__all__ = ["SEGMENT", "Outcome", "OutcomeWindow", "worker_events"]

#: seconds per segment
SEGMENT: Final = 60
#: segments per block: the whole segments of a block older than the newest are absorbed
#: once into the block's groups, kept until one of them changes
BLOCK: Final = 10


class Outcome(NamedTuple):
    """A task's last outcome and what ``ErrorGroups`` reads of its record (a tuple: made
    for every changed task by the follower, compared with the last one)."""

    time: float
    kind: str
    uuid: str
    #: the record's last activity (the window's other bound, as the rebuild's)
    last_seen: float
    worker: str | None
    name: str | None
    queue: str | None
    routing_key: str | None
    args: str | None
    exception: str | None
    traceback: str | None

    def event(self) -> dict[str, Any]:
        """The event ``events_from_records`` makes of it."""
        event: dict[str, Any] = {"type": self.kind, "uuid": self.uuid,
                                 "timestamp": self.time, "hostname": self.worker}
        if self.kind != "task-succeeded":
            event["exception"] = self.exception
            event["traceback"] = self.traceback
        return event


def worker_events(versions: Mapping[str, str | None], first: float) -> list[dict[str, Any]]:
    """One worker event per worker, as ``events_from_records`` opens with."""
    return [{"type": "worker-heartbeat", "hostname": host, "timestamp": first,
             "sw_ver": ver} for host, ver in sorted(versions.items())]


@dataclass
class _Segment:
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    #: its groups and the worker versions they were fed (None: to make again)
    groups: ErrorGroups | None = None
    versions: dict[str, str | None] | None = None
    #: the least recent activity of its tasks (None: to find again)
    min_seen: float | None = None
    #: bumped at each change (unique across the window's segments)
    serial: int = 0

    def changed(self, serial: int) -> None:
        self.groups = self.min_seen = None
        self.serial = serial

    def least_seen(self) -> float:
        if self.min_seen is None:
            self.min_seen = min(o.last_seen for o in self.outcomes.values())
        return self.min_seen

    def ordered(self) -> list[Outcome]:
        return sorted(self.outcomes.values(), key=lambda o: (o.time, o.uuid))


@dataclass
class _Block:
    groups: ErrorGroups
    versions: dict[str, str | None]
    #: (segment key, serial) of the segments absorbed
    members: tuple[tuple[int, int], ...]


def _feed(groups: ErrorGroups, outcomes: Iterable[Outcome]) -> None:
    found = list(outcomes)
    groups.observe_batch([o.event() for o in found], found)


class OutcomeWindow:
    """Each task's last outcome by time, and the error groups of a window from them."""

    def __init__(self, segment: int = SEGMENT, block: int = BLOCK) -> None:
        self.lock = threading.Lock()
        self.segment = segment
        self.block = block * segment
        self._of: dict[str, Outcome] = {}
        self._segments: dict[int, _Segment] = {}
        self._blocks: dict[int, _Block] = {}
        self._serial = 0
        #: segments whose groups were made again, and absorbed (figures for tests and bench)
        self.made = 0
        self.absorbed = 0

    def __len__(self) -> int:
        return len(self._of)

    def _key(self, t: float) -> int:
        return int(t // self.segment) * self.segment

    def put(self, outcome: Outcome) -> None:
        """A task's outcome now (replacing its last one)."""
        old = self._of.get(outcome.uuid)
        if old == outcome:
            return
        if old is not None:
            self._remove(old)
        self._of[outcome.uuid] = outcome
        seg = self._segments.get(self._key(outcome.time))
        if seg is None:
            seg = self._segments[self._key(outcome.time)] = _Segment()
        seg.outcomes[outcome.uuid] = outcome
        self._serial += 1
        seg.changed(self._serial)

    def drop(self, uuid: str) -> None:
        """The task has no outcome (any more), or left memory."""
        old = self._of.pop(uuid, None)
        if old is not None:
            self._remove(old)

    def clear(self) -> None:
        self._of.clear()
        self._segments.clear()
        self._blocks.clear()

    def _remove(self, old: Outcome) -> None:
        key = self._key(old.time)
        seg = self._segments[key]
        del seg.outcomes[old.uuid]
        self._serial += 1
        seg.changed(self._serial)
        if not seg.outcomes:
            del self._segments[key]

    def _made(self, seg: _Segment, versions: dict[str, str | None]) -> ErrorGroups:
        if seg.groups is None or seg.versions != versions:
            groups = ErrorGroups(bounded=False)  # absorbed exactly whatever its counts
            groups.observe_batch(worker_events(versions, 0.0))
            _feed(groups, seg.ordered())
            seg.groups, seg.versions = groups, versions
            self.made += 1
        return seg.groups

    def _block_made(self, key: int, members: list[tuple[int, _Segment]],
                    versions: dict[str, str | None]) -> ErrorGroups | None:
        stamp = tuple((k, seg.serial) for k, seg in members)
        block = self._blocks.get(key)
        if block is None or block.members != stamp or block.versions != versions:
            groups = ErrorGroups(bounded=False)
            groups.observe_batch(worker_events(versions, 0.0))
            for _k, seg in members:
                if not groups.absorb(self._made(seg, versions)):
                    return None
            block = self._blocks[key] = _Block(groups, versions, stamp)
        return block.groups

    def groups(self, since: float, versions: Mapping[str, str | None]) -> ErrorGroups | None:
        """The groups of the outcomes at or after ``since`` of tasks active since then, the
        workers' versions (``{hostname: sw_ver}``) fed first; None where absorbing the
        segments could differ from feeding them (rebuild then)."""
        known = dict(versions)
        keys = sorted(k for k in self._segments if k + self.segment > since)
        # (block key, [(segment key, segment)], every one whole), in time order
        plan: list[tuple[int, list[tuple[int, _Segment]], bool]] = []
        first: float | None = None
        for key in keys:
            seg = self._segments[key]
            whole = key >= since and seg.least_seen() >= since
            bkey = key // self.block * self.block
            if not plan or plan[-1][0] != bkey:
                plan.append((bkey, [], True))
            plan[-1][1].append((key, seg))
            if not whole:
                plan[-1] = (bkey, plan[-1][1], False)
            if first is None:
                times = [o.time for o in seg.outcomes.values()
                         if o.time >= since and o.last_seen >= since]
                first = min(times) if times else None
        present = {k // self.block * self.block for k in self._segments}
        for stale in self._blocks.keys() - present:
            del self._blocks[stale]
        result = ErrorGroups()
        result.observe_batch(worker_events(known, first if first is not None else 0.0))
        for n, (bkey, members, all_whole) in enumerate(plan):
            if all_whole and bkey >= since and n < len(plan) - 1:
                found = self._block_made(bkey, members, known)
                if found is not None:
                    if not result.absorb(found):
                        return None
                    self.absorbed += 1
                    continue
            for key, seg in members:
                if key >= since and seg.least_seen() >= since:
                    if not result.absorb(self._made(seg, known)):
                        return None
                    self.absorbed += 1
                else:
                    _feed(result, (o for o in seg.ordered()
                                   if o.time >= since and o.last_seen >= since))
        return result
