"""The OpenAPI paths of the debugging endpoints (``v1/debug.py``), merged into the document by
``openapi_document``; the shapes are those of the CLI's ``--json`` (docs/errors.md,
docs/timeline.md, docs/workflows.md, docs/export.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["debug_paths"]

_INT = {"type": "integer"}
_OBJ = {"type": "object"}
_NULL_NUM = {"type": ["number", "null"]}
_NULL_STR = {"type": ["string", "null"]}
_SINCE = {"type": "string", "maxLength": 4096}
_SOURCES = {"type": "object", "description": "where the events came from: `history` (the "
                                             "store) or `memory` (no store)"}

_HINT = {"type": "object", "required": ["kind", "text", "evidence"],
         "properties": {"kind": {"type": "string"}, "text": {"type": "string"},
                        "evidence": _OBJ}}
_COUNTS = {"type": "object", "additionalProperties": _INT}
_ERROR_GROUP = {
    "type": "object", "description": "one error group (`lazycelery errors --json`'s groups)",
    "required": ["group", "exception", "count", "first_seen", "last_seen", "tasks", "workers",
                 "queues", "cluster"],
    "properties": {
        "group": {"type": "string"}, "exception": _NULL_STR, "message": _NULL_STR,
        "frames": {"type": "array", "items": {"type": "string"}}, "example": _NULL_STR,
        "count": _INT, "failed": _INT, "retried": _INT, "from_history": _INT,
        "first_seen": {"type": "string"}, "last_seen": {"type": "string"},
        "new": {"type": "boolean"}, "tasks": _COUNTS, "workers": _COUNTS, "queues": _COUNTS,
        "versions": _COUNTS, "task_ids": {"type": "array", "items": {"type": "string"}},
        "cluster": _NULL_STR, "hints": {"type": "array", "items": _HINT},
    },
    "additionalProperties": True,
}
_GROUPS = {
    "type": "object", "required": ["failures", "groups", "clusters", "sources"],
    "properties": {
        "failures": _INT, "from_history": _INT, "finished": _INT, "groups_total": _INT,
        "observed": _OBJ, "groups": {"type": "array", "items": _ERROR_GROUP},
        "clusters": {"type": "array", "items": {
            "type": "object", "required": ["cluster", "groups"],
            "properties": {"cluster": {"type": "string"},
                           "groups": {"type": "array", "items": {"type": "string"}},
                           "count": _INT, "min_similarity": {"type": "number"}}}},
        "sources": _SOURCES,
    },
}
_TREND = {
    "type": "object", "required": ["group", "unit", "total", "buckets"],
    "properties": {"group": _NULL_STR, "unit": {"enum": ["minute", "hour", "day"]},
                   "total": _INT, "sources": _SOURCES,
                   "buckets": {"type": "array", "items": {
                       "type": "object", "required": ["start", "count"],
                       "properties": {"start": {"type": "string"}, "count": _INT}}}},
}
_BAR = {"type": "object", "required": ["id", "state", "start", "end"],
        "properties": {"id": {"type": "string"}, "name": _NULL_STR, "state": {"type": "string"},
                       "worker": _NULL_STR, "queue": _NULL_STR, "start": {"type": "number"},
                       "end": _NULL_NUM}}
_TIMELINE = {
    "type": "object", "required": ["grouping", "since", "until", "bars", "lanes"],
    "properties": {
        "grouping": {"type": "string"}, "since": {"type": "number"},
        "until": {"type": "number"}, "first": _NULL_NUM, "last": _NULL_NUM, "bars": _INT,
        "untimed": _INT, "skewed": _INT, "hidden": _INT,
        "lanes": {"type": "array", "items": {
            "type": "object", "required": ["key", "rows"],
            "properties": {"key": {"type": "string"}, "hidden": _INT,
                           "rows": {"type": "array", "items": {"type": "array",
                                                               "items": _BAR}}}}},
    },
}
_NODE = {"type": "object", "required": ["kind", "id", "counts", "children"],
         "description": "a workflow node: a task, or a group (a chord's header when `chord`)",
         "properties": {"kind": {"type": "string"}, "id": {"type": "string"},
                        "name": _NULL_STR, "state": _NULL_STR, "known": {"type": "boolean"},
                        "role": {"type": "string"}, "chord": {"type": "boolean"},
                        "header": _OBJ, "counts": _COUNTS,
                        "children": {"type": "array", "items": _OBJ}},
         "additionalProperties": True}
_TREE = {"type": "object", "required": ["task", "tree", "notes"],
         "properties": {"task": {"type": "string"}, "tree": _NODE,
                        "notes": {"type": "array", "items": {"type": "string"}}}}
_LINKS = {"type": "object", "required": ["task", "links", "count", "note"],
          "properties": {
              "task": {"type": "string"},
              "links": {"type": "object", "description": "task id -> its result-backend meta "
                        "trimmed to the links: name, status, parent_id, group_id, children "
                        "(celery's tuple shape); never args, kwargs or a result",
                        "additionalProperties": _OBJ},
              "count": _INT, "note": _NULL_STR}}
_EXPORT = {
    "description": "the tasks, streamed: CSV (a header row), a JSON array, or one JSON "
                   "object a line (NDJSON); the columns of `lazycelery export`",
    "content": {"text/csv": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "array", "items": _OBJ}},
                "application/x-ndjson": {"schema": {"type": "string"}}},
}


def debug_paths(*, get: Callable[..., dict[str, Any]], json_: Callable[..., dict[str, Any]],
                param: Callable[..., dict[str, Any]], q: dict[str, Any],
                task: dict[str, Any]) -> dict[str, Any]:
    """The paths, made with ``openapi``'s helpers and its task schema and ``q`` parameter
    (passed in: this module is imported by that one)."""
    _get, _json, _param, _Q = get, json_, param, q

    def _since(default: str) -> dict[str, Any]:
        return _param("since", f"an age (30m, 2h, 1d) or an ISO time (default {default})",
                      _SINCE)

    _NEW = _param("new", "mark groups first seen within this age as new (default 10m)", _SINCE)
    _GROUP = _param("group", "an error group's id or a unique prefix of it",
                    {"type": "string"}, where="path", required=True)
    _GROUP_TASKS = {
        "type": "object", "required": ["group", "tasks", "count", "next"],
        "properties": {"group": _ERROR_GROUP, "tasks": {"type": "array", "items": task},
                       "count": _INT, "next": _NULL_STR, "limit": _INT, "sources": _SOURCES},
    }
    limit = _param("limit", "at most this many (larger values are capped at 1000)",
                   {"type": "integer", "minimum": 1})
    return {
        "/api/v1/errors": _get(
            "Failures grouped by cause, with clusters and root-cause hints (`lazycelery errors "
            "--json`)", _json(_GROUPS, "the error groups, most failures first"),
            [_since("1h"), _NEW, _param("top", "the N biggest groups (default all)",
                                        {"type": "integer", "minimum": 1})],
            (400, 503), "listErrorGroups"),
        "/api/v1/errors/{group}": _get(
            "One error group and its tasks, newest failure first, paged by cursor",
            _json(_GROUP_TASKS, "the group and a page of its tasks"),
            [_GROUP, _since("1h"), _NEW, limit,
             _param("cursor", "`next` of the previous page", {"type": "string"})],
            (400, 404, 503), "getErrorGroup"),
        "/api/v1/errors/{group}/trend": _get(
            "A group's failures (or every group's: `all`) per minute, hour or day "
            "(`lazycelery errors trend GROUP --json`)", _json(_TREND, "the trend"),
            [_GROUP, _since("1h"),
             _param("bucket", "minute (default), hour or day",
                    {"enum": ["minute", "hour", "day"]})],
            (400, 404, 503), "getErrorTrend"),
        "/api/v1/timeline": _get(
            "Tasks as bars in lanes per worker or queue (`lazycelery timeline --json`)",
            _json(_TIMELINE, "the timeline layout"),
            [_since("10m"), _Q, _param("by", "worker (default) or queue",
                                       {"enum": ["worker", "queue"]})],
            (400, 503), "getTimeline"),
        "/api/v1/tasks/{task_id}/tree": _get(
            "The whole workflow a task belongs to (`lazycelery task tree ID --json`)",
            _json(_TREE, "the workflow tree"),
            [_param("task_id", "the task id", {"type": "string"}, where="path",
                    required=True)], (404,), "getTaskTree"),
        "/api/v1/tasks/{task_id}/links": _get(
            "The result backend's links of a task's workflow (group ids, a chord's header): "
            "what the remote dashboard's `W` shows in the task's Family section",
            _json(_LINKS, "the links"),
            [_param("task_id", "the task id", {"type": "string"}, where="path",
                    required=True)], (404,), "getTaskLinks"),
        "/api/v1/export": _get(
            "The filtered tasks as CSV, JSON or NDJSON, streamed (`lazycelery export`)",
            _EXPORT,
            [_Q, _since("1h"),
             _param("format", "csv (default), json or ndjson",
                    {"enum": ["csv", "json", "ndjson"]}),
             _param("limit", "rows at most (default 10000, capped at 100000)",
                    {"type": "integer", "minimum": 1})],
            (400, 503), "exportTasks"),
    }
