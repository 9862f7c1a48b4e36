"""Operator actions (retry, revoke, terminate, purge, worker control), executed: guarded, scoped,
audited. What they plan with is in ``retry_plan`` (the retry dry run) and ``placement`` (which
workers hold the tasks); what they return is ``action_result``. Their public names are importable
from here too.

Three rules hold for everything here:

* nothing changes a cluster in read-only mode (``guard``);
* every control command that changes something carries ``destination=[...]``: the worker that
  holds the task when it is known, else the online workers (from the index, or from a read-only
  ``inspect`` broadcast when there is no index) - never a bare broadcast, which would reach every
  worker on the vhost, other apps' included (CELERY-INTERNALS §4);
* every executed action appends one audit line (``lazycelery.core.audit``).

Calls block for up to ``timeout`` seconds (control replies) or a broker round trip (retry):
the dashboard runs them off its UI thread. celery is imported lazily.
"""

from __future__ import annotations

import dataclasses
import math
import re
import signal as _signal
import time
import uuid as _uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from lazycelery.core import audit
from lazycelery.core.action_result import ActionError, ActionResult, ReadOnlyError, Reply
from lazycelery.core.control_options import consumer_options, pool_options
from lazycelery.core.model import PENDING, RECEIVED, RETRY, TaskRecord
from lazycelery.core.placement import (
    Placement,
    locate_by_inspect,
    locate_in_index,
    online_workers,
    resolve_task_ids,
    resolve_workers,
)
from lazycelery.core.retry_plan import (
    RETRYABLE_STATES,
    Refusal,
    RetryBatch,
    RetryPlan,
    one_retry_per_job,
    plan_retries,
    plan_retry,
)
from lazycelery.errors import UsageError
from lazycelery.text import counted, number
from lazycelery.urls import error_line

if TYPE_CHECKING:
    from celery import Celery

    from lazycelery.config import Settings
    from lazycelery.core.index import TaskIndex

__all__ = [
    "QUEUED_STATES",
    "RETRYABLE_STATES",
    "TYPED_CONFIRM_THRESHOLD",
    "WAITING_STATES",
    "ActionError",
    "ActionResult",
    "Actions",
    "Placement",
    "ReadOnlyError",
    "Refusal",
    "Reply",
    "RetryBatch",
    "RetryPlan",
    "describe_limits",
    "environment_label",
    "guard",
    "locate_by_inspect",
    "locate_in_index",
    "normalize_signal",
    "one_retry_per_job",
    "online_workers",
    "plan_retries",
    "plan_retry",
    "resolve_task_ids",
    "resolve_workers",
    "restart_worker",
]

#: A purge of more messages than this is confirmed by typing the queue name (issue 5).
TYPED_CONFIRM_THRESHOLD: Final = 1000
#: A task in one of these states is waiting (in a queue, or held by a worker before it runs): a
#: confirmed revoke means it will not run. A STARTED one keeps running unless terminated.
WAITING_STATES: Final = frozenset({PENDING, RECEIVED, RETRY})
#: A task whose message sits in a broker queue (sent, or re-sent for a retry, not received).
QUEUED_STATES: Final = frozenset({PENDING, RETRY})
_RATE = re.compile(r"\d+(\.\d+)?(/[smh])?")


def guard(read_only: bool | Settings, action: str) -> None:
    """Raise ReadOnlyError when ``read_only`` (a flag or a Settings) forbids changes."""
    flag = read_only if isinstance(read_only, bool) else bool(read_only.read_only)
    if flag:
        raise ReadOnlyError(
            f"{action}: refused: read-only mode (--read-only or read_only = true in the config)"
        )


def environment_label(settings: Settings) -> str:
    """What the audit log calls the cluster: the config environment, else the masked broker."""
    return settings.env_name or settings.masked_broker()


def normalize_signal(value: str | int) -> str:
    """'TERM', 'sigkill', 9 -> 'SIGTERM', 'SIGKILL', 'SIGKILL'; UsageError when unknown."""
    try:
        if isinstance(value, int) or str(value).isdigit():
            return _signal.Signals(int(value)).name
        name = str(value).upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        return _signal.Signals[name].name
    except (KeyError, ValueError):
        raise UsageError(f"unknown signal {value!r} (e.g. SIGTERM, SIGKILL, SIGINT)") from None


def _collect(
    replies: Any, destination: Sequence[str]
) -> tuple[dict[str, Reply], tuple[str, ...]]:
    """Control replies ``[{host: {'ok'|'error': text}}]`` -> per-worker Reply, and who is missing."""
    out: dict[str, Reply] = {}
    for reply in replies or []:
        if not isinstance(reply, Mapping):
            continue
        for host, body in reply.items():
            if isinstance(body, Mapping) and "error" in body:
                out[str(host)] = Reply(False, str(body["error"]))
            elif isinstance(body, Mapping) and "ok" in body:
                out[str(host)] = Reply(True, str(body["ok"]))
            else:
                out[str(host)] = Reply(True, str(body))
    missing = tuple(h for h in destination if h not in out)
    return out, missing


def _destination(workers: Sequence[str]) -> list[str]:
    dest = list(dict.fromkeys(w for w in workers if w))
    if not dest:
        raise UsageError("no worker named: control commands are never broadcast to every worker")
    return dest


class Actions:
    """Executes actions against one cluster: guard, destination, replies, audit line.

    ``index`` (the dashboard's TaskIndex) locates tasks and the online workers; without one
    (the CLI) a read-only ``inspect`` broadcast does.
    """

    def __init__(
        self,
        app: Celery,
        *,
        read_only: bool = False,
        environment: str | None = None,
        index: TaskIndex | None = None,
        timeout: float = 1.0,
        audit_path: Path | None = None,
        audit_sink: audit.AuditSink | None = None,
        user: str | None = None,
    ) -> None:
        if not timeout > 0:
            raise UsageError("timeout must be positive")
        self.app = app
        self.read_only = read_only
        self.environment = environment
        self.index = index
        self.timeout = timeout
        self.audit_path = audit_path
        #: also writes each entry into the history store, when one is configured
        self.audit_sink = audit_sink
        #: who asked, when not this process's OS user (an HTTP API caller), for the audit log
        self.user = user
        #: routing rules (``[[policies.route]]``): the queue a re-sent (retried or replayed)
        #: task of this name goes to; None from it, or no rules: the task's own routing
        self.route: Callable[[str], str | None] | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        index: TaskIndex | None = None,
        timeout: float = 1.0,
        audit_path: Path | None = None,
        audit_sink: audit.AuditSink | None = None,
    ) -> Actions:
        return cls(settings.celery_app(), read_only=settings.read_only,
                   environment=environment_label(settings), index=index, timeout=timeout,
                   audit_path=audit_path, audit_sink=audit_sink)

    # ---------------------------------------------------------------- plumbing

    def guard(self, action: str) -> None:
        guard(self.read_only, action)

    def _audited(self, result: ActionResult) -> ActionResult:
        try:
            entry = audit.record(result.action, result.targets, result.to_json(),
                                 self.environment, path=self.audit_path,
                                 user=self.user)
        except OSError as exc:
            return replace(result, audit_error=str(exc))
        if self.audit_sink is not None:
            try:
                self.audit_sink(entry)
            except Exception as exc:  # the file has it: say the store does not
                return replace(result, audit_error=f"in the file, not in the store: "
                                                   f"{error_line(exc)}")
        return result

    def _control(self, action: str, command: str, workers: Sequence[str],
                 targets: Sequence[str] | None = None, *,
                 options: Mapping[str, Any] | None = None, **arguments: Any) -> ActionResult:
        """``options``: what the audit line records of ``arguments`` beyond the targets."""
        self.guard(action)
        dest = _destination(workers)
        method = getattr(self.app.control, command)
        try:
            replies = method(destination=dest, reply=True, timeout=self.timeout, **arguments)
        except Exception as exc:
            result = ActionResult(action, tuple(targets or dest), False,
                                  message=f"not sent: {error_line(exc)}",
                                  options=dict(options or {}))
            return self._audited(result)
        got, missing = _collect(replies, dest)
        ok = bool(got) and all(r.ok for r in got.values()) and not missing
        result = ActionResult(action, tuple(targets or dest), ok, replies=got, missing=missing,
                              message=_summary(got, missing), options=dict(options or {}))
        return self._audited(result)

    def locate(self, task_ids: Sequence[str]) -> Placement:
        """Where the tasks are: from the index when there is one, else by inspect."""
        if self.index is not None:
            return locate_in_index(self.index, task_ids)
        return locate_by_inspect(self.app, task_ids, self.timeout)

    # ---------------------------------------------------------------- retry

    def plan_retries(self, targets: Iterable[str | TaskRecord]) -> RetryBatch:
        """The dry run: read-only, allowed in read-only mode, not audited."""
        return plan_retries(targets, self.app, index=self.index, timeout=self.timeout)

    def retry(self, batch: RetryBatch | RetryPlan) -> ActionResult:
        """Re-send every planned task under a new id, keeping its queue and workflow ids
        (root_id = the original root, parent_id = the failed run, so the new run shows as its
        child); refusals are carried into the result."""
        if isinstance(batch, RetryPlan):
            batch = RetryBatch(plans=(batch,), refusals=())
        self.guard("retry")
        replies: dict[str, Reply] = {}
        created: dict[str, str] = {}
        for plan in batch.plans:
            new_id = str(_uuid.uuid4())
            plan = self._routed(plan)
            options: dict[str, Any] = {"queue": plan.queue} if plan.queue else {}
            try:
                # a tuple, as .delay() sends: the new run's argsrepr reads (5,), not [5]
                self.app.send_task(plan.name, args=tuple(plan.args), kwargs=dict(plan.kwargs),
                                   task_id=new_id, root_id=plan.root_id, parent_id=plan.parent_id,
                                   **options)
            except Exception as exc:
                replies[plan.uuid] = Reply(False, f"not sent: {error_line(exc)}")
                continue
            created[plan.uuid] = new_id
            replies[plan.uuid] = Reply(True, f"sent as {new_id} to {plan.queue or 'default routing'}")
        refused = {r.uuid: r.reason for r in batch.refusals}
        sent = len(created)
        ok = sent == len(batch.plans) and sent > 0 and not refused
        message = f"{number(sent)} of {number(len(batch.targets))} sent" + (
            f", {number(len(refused))} refused" if refused else "")
        result = ActionResult("retry", batch.targets, ok, replies=replies, message=message,
                              created=created, refused=refused)
        return self._audited(result)

    def _routed(self, plan: RetryPlan) -> RetryPlan:
        """``plan`` sent where the routing rules say (a queue, not the original exchange and
        routing key), or as it is."""
        queue = self.route(plan.name) if self.route is not None else None
        if not queue or queue == plan.queue:
            return plan
        return dataclasses.replace(plan, queue=queue, exchange=None, routing_key=None)

    # ---------------------------------------------------------------- replay

    def plan_replay(self, target: str | TaskRecord) -> RetryPlan | Refusal:
        """The replay dry run: read-only, allowed in read-only mode, not audited."""
        from lazycelery.core.replay import plan_replay

        return plan_replay(target, self.app, index=self.index, timeout=self.timeout)

    def replay(self, plan: RetryPlan) -> ActionResult:
        """Send ``plan`` again under a new id with its routing (queue, exchange, routing key),
        root_id = the original's root and parent_id = the original, so the new run shows as
        its child; the header ``lazycelery_replay_of`` names the original."""
        from lazycelery.core.replay import REPLAY_HEADER

        self.guard("replay")
        new_id = str(_uuid.uuid4())
        plan = self._routed(plan)
        options: dict[str, Any] = {k: v for k, v in (
            ("queue", plan.queue), ("exchange", plan.exchange),
            ("routing_key", plan.routing_key)) if v}
        where = plan.queue or plan.routing_key or "default routing"
        try:
            self.app.send_task(plan.name, args=tuple(plan.args), kwargs=dict(plan.kwargs),
                               task_id=new_id, root_id=plan.root_id, parent_id=plan.uuid,
                               headers={REPLAY_HEADER: plan.uuid}, **options)
        except Exception as exc:
            return self._audited(ActionResult(
                "replay", (plan.uuid,), False, message=f"not sent: {error_line(exc)}",
                replies={plan.uuid: Reply(False, f"not sent: {error_line(exc)}")}))
        text = f"replay of {plan.uuid} sent as {new_id} to {where}"
        return self._audited(ActionResult("replay", (plan.uuid,), True, message=text,
                                          replies={plan.uuid: Reply(True, text)},
                                          created={plan.uuid: new_id}))

    # ---------------------------------------------------------------- revoke / terminate

    def revoke(
        self,
        task_ids: Sequence[str],
        *,
        terminate: bool = False,
        signal: str | int = "SIGTERM",
        placement: Placement | None = None,
    ) -> ActionResult:
        """Revoke (and with ``terminate``, kill) tasks at the worker holding each, else at the
        online workers. Revoked ids live in each worker's memory: a worker started later, or
        one that did not answer, will still run a revoked task it receives."""
        action = "terminate" if terminate else "revoke"
        self.guard(action)
        ids = list(dict.fromkeys(task_ids))
        if not ids:
            raise UsageError(f"{action}: no task id given")
        signame = normalize_signal(signal)
        placement = placement or self.locate(ids)
        groups: dict[tuple[str, ...], list[str]] = {}
        refused: dict[str, str] = {}
        for task_id in ids:
            dest = placement.destination(task_id)
            if dest:
                groups.setdefault(dest, []).append(task_id)
            else:
                refused[task_id] = "no online worker to tell (none answered); nothing was sent"
        replies: dict[str, Reply] = {}
        missing: list[str] = []
        errors: list[str] = []
        confirmed: dict[str, tuple[str, ...]] = {}
        for dest, group in groups.items():
            try:
                raw = self.app.control.revoke(group, destination=list(dest), terminate=terminate,
                                              signal=signame, reply=True, timeout=self.timeout)
            except Exception as exc:
                errors.append(error_line(exc))
                continue
            got, lost = _collect(raw, dest)
            if not lost and got and all(r.ok for r in got.values()):
                confirmed.update(dict.fromkeys(group, dest))
            for host, reply in got.items():
                previous = replies.get(host)
                replies[host] = reply if previous is None else Reply(
                    previous.ok and reply.ok, f"{previous.text}; {reply.text}")
            missing.extend(h for h in lost if h not in missing)
        ok = bool(replies) and all(r.ok for r in replies.values()) and not missing and not errors \
            and not refused
        message = _summary(replies, tuple(missing))
        if terminate:
            killed = _terminated_ids(replies.values(), ids)
            message = (f"terminated {len(killed)} of {len(ids)} with {signame}; " + message
                       + ("" if len(killed) == len(ids) else
                          "; the rest were not running on a worker that answered (flagged revoked)"))
        if errors:
            message = f"not sent: {errors[0]}; " + message
        marked = self._mark_revoked(confirmed)
        result = ActionResult(action, tuple(ids), ok, replies=replies, missing=tuple(missing),
                              message=message, refused=refused, marked=marked)
        return self._audited(result)

    def _mark_revoked(self, confirmed: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
        """REVOKED in the index for waiting tasks every addressed worker confirmed: a task in a
        queue sends no event until a worker takes its message, maybe much later."""
        if self.index is None:
            return ()
        now = time.time()
        marked = [uuid for uuid, workers in confirmed.items() if self.index.mark_by_action(
            uuid, WAITING_STATES, f"revoked by lazycelery, confirmed by {', '.join(workers)}",
            revoked=now) is not None]
        return tuple(marked)

    def terminate(self, task_ids: Sequence[str], *, signal: str | int = "SIGTERM",
                  placement: Placement | None = None) -> ActionResult:
        return self.revoke(task_ids, terminate=True, signal=signal, placement=placement)

    # ---------------------------------------------------------------- queues

    def purge(self, queue: str, purge: Callable[[str], int | tuple[int, Sequence[str] | None]],
              *, expected: int | None = None) -> ActionResult:
        """Purge ``queue`` with the broker module's ``purge`` (all priority sub-lists), under the
        same guard and audit as every other action. ``expected`` is the count the user confirmed;
        above ``TYPED_CONFIRM_THRESHOLD`` the caller must have had the queue name typed.

        ``purge`` may also return the task ids of the messages it removed (``purge_tasks``):
        those tasks are then PURGED in the index, where they would stay PENDING forever."""
        self.guard("purge")
        _named(queue, "purge: queue")
        try:
            outcome = purge(queue)
        except Exception as exc:
            return self._audited(ActionResult("purge", (queue,), False,
                                              message=f"not purged: {error_line(exc)}"))
        removed, ids = outcome if isinstance(outcome, tuple) else (outcome, None)
        message = f"{number(removed)} message{'' if removed == 1 else 's'} removed"
        if expected is not None and expected != removed:
            message += f" ({number(expected)} were shown: messages arrived or left meanwhile)"
        marked = self._mark_purged(queue, ids or ())
        if marked:
            message += f"; {counted_tasks(len(marked))} marked PURGED"
        result = ActionResult("purge", (queue,), True, replies={queue: Reply(True, message)},
                              message=message, count=removed, marked=marked)
        return self._audited(result)

    def _mark_purged(self, queue: str, ids: Iterable[str]) -> tuple[str, ...]:
        if self.index is None:
            return ()
        now = time.time()
        note = f"purged from queue {queue} by lazycelery"
        return tuple(uuid for uuid in dict.fromkeys(ids) if self.index.mark_by_action(
            uuid, QUEUED_STATES, note, purged=now) is not None)

    # ---------------------------------------------------------------- workers

    def shutdown(self, workers: Sequence[str]) -> ActionResult:
        """Warm shutdown: running tasks finish first. The worker exits before it can reply, so
        the workers are pinged first and only those answering are told (and reported)."""
        self.guard("shutdown")
        dest = _destination(workers)
        try:
            pongs = self.app.control.ping(destination=dest, timeout=self.timeout)
            alive, missing = _collect(pongs, dest)
            if alive:
                self.app.control.shutdown(destination=list(alive), reply=False)
        except Exception as exc:
            return self._audited(ActionResult("shutdown", tuple(dest), False,
                                              message=f"not sent: {error_line(exc)}"))
        replies = {h: Reply(True, "shutdown requested (running tasks finish first)") for h in alive}
        result = ActionResult("shutdown", tuple(dest), bool(alive) and not missing, replies=replies,
                              missing=missing, message=_summary(replies, missing))
        return self._audited(result)

    def pool_restart(self, workers: Sequence[str], *, modules: Sequence[str] | None = None,
                     reload: bool = False) -> ActionResult:
        """Needs ``worker_pool_restarts = True`` on the worker (else it replies an error).
        ``modules`` are imported in the worker (reloaded with ``reload``; ``reload`` without
        them reloads every task module): dotted Python names only (``BadOption``)."""
        options = pool_options(modules, reload)
        return self._control("pool-restart", "pool_restart", workers, options=options,
                             modules=options.get("modules"), reload=reload)

    def pool_grow(self, workers: Sequence[str], n: int = 1) -> ActionResult:
        _positive(n, "pool-grow: n")
        return self._control("pool-grow", "pool_grow", workers, n=n)

    def pool_shrink(self, workers: Sequence[str], n: int = 1) -> ActionResult:
        _positive(n, "pool-shrink: n")
        return self._control("pool-shrink", "pool_shrink", workers, n=n)

    def autoscale(self, workers: Sequence[str], max: int, min: int) -> ActionResult:
        """Needs a worker started with ``--autoscale`` (else it replies an error)."""
        _positive(max, "autoscale: max")
        if min < 0 or min > max:
            raise UsageError(f"autoscale: need 0 <= min <= max (got min={min}, max={max})")
        return self._control("autoscale", "autoscale", workers, max=max, min=min)

    def add_consumer(self, workers: Sequence[str], queue: str, *, exchange: str | None = None,
                     exchange_type: str = "direct", routing_key: str | None = None) -> ActionResult:
        _named(queue, "add-consumer: queue")
        options = consumer_options(exchange, exchange_type, routing_key)  # BadOption
        return self._control("add-consumer", "add_consumer", workers, targets=_with(workers, queue),
                             options=options, queue=queue, exchange=exchange,
                             exchange_type=exchange_type, routing_key=routing_key)

    def cancel_consumer(self, workers: Sequence[str], queue: str) -> ActionResult:
        _named(queue, "cancel-consumer: queue")
        return self._control("cancel-consumer", "cancel_consumer", workers,
                             targets=_with(workers, queue), queue=queue)

    def rate_limit(self, workers: Sequence[str], task_name: str, rate: str) -> ActionResult:
        """``rate`` like ``10/m``, ``0.5/s``, ``100`` (per second); ``0`` removes the limit."""
        _named(task_name, "rate-limit: task")
        if not _RATE.fullmatch(str(rate)):
            raise UsageError(f"rate-limit: bad rate {rate!r} (e.g. 10/m, 2/s, 100/h, 0 = no limit)")
        return self._control("rate-limit", "rate_limit", workers,
                             targets=_with(workers, f"{task_name}={rate}"),
                             task_name=task_name, rate_limit=str(rate))

    def time_limit(self, workers: Sequence[str], task_name: str, *, soft: float | None = None,
                   hard: float | None = None, clear: bool = False) -> ActionResult:
        """Soft and hard time limits in seconds for a task type (applies to new runs).

        Celery's ``time_limit`` command sets both limits at once, so a limit not given (None)
        or given as 0 is removed; ``clear=True`` removes both. A removed limit falls back to the
        worker's own (``--time-limit`` / ``task_time_limit``)."""
        _named(task_name, "time-limit: task")
        if clear and (soft or hard):
            raise UsageError("time-limit: --clear removes both limits: give no --soft/--hard")
        if soft is None and hard is None and not clear:
            raise UsageError("time-limit: give --soft and/or --hard seconds, or --clear")
        for label, value in (("soft", soft), ("hard", hard)):
            if value is not None and (not math.isfinite(value) or value < 0):
                raise UsageError(f"time-limit: {label} must be a positive number of seconds "
                                 "(0 removes it)")
        soft, hard = soft or None, hard or None  # 0 means no limit, as celery's None does
        if soft is not None and hard is not None and soft > hard:
            raise UsageError(f"time-limit: soft ({soft:g}s) must not exceed hard ({hard:g}s)")
        return self._control("time-limit", "time_limit", workers,
                             targets=_with(workers, f"{task_name} {describe_limits(soft, hard)}"),
                             task_name=task_name, soft=soft, hard=hard)

    def restart(self, worker: str, template: str | None,
                timeout: float | None = None) -> ActionResult:
        """The environment's restart command for ``worker`` (``restart_worker``)."""
        return restart_worker(self, worker, template, timeout)


def describe_limits(soft: float | None, hard: float | None) -> str:
    """``soft=30s hard=none``: what a ``time_limit`` command leaves in place (None/0: none)."""
    def one(value: float | None) -> str:
        return f"{value:g}s" if value else "none"

    return f"soft={one(soft)} hard={one(hard)}"


def counted_tasks(n: int) -> str:
    return counted(n, "task", short=True)


def _positive(n: int, what: str) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UsageError(f"{what} must be a positive integer (got {n!r})")


def _named(value: str, what: str) -> None:
    if not value or not value.strip():
        raise UsageError(f"{what} must not be empty")


def _with(workers: Sequence[str], what: str) -> list[str]:
    return [*dict.fromkeys(workers), what]


def _summary(replies: Mapping[str, Reply], missing: Sequence[str]) -> str:
    good = sum(1 for r in replies.values() if r.ok)
    bad = len(replies) - good
    parts = [f"{good} ok"]
    if bad:
        parts.append(f"{bad} error{'s' if bad > 1 else ''}")
    if missing:
        parts.append(f"{len(missing)} did not answer: {', '.join(missing)}")
    return ", ".join(parts)


def _terminated_ids(replies: Iterable[Reply], ids: Sequence[str]) -> set[str]:
    # the worker answers "terminate: id1, id2" for what it killed, "terminate: tasks unknown" else
    killed: set[str] = set()
    wanted = set(ids)
    for reply in replies:
        for part in reply.text.split(";"):
            part = part.strip()
            if part.startswith("terminate: ") and part != "terminate: tasks unknown":
                killed.update(x.strip() for x in part[len("terminate: "):].split(",")
                              if x.strip() in wanted)
    return killed



def restart_worker(actions: Actions, worker: str, template: str | None,
                   timeout: float | None = None) -> ActionResult:
    """Run the environment's restart command for ``worker`` (``core.restart``): refused in
    read-only mode and without a configured command; audited with what ran and how it ended."""
    from lazycelery.core.restart import DEFAULT_TIMEOUT, restart_argv, run_restart

    actions.guard("restart")
    if not template:
        raise UsageError("restart: no restart command configured: set `restart = \"...\"` "
                         "for the environment (docs/fleet.md)")
    argv = restart_argv(template, worker)
    outcome = run_restart(argv, timeout if timeout is not None else DEFAULT_TIMEOUT)
    result = ActionResult("restart", (worker,), outcome.ok,
                          replies={worker: Reply(outcome.ok, outcome.text())},
                          message=f"ran {outcome.command}: {outcome.text()}")
    return actions._audited(result)
