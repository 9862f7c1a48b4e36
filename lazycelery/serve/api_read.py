"""Flower's read endpoints: /api/tasks, /api/task/types, /api/task/info/<id>,
/api/workers, /api/queues/length, /api/task/result/<id>. With a history store, a task no
longer in memory is answered from it (info, result; /api/tasks with ``store=true``)."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from lazycelery.core.model import TaskRecord, worker_status
from lazycelery.serve import params
from lazycelery.serve.auth import Caller
from lazycelery.serve.errors import ApiError
from lazycelery.serve.http import json_response
from lazycelery.serve.service import Service
from lazycelery.serve.shapes import task_dict
from lazycelery.serve.tasks import TaskQuery, page, parse_query
from lazycelery.serve.tasks_store import page_with_store, stored_result

__all__ = ["ReadApi"]

#: the longest a request waits for a result (Flower waits as long as asked)
MAX_WAIT = 60.0


class ReadApi:
    def __init__(self, service: Service) -> None:
        self.service = service

    def _copies(self, records: list[TaskRecord]) -> list[tuple[TaskRecord, list[str]]]:
        """Copies of ``records`` and their children, taken under the lock (the ingest thread
        changes records in place)."""
        index = self.service.index
        with index.lock:
            return [(msgspec.structs.replace(r), index.children_of(r.uuid)) for r in records]

    async def tasks(self, request: Request, caller: Caller) -> Response:
        query = parse_query(request.query_params)
        if params.flag(request.query_params, "store"):  # lazycelery's own: memory, then store
            found = await run_in_threadpool(self._with_store, query)
        else:
            found = await run_in_threadpool(page, self.service.index, query)
        return json_response({rec.uuid: task_dict(rec, kids, worker_last=True)
                              for rec, kids in self._copies(found)})

    def _with_store(self, query: TaskQuery) -> list[TaskRecord]:
        from lazycelery.store import open_store
        from lazycelery.store.errors import StoreError

        url = self.service.store_url
        if url is None:
            raise ApiError(400, "store: this serve has no history store (--store, or the "
                           "environment's store)",
                           parameter="store")
        try:
            return page_with_store(self.service.index, query,
                                   lambda: open_store(url, create=False, writer=False))
        except StoreError as exc:
            raise ApiError(503, f"the history store is unavailable: {exc}") from None

    async def _stored(self, task_id: str) -> TaskRecord | None:
        """The task from the history store when memory no longer has it (None: unknown)."""
        lookup = self.service.stored_task
        if lookup is None or task_id in self.service.index:
            return None
        return await run_in_threadpool(lookup, task_id)

    async def task_types(self, request: Request, caller: Caller) -> Response:
        names = self.service.index.counts()["by_name"]
        return json_response({"task-types": sorted(n for n in names if n)})

    async def task_info(self, request: Request, caller: Caller) -> Response:
        task_id = request.path_params["task_id"]
        index = self.service.index
        with index.lock:
            rec = index.get(task_id)
        if rec is None:
            stored = await self._stored(task_id)
            if stored is None:
                raise ApiError(404, f"Unknown task '{task_id[:200]}'")
            return json_response(task_dict(stored))  # from the history store
        (copy, kids), = self._copies([rec])
        return json_response(task_dict(copy, kids))

    async def workers(self, request: Request, caller: Caller) -> Response:
        query = request.query_params
        refresh = params.flag(query, "refresh")
        status = params.flag(query, "status")
        name = params.text(query, "workername") or None
        info = self.service.workers
        assert info is not None
        if status:
            index = self.service.index
            now = index.clock()
            with index.lock:
                alive = {w.hostname: worker_status(w, now) == "online"
                         for w in index.workers.values()}
            return json_response(alive)
        if name is not None and not info.known(name):
            raise ApiError(404, f"Unknown worker '{name[:200]}'")
        if refresh or name is not None:
            problem = await run_in_threadpool(info.ask, [name] if name else None,
                                              tasks=name is not None)
            if problem:
                raise ApiError(503, f"Failed to update workers: {problem}")
        else:
            unasked = info.unasked()  # came online since the last answer
            if unasked:
                await run_in_threadpool(info.ask, unasked)
        cache = info.copy()
        if name is not None:
            if name not in cache:
                raise ApiError(404, f"Unknown worker '{name[:200]}' (it did not answer)")
            return json_response({name: cache[name]})
        return json_response(cache)

    def consumed_queues(self) -> list[str]:
        """The queues the workers consume (their active_queues)."""
        names: set[str] = set()
        assert self.service.workers is not None
        for info in self.service.workers.copy().values():
            for queue in info.get("active_queues") or ():
                if isinstance(queue, dict) and isinstance(queue.get("name"), str):
                    names.add(queue["name"])
        return sorted(names)

    async def queue_lengths(self, request: Request, caller: Caller) -> Response:
        info = self.service.workers
        assert info is not None
        unasked = info.unasked()
        if unasked:
            await run_in_threadpool(info.ask, unasked)
        consumed = self.consumed_queues()
        names = consumed or sorted(self.service.known_queues)
        read = self.service.read_queues
        if read is None:
            raise ApiError(404, "queue lengths are not supported for this broker")
        # only consumed queues join the queue reader's watch (and so /metrics, for good): the
        # fallback names are listed here as Flower lists them, but a default queue nothing
        # consumes or declared is not a queue of the broker (its messages: 0 below)
        snapshot = await run_in_threadpool(read, consumed)
        if snapshot.error and not snapshot.queues:
            raise ApiError(503, f"queue lengths unavailable: {snapshot.error}")
        out: list[dict[str, Any]] = []
        for name in names:
            stats = snapshot.get(name)
            entry: dict[str, Any] = {"name": name, "messages": 0}
            if stats is not None and stats.ready is not None:
                entry["messages"] = stats.ready
                if stats.sources.get("ready", "").startswith(("amqp", "rabbitmq")):
                    # RabbitMQ's "messages" (what Flower shows there) counts unacked ones too
                    entry["messages_ready"] = stats.ready
                    entry["messages"] = stats.ready + (stats.reserved or 0)
                if stats.by_priority:  # Redis: every priority sub-list counted
                    entry["priorities"] = {str(k): v for k, v in sorted(stats.by_priority.items())}
                if stats.reserved is not None:
                    entry["messages_unacknowledged"] = stats.reserved
                if stats.consumers is not None:
                    entry["consumers"] = stats.consumers
            out.append(entry)
        return json_response({"active_queues": out})

    async def task_result(self, request: Request, caller: Caller) -> Response:
        task_id = request.path_params["task_id"]
        timeout = params.number(request.query_params, "timeout")
        app = self.service.app

        def read() -> dict[str, Any] | None:
            from celery.backends.base import DisabledBackend
            from celery.exceptions import TimeoutError as CeleryTimeout

            result = app.AsyncResult(task_id)
            if isinstance(result.backend, DisabledBackend):
                return None
            out: dict[str, Any] = {"task-id": task_id, "state": result.state}
            if timeout:
                try:
                    result.get(timeout=min(timeout, MAX_WAIT), propagate=False)
                except CeleryTimeout:
                    return out
                out["state"] = result.state
                out.update(result_fields(result))
            elif result.ready():
                out.update(result_fields(result))
            return out

        out = await run_in_threadpool(read)
        if out is None or out["state"] == "PENDING":
            # the backend does not know it (or there is none): the history store may, for a
            # task no longer in memory (Flower answers PENDING, or 503 without a backend)
            stored = await self._stored(task_id)
            if stored is not None:
                return json_response(stored_result(stored))
        if out is None:
            raise ApiError(503, "no result backend is configured")
        return json_response(out)


def result_fields(result: Any) -> dict[str, Any]:
    """Flower's ``result`` (and ``traceback`` on failure): the value when JSON can carry it,
    else its repr."""
    value = result.result
    try:
        msgspec.json.encode(value)
    except (TypeError, msgspec.EncodeError, OverflowError):
        value = repr(value)
    out: dict[str, Any] = {"result": value}
    if result.state == "FAILURE":
        out["traceback"] = result.traceback
    return out
