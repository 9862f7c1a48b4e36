"""Operator actions forwarded to a ``lazycelery serve`` (``--server URL``): the same methods as
``core.actions.Actions`` (what the dashboard's operator and the task commands call), each one a
POST to serve's ``/api/v1/actions`` (docs/serve.md). Serve guards, scopes and audits them with
the API caller's name; here only this process's own ``--read-only`` is checked, before anything
is sent.

The dry runs ask serve too: only serve can read a task's real args (the result backend, the
workers), and they never leave it, so a plan here carries placeholders of the right count
(``describe`` reads the same) and the send names task ids only; serve re-plans from them.

Failures are one line (``ActionError``): serve's refusal with its reason (a viewer token, serve
``--read-only``, an unknown worker), or the network's error; never a traceback. httpx is imported
on the first call, never by ``--help``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

from lazycelery.core.action_result import ActionError, ActionResult, Reply
from lazycelery.core.actions import QUEUED_STATES, WAITING_STATES, guard
from lazycelery.core.control_options import consumer_options, pool_options
from lazycelery.core.model import TaskRecord
from lazycelery.core.placement import Placement
from lazycelery.core.retry_plan import Refusal, RetryBatch, RetryPlan
from lazycelery.urls import error_line, mask_url

if TYPE_CHECKING:
    from lazycelery.broker.bulk import BulkOutcome
    from lazycelery.broker.model import QueueStats
    from lazycelery.core.index import TaskIndex
    from lazycelery.core.reveal import Revealed

__all__ = ["ACTIONS_PATH", "RemoteActions", "RemoteQueueOps", "result_from_json"]

ACTIONS_PATH: Final = "/api/v1/actions"
#: seconds to wait for serve's answer: it waits for worker replies and broker round trips
DEFAULT_TIMEOUT: Final = 30.0


def result_from_json(body: Mapping[str, Any], action: str) -> ActionResult:
    """An ``ActionResult`` from serve's answer (``serve.v1.actions.result_json``)."""
    replies = {str(k): Reply(bool(v.get("ok")), str(v.get("text", "")))
               for k, v in (body.get("replies") or {}).items() if isinstance(v, Mapping)}
    count = body.get("count")
    return ActionResult(
        str(body.get("action") or action), tuple(str(t) for t in body.get("targets") or ()),
        bool(body.get("ok")), replies=replies,
        missing=tuple(str(m) for m in body.get("missing") or ()),
        message=str(body.get("message") or ""),
        created={str(k): str(v) for k, v in (body.get("created") or {}).items()},
        refused={str(k): str(v) for k, v in (body.get("refused") or {}).items()},
        audit_error=(str(body["audit_error"]) if body.get("audit_error") else None),
        count=count if isinstance(count, int) else None,
        marked=tuple(str(m) for m in body.get("marked") or ()),
        options=dict(options) if isinstance(options := body.get("options"), Mapping) else {})


def _plan(body: Mapping[str, Any]) -> RetryPlan:
    # placeholders of the real count and keyword names: describe() reads as serve's would,
    # and nothing here can send them (the send names the task id; serve re-plans)
    return RetryPlan(
        uuid=str(body["uuid"]), name=str(body["name"]),
        args=(...,) * int(body.get("args_count") or 0),
        kwargs=dict.fromkeys(str(k) for k in body.get("kwargs_names") or ()),
        queue=body.get("queue"), root_id=str(body.get("root_id") or ""),
        parent_id=str(body.get("parent_id") or ""), source=str(body.get("source") or "serve"),
        state=str(body.get("state") or ""), notes=tuple(str(n) for n in body.get("notes") or ()),
        exchange=body.get("exchange"), routing_key=body.get("routing_key"))


def _refusal(body: Mapping[str, Any]) -> Refusal:
    return Refusal(str(body.get("uuid", "")), str(body.get("reason", "")))


def _read(server: str, what: str, token: str | None, timeout: float, verify: bool | str,
          prefix: str = "") -> dict[str, Any]:
    """``GET /api/v1/<what>`` of a serve as a JSON object; anything else is one ActionError
    line (``prefix`` first) naming the masked server."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    label = mask_url(server)
    try:
        response = httpx.get(f"{server}/api/v1/{what}", headers=headers, timeout=timeout,
                             verify=verify)
        body = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError) as exc:
        raise ActionError(f"{prefix}cannot read the {what} of {label}: "
                          f"{error_line(exc, limit=200)}") from None
    if not isinstance(body, dict):
        raise ActionError(f"{prefix}{label} answered {response.status_code} for its {what}")
    return body


class RemoteActions:
    """``Actions`` through a serve. ``index`` (the remote dashboard's) gets the REVOKED and
    PURGED marks serve made in its own index, so the viewer's list agrees at once."""

    #: no celery app here: the workflow links (``core.workflow_remote``), reveal, a queue
    #: move and a worker restart are asked of serve
    app = None
    #: the worker restart runs serve's own configured command (the dashboard asks first)
    restarts_on_serve = True

    def __init__(self, server: str, token: str | None, *, read_only: bool = False,
                 index: TaskIndex | None = None, timeout: float = DEFAULT_TIMEOUT,
                 verify: bool | str = True) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.read_only = read_only
        self.index = index
        self.timeout = timeout
        self.verify = verify
        self.label = mask_url(self.server)
        #: what the audit log calls the cluster: serve writes it, under the caller's name
        self.environment = self.label

    # ---------------------------------------------------------------- the wire

    def _post(self, action: str, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """serve's JSON answer, or ``ActionError`` with one line saying why not."""
        try:
            import httpx
        except ImportError:
            raise ActionError(f"{action}: --server needs httpx: pip install "
                              "'lazycelery[remote]'") from None
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = httpx.post(f"{self.server}{ACTIONS_PATH}{path}", json=dict(body),
                                  headers=headers, timeout=self.timeout, verify=self.verify)
        except httpx.ConnectError as exc:
            raise ActionError(f"{action}: cannot reach {self.label}: "
                              f"{error_line(exc, limit=200)}; nothing was sent") from None
        except httpx.HTTPError as exc:
            # sent, maybe carried out: serve's audit log says (GET /api/v1/audit)
            raise ActionError(f"{action}: no answer from {self.label}: "
                              f"{error_line(exc, limit=200)}; it may have run: see serve's "
                              "audit log") from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise ActionError(f"{action}: {self.label} answered {response.status_code} "
                              "without JSON: is it a lazycelery serve?")
        if response.status_code == 200:
            return answer
        reason = str(answer.get("error") or f"status {response.status_code}")[:300]
        if response.status_code == 401:
            raise ActionError(f"{action}: serve refused the credentials ({reason}): pass an "
                              "operator token with --token or $LAZYCELERY_TOKEN")
        if response.status_code in (404, 409):  # an unknown or ambiguous name: serve's words
            raise ActionError(f"{action}: {reason}")
        if response.status_code < 500:
            raise ActionError(f"{action}: serve refused: {reason}")
        raise ActionError(f"{action}: serve failed ({response.status_code}): {reason}")

    def _act(self, action: str, path: str, body: Mapping[str, Any]) -> ActionResult:
        guard(self.read_only, action)  # this process's --read-only: refused before sending
        return result_from_json(self._post(action, path, body), action)

    # ---------------------------------------------------------------- retry / replay

    def resolve_task_ids(self, task_ids: Sequence[str], action: str = "resolve"
                         ) -> list[tuple[str, str]]:
        """(given, full id) for each id, a unique prefix resolved by serve (its index, then
        its result backend); ``ActionError`` naming the prefix when none or several match."""
        body = self._post(action, "/resolve", {"task_ids": list(task_ids)})
        pairs = [(str(p.get("given", "")), str(p.get("task_id", "")))
                 for p in body.get("resolved") or () if isinstance(p, Mapping)]
        if len(pairs) != len(task_ids):
            raise ActionError(f"{action}: {self.label} answered {len(pairs)} ids for "
                              f"{len(task_ids)}")
        return pairs

    def locate(self, task_ids: Sequence[str]) -> Placement:
        body = self._post("locate", "/locate", {"task_ids": list(task_ids)})
        return Placement(holders=dict(body.get("holders") or {}),
                         held_as=dict(body.get("held_as") or {}),
                         online=tuple(body.get("online") or ()),
                         source=f"serve ({body.get('source', '?')})")

    def plan_retries(self, targets: Iterable[str | TaskRecord]) -> RetryBatch:
        ids = [t.uuid if isinstance(t, TaskRecord) else str(t) for t in targets]
        body = self._post("retry", "/retry/plan", {"task_ids": ids})
        return RetryBatch(plans=tuple(_plan(p) for p in body.get("plans") or ()),
                          refusals=tuple(_refusal(r) for r in body.get("refusals") or ()))

    def retry(self, batch: RetryBatch | RetryPlan) -> ActionResult:
        if isinstance(batch, RetryPlan):
            batch = RetryBatch(plans=(batch,), refusals=())
        if not batch.plans:  # nothing to send: serve is not asked
            guard(self.read_only, "retry")
            return ActionResult("retry", batch.targets, False, message="0 sent, all refused",
                                refused={r.uuid: r.reason for r in batch.refusals})
        result = self._act("retry", "/retry", {"task_ids": [p.uuid for p in batch.plans]})
        if not batch.refusals:
            return result
        # refused here (one retry per job, ...): carried into the result, as Actions does
        refused = {**{r.uuid: r.reason for r in batch.refusals}, **result.refused}
        return replace(result, ok=False, refused=refused,
                       targets=(*result.targets, *(r.uuid for r in batch.refusals)))

    def plan_replay(self, target: str | TaskRecord) -> RetryPlan | Refusal:
        uuid = target.uuid if isinstance(target, TaskRecord) else str(target)
        body = self._post("replay", "/replay/plan", {"task_id": uuid})
        if isinstance(body.get("plan"), Mapping):
            return _plan(body["plan"])
        return _refusal(body.get("refusal") or {"uuid": uuid, "reason": "refused by serve"})

    def replay(self, plan: RetryPlan) -> ActionResult:
        return self._act("replay", "/replay", {"task_id": plan.uuid})

    # ---------------------------------------------------------------- revoke / purge

    def revoke(self, task_ids: Sequence[str], *, terminate: bool = False,
               signal: str | int = "SIGTERM", placement: Placement | None = None) -> ActionResult:
        """serve locates the tasks again (its index is the newest) and addresses them."""
        action = "terminate" if terminate else "revoke"
        result = self._act(action, "/revoke", {"task_ids": list(task_ids),
                                               "terminate": terminate, "signal": str(signal)})
        return self._marked(result, WAITING_STATES, "revoked by lazycelery serve", "revoked")

    def terminate(self, task_ids: Sequence[str], *, signal: str | int = "SIGTERM",
                  placement: Placement | None = None) -> ActionResult:
        return self.revoke(task_ids, terminate=True, signal=signal, placement=placement)

    def purge(self, queue: str, purge: Callable[[str], Any] | None = None, *,
              expected: int | None = None) -> ActionResult:
        """serve purges with its own broker connection (``purge`` is not called)."""
        result = self._act("purge", "/purge", {"queue": queue, "expected": expected})
        return self._marked(result, QUEUED_STATES, f"purged from queue {queue} by lazycelery "
                                                   "serve", "purged")

    def _marked(self, result: ActionResult, states: frozenset[str], note: str,
                stamp: str) -> ActionResult:
        """serve's marks applied to this viewer's index: serve sends no event for them."""
        if self.index is None or not result.marked:
            return result
        import time

        now = time.time()
        marked = tuple(uuid for uuid in result.marked if self.index.mark_by_action(
            uuid, states, note, **{stamp: now}) is not None)
        return replace(result, marked=marked)

    # ---------------------------------------------------------------- workers

    def _workers(self, action: str, workers: Sequence[str], **extra: Any) -> ActionResult:
        return self._act(action, f"/workers/{action}", {"workers": list(workers), **extra})

    def resolve_workers(self, names: Sequence[str], action: str) -> list[str]:
        """Full worker names: ``w1`` is the one worker serve knows as ``w1@host`` (its
        ``/api/v1/workers``); a full name as it is. ``ActionError`` naming the short name when
        no worker or several have it."""
        short = [n for n in names if "@" not in n]
        if not short:
            return list(dict.fromkeys(names))
        body = _read(self.server, "workers", self.token, self.timeout, self.verify,
                     f"{action}: ")
        known = sorted({str(w.get("hostname")) for w in body.get("workers") or ()
                        if isinstance(w, Mapping) and w.get("hostname")})
        out: list[str] = []
        for name in names:
            matches = [name] if "@" in name else [h for h in known
                                                  if h.partition("@")[0] == name]
            if len(matches) > 1:
                raise ActionError(f"{action}: worker {name!r} is ambiguous at {self.label}: "
                                  f"{', '.join(matches)}")
            if not matches:
                raise ActionError(f"{action}: no worker named {name!r} at {self.label} "
                                  f"(known: {', '.join(known[:10]) or 'none'})")
            out.append(matches[0])
        return list(dict.fromkeys(out))

    def shutdown(self, workers: Sequence[str]) -> ActionResult:
        return self._workers("shutdown", workers)

    def pool_restart(self, workers: Sequence[str], *, modules: Sequence[str] | None = None,
                     reload: bool = False) -> ActionResult:
        """``modules`` and ``reload`` as serve's worker gets them (checked here first, and
        again by serve: a dotted Python name each)."""
        return self._workers("pool-restart", workers, **pool_options(modules, reload))

    def pool_grow(self, workers: Sequence[str], n: int = 1) -> ActionResult:
        return self._workers("pool-grow", workers, n=n)

    def pool_shrink(self, workers: Sequence[str], n: int = 1) -> ActionResult:
        return self._workers("pool-shrink", workers, n=n)

    def autoscale(self, workers: Sequence[str], max: int, min: int) -> ActionResult:
        return self._workers("autoscale", workers, max=max, min=min)

    def add_consumer(self, workers: Sequence[str], queue: str, *, exchange: str | None = None,
                     exchange_type: str = "direct",
                     routing_key: str | None = None) -> ActionResult:
        """The exchange, its type and the routing key go with the queue (checked here first,
        and again by serve); serve's audit line records them."""
        options = consumer_options(exchange, exchange_type, routing_key)
        return self._workers("add-consumer", workers, queue=queue, **options)

    def cancel_consumer(self, workers: Sequence[str], queue: str) -> ActionResult:
        return self._workers("cancel-consumer", workers, queue=queue)

    def rate_limit(self, workers: Sequence[str], task_name: str, rate: str) -> ActionResult:
        return self._workers("rate-limit", workers, task_name=task_name, rate=str(rate))

    def time_limit(self, workers: Sequence[str], task_name: str, *, soft: float | None = None,
                   hard: float | None = None, clear: bool = False) -> ActionResult:
        if clear:  # 0 removes a limit, as on serve's side (Actions.time_limit)
            soft, hard = 0.0, 0.0
        return self._workers("time-limit", workers, task_name=task_name, soft=soft, hard=hard)

    def restart(self, worker: str, template: str | None,
                timeout: float | None = None) -> ActionResult:
        """serve runs its own configured restart command (``template`` is this side's)."""
        return self._workers("restart", [worker])

    # ---------------------------------------------------------------- queues

    def queue_bulk(self, action: str, source: str, target: str | None,
                   ids: Sequence[str] | None, limit: int = 10_000
                   ) -> tuple[ActionResult, BulkOutcome | None]:
        """Move (to ``target``), delete or requeue-dead the waiting messages of ``source`` on
        serve (``ids`` None: all of them): the result and the outcome message by message."""
        import msgspec

        from lazycelery.broker.bulk import BulkOutcome

        guard(self.read_only, action)
        body: dict[str, Any] = {"queue": source, "limit": limit}
        body.update({"all": True} if ids is None else {"task_ids": list(ids)})
        if target is not None:
            body["target"] = target
        answer = self._post(action, f"/queues/{action}", body)
        outcome = None
        if isinstance(answer.get("outcome"), Mapping):
            try:
                outcome = msgspec.convert(answer["outcome"], BulkOutcome)
            except msgspec.ValidationError:
                outcome = None
        return result_from_json(answer, action), outcome

    # ---------------------------------------------------------------- reveal

    def reveal(self, task_id: str) -> Revealed:
        """The real values of one task, read by serve from its result backend (audited there
        with this token's name); shown, never kept."""
        from lazycelery.core.reveal import Revealed

        guard(self.read_only, "reveal")
        body = self._post("reveal", "/reveal", {"task_id": task_id})
        fields = body.get("fields") if isinstance(body.get("fields"), Mapping) else {}
        return Revealed(str(body.get("uuid") or task_id),
                        {str(k): str(v) for k, v in (fields or {}).items()},
                        str(body["reason"]) if body.get("reason") else None,
                        str(body["audit_error"]) if body.get("audit_error") else None)


class RemoteQueueOps:
    """The purge, move and requeue dialogs' fresh count, from serve's ``/api/v1/queues``; the
    actions themselves are serve's (``RemoteActions.purge``, ``RemoteActions.queue_bulk``)."""

    #: the actions on messages are forwarded (``RemoteActions.queue_bulk``), not run here
    forwarded = True
    #: messages are not read over the wire: the peek shows what the events say is waiting
    can_peek = False

    def __init__(self, server: str, token: str | None, *, timeout: float = 10.0,
                 verify: bool | str = True) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.verify = verify

    def stats(self, queue: str) -> QueueStats:
        from lazycelery.broker.model import QueueStats

        label = mask_url(self.server)
        body = _read(self.server, "queues", self.token, self.timeout, self.verify)
        for row in body.get("queues") or ():
            if isinstance(row, Mapping) and row.get("name") == queue:
                ready, reserved = row.get("ready"), row.get("reserved")
                return QueueStats(name=queue, ready=ready if isinstance(ready, int) else None,
                                  reserved=reserved if isinstance(reserved, int) else None)
        raise ActionError(f"{label} does not report queue {queue!r}")

    def purge_tasks(self, queue: str) -> tuple[int, list[str] | None]:
        raise ActionError("purge: the purge runs on serve (RemoteActions.purge)")
