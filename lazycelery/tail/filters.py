"""What `tail` prints: the --type/--state/--name/--worker/--task-id/--filter selection of events."""

from __future__ import annotations

import argparse
import difflib
import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec

from lazycelery.core.model import STATES, TaskRecord, WorkerRecord
from lazycelery.core.query import Predicate, compile_filter
from lazycelery.errors import UsageError
from lazycelery.tail.events import HEARTBEAT, KNOWN_TYPES, TailEvent

__all__ = ["EventFilter", "filter_from_args", "type_warnings"]


def _glob_regex(patterns: Sequence[str], ignore_case: bool = False) -> re.Pattern[str] | None:
    if not patterns:
        return None
    flags = re.IGNORECASE if ignore_case else 0
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns), flags)


@dataclass(frozen=True)
class EventFilter:
    """What ``--type/--state/--name/--worker/--task-id/--heartbeats`` select.

    Different options are AND-ed; the values of one repeated option are OR-ed. ``--state``,
    ``--name`` and ``--task-id`` select task events only (worker events have none of them).
    worker-heartbeat is hidden unless ``heartbeats`` is set or a ``--type`` pattern names it.
    """

    types: tuple[str, ...] = ()
    states: frozenset[str] = frozenset()
    names: tuple[str, ...] = ()
    workers: tuple[str, ...] = ()
    task_ids: tuple[str, ...] = ()
    heartbeats: bool = False
    #: the dashboard's filter language (``--filter``), evaluated on the task's record
    query: Predicate | None = None
    _type_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _name_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _worker_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _type_cache: dict[str, bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_type_re", _glob_regex(self.types, ignore_case=True))
        object.__setattr__(self, "_name_re", _glob_regex(self.names))
        object.__setattr__(self, "_worker_re", _glob_regex(self.workers))
        object.__setattr__(self, "_type_cache", {})
        object.__setattr__(self, "task_ids", tuple(t.lower() for t in self.task_ids))
        object.__setattr__(self, "states", frozenset(s.upper() for s in self.states))

    @property
    def shows_heartbeats(self) -> bool:
        return self.heartbeats or any("heartbeat" in t.lower() for t in self.types)

    def type_matches(self, kind: str) -> bool:
        """The type test alone (cached: there are few distinct types), run before enriching."""
        hit = self._type_cache.get(kind)
        if hit is None:
            if kind == HEARTBEAT and not self.shows_heartbeats:
                hit = False
            else:
                hit = self._type_re is None or self._type_re.match(kind) is not None
            if len(self._type_cache) < 1024:
                self._type_cache[kind] = hit
        return hit

    def matches(self, item: TailEvent) -> bool:
        if not self.type_matches(item.type):
            return False
        if self.states and (item.state is None or item.state not in self.states):
            return False
        if self._name_re is not None and (item.name is None
                                          or self._name_re.match(item.name) is None):
            return False
        if self.task_ids and (item.uuid is None
                              or not item.uuid.lower().startswith(self.task_ids)):
            return False
        if self._worker_re is not None:
            hosts = (item.worker, item.hostname)
            if not any(h is not None and self._worker_re.match(h) for h in hosts):
                return False
        return True


def _split_states(values: Sequence[str] | None) -> frozenset[str]:
    states: set[str] = set()
    for value in values or ():
        for part in value.split(","):
            part = part.strip().upper()
            if not part:
                continue
            if part not in STATES:
                raise UsageError(f"unknown state {part!r} for --state; "
                                 f"choose from {', '.join(STATES)}")
            states.add(part)
    return frozenset(states)


def type_warnings(patterns: Sequence[str]) -> list[str]:
    """Warnings for ``--type`` values that are no Celery event type (custom ones may exist)."""
    out = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?[") or pattern.lower() in KNOWN_TYPES:
            continue
        close = difflib.get_close_matches(pattern.lower(), KNOWN_TYPES, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        out.append(f"--type {pattern}: Celery sends no such event{hint}; "
                   "showing it if a custom event of that type arrives")
    return out


def filter_from_args(args: argparse.Namespace) -> EventFilter:
    text = getattr(args, "query", None)
    return EventFilter(
        query=compile_filter(text) if text else None,
        types=tuple(getattr(args, "type", None) or ()),
        states=_split_states(getattr(args, "state", None)),
        names=tuple(getattr(args, "name", None) or ()),
        workers=tuple(getattr(args, "worker", None) or ()),
        task_ids=tuple(getattr(args, "task_id", None) or ()),
        heartbeats=bool(getattr(args, "heartbeats", False)),
    )


def _query_matches(query: Predicate, record: TaskRecord | WorkerRecord | None,
                   item: TailEvent) -> bool:
    """``--filter`` on the task as it was right after this event (like ``--state``)."""
    if not isinstance(record, TaskRecord):
        return False
    if item.state is not None and item.state != record.state:
        record = msgspec.structs.replace(record, state=item.state)
    return query(record)
