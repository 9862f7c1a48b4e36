"""Task and worker records, and the rules that merge events into them in any delivery order.

Celery's ``State`` decides a task's state from the order events arrive in; that makes the final
state depend on delivery order (a late ``task-started`` after ``task-succeeded`` is harmless
there, but a late ``task-retried`` is not). Here the state is a pure function of *which* events a
task has seen, so any order of the same events ends in the same record:

* a terminal event decides: SUCCESS > FAILURE > REVOKED > REJECTED (rejected without requeue);
* otherwise the newest attempt decides. An attempt is numbered by the ``retries`` field of
  task-sent / task-received; task-started and task-retried carry no number, so they are
  counted: the n-th start belongs to attempt n-1, the n-th retry ends attempt n-1;
* PURGED instead of PENDING / RETRY once lazycelery purged the task's message from its queue
  (no event will ever come for it).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from lazycelery.core.sanitize import TIME_MAX, BadInput, field_kind, is_cut

# The hot checks compare with the literal (a constant load, not a global lookup).
assert TIME_MAX == 1e10

__all__ = [
    "FAILURE",
    "PENDING",
    "PURGED",
    "READY_STATES",
    "RECEIVED",
    "REJECTED",
    "RETRY",
    "REVOKED",
    "STARTED",
    "STATES",
    "SUCCESS",
    "TaskRecord",
    "WorkerRecord",
    "apply_task_event",
    "apply_worker_event",
    "derive_state",
    "new_task",
    "worker_status",
]

PENDING: Final = "PENDING"
RECEIVED: Final = "RECEIVED"
STARTED: Final = "STARTED"
SUCCESS: Final = "SUCCESS"
FAILURE: Final = "FAILURE"
RETRY: Final = "RETRY"
REVOKED: Final = "REVOKED"
REJECTED: Final = "REJECTED"
#: Not a celery state: lazycelery purged the queue that held the task's message.
PURGED: Final = "PURGED"
#: Every state a record can be in, in display order.
STATES: Final = (PENDING, RECEIVED, STARTED, RETRY, SUCCESS, FAILURE, REVOKED, REJECTED, PURGED)
#: States after which a task will not run again (celery's READY_STATES plus a final rejection,
#: and a purged message).
READY_STATES: Final = frozenset({SUCCESS, FAILURE, REVOKED, REJECTED, PURGED})

_intern = sys.intern


class TaskRecord(msgspec.Struct, gc=False):
    """Everything known about one task id. ``gc=False``: records hold no reference cycles,
    and keeping a million of them out of the cyclic GC saves memory and GC pauses."""

    uuid: str
    state: str = PENDING
    name: str | None = None
    worker: str | None = None
    args: str | None = None
    kwargs: str | None = None
    result: str | None = None
    exception: str | None = None
    traceback: str | None = None
    runtime: float | None = None
    retries: int = 0
    eta: str | None = None
    expires: str | None = None
    parent_id: str | None = None
    root_id: str | None = None
    queue: str | None = None
    exchange: str | None = None
    routing_key: str | None = None
    client: str | None = None  # hostname of the publisher (task-sent)
    # epoch timestamps (sender clocks) of the latest event of each kind
    sent: float | None = None
    received: float | None = None
    started: float | None = None
    succeeded: float | None = None
    failed: float | None = None
    retried: float | None = None
    revoked: float | None = None
    rejected: float | None = None
    terminated: bool = False
    expired: bool = False
    signum: int | None = None
    requeue: bool = False
    # local time of the last event applied (drives LRU eviction and "last activity")
    last_seen: float = 0.0
    # set when the state was corrected from the result backend / inspect, not from an event
    reconciled: bool = False
    # set by reconciliation when no source could say what became of an unfinished task after
    # a gap in the event stream: the state is kept, the UI shows "unknown since <time>"
    unknown_since: float | None = None
    # local time lazycelery purged the queue holding the task's message (state PURGED)
    purged: float | None = None
    # what lazycelery itself did to the task (a purge, a revoke the workers confirmed)
    note: str | None = None
    # attempt bookkeeping (see the module docstring); -1 = not seen
    n_started: int = 0
    n_retried: int = 0
    sent_attempt: int = -1
    received_attempt: int = -1

    @property
    def timestamp(self) -> float | None:
        """Sender time of the event that set the current state (None if unknown)."""
        return _STATE_TIME[self.state](self) if self.state in _STATE_TIME else None

    @property
    def first_seen(self) -> float | None:
        """Earliest known sender time (sent, else received, else any)."""
        for value in (self.sent, self.received, self.started, self.failed, self.revoked,
                      self.succeeded, self.retried, self.rejected):
            if value is not None:
                return value
        return None

    def history(self) -> list[tuple[str, float]]:
        """(state, time) pairs known for this task, oldest first.

        Within one attempt the lifecycle order wins over the clocks: celery publishes task-sent
        *after* the message, and a worker on another host (or a chain step's next worker) may
        stamp task-received earlier, so sorting by time alone listed RECEIVED before PENDING.
        The times shown stay the ones the events carried."""
        started = self.started
        received = self.received
        if _earlier(started, received) and self.n_started - 1 == self.received_attempt:
            received = started
        sent = self.sent
        if _earlier(received, sent) and self.sent_attempt == self.received_attempt:
            sent = received
        pairs = [
            (PENDING, self.sent, sent), (RECEIVED, self.received, received),
            (STARTED, self.started, started), (RETRY, self.retried, self.retried),
            (SUCCESS, self.succeeded, self.succeeded), (FAILURE, self.failed, self.failed),
            (REVOKED, self.revoked, self.revoked), (REJECTED, self.rejected, self.rejected),
            (PURGED, self.purged, self.purged),
        ]
        ordered = sorted(((_time_order((state, key)), rank, state, shown) for rank,
                          (state, shown, key) in enumerate(pairs) if shown is not None),
                         key=lambda item: (item[0], item[1]))
        return [(state, shown) for _, _, state, shown in ordered]

    @property
    def args_truncated(self) -> bool:
        return _is_truncated(self.args)

    @property
    def kwargs_truncated(self) -> bool:
        return _is_truncated(self.kwargs)

    @property
    def result_truncated(self) -> bool:
        return _is_truncated(self.result)


def _is_truncated(text: str | None) -> bool:
    # celery's saferepr cuts at 1024 characters and appends "..." (the strings grow a few
    # characters past the limit because closing brackets are kept).
    # lazycelery's own cut of a string over sanitize.STRING_MAX ends with its mark.
    return (isinstance(text, str) and len(text) >= 1024
            and ("..." in text[-12:] or is_cut(text)))


def _earlier(a: Any, b: Any) -> bool:
    """Both are real times and ``a`` is before ``b`` (odd values never compare)."""
    first, second = _time_order(("", a)), _time_order(("", b))
    return first[0] == second[0] == 0 and first < second


def _time_order(pair: tuple[str, Any]) -> tuple[int, float]:
    # A time that is not a real number (a record built without validation) sorts last
    # instead of making the comparison raise.
    t = pair[1]
    if isinstance(t, (int, float)) and not isinstance(t, bool) and t == t:
        try:
            return 0, float(t)
        except OverflowError:
            return 0, float("inf") if t > 0 else float("-inf")
    return 1, 0.0


_STATE_TIME: Final[Mapping[str, Any]] = {
    PENDING: lambda r: r.sent, RECEIVED: lambda r: r.received, STARTED: lambda r: r.started,
    RETRY: lambda r: r.retried, SUCCESS: lambda r: r.succeeded, FAILURE: lambda r: r.failed,
    REVOKED: lambda r: r.revoked, REJECTED: lambda r: r.rejected, PURGED: lambda r: r.purged,
}


def new_task(uuid: str) -> TaskRecord:
    return TaskRecord(uuid=uuid)


def _max_time(old: float | None, new: float | None) -> float | None:
    if new is None:
        return old
    if old is None or new > old:
        return new
    return old


def _short(value: str) -> str:
    # "()", "{}" and the like are shared, not stored once per task
    return _intern(value) if len(value) <= 2 else value


# A field of the wrong type is ignored as if it were absent (a timestamp is replaced by the
# receive time) and counted in ``bad`` (``sanitize.BadInput``): the checks sit where each
# value is read anyway, so a valid event pays one class comparison per field.


def _bad(bad: BadInput | None, name: str, detail: str = "wrong type") -> None:
    if bad is not None:
        bad.repair(field_kind(name), detail)


def _number(value: Any, low: float, high: float) -> float | None:
    """``value`` as a float when it is an int or float in [low, high] (never NaN), else None."""
    cls = value.__class__
    if (cls is float or cls is int) and low <= value <= high:
        return float(value)
    return None


def _event_time(value: Any, event: Mapping[str, Any], bad: BadInput | None) -> float | None:
    """The sender time when it is a sane epoch time, else (counted) the receive time."""
    if value is None:
        return None
    ts = _number(value, 0.0, TIME_MAX)
    if ts is not None:
        return ts
    _bad(bad, "timestamp", "not an epoch time")
    return _number(event.get("local_received"), 0.0, TIME_MAX)


def _fill_identity(rec: TaskRecord, event: Mapping[str, Any], bad: BadInput | None) -> None:
    """Fields that sent and received both carry; the first value seen wins unless missing.

    Written out field by field: this runs for half of all events (getattr/setattr by name
    cost a third of the index's time)."""
    get = event.get
    if rec.name is None:
        name = get("name")
        if name.__class__ is str:
            if name:
                rec.name = _intern(name)
        elif name is not None:
            _bad(bad, "name")
    if rec.args is None:
        args = get("args")
        if args.__class__ is str:
            rec.args = _short(args)
        elif args is not None:
            _bad(bad, "args")
    if rec.kwargs is None:
        kwargs = get("kwargs")
        if kwargs.__class__ is str:
            rec.kwargs = _short(kwargs)
        elif kwargs is not None:
            _bad(bad, "kwargs")
    if rec.eta is None:
        eta = get("eta")
        if eta.__class__ is str:
            rec.eta = eta
        elif eta is not None:
            _bad(bad, "eta")
    if rec.expires is None:
        expires = get("expires")
        if expires.__class__ is str:
            rec.expires = expires
        elif expires is not None:
            _bad(bad, "expires")
    if rec.parent_id is None:
        parent = get("parent_id")
        if parent.__class__ is str:
            # A retry is re-sent with parent_id = its own id; that is not a parent (celery's
            # State keeps it, which would make the task its own child).
            if parent and parent != rec.uuid:
                rec.parent_id = parent
        elif parent is not None:
            _bad(bad, "parent_id")
    if rec.root_id is None:
        root = get("root_id")
        if root.__class__ is str:
            if root:
                rec.root_id = rec.uuid if root == rec.uuid else root
        elif root is not None:
            _bad(bad, "root_id")
    retries = get("retries")
    if retries.__class__ is int:
        if retries > rec.retries:
            rec.retries = retries
    elif retries is not None:
        _bad(bad, "retries")


def _attempt(event: Mapping[str, Any]) -> int:
    retries = event.get("retries")
    return retries if retries.__class__ is int and retries >= 0 else 0


def _text(event: Mapping[str, Any], key: str, current: str | None,
          bad: BadInput | None) -> str | None:
    """``event[key]`` when it is a string or null, else (counted) ``current``."""
    value = event.get(key, current)
    if value is None or value.__class__ is str:
        return value
    _bad(bad, key)
    return current


def apply_task_event(rec: TaskRecord, event: Mapping[str, Any],
                     bad: BadInput | None = None) -> None:
    """Merge one ``task-*`` event into ``rec`` (the event is never mutated). A field of the
    wrong type is ignored and counted in ``bad``."""
    kind = event.get("type", "")
    rec.unknown_since = None  # an event is news of the task
    ts = event.get("timestamp")
    if ts.__class__ is not float or not 0.0 <= ts <= 1e10:  # TIME_MAX, as a constant
        ts = _event_time(ts, event, bad)
    host = event.get("hostname")
    if host.__class__ is not str:
        if host is not None:
            _bad(bad, "hostname")
        host = None
    if kind == "task-sent":
        _fill_identity(rec, event, bad)
        rec.sent = _max_time(rec.sent, ts)
        rec.sent_attempt = max(rec.sent_attempt, _attempt(event))
        if host:
            rec.client = _intern(host)
        if rec.queue is None:
            queue = event.get("queue")
            if queue.__class__ is str:
                rec.queue = _intern(queue)
            elif queue is not None:
                _bad(bad, "queue")
        if rec.exchange is None:
            exchange = event.get("exchange")
            if exchange.__class__ is str:
                rec.exchange = _intern(exchange)
            elif exchange is not None:
                _bad(bad, "exchange")
        if rec.routing_key is None:
            routing_key = event.get("routing_key")
            if routing_key.__class__ is str:
                rec.routing_key = _intern(routing_key)
            elif routing_key is not None:
                _bad(bad, "routing_key")
    elif kind == "task-received":
        _fill_identity(rec, event, bad)
        rec.received = _max_time(rec.received, ts)
        attempt = _attempt(event)
        if attempt >= rec.received_attempt:
            rec.received_attempt = attempt
            _set_worker(rec, host, terminal=False)
    elif kind == "task-started":
        rec.started = _max_time(rec.started, ts)
        rec.n_started += 1
        _set_worker(rec, host, terminal=False)
    elif kind == "task-succeeded":
        rec.succeeded = _max_time(rec.succeeded, ts)
        result = event.get("result", rec.result)
        if result is None or result.__class__ is str:
            rec.result = result
        else:
            _bad(bad, "result")
        runtime = event.get("runtime", rec.runtime)
        if runtime.__class__ is float and 0.0 <= runtime <= 1e10:  # TIME_MAX
            rec.runtime = runtime
        elif runtime is not None:
            rec.runtime = _number(runtime, 0.0, TIME_MAX)
            if rec.runtime is None:
                _bad(bad, "runtime", "not a duration")
        _set_worker(rec, host, terminal=True)
    elif kind == "task-failed":
        rec.failed = _max_time(rec.failed, ts)
        rec.exception = _text(event, "exception", rec.exception, bad)
        rec.traceback = _text(event, "traceback", rec.traceback, bad)
        _set_worker(rec, host, terminal=True)
    elif kind == "task-retried":
        latest = rec.retried is None or (ts is not None and ts >= rec.retried)
        rec.retried = _max_time(rec.retried, ts)
        rec.n_retried += 1
        # A final failure's exception outranks a retry's; among retries the latest wins.
        if rec.failed is None and latest:
            rec.exception = _text(event, "exception", rec.exception, bad)
            rec.traceback = _text(event, "traceback", rec.traceback, bad)
    elif kind == "task-revoked":
        rec.revoked = _max_time(rec.revoked, ts)
        rec.terminated = rec.terminated or bool(event.get("terminated"))
        rec.expired = rec.expired or bool(event.get("expired"))
        signum = event.get("signum")
        if signum.__class__ is int:
            rec.signum = signum
        elif signum is not None:
            _bad(bad, "signum")
        _set_worker(rec, host, terminal=True)
    elif kind == "task-rejected":
        rec.rejected = _max_time(rec.rejected, ts)
        rec.requeue = bool(event.get("requeue"))
        _set_worker(rec, host, terminal=False)
    elif kind == "task-cancelled":
        # The worker lost its broker connection and gave the message back: it will be
        # delivered again, so this ends an attempt like a requeued rejection does.
        rec.rejected = _max_time(rec.rejected, ts)
        rec.requeue = True
    rec.state = derive_state(rec)


def _set_worker(rec: TaskRecord, host: str | None, terminal: bool) -> None:
    # The worker that finished the task is the one to show; before that, the latest one.
    if not host:
        return
    if terminal or rec.state not in READY_STATES:
        rec.worker = _intern(host)


def derive_state(rec: TaskRecord) -> str:
    """The state implied by the events seen so far, independent of their order."""
    if rec.succeeded is not None:
        return SUCCESS
    if rec.failed is not None:
        return FAILURE
    if rec.revoked is not None:
        return REVOKED
    if rec.rejected is not None and not rec.requeue:
        return REJECTED
    # max() of four values, written out: this runs for every event
    attempt = rec.sent_attempt
    if rec.received_attempt > attempt:
        attempt = rec.received_attempt
    n_retried = rec.n_retried
    n_started = rec.n_started
    if n_retried - 1 > attempt:
        attempt = n_retried - 1
    if n_started - 1 > attempt:
        attempt = n_started - 1
    if attempt < 0:  # nothing but a requeued rejection / cancellation
        return REJECTED if rec.rejected is not None else PENDING
    if n_retried > attempt:
        return RETRY if rec.purged is None else PURGED
    if n_started > attempt:
        return STARTED
    if rec.received_attempt == attempt:
        return RECEIVED
    return PENDING if rec.purged is None else PURGED


# --------------------------------------------------------------------------- workers

ONLINE: Final = "online"
OFFLINE: Final = "offline"
LOST: Final = "lost"


class WorkerRecord(msgspec.Struct):
    """One worker as told by its worker-online / heartbeat / offline events."""

    hostname: str
    pid: int | None = None
    sw_ident: str | None = None
    sw_ver: str | None = None
    sw_sys: str | None = None
    freq: float = 2.0
    active: int | None = None
    processed: int | None = None
    loadavg: tuple[float, ...] | None = None
    last_heartbeat: float | None = None  # local receive time of the last worker event
    offline: bool = False
    clock: int = 0


#: a worker heartbeat interval above this (seconds) is not believed
FREQ_MAX: Final = 86_400.0


def apply_worker_event(rec: WorkerRecord, event: Mapping[str, Any], now: float,
                       bad: BadInput | None = None) -> None:
    """Merge one ``worker-*`` event. A heartbeat answering a ``heartbeat`` control command
    carries no active/processed/loadavg (CELERY-INTERNALS §1): keep the last known values.
    A field of the wrong type is ignored and counted in ``bad``."""
    kind = event.get("type", "")
    received = _number(event.get("local_received"), 0.0, TIME_MAX)
    rec.last_heartbeat = received or now
    rec.offline = kind == "worker-offline"
    pid = event.get("pid")
    if pid.__class__ is int:
        rec.pid = pid
    elif pid is not None:
        _bad(bad, "pid")
    for key in ("sw_ident", "sw_ver", "sw_sys"):
        value = event.get(key)
        if value.__class__ is str:
            setattr(rec, key, value)
        elif value is not None:
            _bad(bad, key)
    freq = event.get("freq")
    if freq is not None:
        value = _number(freq, 0.0, FREQ_MAX)
        if value:
            rec.freq = value
        else:
            _bad(bad, "freq", "not an interval")
    for key in ("active", "processed"):
        count = event.get(key)
        if count.__class__ is int and count >= 0:
            setattr(rec, key, count)
        elif count is not None:
            _bad(bad, key, "not a count")
    load = event.get("loadavg")
    if load is not None:
        loadavg = _loadavg(load)
        if loadavg is not None:
            rec.loadavg = loadavg
        else:
            _bad(bad, "loadavg", "not up to 3 numbers")
    clock = event.get("clock")
    if clock.__class__ is int:
        rec.clock = max(rec.clock, clock)


def _loadavg(value: Any) -> tuple[float, ...] | None:
    if (value.__class__ is not list and value.__class__ is not tuple) or len(value) > 3:
        return None
    numbers = tuple(_number(x, 0.0, 1e9) for x in value)
    return None if None in numbers else numbers  # type: ignore[return-value]


def worker_status(rec: WorkerRecord, now: float) -> str:
    """online / offline (said goodbye) / lost (no heartbeat within 2 x freq)."""
    if rec.offline:
        return OFFLINE
    try:
        if rec.last_heartbeat is None or now - rec.last_heartbeat > 2 * rec.freq:
            return LOST
    except (TypeError, ArithmeticError):  # a record built without validation: no usable time
        return LOST
    return ONLINE
