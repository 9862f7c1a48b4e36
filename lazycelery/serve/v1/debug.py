"""The debugging endpoints of ``/api/v1`` (issue 13), read-only (viewer): error groups with
their clusters and root-cause hints, a group's tasks and trend, the timeline, a task's whole
workflow, and an export of the filtered tasks. Each answers the same JSON document as the
matching CLI ``--json`` (``lazycelery errors``, ``errors trend``, ``timeline``, ``task tree``,
``export``), built by the same headless code (``lazycelery.analysis``, ``core.timeline``,
``core.workflow``, ``core.export``) over the data ``debug_data`` loads in a thread."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from lazycelery.core.model import TaskRecord
from lazycelery.serve import params
from lazycelery.serve.auth import Caller, Guard
from lazycelery.serve.errors import ApiError, bad_param
from lazycelery.serve.http import json_response, protect
from lazycelery.serve.service import Service
from lazycelery.serve.v1.debug_data import Loaded, links_doc, load, tree_doc
from lazycelery.serve.v1.query import query_of, v1_int
from lazycelery.serve.v1.tasks import Cursor, compile_q, limit_of, parse_cursor, record_dict

__all__ = ["debug_routes"]

#: an export's rows at most (``limit``; larger is capped), and by default
MAX_EXPORT: Final = 100_000
DEFAULT_EXPORT: Final = 10_000
MEDIA: Final = {"csv": "text/csv; charset=utf-8", "json": "application/json",
                "ndjson": "application/x-ndjson"}
BUCKETS: Final = ("minute", "hour", "day")


def _choice(query: dict[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = params.text(query, name)
    if value is None:
        return default
    if value not in choices:
        raise bad_param(name, f"one of {', '.join(choices)}, not {value[:40]!r}")
    return value


def _duration(query: dict[str, str], name: str, default: str) -> float:
    from lazycelery.durations import DurationTooLong, parse_duration

    text = params.text(query, name)
    try:
        return parse_duration(text if text is not None else default)
    except DurationTooLong as exc:
        raise bad_param(name, str(exc)) from None
    except ValueError:
        raise bad_param(name, f"a duration (30m, 2h, 1d), not {str(text)[:40]!r}") from None


def _since(query: dict[str, str], default: str) -> float:
    """``since``: an age (30m, 2h, 1d) or an ISO time, as the CLI's ``--since``."""
    from lazycelery.durations import DurationTooLong, parse_duration

    text = params.text(query, "since")
    text = default if text is None else text.strip()
    try:
        return time.time() - parse_duration(text)
    except DurationTooLong as exc:
        raise bad_param("since", str(exc)) from None
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except (ValueError, OverflowError, OSError):
        raise bad_param("since", f"an age (30m, 2h, 1d) or an ISO time, not {text[:40]!r}"
                        ) from None


def _task_time(rec: TaskRecord) -> float:
    return rec.failed or rec.retried or rec.last_seen


class DebugApi:
    def __init__(self, service: Service) -> None:
        self.service = service

    async def _load(self, query: dict[str, str], default_since: str, *,
                    groups: bool, live: bool = False) -> Loaded:
        since = _since(query, default_since)
        return await run_in_threadpool(lambda: load(self.service, since, with_groups=groups,
                                                    live=live))

    def _group(self, loaded: Loaded, key: str) -> Any:
        group = loaded.groups.get(key) if key else None
        if group is None:
            raise ApiError(404, f"unknown error group {key[:100]!r} in this window (a unique "
                                "prefix works; see /api/v1/errors)", parameter="group")
        return group

    # ------------------------------------------------------------------ errors

    async def errors(self, request: Request, caller: Caller) -> Response:
        from lazycelery.analysis.report import groups_json

        query = query_of(request)
        new_within = _duration(query, "new", "10m")
        top = v1_int(query, "top", 0, minimum=1, cap=1 << 30) or None
        loaded = await self._load(query, "1h", groups=True, live=True)
        doc = await run_in_threadpool(lambda: groups_json(
            loaded.groups, now=time.time(), new_within=new_within, limit=top))
        doc["sources"] = loaded.sources
        return json_response(doc)

    async def error_group(self, request: Request, caller: Caller) -> Response:
        from lazycelery.analysis.report import group_json
        from lazycelery.analysis.similar import clusters

        query = query_of(request)
        new_within = _duration(query, "new", "10m")
        limit = limit_of(query)
        after = parse_cursor(params.text(query, "cursor"))
        loaded = await self._load(query, "1h", groups=True)
        group = self._group(loaded, request.path_params["group"])
        of = {g.key: c.key for c in clusters(loaded.groups.ranked()) for g in c.groups}
        found = [r for u in dict.fromkeys(group.task_ids) if (r := loaded.get(u)) is not None]
        found.sort(key=lambda r: (_task_time(r), r.uuid), reverse=True)
        if after is not None:
            bound = (after.time, str(after.key))
            found = [r for r in found if (_task_time(r), r.uuid) < bound]
        page, more = found[:limit], len(found) > limit
        next_ = Cursor("memory", _task_time(page[-1]), page[-1].uuid) if more else None
        return json_response({
            "group": group_json(group, loaded.groups, now=time.time(), new_within=new_within,
                                cluster=of.get(group.key)),
            "tasks": [record_dict(r, []) for r in page], "count": len(page),
            "next": next_.encode() if next_ is not None else None, "limit": limit,
            "sources": loaded.sources})

    async def error_trend(self, request: Request, caller: Caller) -> Response:
        from lazycelery.analysis.report import trend_json

        query = query_of(request)
        unit = _choice(query, "bucket", BUCKETS, "minute")
        loaded = await self._load(query, "1h", groups=True, live=True)
        key = request.path_params["group"]
        chosen = None if key == "all" else self._group(loaded, key).key
        doc = trend_json(loaded.groups, chosen, unit)
        doc["sources"] = loaded.sources
        return json_response(doc)

    # ------------------------------------------------------------------ time and structure

    async def timeline(self, request: Request, caller: Caller) -> Response:
        from lazycelery.core.timeline import build_layout
        from lazycelery.core.timeline_json import layout_json

        query = query_of(request)
        by = _choice(query, "by", ("worker", "queue"), "worker")
        pred = compile_q(query)
        since = _since(query, "10m")
        loaded = await run_in_threadpool(load, self.service, since, with_groups=False)

        def build() -> dict[str, Any]:
            records = loaded.records if pred is None else pred.filter(loaded.records)
            return layout_json(build_layout(records, by), loaded.since, loaded.until)

        return json_response(await run_in_threadpool(build))

    async def tree(self, request: Request, caller: Caller) -> Response:
        task_id = request.path_params["task_id"]
        doc = await run_in_threadpool(tree_doc, self.service, task_id)
        if doc is None:
            raise ApiError(404, f"unknown task {task_id[:200]!r}", parameter="task_id")
        return json_response(doc)

    async def links(self, request: Request, caller: Caller) -> Response:
        """The result backend's links of a task's workflow (the remote dashboard's ``W``):
        a read, any role, allowed read-only, as ``.../tree``."""
        task_id = request.path_params["task_id"]
        doc = await run_in_threadpool(links_doc, self.service, task_id)
        if doc is None:
            raise ApiError(404, f"unknown task {task_id[:200]!r}", parameter="task_id")
        return json_response(doc)

    async def export(self, request: Request, caller: Caller) -> Response:
        from lazycelery.core.export import row, stream_rows

        query = query_of(request)
        fmt = _choice(query, "format", tuple(MEDIA), "csv")
        limit = v1_int(query, "limit", DEFAULT_EXPORT, minimum=1, cap=MAX_EXPORT)
        pred = compile_q(query)
        loaded = await self._load(query, "1h", groups=False)

        def rows() -> Iterator[dict[str, Any]]:
            records = loaded.records if pred is None else pred.filter(loaded.records)
            for rec in records[:limit]:
                yield row(rec)

        headers = {"Content-Disposition": f'attachment; filename="tasks.{fmt}"'}
        return StreamingResponse(stream_rows(rows(), fmt), media_type=MEDIA[fmt],
                                 headers=headers)


def debug_routes(service: Service, guard: Guard) -> list[Route]:
    """The routes, before ``/api/v1/tasks/{task_id:path}`` (which would take ``.../tree``)."""
    api = DebugApi(service)

    def get(path: str, handler: Any) -> Route:
        return Route(f"/api/v1{path}", protect(guard, handler, act=False,
                                               read_only=service.read_only), methods=["GET"])

    return [
        get("/errors", api.errors),
        get("/errors/{group}", api.error_group),
        get("/errors/{group}/trend", api.error_trend),
        get("/timeline", api.timeline),
        get("/tasks/{task_id}/tree", api.tree),
        get("/tasks/{task_id}/links", api.links),
        get("/export", api.export),
    ]
