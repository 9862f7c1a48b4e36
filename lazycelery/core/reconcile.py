"""Reconciliation: correct tasks left unfinished by missed events from the result backend and inspect.

Redis events are PUB/SUB: whatever happened while we were disconnected is lost, which would
leave tasks shown as STARTED forever. The ``Reconciler`` checks unfinished tasks after a
reconnect, periodically while they stay unfinished, and on demand:

1. the result backend, in batches (one MGET of ``celery-task-meta-<id>`` keys per batch on
   key-value backends such as Redis); a terminal status there is the truth;
2. ``inspect(destination=<online workers>).query_task(ids)`` for the rest: a worker holding
   the task says whether it is active, reserved or scheduled;
3. a task last seen RECEIVED or STARTED that no backend and no worker accounts for is marked
   "unknown since <gap start / last event>": its state is kept and flagged, never guessed.

Tasks first seen through an event that carries no name (one that started before we listened,
or came back after the index evicted and forgot it) are named from the backend's extended meta
(``result_extended = True``) within a few seconds: ``name_unknown``.

Corrections set the timestamp fields ``derive_state`` reads (``succeeded``, ``failed``,
``revoked``, ...), so a late event cannot flip a corrected task back. Nothing is polled per task
per second: runs are batched, spaced by ``interval``, and a task still running is re-checked
with a doubling back-off.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Final

import msgspec

from lazycelery.core.model import (
    FAILURE,
    PENDING,
    READY_STATES,
    RECEIVED,
    REVOKED,
    STARTED,
    SUCCESS,
    TaskRecord,
    derive_state,
)
from lazycelery.mask import Masker
from lazycelery.urls import error_line

if TYPE_CHECKING:
    from celery import Celery

    from lazycelery.core.index import TaskIndex

__all__ = [
    "Correction",
    "NoResultBackend",
    "ReconcileReport",
    "Reconciler",
    "fetch_metas",
    "find_task_ids",
    "result_backend",
]

#: Backend statuses that end a task (celery.states.READY_STATES).
_TERMINAL: Final = frozenset({SUCCESS, FAILURE, REVOKED})
#: What inspect's query_task says -> the state it implies.
_HELD_STATE: Final = {"active": STARTED, "reserved": RECEIVED, "scheduled": RECEIVED}
#: States that mean a worker had the task; if no worker has it now, the outcome is unknown.
#: (PENDING and RETRY tasks may be waiting in a broker queue, where inspect cannot see them.)
_HELD_STATES: Final = frozenset({RECEIVED, STARTED})
_UNKNOWN_FIELD: Final = "unknown_since" in TaskRecord.__struct_fields__
_MAX_BACKOFF: Final = 900.0
#: seconds between looks for tasks to name from the result backend
_NAMES_EVERY: Final = 2.0


class NoResultBackend(Exception):
    """No readable result backend is configured (``str()`` says which and how to set one)."""


# --------------------------------------------------------------------------- backend reads


def result_backend(app: Celery) -> Any:
    """The app's result backend, or NoResultBackend when there is none that we can read."""
    from celery.backends.base import DisabledBackend

    backend = app.backend
    if isinstance(backend, DisabledBackend):
        raise NoResultBackend(
            "no result backend configured (-A, --result-backend or LAZYCELERY_RESULT_BACKEND)"
        )
    if type(backend).__name__ == "RPCBackend":
        # rpc:// results are messages addressed to the caller: reading them would steal them.
        raise NoResultBackend("the rpc:// result backend cannot be read by a third party")
    return backend


def fetch_metas(app: Celery, task_ids: Sequence[str], *, batch_size: int = 500) -> dict[str, dict[str, Any]]:
    """Stored task meta by id, for ids that have any (raw dicts: exceptions stay as
    ``{exc_type, exc_message, exc_module}``). Key-value backends are read with one MGET per
    ``batch_size`` ids; others with one ``get_task_meta`` per id. Raises NoResultBackend."""
    from celery.backends.base import KeyValueStoreBackend

    backend = result_backend(app)
    out: dict[str, dict[str, Any]] = {}
    if not task_ids:
        return out
    if isinstance(backend, KeyValueStoreBackend):
        for chunk in _chunks(task_ids, batch_size):
            keys = [backend.get_key_for_task(task_id) for task_id in chunk]
            values = backend.mget(keys)
            if isinstance(values, Mapping):  # some clients answer {key: value}
                values = [values.get(key) for key in keys]
            for task_id, value in zip(chunk, values, strict=False):
                if value:
                    meta = backend.decode(value)
                    if isinstance(meta, dict):
                        out[task_id] = meta
        return out
    for task_id in task_ids:
        meta = backend.get_task_meta(task_id)
        if isinstance(meta, dict) and (meta.get("status") != PENDING or meta.get("name")):
            out[task_id] = dict(meta)
    return out


def find_task_ids(app: Celery, prefix: str, limit: int = 10) -> list[str]:
    """Ids of stored results whose id starts with ``prefix``, sorted; the search stops after
    ``limit + 1`` (so more than ``limit`` means "and more").

    Only a Redis result backend can be searched: one ``SCAN MATCH celery-task-meta-<prefix>*``
    over its keys (read-only; it walks the whole keyspace, in pages of 1,000). Raises
    NoResultBackend for any other backend, saying so."""
    backend = result_backend(app)
    client = getattr(backend, "client", None)
    if type(backend).__name__ not in ("RedisBackend", "SentinelBackend") or client is None:
        raise NoResultBackend(f"the {type(backend).__name__} result backend cannot be searched "
                              "by id prefix (only Redis can)")
    key = backend.get_key_for_task(prefix)
    key = key.decode() if isinstance(key, bytes) else str(key)
    head = key[: len(key) - len(prefix)]
    found: set[str] = set()
    for name in client.scan_iter(match=_glob_escape(key) + "*", count=1000):
        text = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
        found.add(text[len(head):])
        if len(found) > limit:
            break
    return sorted(found)


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    size = max(1, size)
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _epoch(value: Any, default: float) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return default
    else:
        return default
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _exception_text(result: Any) -> str | None:
    """``ValueError('bad')`` from a stored exception dict (or an exception object)."""
    if isinstance(result, BaseException):
        return f"{type(result).__name__}({', '.join(repr(a) for a in result.args)})"
    if isinstance(result, Mapping) and "exc_type" in result:
        message = result.get("exc_message")
        parts = message if isinstance(message, (list, tuple)) else ([] if message is None else [message])
        return f"{result['exc_type']}({', '.join(repr(p) for p in parts)})"
    return None if result is None else str(result)


def _result_text(result: Any) -> str:
    from celery.utils.saferepr import saferepr

    return str(saferepr(result, 1024))


def _repr(value: Any) -> str:
    """args / kwargs as celery's own argsrepr would read (cut at 1,024 characters)."""
    return _result_text(value)


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Correction:
    """One task whose record was changed by reconciliation."""

    uuid: str
    name: str | None
    old_state: str
    state: str
    source: str
    unknown_since: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"uuid": self.uuid, "name": self.name, "state": self.state,
                               "old_state": self.old_state, "source": self.source,
                               "reconciled": True}
        if self.unknown_since is not None:
            out["unknown_since"] = self.unknown_since
        return out


@dataclass(frozen=True)
class ReconcileReport:
    """What one run checked and changed."""

    trigger: str
    checked: int
    corrected: tuple[Correction, ...]
    unknown: tuple[Correction, ...]
    running: int
    errors: tuple[str, ...]
    duration: float

    def summary(self) -> str:
        parts = [f"checked {self.checked}", f"corrected {len(self.corrected)}"]
        if self.unknown:
            parts.append(f"{len(self.unknown)} unknown")
        if self.running:
            parts.append(f"{self.running} held by workers")
        if self.errors:
            parts.append(f"errors: {'; '.join(self.errors)}")
        return f"reconcile ({self.trigger}): " + ", ".join(parts)


@dataclass
class _Gap:
    start: float
    end: float
    reason: str


# --------------------------------------------------------------------------- the reconciler


class Reconciler:
    """Corrects unfinished tasks in ``index`` (see the module docstring).

    ``run()`` works in the caller's thread. ``start()`` adds a daemon thread that runs after
    each reconnect (``note_gap`` / ``on_ingest_status``) and every ``interval`` seconds for tasks
    inactive for ``stale_after`` seconds. ``on_report`` is called (in that thread) after every
    run that checked something.
    """

    def __init__(
        self,
        index: TaskIndex,
        app: Celery,
        *,
        stale_after: float = 60.0,
        interval: float = 30.0,
        batch_size: int = 500,
        timeout: float = 1.0,
        max_per_run: int = 20_000,
        on_report: Callable[[ReconcileReport], None] | None = None,
        clock: Callable[[], float] = time.time,
        masker: Masker | None = None,
    ) -> None:
        self.index = index
        #: masks the args the result backend gives before they enter the index (as ingest)
        self.masker = masker if masker is not None else Masker()
        self.app = app
        self.stale_after = stale_after
        self.interval = interval
        self.batch_size = batch_size
        self.timeout = timeout
        self.max_per_run = max_per_run
        self.on_report = on_report
        self.clock = clock
        self._run_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._gap: _Gap | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_gap: Any = None
        # uuid -> (next check time, current back-off); only for tasks seen in the stale prefix
        self._backoff: dict[str, tuple[float, float]] = {}

    # ---------------------------------------------------------------- triggers

    def note_gap(self, start: float, end: float, reason: str = "") -> None:
        """Events between ``start`` and ``end`` may be lost: reconcile soon (gaps coalesce)."""
        with self._state_lock:
            if self._gap is None:
                self._gap = _Gap(start, end, reason)
            else:
                self._gap = _Gap(min(self._gap.start, start), max(self._gap.end, end),
                                 reason or self._gap.reason)
        self._wake.set()

    def on_ingest_status(self, status: Any) -> None:
        """Hook for the ingestor's ``on_status`` (an ``IngestStatus``): once ``connected`` with a
        ``gap`` (start, end, reason) not seen before, reconcile what the gap may have hidden."""
        gap = getattr(status, "gap", None)
        if getattr(status, "state", None) != "connected" or gap is None or gap == self._last_gap:
            return
        self._last_gap = gap
        now = self.clock()
        start = getattr(gap, "start", None)
        end = getattr(gap, "end", None)
        self.note_gap(float(start) if isinstance(start, (int, float)) else now,
                      float(end) if isinstance(end, (int, float)) else now,
                      str(getattr(gap, "reason", "") or ""))

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="lazycelery-reconcile", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        due = time.monotonic() + self.interval
        while not self._stop.is_set():
            woken = self._wake.wait(max(0.0, min(_NAMES_EVERY, due - time.monotonic())))
            if self._stop.is_set():
                return
            with contextlib.suppress(Exception):  # a failing backend: the next look retries
                self.name_unknown()
            if not woken and time.monotonic() < due:
                continue
            self._wake.clear()
            due = time.monotonic() + self.interval
            with self._state_lock:
                gap, self._gap = self._gap, None
            try:
                if gap is not None:
                    self.run(trigger="reconnect", gap=(gap.start, gap.end))
                else:
                    self.run(trigger="periodic", older_than=self.stale_after)
            except Exception:  # a failing backend must not kill the thread: next run retries
                continue
            # at most one run per interval, even when the connection flaps
            self._stop.wait(min(self.interval, 5.0))

    # ---------------------------------------------------------------- names

    def name_unknown(self) -> ReconcileReport | None:
        """Name tasks the index holds without a name, from the result backend's extended meta;
        reported (``on_report``) as corrections that keep the state. None when there was none
        to name."""
        ids = self.index.take_unnamed(self.batch_size)
        if not ids:
            return None
        began = time.monotonic()
        errors: list[str] = []
        try:
            metas = fetch_metas(self.app, ids, batch_size=self.batch_size)
        except NoResultBackend:
            metas = {}
        except Exception as exc:
            metas = {}
            errors.append(f"result backend: {type(exc).__name__}: {error_line(exc)}")
        corrected: list[Correction] = []
        for uuid in ids:
            meta = metas.get(uuid) or {}
            name = meta.get("name")
            if not isinstance(name, str) or not name:
                continue  # no result_extended, ignored result, or expired
            args, kwargs, queue = meta.get("args"), meta.get("kwargs"), meta.get("queue")
            rec = self.index.fill_identity(
                uuid, name=name,
                args=(self.masker.mask_field(name, "args", _repr(tuple(args)))
                      if isinstance(args, (list, tuple)) else None),
                kwargs=(self.masker.mask_field(name, "kwargs", _repr(dict(kwargs)))
                        if isinstance(kwargs, Mapping) else None),
                queue=queue if isinstance(queue, str) else None)
            if rec is not None:
                corrected.append(Correction(uuid, name, rec.state, rec.state,
                                            "result backend: its name"))
        report = ReconcileReport("names", len(ids), tuple(corrected), (), 0, tuple(errors),
                                 time.monotonic() - began)
        if self.on_report is not None and (corrected or errors):
            self.on_report(report)
        return report

    # ---------------------------------------------------------------- one run

    def run(
        self,
        *,
        trigger: str = "on demand",
        older_than: float | None = None,
        gap: tuple[float, float] | None = None,
    ) -> ReconcileReport:
        """Check unfinished tasks now. ``gap=(start, end)``: those last seen before ``end``
        (unknown ones are "unknown since start"); ``older_than``: those inactive that long
        (periodic runs skip tasks in back-off); neither: every unfinished task."""
        with self._run_lock:
            began = time.monotonic()
            now = self.clock()
            periodic = gap is None and older_than is not None
            if gap is not None:
                cutoff = gap[1]
            elif older_than is not None:
                cutoff = now - older_than
            else:
                cutoff = float("inf")
            candidates = self._candidates(cutoff, now, periodic)
            report = self._check(candidates, trigger, gap[0] if gap else None, now)
            report = ReconcileReport(report.trigger, report.checked, report.corrected, report.unknown,
                                     report.running, report.errors, time.monotonic() - began)
        if self.on_report is not None and report.checked:
            self.on_report(report)
        return report

    def _candidates(self, cutoff: float, now: float, periodic: bool) -> list[TaskRecord]:
        out: list[TaskRecord] = []
        kept: dict[str, tuple[float, float]] = {}
        with self.index.lock:
            # least recently active first, so the stale ones are a prefix
            for rec in self.index.iter_unfinished():
                if rec.last_seen > cutoff or len(out) >= self.max_per_run:
                    break
                entry = self._backoff.get(rec.uuid)
                if entry is not None:
                    kept[rec.uuid] = entry
                if periodic and entry is not None and entry[0] > now:
                    continue
                out.append(msgspec.structs.replace(rec))
        if periodic:
            # tasks that finished, were evicted or saw a new event lose their back-off
            self._backoff = kept
        return out

    def _check(self, candidates: list[TaskRecord], trigger: str, gap_start: float | None,
               now: float) -> ReconcileReport:
        errors: list[str] = []
        corrected: list[Correction] = []
        unknown: list[Correction] = []
        ids = [rec.uuid for rec in candidates]
        metas: dict[str, dict[str, Any]] = {}
        have_backend = True
        try:
            metas = fetch_metas(self.app, ids, batch_size=self.batch_size)
        except NoResultBackend:
            have_backend = False
        except Exception as exc:
            errors.append(f"result backend: {type(exc).__name__}: {error_line(exc)}")

        rest: list[TaskRecord] = []
        for rec in candidates:
            meta = metas.get(rec.uuid)
            status = meta.get("status") if meta else None
            if meta is not None and status in _TERMINAL:
                change = self._apply_terminal(rec, str(status), meta, now)
                if change is not None:
                    corrected.append(change)
            else:
                rest.append(rec)

        running = 0
        held, busy = self._held(rest, errors)
        for rec in rest:
            where = held.get(rec.uuid)
            if where is not None:
                running += 1
                change = self._apply_held(rec, where[0], where[1], now)
                if change is not None:
                    corrected.append(change)
                self._back_off(rec.uuid, now)
                continue
            if busy is None or rec.state not in _HELD_STATES or rec.worker in busy:
                self._back_off(rec.uuid, now)
                continue
            since = gap_start if gap_start is not None else rec.last_seen
            change = self._apply_unknown(rec, since, have_backend)
            if change is not None:
                unknown.append(change)
            self._back_off(rec.uuid, now)
        return ReconcileReport(trigger, len(candidates), tuple(corrected), tuple(unknown), running,
                               tuple(errors), 0.0)

    def _held(
        self, rest: Sequence[TaskRecord], errors: list[str]
    ) -> tuple[dict[str, tuple[str, str]], frozenset[str] | None]:
        """uuid -> (worker, 'active'|'reserved'|'scheduled'), and the workers whose silence
        proves nothing (online by heartbeat, yet no answer: busy) - None when we could not ask,
        so nothing may be called unknown.

        Asked: the online workers plus the workers the tasks were last seen on, unless those
        said goodbye (worker-offline). While our own event stream is down every heartbeat looks
        missing, so a worker is only written off when it does not answer inspect either.
        """
        if not rest:
            return {}, frozenset()
        rows = self.index.worker_rows()
        if not rows:
            return {}, None  # no worker seen yet: too early to say anything is gone
        status = {w.hostname: state for w, state in rows}
        online = [host for host, state in status.items() if state == "online"]
        holders = {rec.worker for rec in rest if rec.worker and status.get(rec.worker) != "offline"}
        destination = sorted(set(online) | holders)
        if not destination:
            return {}, frozenset()
        held: dict[str, tuple[str, str]] = {}
        answered: set[str] = set()
        ids = [rec.uuid for rec in rest]
        for chunk in _chunks(ids, max(self.batch_size, 1000)):
            try:
                replies = self.app.control.inspect(destination=destination, timeout=self.timeout) \
                    .query_task(*chunk)
            except Exception as exc:
                errors.append(f"inspect: {type(exc).__name__}: {error_line(exc)}")
                return held, None
            for host, found in (replies or {}).items():
                answered.add(host)
                for task_id, pair in (found or {}).items():
                    if isinstance(pair, (list, tuple)) and pair and pair[0] in _HELD_STATE:
                        held[task_id] = (host, str(pair[0]))
        return held, frozenset(online) - answered

    # ---------------------------------------------------------------- corrections

    def _apply_terminal(self, rec: TaskRecord, status: str, meta: Mapping[str, Any],
                        now: float) -> Correction | None:
        when = _epoch(meta.get("date_done"), now)
        fields: dict[str, Any]
        mask = self.masker.mask_field
        if status == SUCCESS:
            fields = {"succeeded": when,
                      "result": mask(rec.name, "result", _result_text(meta.get("result")))}
        elif status == FAILURE:
            exception, traceback = _exception_text(meta.get("result")), meta.get("traceback")
            fields = {"failed": when,
                      "exception": (mask(rec.name, "exception", exception)
                                    if isinstance(exception, str) else exception),
                      "traceback": (mask(rec.name, "traceback", traceback)
                                    if isinstance(traceback, str) else traceback)}
        else:
            fields = {"revoked": when}
        return self._mark(rec, status, fields, "result backend", terminal=True)

    def _apply_held(self, rec: TaskRecord, host: str, held_as: str, now: float) -> Correction | None:
        state = _HELD_STATE[held_as]
        if rec.state == state:
            return None
        attempt = max(rec.sent_attempt, rec.received_attempt, rec.n_retried - 1, rec.n_started - 1, 0)
        if rec.n_retried > attempt:  # it was waiting to retry: this is the next attempt
            attempt += 1
        fields: dict[str, Any] = {"received_attempt": attempt}
        if rec.received is None:
            fields["received"] = now
        if state == STARTED:
            fields.update(n_started=attempt + 1, started=now)
        return self._mark(rec, state, fields, f"worker {host} ({held_as})", terminal=False)

    def _apply_unknown(self, rec: TaskRecord, since: float, have_backend: bool) -> Correction | None:
        if _UNKNOWN_FIELD and getattr(rec, "unknown_since", None) is not None:
            return None  # already flagged
        source = "no worker holds it" + ("" if have_backend else "; no result backend to ask")
        if _UNKNOWN_FIELD:
            self.index.mark_reconciled(rec.uuid, rec.state, unknown_since=since)
        return Correction(rec.uuid, rec.name, rec.state, rec.state, source, unknown_since=since)

    def _mark(self, rec: TaskRecord, state: str, fields: dict[str, Any], source: str,
              *, terminal: bool) -> Correction | None:
        # The fields must imply the state, or the next event would re-derive something else.
        if derive_state(msgspec.structs.replace(rec, **fields)) != state:
            return None
        current = self.index.get(rec.uuid)
        if current is None:
            return None  # evicted meanwhile
        if not terminal and current.state in READY_STATES:
            return None  # an event finished it while we were asking: events win
        if _UNKNOWN_FIELD:
            fields["unknown_since"] = None
        self.index.mark_reconciled(rec.uuid, state, expect_state=current.state, **fields)
        self._backoff.pop(rec.uuid, None)
        return Correction(rec.uuid, rec.name, rec.state, state, source)

    def _back_off(self, uuid: str, now: float) -> None:
        entry = self._backoff.get(uuid)
        delay = min(_MAX_BACKOFF, entry[1] * 2) if entry else max(self.stale_after, 1.0)
        self._backoff[uuid] = (now + delay, delay)
