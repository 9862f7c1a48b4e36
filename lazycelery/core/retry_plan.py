"""The retry dry run: for each task, whether it can be re-sent and with which real name, args and
kwargs (result backend, the worker holding it, or complete event reprs; never guessed). Reads only."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from lazycelery.core.model import FAILURE, READY_STATES, REJECTED, REVOKED, SUCCESS, TaskRecord
from lazycelery.core.placement import online_workers
from lazycelery.core.reconcile import NoResultBackend, fetch_metas
from lazycelery.mask import is_masked_text
from lazycelery.text import counted, number
from lazycelery.urls import error_line

if TYPE_CHECKING:
    from celery import Celery

    from lazycelery.core.index import TaskIndex

__all__ = ["REPR_LIMIT", "RETRYABLE_STATES", "Refusal", "RetryBatch", "RetryPlan",
           "one_retry_per_job", "plan_retries", "plan_retry"]

#: States a task may be re-sent from: it will not run again by itself.
RETRYABLE_STATES: Final = frozenset({FAILURE, REVOKED, REJECTED})
#: celery's saferepr cuts argsrepr/kwargsrepr at this many characters (CELERY-INTERNALS §1).
REPR_LIMIT: Final = 1024


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
    #: the original message's exchange and routing key (task-sent), kept by a replay
    exchange: str | None = None
    routing_key: str | None = None

    def describe(self, limit: int = 120) -> str:
        """``billing.charge(2 args; kwargs amount, card) -> billing  [FAILURE; args from ...]``:
        the real arguments are never shown (they may hold what ingest masks), only their
        count and the keyword names."""
        count = len(self.args)
        call = f"{count} arg{'s' if count != 1 else ''}"
        if self.kwargs:
            call += "; kwargs " + ", ".join(str(k) for k in self.kwargs)
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
    return counted(n, noun, short=True)


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
    states: frozenset[str] = RETRYABLE_STATES,
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
        metas, backend_note = {}, f"result backend unreadable ({type(exc).__name__}: {error_line(exc)})"
    held = _held_by_workers(app, records, metas, index, timeout)
    plans: list[RetryPlan] = []
    refusals: list[Refusal] = []
    seen: set[str] = set()
    for uuid, rec in records:
        if uuid in seen:
            continue
        seen.add(uuid)
        outcome = _plan_one(uuid, rec, metas.get(uuid), held.get(uuid), backend_note, states)
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
    states: frozenset[str] = RETRYABLE_STATES,
) -> RetryPlan | Refusal:
    state = _current_state(rec, meta)
    if state is None:
        why = backend_note or "no result-backend meta for it (expired, ignored, or never ran)"
        return Refusal(uuid, f"unknown task: not in the index and {why}")
    if state not in states:
        return Refusal(uuid, _not_retryable(state) if states == RETRYABLE_STATES else
                       f"is {state}: not finished, a replay would run it twice "
                       "(wait for it, or revoke it first)")
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
    if is_masked_text(rec.args) or is_masked_text(rec.kwargs):
        return ("events: the args hold masked values (lazycelery masks secrets at ingest); "
                "the real ones come from the result backend (result_extended=True) or the "
                "worker holding the task")
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
