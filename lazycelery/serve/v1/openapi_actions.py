"""The OpenAPI part of ``/api/v1/actions`` (``serve.v1.actions``): the request bodies are
the handlers' own msgspec structs (one source for validation and documentation), the answers
written here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from lazycelery.serve.v1.actions import (
    QUEUE_ACTIONS,
    WORKER_ACTIONS,
    OneTask,
    PurgeBody,
    QueueBulkBody,
    RevokeBody,
    TaskIds,
    WorkerBody,
)

__all__ = ["action_paths"]

Json = Callable[[dict[str, Any], str], dict[str, Any]]
Errors = Callable[..., dict[str, Any]]

_REF = "#/components/schemas/{name}"
_STRINGS = {"type": "array", "items": {"type": "string"}}
_REPLY = {"type": "object", "required": ["ok", "text"],
          "properties": {"ok": {"type": "boolean"}, "text": {"type": "string"}}}
RESULT: dict[str, Any] = {
    "type": "object",
    "description": "What the action did (lazycelery's ActionResult): `replies` by worker (or "
                   "by task id for a retry), the workers that did not answer, what was refused "
                   "and why, the ids of new runs (`created`), purged message `count`, and the "
                   "tasks serve marked REVOKED or PURGED.",
    "required": ["action", "targets", "ok", "message", "replies", "missing"],
    "properties": {
        "action": {"type": "string"}, "targets": _STRINGS, "ok": {"type": "boolean"},
        "message": {"type": "string"},
        "replies": {"type": "object", "additionalProperties": _REPLY},
        "missing": _STRINGS,
        "created": {"type": "object", "additionalProperties": {"type": "string"}},
        "refused": {"type": "object", "additionalProperties": {"type": "string"}},
        "count": {"type": "integer"}, "marked": _STRINGS,
        "audit_error": {"type": "string"},
        "options": {"type": "object", "description": "the command's options beyond its "
                    "targets, as audited: a pool restart's `modules` and `reload`, a "
                    "consumer's `exchange`, `exchange_type` and `routing_key`"},
    },
    "additionalProperties": False,
}
_NULL_STR = {"type": ["string", "null"]}
PLAN: dict[str, Any] = {
    "type": "object", "description": "What would be sent; the real args stay on serve.",
    "required": ["uuid", "name", "args_count", "kwargs_names", "source", "state", "notes"],
    "properties": {"uuid": {"type": "string"}, "name": {"type": "string"},
                   "args_count": {"type": "integer"}, "kwargs_names": _STRINGS,
                   "queue": _NULL_STR, "exchange": _NULL_STR, "routing_key": _NULL_STR,
                   "root_id": {"type": "string"}, "parent_id": {"type": "string"},
                   "source": {"type": "string"}, "state": {"type": "string"},
                   "notes": _STRINGS},
}
REFUSAL: dict[str, Any] = {"type": "object", "required": ["uuid", "reason"],
                           "properties": {"uuid": {"type": "string"},
                                          "reason": {"type": "string"}}}


_OUTCOME: dict[str, Any] = {
    "type": ["object", "null"],
    "description": "Message by message (null: the broker failed, see `message`): `done` "
                   "moved/deleted/requeued, `gone` taken by a worker meanwhile, `not_found` "
                   "among `scanned`, `skipped` left in place and why; `targets` the queue each "
                   "went to; `guarantee` how the broker guarantees it.",
    "properties": {"action": {"type": "string"}, "source": {"type": "string"},
                   "targets": {"type": "object", "additionalProperties": {"type": "string"}},
                   "done": _STRINGS, "gone": _STRINGS, "not_found": _STRINGS,
                   "skipped": {"type": "object", "additionalProperties": {"type": "string"}},
                   "scanned": {"type": "integer"}, "guarantee": {"type": "string"}},
}
BULK_RESULT: dict[str, Any] = {
    **RESULT, "description": "The ActionResult (`count`: messages done) and the `outcome`.",
    "required": [*RESULT["required"], "outcome"],
    "properties": {**RESULT["properties"], "outcome": _OUTCOME},
}
REVEALED: dict[str, Any] = {
    "type": "object", "required": ["uuid", "fields", "reason"],
    "description": "The real values (reprs) from the result backend: `args`, `kwargs`, and "
                   "`result` when it succeeded; none, and `reason`, when the backend has none.",
    "properties": {"uuid": {"type": "string"},
                   "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                   "reason": {"type": ["string", "null"]}, "audit_error": {"type": "string"}},
}


def action_paths(json: Json, errors: Errors) -> tuple[dict[str, Any], dict[str, Any]]:
    """(paths, component schemas) of the action endpoints."""
    _refs, schemas = msgspec.json.schema_components(
        (TaskIds, OneTask, RevokeBody, PurgeBody, WorkerBody, QueueBulkBody),
        ref_template=_REF)
    for body in schemas.values():
        body["additionalProperties"] = False  # forbid_unknown_fields: an unknown key is a 400
    ref = {name: {"$ref": _REF.format(name=name)} for name in schemas}
    result = {"$ref": _REF.format(name="ActionResult")}
    schemas.update(ActionResult=RESULT, RetryPlan=PLAN, Refusal=REFUSAL,
                   QueueBulkResult=BULK_RESULT, Revealed=REVEALED)

    def post(op: str, summary: str, body: dict[str, Any], ok: dict[str, Any],
             codes: tuple[int, ...], parameters: list[dict[str, Any]] | None = None
             ) -> dict[str, Any]:
        return {"post": {
            "operationId": op, "summary": summary, "parameters": parameters or [],
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {"200": ok, **errors(400, 401, 429, *codes),
                          "413": json({"$ref": "#/components/schemas/Error"},
                                      "the body is over 1 MB")}}}

    acted = json(result, "what was done (`ok` false: see replies, missing, refused)")
    plan = {"type": "object", "properties": {
        "plans": {"type": "array", "items": {"$ref": _REF.format(name="RetryPlan")}},
        "refusals": {"type": "array", "items": {"$ref": _REF.format(name="Refusal")}}},
        "required": ["plans", "refusals"]}
    replay_plan = {"type": "object", "properties": {
        "plan": {"$ref": _REF.format(name="RetryPlan")},
        "refusal": {"$ref": _REF.format(name="Refusal")}}}
    placement = {"type": "object", "required": ["holders", "held_as", "online", "source"],
                 "properties": {
                     "holders": {"type": "object", "additionalProperties": {"type": "string"}},
                     "held_as": {"type": "object", "additionalProperties": {"type": "string"}},
                     "online": _STRINGS, "source": {"type": "string"}}}
    worker_action = {"name": "action", "in": "path", "required": True,
                     "description": "the control command", "schema": {"enum": list(WORKER_ACTIONS)}}
    resolved = {"type": "object", "required": ["resolved"], "properties": {"resolved": {
        "type": "array", "items": {"type": "object", "required": ["given", "task_id"],
                                   "properties": {"given": {"type": "string"},
                                                  "task_id": {"type": "string"}}}}}}
    ids = " A task id may be a unique prefix of one (404: none, 409: several)."
    by_id = (404, 409)
    paths = {
        "/api/v1/actions/resolve": post(
            "resolveTaskIds", "The full task id each unique prefix names (serve's index, "
            "then a Redis result backend); full ids as they are; any role",
            ref["TaskIds"], json(resolved, "each id given and the full id"), by_id),
        "/api/v1/actions/locate": post(
            "locateTasks", "Which workers hold these tasks (the revoke dry run); any role."
            + ids, ref["TaskIds"], json(placement, "the placement"), by_id),
        "/api/v1/actions/retry/plan": post(
            "planRetry", "The retry dry run: what would be re-sent (args from the result "
            "backend or the workers, never answered), what is refused; any role." + ids,
            ref["TaskIds"], json(plan, "the dry run"), by_id),
        "/api/v1/actions/replay/plan": post(
            "planReplay", "The replay dry run of one finished task; any role." + ids,
            ref["OneTask"], json(replay_plan, "`plan`, or `refusal` with the reason"), by_id),
        "/api/v1/actions/retry": post(
            "retryTasks", "Re-send FAILURE/REVOKED/REJECTED tasks with their real args under "
            "new ids, to the queue serve's routing rules name (operator; audited)." + ids,
            ref["TaskIds"], acted, (403, *by_id)),
        "/api/v1/actions/replay": post(
            "replayTask", "Send a finished task again (operator; audited)." + ids,
            ref["OneTask"], acted, (403, *by_id)),
        "/api/v1/actions/revoke": post(
            "revokeTasks", "Revoke (terminate: and signal) tasks at the workers holding them, "
            "else the online workers (operator; audited)." + ids, ref["RevokeBody"], acted,
            (403, *by_id)),
        "/api/v1/actions/purge": post(
            "purgeQueue", "Delete the waiting messages of a known queue (operator; audited)",
            ref["PurgeBody"], acted, (403, 404, 503)),
        "/api/v1/actions/queues/{action}": post(
            "queueMessages", "Move (to `target`), delete, or requeue-dead (back to the queue "
            "each was dead-lettered from) the waiting messages of a known queue: by `task_ids`, "
            "or `all: true`, among the first `limit` (operator; audited)",
            ref["QueueBulkBody"], json({"$ref": _REF.format(name="QueueBulkResult")},
                                       "the counts and the outcome"), (403, 404, 503),
            [{"name": "action", "in": "path", "required": True, "description": "the operation",
              "schema": {"enum": list(QUEUE_ACTIONS)}}]),
        "/api/v1/actions/reveal": post(
            "revealTask", "The real args, kwargs and result of one task, masked everywhere "
            "else, read from serve's result backend now (operator; audited: that it was "
            "revealed, never the values; `Cache-Control: no-store`)." + ids, ref["OneTask"],
            json({"$ref": _REF.format(name="Revealed")}, "the values, or why there are none"),
            (403, *by_id)),
        "/api/v1/actions/workers/{action}": post(
            "controlWorkers", "A control command to named workers, never a broadcast: "
            "pool-grow/pool-shrink take `n`, autoscale `min` and `max`, pool-restart "
            "`modules` (dotted Python names) and `reload`, add-consumer `queue` and "
            "optionally `exchange`, `exchange_type`, `routing_key`, cancel-consumer `queue`, "
            "rate-limit `task_name` and `rate`, time-limit `task_name`, `soft`, `hard`; a "
            "bad value, or one the action does not take, is a 400 naming the parameter "
            "(operator; audited with the options)", ref["WorkerBody"], acted,
            (403, 404), [worker_action]),
    }
    return paths, schemas
