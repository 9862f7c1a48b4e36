"""What the debugging endpoints read, blocking (run in a thread): with a history store
(``--store``, which serve records into) the store's events of the window replayed into an
index and the error groups, exactly as ``lazycelery errors`` / ``timeline`` / ``export`` /
``task tree`` read them, with memory's records the writer has not flushed yet (each task
once: memory's record where the store's is missing or older, its outcome counted where the
store's differs); without one, the live index's records (docs/serve.md says what memory
cannot tell), and for the error groups of ``/api/v1/errors`` and its trend the live groups
(``service.live_errors``), equal to that rebuild, when they can answer. At most
``MAX_LOADS`` replays run at once: each is CPU-bound and the ingest thread shares the
cores."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from lazycelery.analysis import ErrorGroups
from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord
from lazycelery.serve.errors import ApiError
from lazycelery.serve.service import Service

__all__ = ["Loaded", "links_doc", "load", "tree_doc"]

#: store replays running at once (more wait their turn)
MAX_LOADS: Final = 2
#: records copied per hold of the index lock (about a millisecond)
COPY_SLICE: Final = 5_000

_loads = threading.BoundedSemaphore(MAX_LOADS)


@dataclass
class Loaded:
    """The window's tasks (most recently active first) and error groups, and where they came
    from."""

    records: list[TaskRecord]
    groups: ErrorGroups
    since: float
    until: float
    sources: dict[str, Any] = field(default_factory=dict)
    by_id: dict[str, TaskRecord] = field(default_factory=dict)

    def get(self, uuid: str) -> TaskRecord | None:
        if not self.by_id and self.records:
            self.by_id = {r.uuid: r for r in self.records}
        return self.by_id.get(uuid)


def _store_error(exc: Exception) -> ApiError:
    return ApiError(503, f"history store: {exc}")


def _from_store(service: Service, since: float, until: float, with_groups: bool) -> Loaded:
    from lazycelery.analysis.sources import replay_store
    from lazycelery.store import StoreError, open_store
    from lazycelery.store.url import mask_store_url

    url = service.store_url
    assert url is not None
    index = TaskIndex(max_tasks=service.index.max_tasks)
    groups = ErrorGroups()
    with _loads:
        try:
            store = open_store(url, create=False, writer=False)
        except StoreError as exc:
            raise _store_error(exc) from None
        try:
            gaps = replay_store(store, since, until, groups if with_groups else None, index)
        except StoreError as exc:
            raise _store_error(exc) from None
        finally:
            store.close()
    history = {"store": mask_store_url(url), "since": since, "until": until, "gaps": gaps}
    sources: dict[str, Any] = {"history": history}
    newer = _newer_in_memory(service.index, index, since)
    if newer:  # not flushed to the store yet: memory's records, their outcomes counted
        if with_groups:
            from lazycelery.analysis.sources import events_from_records, outcome_of

            fresh = [r for r in newer if outcome_of(r) != _stored_outcome(index, r.uuid)]
            groups.observe_batch(*events_from_records(fresh, {}, since))
        sources["memory"] = {"unflushed": len(newer)}
    return Loaded(_merged(index.snapshot(), newer), groups, since, until, sources)


def _stored_outcome(index: TaskIndex, uuid: str) -> tuple[str, float] | None:
    from lazycelery.analysis.sources import outcome_of

    rec = index.get(uuid)
    return outcome_of(rec) if rec is not None else None


def _newer_in_memory(live: TaskIndex, stored: TaskIndex, since: float) -> list[TaskRecord]:
    """Copies of memory's records of the window that the store's window lacks or has in an
    older state (the writer flushes about once a second): the newest first."""
    from lazycelery.analysis.sources import outcome_of

    window = [r for r in live.records() if r.last_seen >= since]
    newer: list[TaskRecord] = []
    for start in range(0, len(window), COPY_SLICE):
        with live.lock:
            for rec in window[start:start + COPY_SLICE]:
                old = stored.get(rec.uuid)
                if old is None or old.state != rec.state or \
                        outcome_of(old) != outcome_of(rec):
                    newer.append(msgspec.structs.replace(rec))
    newer.sort(key=lambda r: r.last_seen, reverse=True)
    return newer


def _merged(stored: list[TaskRecord], newer: list[TaskRecord]) -> list[TaskRecord]:
    """The store's records with memory's newer ones in their place, memory's alone first."""
    if not newer:
        return stored
    by_id = {r.uuid: r for r in newer}
    known = {r.uuid for r in stored}
    return [*(r for r in newer if r.uuid not in known),
            *(by_id.get(r.uuid, r) for r in stored)]


def _from_memory(service: Service, since: float, until: float, with_groups: bool) -> Loaded:
    from lazycelery.analysis.sources import events_from_records

    live = service.index
    # the window's records referenced, then copied under the lock (the ingest thread
    # changes records in place) a slice at a time: ingest never waits long for it
    window = [r for r in live.records() if r.last_seen >= since]
    records: list[TaskRecord] = []
    for start in range(0, len(window), COPY_SLICE):
        with live.lock:
            records.extend(msgspec.structs.replace(r)
                           for r in window[start:start + COPY_SLICE])
    with live.lock:
        workers = {h: msgspec.structs.replace(w) for h, w in live.workers.items()}
    records.sort(key=lambda r: r.last_seen, reverse=True)  # newest first, as the store's
    groups = ErrorGroups()
    if with_groups:
        events, recs = events_from_records(records, workers, since)
        groups.observe_batch(events, recs)
    memory = {"tasks": len(records), "since": since, "until": until}
    return Loaded(records, groups, since, until, {"memory": memory})


def _from_live(service: Service, since: float, until: float) -> Loaded | None:
    """The window's groups from the live ones (no records), or None (rebuild)."""
    live = service.live_errors
    found = live.groups(since) if live is not None else None
    if found is None:
        return None
    groups, tasks = found
    return Loaded([], groups, since, until,
                  {"memory": {"tasks": tasks, "since": since, "until": until}})


def load(service: Service, since: float, *, with_groups: bool,
         live: bool = False) -> Loaded:
    """The window ``[since, now)``: the store's (with memory's records not flushed yet) when
    serve has one, else memory's. ``live``: only the groups are read, from the live ones
    when they can answer (memory only)."""
    until = time.time()
    if service.store_url is not None:
        return _from_store(service, since, until, with_groups)
    if live and with_groups:
        found = _from_live(service, since, until)
        if found is not None:
            return found
    return _from_memory(service, since, until, with_groups)


# ---------------------------------------------------------------------- workflow tree


def _stored_linked(url: str, seeds: list[str], siblings: bool
                   ) -> tuple[dict[str, TaskRecord], str | None]:
    """The store's tasks linked to ``seeds`` (``lazycelery task tree``'s read)."""
    from lazycelery.store.workflow import read_workflow

    with _loads:
        return read_workflow(url, seeds, siblings=siblings)


def _memory_seeds(service: Service, task_id: str) -> list[str]:
    """``task_id``, the tasks memory links to it (parents, children) and their roots: where
    the store's search starts, so a workflow half in memory, half in the store is found whole
    (read under the index's lock: at most ``MAX_NODES`` lookups)."""
    from lazycelery.core.workflow import workflow_ids

    index = service.index

    def parent(uuid: str) -> str | None:
        rec = index.get(uuid)
        return rec.parent_id if rec is not None and rec.parent_id else None

    with index.lock:
        ids = workflow_ids(task_id, parent, index.children_of, lambda _u: None, lambda _g: ())
        roots = [r.root_id for u in ids if (r := index.get(u)) is not None and r.root_id]
    return list(dict.fromkeys([*ids, *roots]))


def tree_doc(service: Service, task_id: str) -> dict[str, Any] | None:
    """``lazycelery task tree ID --json``'s document (None: the task is unknown): memory's
    records over the store's linked to the task, the result backend's links when it has one."""
    from lazycelery.core.workflow import tree_json
    from lazycelery.core.workflow_fetch import backend_fetch, gather

    fetch, no_backend = backend_fetch(service.app)
    records: dict[str, TaskRecord] = {}
    store_note = None
    if service.store_url is not None:
        records, store_note = _stored_linked(service.store_url,
                                             _memory_seeds(service, task_id), fetch is not None)
    records.update((r.uuid, r) for r in service.index.records())  # memory's are the live ones
    children: dict[str, list[str]] = {}
    for rec in records.values():
        if rec.parent_id:
            children.setdefault(rec.parent_id, []).append(rec.uuid)
    wf = gather(task_id, get=records.get, children_of=lambda u: children.get(u, ()),
                records=lambda: records.values(), fetch=fetch, no_backend=no_backend)
    if len(wf.ids) == 1 and not any(n.known for _d, n in wf.root.walk()):
        return None
    notes = [n for n in (wf.note, store_note) if n]
    return {"task": task_id, "tree": tree_json(wf.root), "notes": notes}


def links_doc(service: Service, task_id: str) -> dict[str, Any] | None:
    """The result backend's links of ``task_id``'s workflow (what the dashboard's ``W`` reads
    locally): serve's index and result backend gathered as the dashboard gathers them, each
    meta trimmed to its links (``link_meta``: never args, kwargs or a result). None: neither
    the index nor the backend knows the task."""
    from lazycelery.core.workflow import link_meta
    from lazycelery.core.workflow_fetch import backend_fetch, gather

    fetch, no_backend = backend_fetch(service.app)
    index = service.index
    if fetch is None:
        if index.get(task_id) is None:
            return None
        return {"task": task_id, "links": {}, "count": 0, "note": no_backend}
    metas: dict[str, Mapping[str, Any]] = {}

    def read(ids: Sequence[str]) -> Mapping[str, Mapping[str, Any]]:
        got = fetch(ids)
        metas.update(got)
        return got

    wf = gather(task_id, get=index.get, children_of=index.children_of, records=index.records,
                fetch=read)
    if index.get(task_id) is None and task_id not in metas and wf.note is None:
        return None
    return {"task": task_id, "links": {uuid: link_meta(meta) for uuid, meta in metas.items()},
            "count": len(wf.ids), "note": wf.note}
