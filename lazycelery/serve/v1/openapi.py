"""The OpenAPI 3.1 document of ``/api/v1`` (written by hand: the routes are few and their
JSON shapes are lazycelery's records; a test validates it and checks every route is in it)."""

from __future__ import annotations

from typing import Any

from lazycelery.serve.v1.openapi_debug import debug_paths

__all__ = ["openapi_document"]

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    why = {400: "a bad parameter (named in `parameter`)", 401: "authentication needed",
           403: "the caller's role may not do this", 404: "unknown id",
           409: "a task id prefix several tasks start with (`matches` names them)",
           429: "too many failed logins", 503: "not available"}
    return {str(c): _json(_ERROR, why[c]) for c in codes}


def _param(name: str, description: str, schema: dict[str, Any], *,
           where: str = "query", required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "description": description,
            "schema": schema}


_Q = _param("q", "the filter language (docs/filter.md), e.g. `state:failure name:billing.*`",
            {"type": "string", "maxLength": 4096})
_NULL_NUM = {"type": ["number", "null"]}
_NULL_STR = {"type": ["string", "null"]}

_TASK = {
    "type": "object",
    "description": "lazycelery's task record (every field), its children and `timestamp`.",
    "required": ["uuid", "state", "children"],
    "properties": {
        "uuid": {"type": "string"}, "state": {"type": "string"}, "name": _NULL_STR,
        "worker": _NULL_STR, "args": _NULL_STR, "kwargs": _NULL_STR, "result": _NULL_STR,
        "exception": _NULL_STR, "traceback": _NULL_STR, "runtime": _NULL_NUM,
        "retries": {"type": "integer"}, "parent_id": _NULL_STR, "root_id": _NULL_STR,
        "queue": _NULL_STR, "sent": _NULL_NUM, "received": _NULL_NUM, "started": _NULL_NUM,
        "succeeded": _NULL_NUM, "failed": _NULL_NUM, "retried": _NULL_NUM,
        "revoked": _NULL_NUM, "last_seen": {"type": "number"}, "timestamp": _NULL_NUM,
        "children": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": True,
}

_WORKER = {
    "type": "object", "required": ["hostname", "status"],
    "properties": {"hostname": {"type": "string"}, "status": {"type": "string"},
                   "active": {"type": ["integer", "null"]},
                   "processed": {"type": ["integer", "null"]},
                   "last_heartbeat": _NULL_NUM, "offline": {"type": "boolean"}},
    "additionalProperties": True,
}

_QUEUES = {
    "type": "object", "required": ["taken_at", "queues", "source"],
    "properties": {
        "taken_at": {"type": "number"}, "source": {"type": "string"}, "error": _NULL_STR,
        "stale": {"type": "boolean"},
        "queues": {"type": "array", "items": {
            "type": "object", "required": ["name", "ready"],
            "properties": {
                "name": {"type": "string"}, "ready": {"type": ["integer", "null"]},
                "reserved": {"type": ["integer", "null"]},
                "consumers": {"type": ["integer", "null"]},
                "by_priority": {"type": ["object", "null"],
                                "additionalProperties": {"type": "integer"},
                                "description": "Redis: ready messages per priority step"},
                "oldest_age_s": _NULL_NUM,
            }, "additionalProperties": True}},
    },
    "additionalProperties": True,
}


def _get(summary: str, ok: dict[str, Any], parameters: list[dict[str, Any]],
         errors: tuple[int, ...], op: str) -> dict[str, Any]:
    return {"get": {"operationId": op, "summary": summary, "parameters": parameters,
                    "responses": {"200": ok, **_errors(401, 429, *errors)}}}


def openapi_document(version: str) -> dict[str, Any]:
    limit = _param("limit", "at most this many (larger values are capped at 1000)",
                   {"type": "integer", "minimum": 1})
    page = {"type": "object", "required": ["tasks", "count", "next"],
            "properties": {"tasks": {"type": "array", "items": _TASK},
                           "count": {"type": "integer"},
                           "next": {**_NULL_STR, "description": "the cursor of the next page"},
                           "from_store": {"type": "integer"}, "limit": {"type": "integer"}}}
    detail = {"type": "object", "required": ["task", "source", "history", "transitions"],
              "properties": {"task": _TASK, "source": {"enum": ["memory", "store"]},
                             "history": {"type": "array", "items": {"type": "object"}},
                             "transitions": {"type": "array", "items": {"type": "object"}}}}
    stream = {"description": "Server-Sent Events: `hello`, `task`, `worker`, `status`, `loss` "
                             "(events a slow client missed, counted), `: keepalive` comments",
              "content": {"text/event-stream": {"schema": {"type": "string"}}}}
    paths = {
        "/api/v1/tasks": _get(
            "Tasks matching a filter, newest activity first: memory, then the history store",
            _json(page, "a page of tasks"),
            [_Q, limit, _param("cursor", "`next` of the previous page", {"type": "string"})],
            (400,), "listTasks"),
        "/api/v1/tasks/{task_id}": _get(
            "One task with its state history, stored transitions and children",
            _json(detail, "the task"),
            [_param("task_id", "the task id", {"type": "string"}, where="path",
                    required=True)], (404,), "getTask"),
        "/api/v1/workers": _get("Workers seen in the event stream", _json(
            {"type": "object", "properties": {"workers": {"type": "array", "items": _WORKER}}},
            "the workers"), [], (), "listWorkers"),
        "/api/v1/workers/{hostname}": _get("One worker", _json(_WORKER, "the worker"), [
            _param("hostname", "the worker's hostname", {"type": "string"}, where="path",
                   required=True)], (404,), "getWorker"),
        "/api/v1/queues": _get("Queue depths with the priority breakdown",
                               _json(_QUEUES, "the latest queue snapshot"), [], (503,),
                               "listQueues"),
        "/api/v1/audit": _get("The audit log, newest first (operator role)", _json(
            {"type": "object", "properties": {"entries": {"type": "array"},
                                              "count": {"type": "integer"}}},
            "audit entries"), [_param("limit", "at most this many (capped at 10000)",
                                      {"type": "integer", "minimum": 1})], (400, 403),
            "readAudit"),
        "/api/v1/snapshot": _get(
            "What a remote viewer starts from: the stream position, the newest tasks, the "
            "workers, the queues", _json({"type": "object", "required": ["last_event_id"]},
                                         "the snapshot"),
            [_param("limit", "tasks at most (default 1000, capped at 100000)",
                    {"type": "integer", "minimum": 0})], (400,), "snapshot"),
        "/api/v1/stream": _get(
            "Live task and worker events with their records, filtered by `q`", stream,
            [_Q, _param("workers", "include worker events (default true)",
                        {"type": "boolean"}),
             _param("heartbeat", "seconds between keepalive comments (default 15)",
                    {"type": "number", "minimum": 0.1}),
             _param("last_event_id", "resume after this id (or the Last-Event-ID header)",
                    {"type": "string"})], (400,), "stream"),
        "/api/v1/openapi.json": _get("This document", _json({"type": "object"}, "OpenAPI 3.1"),
                                     [], (), "openapi"),
    }
    paths.update(debug_paths(get=_get, json_=_json, param=_param, q=_Q, task=_TASK))
    from lazycelery.serve.v1.openapi_actions import action_paths

    action_api, action_schemas = action_paths(_json, _errors)
    paths.update(action_api)  # POST /api/v1/actions/...
    return {
        "openapi": "3.1.0",
        "info": {"title": "lazycelery serve API", "version": version,
                 "description": "lazycelery's own API (Flower's lives under /api/). "
                                "Roles: `viewer` reads, `operator` also acts and reads the "
                                "audit log. See docs/serve.md."},
        "paths": paths,
        "components": {
            "schemas": {"Error": {"type": "object", "required": ["error"],
                                  "properties": {"error": {"type": "string"},
                                                 "parameter": {"type": "string"},
                                                 "matches": {"type": "array", "items": {
                                                     "type": "string"}}}},
                        **action_schemas},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "basic": {"type": "http", "scheme": "basic"}},
        },
        "security": [{"bearer": []}, {"basic": []}, {}],
    }
