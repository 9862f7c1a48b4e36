"""Where tasks are and what to address: the worker holding each task (from the event index, or a
read-only ``inspect`` broadcast when there is no index), worker names resolved by ping, task id
prefixes resolved to full ids. Control commands are then sent with ``destination=[...]``, never
broadcast."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from lazycelery.core.action_result import ActionError
from lazycelery.core.model import READY_STATES
from lazycelery.core.reconcile import NoResultBackend, find_task_ids
from lazycelery.errors import UsageError
from lazycelery.urls import error_line

if TYPE_CHECKING:
    from celery import Celery

    from lazycelery.core.index import TaskIndex

__all__ = ["AmbiguousTaskId", "Placement", "UnknownTaskId", "is_id_prefix", "locate_by_inspect",
           "locate_in_index", "online_workers", "resolve_task_ids", "resolve_workers"]


@dataclass(frozen=True)
class Placement:
    """Where tasks are: the worker holding each (when known) and the workers to address
    otherwise. ``held_as`` is inspect's word ('active', 'reserved', 'scheduled') or the
    index state."""

    holders: Mapping[str, str]
    held_as: Mapping[str, str]
    online: tuple[str, ...]
    source: str

    def destination(self, task_id: str) -> tuple[str, ...]:
        holder = self.holders.get(task_id)
        return (holder,) if holder else self.online


def online_workers(index: TaskIndex, now: float | None = None) -> tuple[str, ...]:
    return tuple(w.hostname for w, status in index.worker_rows(now) if status == "online")


def locate_in_index(index: TaskIndex, task_ids: Sequence[str]) -> Placement:
    """Placement from the event index: a task's worker if it is unfinished there and online."""
    online = online_workers(index)
    alive = set(online)
    holders: dict[str, str] = {}
    held_as: dict[str, str] = {}
    for task_id in task_ids:
        rec = index.get(task_id)
        if rec is None:
            continue
        held_as[task_id] = rec.state
        if rec.state not in READY_STATES and rec.worker in alive:
            holders[task_id] = rec.worker
    return Placement(holders=holders, held_as=held_as, online=online, source="index")


def locate_by_inspect(app: Celery, task_ids: Sequence[str], timeout: float = 1.0) -> Placement:
    """Placement from one read-only ``inspect query_task`` broadcast (discovery only: every
    worker answers, so the repliers are also the online workers)."""
    try:
        replies = app.control.inspect(timeout=timeout).query_task(*task_ids)
    except Exception as exc:
        raise ActionError(f"cannot ask the workers where the tasks are: {error_line(exc)}") from None
    holders: dict[str, str] = {}
    held_as: dict[str, str] = {}
    for host, found in (replies or {}).items():
        for task_id, pair in (found or {}).items():
            if task_id in task_ids and isinstance(pair, (list, tuple)) and pair:
                holders[task_id] = host
                held_as[task_id] = str(pair[0])
    return Placement(holders=holders, held_as=held_as, online=tuple(sorted(replies or {})),
                     source="inspect")


def resolve_workers(app: Celery, names: Sequence[str], timeout: float = 1.0) -> list[str]:
    """Full hostnames for ``names`` (``w1`` matches ``w1@host`` when unique), checked by ping.

    Names with ``@`` are pinged with a destination (fast); short names need a read-only ping
    broadcast to learn the full names. Raises ActionError naming any worker that did not answer.
    """
    if not names:
        raise UsageError("name at least one worker")
    exact = all("@" in n for n in names)
    try:
        replies = app.control.ping(destination=list(names) if exact else None, timeout=timeout)
    except Exception as exc:
        raise ActionError(f"cannot ping the workers: {error_line(exc)}") from None
    online = sorted({host for reply in replies or [] for host in reply})
    resolved: list[str] = []
    for name in names:
        matches = [h for h in online if h == name] or [h for h in online if h.split("@", 1)[0] == name]
        if len(matches) == 1:
            resolved.append(matches[0])
            continue
        known = ", ".join(online) or "none answered"
        if matches:
            raise UsageError(f"worker {name!r} is ambiguous: {', '.join(matches)}")
        raise ActionError(f"worker {name!r} did not answer ping within {timeout:g}s (online: {known})")
    return list(dict.fromkeys(resolved))


# --------------------------------------------------------------------------- task id prefixes

_FULL_UUID: Final = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                               r"[0-9a-fA-F]{12}")
_ID_PREFIX: Final = re.compile(r"[0-9a-fA-F][0-9a-fA-F-]{0,34}")
#: matching ids named when a prefix is ambiguous
_SHOWN_MATCHES: Final = 10


def is_id_prefix(text: str) -> bool:
    """A hex prefix shorter than a uuid, which ``resolve_task_ids`` looks up (a full uuid or a
    custom id is taken as it is)."""
    text = text.strip()
    return not _FULL_UUID.fullmatch(text) and bool(_ID_PREFIX.fullmatch(text))


class UnknownTaskId(UsageError):
    """A task id prefix no known task starts with."""


class AmbiguousTaskId(UsageError):
    """A task id prefix several tasks start with: ``matches`` (at most ``_SHOWN_MATCHES``
    + 1, sorted)."""

    def __init__(self, message: str, matches: Sequence[str]) -> None:
        super().__init__(message)
        self.matches = tuple(matches)


def resolve_task_ids(ids: Sequence[str], app: Celery, *, index: TaskIndex | None = None,
                     backend_too: bool = False, index_label: str = "the dashboard's index"
                     ) -> list[tuple[str, str]]:
    """(given, full id) for each id: a full uuid (or a custom, non-hex id) as it is; a shorter
    hex prefix (the dashboard shows 8 characters) resolved to the one task id it starts.

    Prefixes are looked up in the index when there is one, else in the result backend's keys
    (Redis: ``SCAN MATCH celery-task-meta-<prefix>*``); ``backend_too`` (serve): in the
    backend also when the index has none. ``UnknownTaskId`` when a prefix matches none,
    ``AmbiguousTaskId`` when several (naming them), UsageError when it cannot be looked up (a
    full id is needed then)."""
    out: list[tuple[str, str]] = []
    for given in ids:
        text = given.strip()
        if not is_id_prefix(text):
            out.append((given, text))
            continue
        prefix = text.lower()
        matches: list[str] = []
        where = index_label
        if index is not None:
            with index.lock:
                matches = sorted(r.uuid for r in index.iter_newest() if r.uuid.startswith(prefix))
        if index is None or (backend_too and not matches):
            try:
                matches = find_task_ids(app, prefix, _SHOWN_MATCHES)
                where = "the result backend" if index is None else f"{where} or the result backend"
            except NoResultBackend as exc:
                if index is None:
                    raise UsageError(f"{text!r} is not a full task id and it cannot be looked "
                                     f"up ({exc}): give the full id") from None
            except Exception as exc:
                raise ActionError(f"cannot look up task id prefix {text!r}: "
                                  f"{error_line(exc)}") from None
        if len(matches) == 1:
            out.append((given, matches[0]))
            continue
        if not matches:
            raise UnknownTaskId(f"no task id starts with {text!r} in {where} (a task still in "
                                "a queue has no result yet): give the full id")
        more = " and more" if len(matches) > _SHOWN_MATCHES else ""
        raise AmbiguousTaskId(f"task id prefix {text!r} is ambiguous: "
                              f"{', '.join(matches[:_SHOWN_MATCHES])}{more}",
                              matches[:_SHOWN_MATCHES])
    return out
