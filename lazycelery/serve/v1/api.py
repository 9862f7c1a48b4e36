"""The read endpoints of ``/api/v1``: tasks (filter language, memory then store, cursor),
one task with its history, workers, queues with priorities, the audit log, and the snapshot a
remote viewer starts from. Handlers copy what they answer under the index lock (the ingest
thread is the one writer) and run anything slow (the store, the audit file) in a thread."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from lazycelery.core import audit
from lazycelery.core.model import TaskRecord, worker_status
from lazycelery.serve import params
from lazycelery.serve.auth import Caller
from lazycelery.serve.errors import ApiError
from lazycelery.serve.http import json_response
from lazycelery.serve.service import Service
from lazycelery.serve.v1.hub import StreamHub
from lazycelery.serve.v1.query import query_of, v1_int
from lazycelery.serve.v1.tasks import (
    MAX_LIMIT,
    Cursor,
    compile_q,
    limit_of,
    memory_page,
    parse_cursor,
    record_dict,
    record_json,
    scan_page,
    store_page,
)

__all__ = ["V1Api"]

#: audit entries returned at most
MAX_AUDIT = 10_000
#: tasks in a snapshot at most (a remote viewer asks for its own number)
MAX_SNAPSHOT = 100_000


class V1Api:
    def __init__(self, service: Service, hub: StreamHub) -> None:
        self.service = service
        self.hub = hub

    # ------------------------------------------------------------------ helpers

    def _encoded(self, records: list[TaskRecord], live: bool) -> list[msgspec.Raw]:
        """Records as encoded JSON (``record_json``); live ones copied with their children
        under the lock, encoded off it."""
        index = self.service.index
        if not live:
            return [record_json(r, []) for r in records]
        with index.lock:
            pairs = [(msgspec.structs.replace(r), index.children_of(r.uuid)) for r in records]
        return [record_json(r, kids) for r, kids in pairs]

    def _open_store(self) -> Any:
        from lazycelery.store import open_store

        url = self.service.store_url
        assert url is not None
        return open_store(url, create=False, writer=False)

    # ------------------------------------------------------------------ tasks

    async def tasks(self, request: Request, caller: Caller) -> Response:
        query = query_of(request)
        pred = compile_q(query)
        limit = limit_of(query)
        after = parse_cursor(params.text(query, "cursor"))
        index = self.service.index
        has_store = self.service.store_url is not None
        out: list[msgspec.Raw] = []
        next_: Cursor | None = None
        from_store = 0
        if after is None or after.source == "memory":
            # newest first under the lock (O(limit) for the default page) on the loop itself;
            # a page deeper than the scan budget is worked out on a copy, in a thread
            page = scan_page(index, pred, after, limit)
            found, more = page if page is not None else await run_in_threadpool(
                memory_page, index, pred, after, limit)
            out = self._encoded(found, live=True)
            if more:
                next_ = Cursor("memory", found[-1].last_seen, found[-1].uuid)
            elif has_store and len(found) == limit:
                next_ = Cursor("store", 0.0, -1)  # memory done: the store from its newest
            after = None
        if next_ is None and has_store and len(out) < limit:
            start = after if after is not None and after.key != -1 else None
            stored, next_ = await run_in_threadpool(store_page, self._open_store, index, pred,
                                                    start, limit - len(out))
            from_store = len(stored)
            out.extend(self._encoded(stored, live=False))
        return json_response({"tasks": out, "count": len(out),
                              "next": next_.encode() if next_ is not None else None,
                              "from_store": from_store, "limit": limit})

    async def task(self, request: Request, caller: Caller) -> Response:
        task_id = request.path_params["task_id"]
        index = self.service.index
        with index.lock:
            rec = index.get(task_id)
            live = (msgspec.structs.replace(rec), index.children_of(task_id)) if rec else None
        stored = None
        if self.service.store_url is not None:
            stored = await run_in_threadpool(self._stored_detail, task_id)
        if live is None and stored is None:
            raise ApiError(404, f"unknown task {task_id[:200]!r}", parameter="task_id")
        if live is not None:
            record, kids = live
            body: dict[str, Any] = {"task": record_dict(record, kids), "source": "memory"}
        else:
            assert stored is not None
            record = stored.record
            body = {"task": record_dict(record, []), "source": "store",
                    "backfilled": stored.backfilled}
        body["history"] = [{"state": s, "time": t} for s, t in record.history()]
        body["transitions"] = [] if stored is None else [
            {"type": t.type, "time": t.time, "hostname": t.hostname, "retries": t.retries,
             "backfilled": t.backfilled} for t in stored.transitions]
        return json_response(body)

    def _stored_detail(self, task_id: str) -> Any:
        from lazycelery.store import query as stored
        from lazycelery.store.errors import StoreError

        try:
            store = self._open_store()
        except StoreError:
            return None
        try:
            return stored.get(store, task_id)
        except StoreError:
            return None
        finally:
            store.close()

    # ------------------------------------------------------------------ cluster

    def worker_dicts(self) -> list[dict[str, Any]]:
        index = self.service.index
        now = index.clock()
        with index.lock:
            rows = [(msgspec.structs.replace(w), worker_status(w, now))
                    for _, w in sorted(index.workers.items())]
        out = []
        for worker, status in rows:
            entry: dict[str, Any] = msgspec.to_builtins(worker)
            entry["status"] = status
            out.append(entry)
        return out

    async def workers(self, request: Request, caller: Caller) -> Response:
        return json_response({"workers": self.worker_dicts()})

    async def worker(self, request: Request, caller: Caller) -> Response:
        name = request.path_params["hostname"]
        for entry in self.worker_dicts():
            if entry["hostname"] == name:
                return json_response(entry)
        raise ApiError(404, f"unknown worker {name[:200]!r}", parameter="hostname")

    def queue_dict(self) -> dict[str, Any] | None:
        snapshot = self.service.queues()
        if snapshot is None:
            return None
        out: dict[str, Any] = msgspec.to_builtins(snapshot)
        for queue in out["queues"]:
            prio = queue.get("by_priority")
            if prio:
                queue["by_priority"] = {str(k): v for k, v in sorted(prio.items(),
                                                                     key=lambda kv: int(kv[0]))}
        return out

    async def queues(self, request: Request, caller: Caller) -> Response:
        body = self.queue_dict()
        if body is None:
            raise ApiError(503, "queue figures are not available (not read yet, or this "
                                "broker's queues cannot be read)")
        return json_response(body)

    async def audit(self, request: Request, caller: Caller) -> Response:
        if not caller.may_act:
            raise ApiError(403, f"role {caller.role} may not read the audit log "
                                "(operator needed)")
        limit = v1_int(query_of(request), "limit", 100, minimum=1, cap=MAX_AUDIT)
        path = self.service.audit_path
        entries = await run_in_threadpool(audit.read, path, limit)
        entries.reverse()  # newest first
        return json_response({"entries": entries, "count": len(entries)})

    # ------------------------------------------------------------------ remote viewers

    async def snapshot(self, request: Request, caller: Caller) -> Response:
        """What a remote viewer starts from: the stream position (resume the stream there),
        then the newest tasks, the workers and the queues. The position is taken first: an
        event applied meanwhile is both in the records and replayed by the stream."""
        limit = v1_int(query_of(request), "limit", MAX_LIMIT, minimum=0, cap=MAX_SNAPSHOT)
        self.hub.keep()  # the viewer opens the stream next: keep what happens meanwhile
        position = self.hub.event_id(self.hub.last)
        newest = self.service.index.newest(limit)
        return json_response({
            "last_event_id": position, "time": time.time(),
            "tasks": self._encoded(newest, live=True), "workers": self.worker_dicts(),
            "queues": self.queue_dict(), "environment": self.service.environment,
            "read_only": self.service.read_only, "role": caller.role,
        })
