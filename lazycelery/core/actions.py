"""Operator actions (retry, revoke, terminate, worker control): planned, guarded, scoped, audited.

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

import ast
import math
import re
import signal as _signal
import time
import uuid as _uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from lazycelery.core import audit
from lazycelery.core.model import (
    FAILURE,
    PENDING,
    READY_STATES,
    RECEIVED,
    REJECTED,
    RETRY,
    REVOKED,
    SUCCESS,
    TaskRecord,
)
from lazycelery.core.reconcile import NoResultBackend, fetch_metas, find_task_ids, one_line
from lazycelery.errors import LazyCeleryError, UsageError
from lazycelery.text import number

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
]

#: States a task may be re-sent from: it will not run again by itself.
RETRYABLE_STATES: Final = frozenset({FAILURE, REVOKED, REJECTED})
#: A purge of more messages than this is confirmed by typing the queue name (issue 5).
TYPED_CONFIRM_THRESHOLD: Final = 1000
#: celery's saferepr cuts argsrepr/kwargsrepr at this many characters (CELERY-INTERNALS §1).
REPR_LIMIT: Final = 1024
#: A task in one of these states is waiting (in a queue, or held by a worker before it runs): a
#: confirmed revoke means it will not run. A STARTED one keeps running unless terminated.
WAITING_STATES: Final = frozenset({PENDING, RECEIVED, RETRY})
#: A task whose message sits in a broker queue (sent, or re-sent for a retry, not received).
QUEUED_STATES: Final = frozenset({PENDING, RETRY})
_RATE = re.compile(r"\d+(\.\d+)?(/[smh])?")


class ReadOnlyError(LazyCeleryError):
    """An action was refused because lazycelery runs read-only."""

    exit_code = 3


class ActionError(LazyCeleryError):
    """An action could not be carried out (no worker to address, broker unreachable...)."""

    exit_code = 1


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Reply:
    """One answer: a worker's control reply, or the outcome for one task of a retry."""

    ok: bool
    text: str


@dataclass(frozen=True)
class ActionResult:
    """What an action did. ``replies`` is keyed by worker (control) or task id (retry);
    ``missing`` are the workers addressed that did not answer within the timeout."""

    action: str
    targets: tuple[str, ...]
    ok: bool
    replies: Mapping[str, Reply] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    message: str = ""
    #: retry: original task id -> id of the new run
    created: Mapping[str, str] = field(default_factory=dict)
    #: targets nothing was done for, and why
    refused: Mapping[str, str] = field(default_factory=dict)
    #: the audit line could not be written (the action itself happened)
    audit_error: str | None = None
    #: purge: how many messages were removed
    count: int | None = None
    #: tasks whose record this action changed in the index (PURGED, or REVOKED once confirmed)
    marked: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ok": self.ok,
            "message": self.message,
            "replies": {k: {"ok": r.ok, "text": r.text} for k, r in self.replies.items()},
            "missing": list(self.missing),
        }
        if self.created:
            out["created"] = dict(self.created)
        if self.refused:
            out["refused"] = dict(self.refused)
        if self.count is not None:
            out["count"] = self.count
        if self.marked:
            out["marked"] = list(self.marked)
        return out

    def lines(self) -> list[str]:
        """Human-readable: the message, then one line per reply, missing worker and refusal."""
        width = max((len(k) for k in (*self.replies, *self.missing, *self.refused)), default=0)
        out = [f"{self.action}: {self.message}"]
        out.extend(
            f"  {key:<{width}}  {'ok   ' if reply.ok else 'error'}  {reply.text}"
            for key, reply in self.replies.items()
        )
        out.extend(f"  {host:<{width}}  error  no reply (timed out)" for host in self.missing)
        out.extend(f"  {key:<{width}}  skip   {why}" for key, why in self.refused.items())
        if self.audit_error:
            out.append(f"  warning: audit log not written ({self.audit_error})")
        return out


# --------------------------------------------------------------------------- guard


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


# --------------------------------------------------------------------------- retry planning


@dataclass(frozen=True)
class RetryPlan:
    """Everything needed to re-send one task, and where its arguments came from."""

    uuid: str
    name: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    queue: str | None
    root_id: str
    parent_id: str
    source: str
    state: str
    notes: tuple[str, ...] = ()

    def describe(self, limit: int = 120) -> str:
        call = ", ".join([*(repr(a) for a in self.args), *(f"{k}={v!r}" for k, v in self.kwargs.items())])
        if len(call) > limit:
            call = call[: limit - 3] + "..."
        queue = self.queue or "default routing"
        return f"{self.name}({call}) -> {queue}  [{self.state}; args from {self.source}]"


@dataclass(frozen=True)
class Refusal:
    """A task that will not be retried, and why (one line)."""

    uuid: str
    reason: str


@dataclass(frozen=True)
class RetryBatch:
    """The dry run of a (bulk) retry: what would be re-sent and what is refused."""

    plans: tuple[RetryPlan, ...]
    refusals: tuple[Refusal, ...]

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(p.uuid for p in self.plans) + tuple(r.uuid for r in self.refusals)

    def summary(self) -> str:
        return (f"{_count(len(self.plans), 'task')} would be retried, "
                f"{number(len(self.refusals))} refused")

    def lines(self) -> list[str]:
        out = [self.summary()]
        out.extend(f"  retry   {p.uuid}  {p.describe()}" for p in self.plans)
        for plan in self.plans:
            out.extend(f"          {plan.uuid}  note: {note}" for note in plan.notes)
        out.extend(f"  refuse  {r.uuid}  {r.reason}" for r in self.refusals)
        return out


def _count(n: int, noun: str) -> str:
    return f"{number(n)} {noun}{'' if n == 1 else 's'}"


def plan_retry(
    target: str | TaskRecord,
    app: Celery,
    *,
    index: TaskIndex | None = None,
    timeout: float = 1.0,
) -> RetryPlan | Refusal:
    """Plan the retry of one task; see ``plan_retries``."""
    batch = plan_retries([target], app, index=index, timeout=timeout)
    return batch.plans[0] if batch.plans else batch.refusals[0]


def plan_retries(
    targets: Iterable[str | TaskRecord],
    app: Celery,
    *,
    index: TaskIndex | None = None,
    timeout: float = 1.0,
) -> RetryBatch:
    """Decide, for each task, whether and how it can be re-sent. Reads only.

    The real name, args and kwargs come from, best first: the result backend's extended meta
    (one MGET per batch of ids on key-value backends), ``inspect query_task`` at the worker that
    holds the task (only asked when the index names an online worker), then the event reprs, but
    only when they are complete Python literals: a repr Celery truncated (1024 characters, or
    nesting deeper than 3 levels) is refused, never guessed.
    """
    records: list[tuple[str, TaskRecord | None]] = []
    for target in targets:
        if isinstance(target, TaskRecord):
            records.append((target.uuid, target))
        else:
            records.append((target, index.get(target) if index is not None else None))
    ids = list(dict.fromkeys(uuid for uuid, _ in records))
    backend_note: str | None = None
    try:
        metas, backend_note = fetch_metas(app, ids), None
    except NoResultBackend as exc:
        metas, backend_note = {}, str(exc)
    except Exception as exc:
        metas, backend_note = {}, f"result backend unreadable ({type(exc).__name__}: {_oneline(exc)})"
    held = _held_by_workers(app, records, metas, index, timeout)
    plans: list[RetryPlan] = []
    refusals: list[Refusal] = []
    seen: set[str] = set()
    for uuid, rec in records:
        if uuid in seen:
            continue
        seen.add(uuid)
        outcome = _plan_one(uuid, rec, metas.get(uuid), held.get(uuid), backend_note)
        if isinstance(outcome, RetryPlan):
            plans.append(outcome)
        else:
            refusals.append(outcome)
    return RetryBatch(plans=tuple(plans), refusals=tuple(refusals))


def _held_by_workers(
    app: Celery,
    records: Sequence[tuple[str, TaskRecord | None]],
    metas: Mapping[str, Mapping[str, Any]],
    index: TaskIndex | None,
    timeout: float,
) -> dict[str, tuple[str, dict[str, Any]]]:
    """task id -> (worker, request info) for tasks a known online worker still holds."""
    if index is None:
        return {}
    online = set(online_workers(index))
    by_worker: dict[str, list[str]] = {}
    for uuid, rec in records:
        if _meta_has_args(metas.get(uuid)) or rec is None or rec.worker not in online:
            continue
        by_worker.setdefault(rec.worker, []).append(uuid)
    held: dict[str, tuple[str, dict[str, Any]]] = {}
    for worker, ids in by_worker.items():
        try:
            replies = app.control.inspect(destination=[worker], timeout=timeout).query_task(*ids)
        except Exception:
            continue
        for host, found in (replies or {}).items():
            for task_id, pair in (found or {}).items():
                if isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[1], dict):
                    held[task_id] = (host, pair[1])
    return held


def _meta_has_args(meta: Mapping[str, Any] | None) -> bool:
    return bool(meta) and meta is not None and meta.get("name") is not None and meta.get("args") is not None


def _plan_one(
    uuid: str,
    rec: TaskRecord | None,
    meta: Mapping[str, Any] | None,
    held: tuple[str, dict[str, Any]] | None,
    backend_note: str | None,
) -> RetryPlan | Refusal:
    state = _current_state(rec, meta)
    if state is None:
        why = backend_note or "no result-backend meta for it (expired, ignored, or never ran)"
        return Refusal(uuid, f"unknown task: not in the index and {why}")
    if state not in RETRYABLE_STATES:
        return Refusal(uuid, _not_retryable(state))
    root = (rec.root_id if rec else None) or uuid
    parent = uuid
    tried: list[str] = []

    if _meta_has_args(meta):
        assert meta is not None
        args, kwargs = meta.get("args"), meta.get("kwargs") or {}
        if isinstance(args, (list, tuple)) and isinstance(kwargs, Mapping):
            queue = meta.get("queue") or (rec.queue if rec else None)
            return _plan(uuid, str(meta["name"]), tuple(args), dict(kwargs), queue, root, parent,
                         "result backend", state, rec, meta)
        tried.append("result backend: args are not a list")
    elif backend_note:
        tried.append(backend_note)
    elif meta:
        tried.append("result backend: no args in the meta (the worker runs without result_extended=True)")
    else:
        tried.append("result backend: no meta for it (expired, ignored result, or never stored)")

    if held is not None:
        host, info = held
        args, kwargs, name = info.get("args"), info.get("kwargs") or {}, info.get("name")
        if name and isinstance(args, (list, tuple)) and isinstance(kwargs, Mapping):
            delivery = info.get("delivery_info") or {}
            queue = delivery.get("routing_key") if isinstance(delivery, Mapping) else None
            return _plan(uuid, str(name), tuple(args), dict(kwargs), queue or (rec.queue if rec else None),
                         root, parent, f"worker {host} (inspect query_task)", state, rec, meta)

    if rec is None:
        return Refusal(uuid, "; ".join(tried))
    parsed = _parse_event_reprs(rec)
    if isinstance(parsed, str):
        tried.append(parsed)
        return Refusal(uuid, "; ".join(tried))
    if not rec.name:
        return Refusal(uuid, "task name unknown (no task-received or task-sent event seen)")
    args_t, kwargs_d = parsed
    return _plan(uuid, rec.name, args_t, kwargs_d, rec.queue or rec.routing_key, root, parent,
                 "event reprs", state, rec, meta,
                 extra=("args rebuilt from the event's repr: right unless the caller set argsrepr",))


def _current_state(rec: TaskRecord | None, meta: Mapping[str, Any] | None) -> str | None:
    status = meta.get("status") if meta else None
    if isinstance(status, str) and status != "PENDING":
        # The backend is written by the worker itself; an index built from events can be stale.
        return status
    return rec.state if rec is not None else None


def _not_retryable(state: str) -> str:
    if state == SUCCESS:
        return "succeeded: nothing to retry"
    if state in READY_STATES:
        return f"is {state}: only FAILURE, REVOKED or REJECTED tasks are retried"
    return (f"is {state}: not finished, a retry would run it twice "
            "(revoke or terminate it first, or wait)")


def _plan(
    uuid: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], queue: str | None,
    root: str, parent: str, source: str, state: str, rec: TaskRecord | None,
    meta: Mapping[str, Any] | None, extra: tuple[str, ...] = (),
) -> RetryPlan:
    notes = list(extra)
    if queue is None:
        notes.append("original queue unknown: the app's task_routes / default queue decide")
    if meta and meta.get("group_id"):
        notes.append(f"member of group {meta['group_id']}: its chord callback will not run again")
    if rec is not None and rec.root_id and rec.root_id != uuid:
        notes.append("step of a workflow: callbacks (the rest of a chain) are not re-sent")
    return RetryPlan(uuid=uuid, name=name, args=args, kwargs=kwargs, queue=queue, root_id=root,
                     parent_id=parent, source=source, state=state, notes=tuple(notes))


# --------------------------------------------------------------------------- one retry per job

#: how far up a chain of retry copies the origin is looked for (a cycle cannot loop forever)
_MAX_RETRY_DEPTH: Final = 100


def one_retry_per_job(records: Sequence[TaskRecord], index: TaskIndex
                      ) -> tuple[list[TaskRecord], list[Refusal]]:
    """Keep one failure per job, so a bulk retry never runs a job twice.

    A retry (ours, or any re-send with ``parent_id`` = the failed run) is a child with the
    *same name* as a failed, revoked or rejected parent: a *retry copy*. A job is an original
    failure and every copy below it. For each job among ``records``:

    * if any run of the job is unfinished or succeeded (a retry is queued, running, or already
      worked), every failure of it is refused: retrying would run the job twice;
    * otherwise only the newest failure is kept (its args are the same); the older ones are
      refused, naming the one retried instead.

    Reads the index under its lock (children and parents of the given records only)."""
    with index.lock:  # the ingest thread updates records in place: read states here
        origins = {rec.uuid: _origin(rec, index) for rec in records}
        runs = {origin: [(r.uuid, r.state) for r in _job_runs(origin, index)]
                for origin in set(origins.values())}
    groups: dict[str, list[TaskRecord]] = {}
    for rec in records:
        groups.setdefault(origins[rec.uuid], []).append(rec)
    kept: list[TaskRecord] = []
    refused: list[Refusal] = []
    for origin, members in groups.items():
        live = [(uuid, state) for uuid, state in runs[origin] if state not in RETRYABLE_STATES]
        if live:
            other, state = live[-1]
            refused.extend(Refusal(r.uuid, f"already retried: run {other} of the same job is "
                                            f"{state}; a retry would run it twice")
                           for r in members)
            continue
        newest = max(members, key=_ended_at)
        kept.append(newest)
        refused.extend(Refusal(r.uuid, f"an earlier failed run of the same job: retrying the "
                                       f"newest, {newest.uuid}, instead")
                       for r in members if r is not newest)
    order = {rec.uuid: i for i, rec in enumerate(records)}
    kept.sort(key=lambda r: order[r.uuid])
    return kept, refused


def _is_retry_copy(child: TaskRecord | None, parent: TaskRecord | None) -> bool:
    return (child is not None and parent is not None and child.name is not None
            and child.name == parent.name and parent.state in RETRYABLE_STATES)


def _origin(rec: TaskRecord, index: TaskIndex) -> str:
    """The original failure a retry copy descends from (the record itself if it is none)."""
    current = rec
    for _ in range(_MAX_RETRY_DEPTH):
        parent = index.get(current.parent_id) if current.parent_id else None
        if parent is None or not _is_retry_copy(current, parent):
            break
        current = parent
    return current.uuid


def _job_runs(origin: str, index: TaskIndex) -> list[TaskRecord]:
    """The origin and every retry copy below it, oldest first (breadth first)."""
    first = index.get(origin)
    if first is None:
        return []
    runs, todo, seen = [first], [first], {origin}
    while todo and len(runs) < _MAX_RETRY_DEPTH:
        parent = todo.pop(0)
        for child_id in index.children_of(parent.uuid):
            child = index.get(child_id)
            if child_id not in seen and child is not None and _is_retry_copy(child, parent):
                seen.add(child_id)
                runs.append(child)
                todo.append(child)
    return runs


def _ended_at(rec: TaskRecord) -> float:
    for when in (rec.failed, rec.revoked, rec.rejected):  # the worker's clock, when known
        if when is not None:
            return when
    return rec.last_seen


def _parse_event_reprs(rec: TaskRecord) -> tuple[tuple[Any, ...], dict[str, Any]] | str:
    """(args, kwargs) from the event reprs, or why they cannot be trusted."""
    if rec.args is None or rec.kwargs is None:
        return "events: no args/kwargs seen (no task-received or task-sent event)"
    for label, text, truncated in (("args", rec.args, rec.args_truncated),
                                   ("kwargs", rec.kwargs, rec.kwargs_truncated)):
        if truncated or len(text) >= REPR_LIMIT:
            return (f"events: {label} were truncated by Celery ({len(text)} characters, "
                    f"cut at {REPR_LIMIT}); the real values are only in the result backend")
    try:
        args = ast.literal_eval(rec.args)
        kwargs = ast.literal_eval(rec.kwargs)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return "events: args/kwargs repr is not a plain Python literal (objects cannot be rebuilt)"
    if _has_ellipsis(args) or _has_ellipsis(kwargs):
        return "events: args/kwargs nested deeper than Celery's repr keeps (shown as '...')"
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
        return "events: args/kwargs repr has an unexpected shape"
    if not all(isinstance(k, str) for k in kwargs):
        return "events: kwargs repr has non-string keys"
    return tuple(args), kwargs


def _has_ellipsis(value: Any) -> bool:
    if value is Ellipsis:
        return True
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_has_ellipsis(v) for v in value)
    if isinstance(value, dict):
        return any(_has_ellipsis(k) or _has_ellipsis(v) for k, v in value.items())
    return False


# --------------------------------------------------------------------------- where tasks are


@dataclass(frozen=True)
class Placement:
    """Where tasks are: the worker holding each (when known) and the workers to address
    otherwise. ``held_as`` is inspect's word ('active', 'reserved', 'scheduled') or the
    index state."""

    holders: Mapping[str, str]
    held_as: Mapping[str, str]
    online: tuple[str, ...]
    source: str

    def destination(self, task_id: str) -> tuple[str, ...]:
        holder = self.holders.get(task_id)
        return (holder,) if holder else self.online


def online_workers(index: TaskIndex, now: float | None = None) -> tuple[str, ...]:
    return tuple(w.hostname for w, status in index.worker_rows(now) if status == "online")


def locate_in_index(index: TaskIndex, task_ids: Sequence[str]) -> Placement:
    """Placement from the event index: a task's worker if it is unfinished there and online."""
    online = online_workers(index)
    alive = set(online)
    holders: dict[str, str] = {}
    held_as: dict[str, str] = {}
    for task_id in task_ids:
        rec = index.get(task_id)
        if rec is None:
            continue
        held_as[task_id] = rec.state
        if rec.state not in READY_STATES and rec.worker in alive:
            holders[task_id] = rec.worker
    return Placement(holders=holders, held_as=held_as, online=online, source="index")


def locate_by_inspect(app: Celery, task_ids: Sequence[str], timeout: float = 1.0) -> Placement:
    """Placement from one read-only ``inspect query_task`` broadcast (discovery only: every
    worker answers, so the repliers are also the online workers)."""
    try:
        replies = app.control.inspect(timeout=timeout).query_task(*task_ids)
    except Exception as exc:
        raise ActionError(f"cannot ask the workers where the tasks are: {_oneline(exc)}") from None
    holders: dict[str, str] = {}
    held_as: dict[str, str] = {}
    for host, found in (replies or {}).items():
        for task_id, pair in (found or {}).items():
            if task_id in task_ids and isinstance(pair, (list, tuple)) and pair:
                holders[task_id] = host
                held_as[task_id] = str(pair[0])
    return Placement(holders=holders, held_as=held_as, online=tuple(sorted(replies or {})),
                     source="inspect")


def resolve_workers(app: Celery, names: Sequence[str], timeout: float = 1.0) -> list[str]:
    """Full hostnames for ``names`` (``w1`` matches ``w1@host`` when unique), checked by ping.

    Names with ``@`` are pinged with a destination (fast); short names need a read-only ping
    broadcast to learn the full names. Raises ActionError naming any worker that did not answer.
    """
    if not names:
        raise UsageError("name at least one worker")
    exact = all("@" in n for n in names)
    try:
        replies = app.control.ping(destination=list(names) if exact else None, timeout=timeout)
    except Exception as exc:
        raise ActionError(f"cannot ping the workers: {_oneline(exc)}") from None
    online = sorted({host for reply in replies or [] for host in reply})
    resolved: list[str] = []
    for name in names:
        matches = [h for h in online if h == name] or [h for h in online if h.split("@", 1)[0] == name]
        if len(matches) == 1:
            resolved.append(matches[0])
            continue
        known = ", ".join(online) or "none answered"
        if matches:
            raise UsageError(f"worker {name!r} is ambiguous: {', '.join(matches)}")
        raise ActionError(f"worker {name!r} did not answer ping within {timeout:g}s (online: {known})")
    return list(dict.fromkeys(resolved))


# --------------------------------------------------------------------------- task id prefixes

_FULL_UUID: Final = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                               r"[0-9a-fA-F]{12}")
_ID_PREFIX: Final = re.compile(r"[0-9a-fA-F][0-9a-fA-F-]{0,34}")
#: matching ids named when a prefix is ambiguous
_SHOWN_MATCHES: Final = 10


def resolve_task_ids(ids: Sequence[str], app: Celery, *, index: TaskIndex | None = None
                     ) -> list[tuple[str, str]]:
    """(given, full id) for each id: a full uuid (or a custom, non-hex id) as it is; a shorter
    hex prefix (the dashboard shows 8 characters) resolved to the one task id it starts.

    Prefixes are looked up in the index when there is one, else in the result backend's keys
    (Redis: ``SCAN MATCH celery-task-meta-<prefix>*``). UsageError when a prefix matches
    several ids (naming them), none, or cannot be looked up (a full id is needed then)."""
    out: list[tuple[str, str]] = []
    for given in ids:
        text = given.strip()
        if _FULL_UUID.fullmatch(text) or not _ID_PREFIX.fullmatch(text):
            out.append((given, text))
            continue
        prefix = text.lower()
        if index is not None:
            with index.lock:
                matches = sorted(r.uuid for r in index.iter_newest() if r.uuid.startswith(prefix))
            where = "the dashboard's index"
        else:
            try:
                matches = find_task_ids(app, prefix, _SHOWN_MATCHES)
            except NoResultBackend as exc:
                raise UsageError(f"{text!r} is not a full task id and it cannot be looked up "
                                 f"({exc}): give the full id") from None
            except Exception as exc:
                raise ActionError(f"cannot look up task id prefix {text!r}: "
                                  f"{_oneline(exc)}") from None
            where = "the result backend"
        if len(matches) == 1:
            out.append((given, matches[0]))
            continue
        if not matches:
            raise UsageError(f"no task id starts with {text!r} in {where} (a task still in a "
                             "queue has no result yet): give the full id")
        more = " and more" if len(matches) > _SHOWN_MATCHES else ""
        raise UsageError(f"task id prefix {text!r} is ambiguous: "
                         f"{', '.join(matches[:_SHOWN_MATCHES])}{more}")
    return out


# --------------------------------------------------------------------------- small helpers


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


def _oneline(exc: BaseException) -> str:
    return one_line(exc)


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


# --------------------------------------------------------------------------- the actions


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
    ) -> None:
        if not timeout > 0:
            raise UsageError("timeout must be positive")
        self.app = app
        self.read_only = read_only
        self.environment = environment
        self.index = index
        self.timeout = timeout
        self.audit_path = audit_path

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        index: TaskIndex | None = None,
        timeout: float = 1.0,
        audit_path: Path | None = None,
    ) -> Actions:
        return cls(settings.celery_app(), read_only=settings.read_only,
                   environment=environment_label(settings), index=index, timeout=timeout,
                   audit_path=audit_path)

    # ---------------------------------------------------------------- plumbing

    def guard(self, action: str) -> None:
        guard(self.read_only, action)

    def _audited(self, result: ActionResult) -> ActionResult:
        try:
            audit.record(result.action, result.targets, result.to_json(), self.environment,
                         path=self.audit_path)
        except OSError as exc:
            return replace(result, audit_error=str(exc))
        return result

    def _control(self, action: str, command: str, workers: Sequence[str],
                 targets: Sequence[str] | None = None, **arguments: Any) -> ActionResult:
        self.guard(action)
        dest = _destination(workers)
        method = getattr(self.app.control, command)
        try:
            replies = method(destination=dest, reply=True, timeout=self.timeout, **arguments)
        except Exception as exc:
            result = ActionResult(action, tuple(targets or dest), False,
                                  message=f"not sent: {_oneline(exc)}")
            return self._audited(result)
        got, missing = _collect(replies, dest)
        ok = bool(got) and all(r.ok for r in got.values()) and not missing
        result = ActionResult(action, tuple(targets or dest), ok, replies=got, missing=missing,
                              message=_summary(got, missing))
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
            options: dict[str, Any] = {"queue": plan.queue} if plan.queue else {}
            try:
                # a tuple, as .delay() sends: the new run's argsrepr reads (5,), not [5]
                self.app.send_task(plan.name, args=tuple(plan.args), kwargs=dict(plan.kwargs),
                                   task_id=new_id, root_id=plan.root_id, parent_id=plan.parent_id,
                                   **options)
            except Exception as exc:
                replies[plan.uuid] = Reply(False, f"not sent: {_oneline(exc)}")
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
                errors.append(_oneline(exc))
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
                                              message=f"not purged: {_oneline(exc)}"))
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
                                              message=f"not sent: {_oneline(exc)}"))
        replies = {h: Reply(True, "shutdown requested (running tasks finish first)") for h in alive}
        result = ActionResult("shutdown", tuple(dest), bool(alive) and not missing, replies=replies,
                              missing=missing, message=_summary(replies, missing))
        return self._audited(result)

    def pool_restart(self, workers: Sequence[str], *, modules: Sequence[str] | None = None,
                     reload: bool = False) -> ActionResult:
        """Needs ``worker_pool_restarts = True`` on the worker (else it replies an error)."""
        return self._control("pool-restart", "pool_restart", workers,
                             modules=list(modules) if modules else None, reload=reload)

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
        return self._control("add-consumer", "add_consumer", workers, targets=_with(workers, queue),
                             queue=queue, exchange=exchange, exchange_type=exchange_type,
                             routing_key=routing_key)

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


def describe_limits(soft: float | None, hard: float | None) -> str:
    """``soft=30s hard=none``: what a ``time_limit`` command leaves in place (None/0: none)."""
    def one(value: float | None) -> str:
        return f"{value:g}s" if value else "none"

    return f"soft={one(soft)} hard={one(hard)}"


def counted_tasks(n: int) -> str:
    return f"{number(n)} task{'' if n == 1 else 's'}"


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

