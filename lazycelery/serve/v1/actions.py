"""``/api/v1/actions``: the operator actions a remote dashboard (``lazycelery --server``) and
``lazycelery task ... --server`` forward to serve, with the whole ``ActionResult`` as the
answer (each worker's reply, who did not answer, what was refused, the ids of new runs).

Retry and replay need the task's real args, which only serve can read (the result backend,
the workers): the dry runs (``.../plan``) answer what would be sent without the args (their
count and keyword names), and the send re-plans on serve from the task ids. Revoke locates the
tasks in serve's index. Dry runs and ``locate`` read (any role, allowed read-only); the rest
act: operator role, refused by ``serve --read-only`` (403 JSON, ``protect``), and audited with
the API caller's name (``api:NAME``) through ``core.actions``, as Flower's endpoints are."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Final

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lazycelery.broker.bulk import BulkOutcome, Selection
from lazycelery.core.action_result import ActionResult
from lazycelery.core.actions import Actions, Placement, Refusal, RetryPlan, normalize_signal
from lazycelery.core.control_options import (
    MAX_MODULES,
    BadOption,
    consumer_options,
    pool_options,
)
from lazycelery.core.placement import (
    AmbiguousTaskId,
    UnknownTaskId,
    is_id_prefix,
    resolve_task_ids,
)
from lazycelery.core.queue_ops import bulk_action
from lazycelery.serve.auth import Caller, Guard
from lazycelery.serve.errors import ApiError
from lazycelery.serve.http import json_body, json_response, protect
from lazycelery.serve.service import Service
from lazycelery.urls import error_line

if TYPE_CHECKING:
    from lazycelery.broker.inspector import BrokerInspector

__all__ = ["MAX_IDS", "MAX_PREFIXES", "QUEUE_ACTIONS", "WORKER_ACTIONS", "action_routes",
           "plan_json", "result_json"]

#: task ids one request may name (the dashboard's bulk limit)
MAX_IDS: Final = 10_000
#: task id prefixes one request may name (each is looked up in the whole index)
MAX_PREFIXES: Final = 100
#: bulk actions on a queue's waiting messages (``core.queue_ops``)
QUEUE_ACTIONS: Final = ("move", "delete", "requeue-dead")
#: worker control actions, as ``core.actions`` names them in the audit log
WORKER_ACTIONS: Final = ("shutdown", "pool-restart", "pool-grow", "pool-shrink", "autoscale",
                         "add-consumer", "cancel-consumer", "rate-limit", "time-limit",
                         "restart")

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


class TaskIds(msgspec.Struct, forbid_unknown_fields=True):
    task_ids: Annotated[list[Name], msgspec.Meta(min_length=1, max_length=MAX_IDS)]


class OneTask(msgspec.Struct, forbid_unknown_fields=True):
    task_id: Name


class RevokeBody(msgspec.Struct, forbid_unknown_fields=True):
    task_ids: Annotated[list[Name], msgspec.Meta(min_length=1, max_length=MAX_IDS)]
    terminate: bool = False
    signal: Annotated[str, msgspec.Meta(max_length=20)] = "SIGTERM"


class PurgeBody(msgspec.Struct, forbid_unknown_fields=True):
    queue: Name
    #: the count the user confirmed (said in the result when it differs)
    expected: Annotated[int, msgspec.Meta(ge=0)] | None = None


class QueueBulkBody(msgspec.Struct, forbid_unknown_fields=True):
    #: the queue the messages are in (requeue-dead: the dead-letter queue)
    queue: Name
    #: move: the queue they go to
    target: Name | None = None
    #: the messages' task ids; or ``all``: every waiting message
    task_ids: Annotated[list[Name], msgspec.Meta(min_length=1, max_length=MAX_IDS)] | None = None
    all: bool = False
    #: examine at most this many messages
    limit: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 10_000


class WorkerBody(msgspec.Struct, forbid_unknown_fields=True):
    workers: Annotated[list[Name], msgspec.Meta(min_length=1, max_length=1000)]
    n: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1
    min: Annotated[int, msgspec.Meta(ge=0, le=10_000)] | None = None
    max: Annotated[int, msgspec.Meta(ge=1, le=10_000)] | None = None
    queue: Name | None = None
    task_name: Name | None = None
    rate: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    soft: Annotated[float, msgspec.Meta(ge=0)] | None = None
    hard: Annotated[float, msgspec.Meta(ge=0)] | None = None
    #: pool-restart: modules to import (reloaded with ``reload``), dotted Python names
    modules: Annotated[list[Name], msgspec.Meta(max_length=MAX_MODULES)] | None = None
    reload: bool = False
    #: add-consumer: what the queue is bound to (celery's default: its own name, direct)
    exchange: Annotated[str, msgspec.Meta(max_length=255)] | None = None
    exchange_type: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    routing_key: Annotated[str, msgspec.Meta(max_length=255)] | None = None


#: the body's fields each worker action alone takes (any other action refuses them)
_OWN_FIELDS: Final = {"modules": "pool-restart", "reload": "pool-restart",
                      "exchange": "add-consumer", "exchange_type": "add-consumer",
                      "routing_key": "add-consumer"}


def _options_of(action: str, body: WorkerBody) -> dict[str, Any]:
    """The checked options of a pool restart or an add-consumer (400 naming the parameter
    that is bad, or that this action does not take)."""
    for name, owner in _OWN_FIELDS.items():
        if owner != action and getattr(body, name) not in (None, False):
            raise ApiError(400, f"{action} takes no {name} (only {owner} does)",
                           parameter=name)
    try:
        if action == "pool-restart":
            return pool_options(body.modules, body.reload)
        if action == "add-consumer":
            return consumer_options(body.exchange, body.exchange_type, body.routing_key)
    except BadOption as exc:
        raise ApiError(400, str(exc), parameter=exc.parameter) from None
    return {}


def _body(raw: dict[str, Any], kind: type[Any]) -> Any:
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError as exc:
        where = str(exc).rpartition("at `$.")[2].rstrip("`").split("[")[0]
        raise ApiError(400, f"bad body: {exc}", parameter=where or None) from None


def result_json(result: ActionResult) -> dict[str, Any]:
    """``ActionResult.to_json`` with what a client rebuilds the result from."""
    out = {"action": result.action, "targets": list(result.targets), **result.to_json()}
    if result.audit_error:
        out["audit_error"] = result.audit_error
    return out


def plan_json(plan: RetryPlan) -> dict[str, Any]:
    """A retry/replay plan without the real args (they never leave serve): their count and
    the keyword names, as ``RetryPlan.describe`` shows them."""
    return {"uuid": plan.uuid, "name": plan.name, "args_count": len(plan.args),
            "kwargs_names": [str(k) for k in plan.kwargs], "queue": plan.queue,
            "exchange": plan.exchange, "routing_key": plan.routing_key,
            "root_id": plan.root_id, "parent_id": plan.parent_id, "source": plan.source,
            "state": plan.state, "notes": list(plan.notes)}


def _refusal(refusal: Refusal) -> dict[str, str]:
    return {"uuid": refusal.uuid, "reason": refusal.reason}


class ActionsV1:
    def __init__(self, service: Service) -> None:
        self.service = service

    def _actions(self, caller: Caller) -> Actions:
        return self.service.actions(f"api:{caller.name}")

    async def _run(self, run: Callable[[], ActionResult]) -> Response:
        return json_response(result_json(await run_in_threadpool(run)))

    # ---------------------------------------------------------------- task id prefixes

    def _resolve(self, ids: list[str]) -> list[tuple[str, str]]:
        """(given, full id): a unique prefix (the dashboard's 8 characters) resolved in serve's
        index, else its result backend (Redis); 404 when none starts so, 409 naming them when
        several do. Blocks (a SCAN of the backend): called in the thread pool."""
        try:
            return resolve_task_ids(ids, self.service.app, index=self.service.index,
                                    backend_too=True, index_label="serve's index")
        except UnknownTaskId as exc:
            raise ApiError(404, str(exc)) from None
        except AmbiguousTaskId as exc:
            raise ApiError(409, str(exc), detail={"matches": list(exc.matches)}) from None

    async def _full_ids(self, ids: list[str]) -> list[str]:
        if sum(map(is_id_prefix, ids)) > MAX_PREFIXES:  # each one is a walk of the index
            raise ApiError(400, f"at most {MAX_PREFIXES} task id prefixes in one request "
                                "(full ids are not limited so)", parameter="task_ids")
        return [full for _, full in await run_in_threadpool(lambda: self._resolve(ids))]

    async def resolve(self, request: Request, caller: Caller) -> Response:
        """What a task id prefix names on serve (``lazycelery task ... --server`` asks first, to
        show the full ids in its question); a read, any role."""
        body = _body(await json_body(request), TaskIds)
        full = await self._full_ids(body.task_ids)
        return json_response({"resolved": [{"given": given, "task_id": task_id}
                                           for given, task_id in zip(body.task_ids, full,
                                                                      strict=True)]})

    # ---------------------------------------------------------------- dry runs (read)

    async def locate(self, request: Request, caller: Caller) -> Response:
        body = _body(await json_body(request), TaskIds)
        placement: Placement = self._actions(caller).locate(await self._full_ids(body.task_ids))
        return json_response({"holders": dict(placement.holders),
                              "held_as": dict(placement.held_as),
                              "online": list(placement.online), "source": placement.source})

    async def plan_retry(self, request: Request, caller: Caller) -> Response:
        body = _body(await json_body(request), TaskIds)
        ids = await self._full_ids(body.task_ids)
        actions = self._actions(caller)
        batch = await run_in_threadpool(lambda: actions.plan_retries(ids))
        return json_response({"plans": [plan_json(p) for p in batch.plans],
                              "refusals": [_refusal(r) for r in batch.refusals]})

    async def plan_replay(self, request: Request, caller: Caller) -> Response:
        body = _body(await json_body(request), OneTask)
        [task_id] = await self._full_ids([body.task_id])
        actions = self._actions(caller)
        plan = await run_in_threadpool(lambda: actions.plan_replay(task_id))
        if isinstance(plan, Refusal):
            return json_response({"refusal": _refusal(plan)})
        return json_response({"plan": plan_json(plan)})

    # ---------------------------------------------------------------- actions (operator)

    async def retry(self, request: Request, caller: Caller) -> Response:
        """Re-plan from the ids on serve (the real args), then re-send what can be."""
        body = _body(await json_body(request), TaskIds)
        actions = self._actions(caller)
        actions.guard("retry")
        ids = await self._full_ids(body.task_ids)
        return await self._run(lambda: actions.retry(actions.plan_retries(ids)))

    async def replay(self, request: Request, caller: Caller) -> Response:
        body = _body(await json_body(request), OneTask)
        actions = self._actions(caller)
        actions.guard("replay")
        [task_id] = await self._full_ids([body.task_id])

        def run() -> ActionResult:
            plan = actions.plan_replay(task_id)
            if isinstance(plan, Refusal):
                return ActionResult("replay", (task_id,), False,
                                    message=f"refused: {plan.reason}",
                                    refused={plan.uuid: plan.reason})
            return actions.replay(plan)

        return await self._run(run)

    async def revoke(self, request: Request, caller: Caller) -> Response:
        body = _body(await json_body(request), RevokeBody)
        signal = normalize_signal(body.signal)  # UsageError: a 400 naming it
        actions = self._actions(caller)
        actions.guard("terminate" if body.terminate else "revoke")
        ids = await self._full_ids(body.task_ids)
        return await self._run(lambda: actions.revoke(ids, terminate=body.terminate,
                                                      signal=signal))

    async def purge(self, request: Request, caller: Caller) -> Response:
        """Purge a queue serve knows (its queue snapshot, the app's queues), with a broker
        connection of its own (the queue reader's stays with its thread)."""
        body = _body(await json_body(request), PurgeBody)
        snapshot = self.service.queues()
        known = {*self.service.known_queues,
                 *(q.name for q in (snapshot.queues if snapshot is not None else ()))}
        if body.queue not in known:
            raise ApiError(404, f"Unknown queue '{body.queue[:200]}'")
        actions = self._actions(caller)
        actions.guard("purge")

        def run() -> ActionResult:
            inspector = self._inspector((body.queue,))
            try:
                return actions.purge(body.queue, inspector.purge_tasks, expected=body.expected)
            finally:
                inspector.close()

        return await self._run(run)

    def _known_queue(self, name: str) -> None:
        """404 unless serve knows the queue: its app's queues, the queue snapshot's names and
        their dead-letter queues."""
        snapshot = self.service.queues()
        known = set(self.service.known_queues)
        for queue in snapshot.queues if snapshot is not None else ():
            known.add(queue.name)
            if queue.dead_letter:
                known.add(queue.dead_letter)
        if name not in known:
            raise ApiError(404, f"Unknown queue '{name[:200]}'")

    def _inspector(self, queues: tuple[str, ...]) -> BrokerInspector:
        """A broker connection of this request's own (the queue reader's stays with its
        thread); 503 when the broker cannot be opened."""
        from lazycelery.broker import open_inspector

        conf = self.service.app.conf
        try:
            if self.service.open_inspector is not None:
                opened: BrokerInspector = self.service.open_inspector(queues)
                return opened
            return open_inspector(str(conf.broker_url),
                                  dict(conf.broker_transport_options or {}), queues,
                                  ssl_options=conf.broker_use_ssl)
        except Exception as exc:
            raise ApiError(503, f"cannot open the broker: {error_line(exc)}") from None

    async def queue_bulk(self, request: Request, caller: Caller) -> Response:
        """Move, delete or requeue (dead letters) waiting messages of a known queue, by task
        id or all, with serve's broker connection; the answer is the result and the exact
        outcome (what was done, gone, not found, left in place, the broker's guarantee)."""
        action = str(request.path_params["action"])
        if action not in QUEUE_ACTIONS:
            raise ApiError(404, f"Unknown queue action '{action[:40]}' "
                                f"(one of: {', '.join(QUEUE_ACTIONS)})")
        body = _body(await json_body(request), QueueBulkBody)
        if (body.task_ids is None) == (not body.all):
            raise ApiError(400, "give task_ids, or all: true (every waiting message)",
                           parameter="task_ids")
        if action == "move":
            if body.target is None or body.target == body.queue:
                raise ApiError(400, "move needs target, another queue", parameter="target")
        elif body.target is not None:
            raise ApiError(400, f"{action} takes no target", parameter="target")
        self._known_queue(body.queue)
        actions = self._actions(caller)
        actions.guard(action)
        source, target = body.queue, body.target
        targets = (source, target) if target is not None else (source,)
        selection = Selection.of(body.task_ids, body.limit)

        def run() -> dict[str, Any]:
            inspector = self._inspector(targets)

            def operation() -> BulkOutcome:
                if target is not None:
                    return inspector.move(source, target, selection)
                if action == "delete":
                    return inspector.delete(source, selection)
                return inspector.requeue_dead(source, selection)

            try:
                result, outcome = bulk_action(actions, action, targets, operation)
            finally:
                inspector.close()
            return {**result_json(result),
                    "outcome": msgspec.to_builtins(outcome) if outcome is not None else None}

        return json_response(await run_in_threadpool(run))

    async def reveal(self, request: Request, caller: Caller) -> Response:
        """The real args, kwargs and result of one task from serve's result backend (masked
        everywhere else): operator only, refused read-only, audited as the API caller (that it
        was revealed, never what); answered with ``Cache-Control: no-store``, kept nowhere."""
        from lazycelery.core.reveal import reveal

        body = _body(await json_body(request), OneTask)
        self._actions(caller).guard("reveal")
        [task_id] = await self._full_ids([body.task_id])
        service = self.service
        revealed = await run_in_threadpool(lambda: reveal(
            service.app, task_id, read_only=service.read_only,
            environment=service.environment, audit_path=service.audit_path,
            user=f"api:{caller.name}", audit_sink=service.audit_sink))
        out: dict[str, Any] = {"uuid": revealed.uuid, "fields": dict(revealed.fields),
                               "reason": revealed.reason}
        if revealed.audit_error:
            out["audit_error"] = revealed.audit_error
        response = json_response(out)
        response.headers["Cache-Control"] = "no-store"
        return response

    async def worker(self, request: Request, caller: Caller) -> Response:
        action = str(request.path_params["action"])
        if action not in WORKER_ACTIONS:
            raise ApiError(404, f"Unknown worker action '{action[:40]}' "
                                f"(one of: {', '.join(WORKER_ACTIONS)})")
        body = _body(await json_body(request), WorkerBody)
        options = _options_of(action, body)  # before the workers are looked up: a bad body
        assert self.service.workers is not None
        for name in body.workers:
            if not self.service.workers.known(name):
                raise ApiError(404, f"Unknown worker '{name[:200]}'")
        actions = self._actions(caller)
        return await self._run(self._worker_call(actions, action, body, options))

    def _worker_call(self, actions: Actions, action: str, body: WorkerBody,
                     options: dict[str, Any]) -> Callable[[], ActionResult]:
        workers = body.workers
        if action == "shutdown":
            return lambda: actions.shutdown(workers)
        if action == "pool-restart":
            return lambda: actions.pool_restart(workers, modules=options.get("modules"),
                                                reload=body.reload)
        if action == "pool-grow":
            return lambda: actions.pool_grow(workers, body.n)
        if action == "pool-shrink":
            return lambda: actions.pool_shrink(workers, body.n)
        if action == "autoscale":
            if body.min is None or body.max is None:
                raise ApiError(400, "autoscale needs min and max",
                               parameter="min" if body.min is None else "max")
            low, high = body.min, body.max
            return lambda: actions.autoscale(workers, high, low)
        if action == "restart":
            if len(workers) != 1:
                raise ApiError(400, "restart: one worker at a time", parameter="workers")
            template = self.service.restart_command
            if not template:
                raise ApiError(404, "no restart command configured: set `restart = \"...\"` "
                                    "for the environment (docs/fleet.md)")
            return lambda: actions.restart(workers[0], template)
        if action in ("add-consumer", "cancel-consumer"):
            if body.queue is None:
                raise ApiError(400, f"{action} needs queue", parameter="queue")
            queue = body.queue
            if action == "add-consumer":
                return lambda: actions.add_consumer(
                    workers, queue, exchange=options.get("exchange"),
                    exchange_type=options.get("exchange_type", "direct"),
                    routing_key=options.get("routing_key"))
            return lambda: actions.cancel_consumer(workers, queue)
        if body.task_name is None:
            raise ApiError(400, f"{action} needs task_name", parameter="task_name")
        task = body.task_name
        if action == "rate-limit":
            if body.rate is None:
                raise ApiError(400, "rate-limit needs rate", parameter="rate")
            rate = body.rate
            return lambda: actions.rate_limit(workers, task, rate)
        return lambda: actions.time_limit(workers, task, soft=body.soft, hard=body.hard)


def action_routes(service: Service, guard: Guard) -> list[Route]:
    api = ActionsV1(service)

    def post(path: str, handler: Any, *, act: bool) -> Route:
        return Route(f"/api/v1/actions{path}", protect(guard, handler, act=act,
                                                       read_only=service.read_only),
                     methods=["POST"])

    return [
        post("/resolve", api.resolve, act=False),
        post("/locate", api.locate, act=False),
        post("/retry/plan", api.plan_retry, act=False),
        post("/replay/plan", api.plan_replay, act=False),
        post("/retry", api.retry, act=True),
        post("/replay", api.replay, act=True),
        post("/revoke", api.revoke, act=True),
        post("/purge", api.purge, act=True),
        post("/workers/{action}", api.worker, act=True),
        post("/queues/{action}", api.queue_bulk, act=True),
        post("/reveal", api.reveal, act=True),
    ]
