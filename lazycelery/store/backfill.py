"""Backfill: tasks whose every event fell into a gap, read from the result backend.

After a gap (a reconnect, a store that fell behind, no recorder running) the result backend
still holds each task that finished (for ``result_expires``, a day by default). The
``Backfiller`` reads the Redis backend's ``celery-task-meta-<id>`` keys (SCAN + MGET) or the
database backend's table (a ``date_done`` range query, ``backfill_db``), bounded by a time
budget, keeps the finished tasks whose ``date_done`` falls in a gap, and hands them to the
writer marked ``backfilled``; a task the store already knows is merged, not replaced. With
``result_extended`` the meta carries name, args, kwargs, worker, queue and retries; without it a
backfilled task has its id, state, result or exception and time only. Other result backends are
not supported (one line says so).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from lazycelery.core.model import FAILURE, REVOKED, SUCCESS, TaskRecord, derive_state
from lazycelery.mask import Masker
from lazycelery.store.batch import Transition, WriteBatch

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["BUDGET", "BackfillReport", "Backfiller", "Window", "record_from_meta", "scan"]

log = logging.getLogger(__name__)

#: seconds one backfill run may take before it stops (what it found so far is kept)
BUDGET: Final = 60.0
#: keys per SCAN step and per MGET
BATCH: Final = 500
_EVENT_OF: Final = {SUCCESS: "task-succeeded", FAILURE: "task-failed", REVOKED: "task-revoked"}


@dataclass(frozen=True)
class Window:
    """A gap to fill: tasks finished in ``[scan_from, scan_to]`` (the gap, widened by a margin
    for events received but not yet written when it began). ``gap`` identifies the stored gap
    row (its start and end) whose ``backfilled_*`` columns the result goes to."""

    scan_from: float
    scan_to: float
    gap: tuple[float, float] | None = None


@dataclass(frozen=True)
class BackfillReport:
    windows: int
    scanned: int
    found: int
    written: int
    seconds: float
    complete: bool
    error: str | None = None

    def summary(self) -> str:
        if self.error:
            return f"backfill off: {self.error}"
        text = (f"backfill: {self.found:,} finished tasks in {self.windows} gap(s), "
                f"{self.written:,} written ({self.scanned:,} result keys read in "
                f"{self.seconds:.1f} s)")
        if not self.complete:
            text += f"; stopped at the {BUDGET:g} s budget, partial"
        return text


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def record_from_meta(task_id: str, meta: Mapping[str, Any], when: float,
                     masker: Masker | None = None) -> TaskRecord | None:
    """The record a finished task's result meta stands for (None if it is not finished);
    its values masked as ingest masks events (``masker``: the default rules when None)."""
    from celery.utils.saferepr import saferepr

    from lazycelery.core.reconcile import _exception_text, _result_text

    status = meta.get("status")
    if status not in _EVENT_OF:
        return None
    rec = TaskRecord(uuid=task_id, name=_text(meta.get("name")), worker=_text(meta.get("worker")),
                     queue=_text(meta.get("queue")), parent_id=_text(meta.get("parent_id")))
    retries = meta.get("retries")
    if isinstance(retries, int) and not isinstance(retries, bool):
        rec.retries = retries
    args, kwargs = meta.get("args"), meta.get("kwargs")
    if isinstance(args, (list, tuple)):
        rec.args = str(saferepr(tuple(args), 1024))  # as celery's argsrepr shows them
    if isinstance(kwargs, Mapping):
        rec.kwargs = str(saferepr(dict(kwargs), 1024))
    if status == SUCCESS:
        rec.succeeded, rec.result = when, _result_text(meta.get("result"))
    elif status == FAILURE:
        rec.failed = when
        rec.exception = _exception_text(meta.get("result"))
        rec.traceback = _text(meta.get("traceback"))
    else:
        rec.revoked = when
    _mask(rec, masker or _default_masker())
    rec.last_seen = when
    rec.state = derive_state(rec)
    return rec


@functools.cache
def _default_masker() -> Masker:
    return Masker()


def _mask(rec: TaskRecord, masker: Masker) -> None:
    """The real values of the result backend, masked before they reach the store."""
    event = {"type": "task-received", "name": rec.name, "args": rec.args, "kwargs": rec.kwargs}
    outcome = {"type": "task-failed" if rec.failed else "task-succeeded", "result": rec.result,
               "exception": rec.exception, "traceback": rec.traceback}
    masker.apply([event, outcome])
    rec.args, rec.kwargs = event["args"], event["kwargs"]
    rec.result, rec.exception, rec.traceback = (
        outcome["result"], outcome["exception"], outcome["traceback"])


def _scheme(app: Celery, backend: Any) -> str:
    url = app.conf.result_backend or getattr(backend, "url", None)
    text = str(url) if url else type(backend).__name__
    return text.partition("://")[0] if "://" in text else text


def _is_database(backend: Any) -> bool:
    return type(backend).__name__ == "DatabaseBackend" and hasattr(backend, "ResultSession")


def _readable_backend(app: Celery) -> Any:
    """The app's result backend if backfill can read it (Redis, database), else
    NoResultBackend: ``backfill not supported for <scheme>``."""
    from lazycelery.core.reconcile import NoResultBackend, result_backend

    backend = result_backend(app)
    if _is_database(backend):
        return backend
    client = getattr(backend, "client", None)
    if client is None or not hasattr(client, "scan_iter") or not hasattr(backend, "decode"):
        raise NoResultBackend(f"backfill not supported for {_scheme(app, backend)} (it reads "
                              "Redis and database result backends)")
    return backend


def scan(app: Celery, windows: Sequence[Window], *, budget: float = BUDGET,
         clock: Callable[[], float] = time.monotonic,
         progress: Callable[[int], None] | None = None, masker: Masker | None = None
         ) -> Iterator[tuple[TaskRecord, Transition]]:
    """Finished tasks whose ``date_done`` is in any window, as (record, transition) pairs,
    their values masked by ``masker`` (the default rules when None).
    Stops quietly when ``budget`` seconds are spent (the caller compares ``clock``)."""
    from lazycelery.core.reconcile import _epoch

    backend = _readable_backend(app)
    if _is_database(backend):
        from lazycelery.store.backfill_db import scan_database

        ranges = [(w.scan_from, w.scan_to) for w in windows]
        for task_id, meta, when in scan_database(backend, ranges, budget=budget, clock=clock,
                                                 progress=progress):
            pair = finished_pair(task_id, meta, when, masker)
            if pair is not None:
                yield pair
        return
    client = backend.client
    prefix = backend.task_keyprefix
    prefix_text = prefix.decode() if isinstance(prefix, bytes) else str(prefix)
    pattern = _glob_escape(prefix_text) + "*"
    deadline = clock() + budget
    keys: list[Any] = []
    scanned = 0
    for key in client.scan_iter(match=pattern, count=BATCH):
        keys.append(key)
        if len(keys) >= BATCH:
            scanned += len(keys)
            yield from _matches(backend, client, keys, prefix_text, windows, _epoch, masker)
            keys = []
            if progress is not None:
                progress(scanned)
            if clock() >= deadline:
                return
    if keys:
        yield from _matches(backend, client, keys, prefix_text, windows, _epoch, masker)
        if progress is not None:
            progress(scanned + len(keys))


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]\\" else c for c in text)


def _matches(backend: Any, client: Any, keys: list[Any], prefix: str,
             windows: Sequence[Window], epoch: Callable[[Any, float], float],
             masker: Masker | None = None) -> Iterator[tuple[TaskRecord, Transition]]:
    for key, value in zip(keys, client.mget(keys), strict=False):
        if not value:
            continue
        try:
            meta = backend.decode(value)
        except Exception:
            continue  # not JSON we can read: skip it, as celery would fail on it too
        if not isinstance(meta, Mapping) or meta.get("status") not in _EVENT_OF:
            continue
        when = epoch(meta.get("date_done"), -1.0)
        if when < 0 or not any(w.scan_from <= when <= w.scan_to for w in windows):
            continue
        name = key.decode() if isinstance(key, bytes) else str(key)
        task_id = _text(meta.get("task_id")) or name[len(prefix):]
        pair = finished_pair(task_id, meta, when, masker)
        if pair is not None:
            yield pair


def finished_pair(task_id: str, meta: Mapping[str, Any], when: float,
                  masker: Masker | None = None) -> tuple[TaskRecord, Transition] | None:
    """A finished task's record and its one (backfilled) transition, from its result meta."""
    rec = record_from_meta(task_id, meta, when, masker)
    if rec is None:
        return None
    return rec, Transition(task_id, _EVENT_OF[rec.state], when, rec.worker, rec.retries, True)


Submit = Callable[[WriteBatch], object]
Known = Callable[[list[str]], set[str]]


class Backfiller:
    """A daemon thread that fills windows one scan at a time (windows queued meanwhile are
    scanned together). ``known(ids)`` says which ids the store already has finished, so only the
    others are written; ``submit`` hands a batch to the writer. ``owns(id)`` (a recorder's
    shard) leaves out the tasks another recorder fills. ``masker``: the configured rules
    (``lazycelery.mask.settings.masker_for``), used by this thread only; the default rules
    when None."""

    def __init__(self, app: Celery, submit: Submit, known: Known, *,
                 on_report: Callable[[BackfillReport], None] | None = None,
                 budget: float = BUDGET, owns: Callable[[str], bool] | None = None,
                 masker: Masker | None = None) -> None:
        self.app = app
        self.masker = masker
        self.owns = owns
        self.submit = submit
        self.known = known
        self.on_report = on_report
        self.budget = budget
        self._lock = threading.Lock()
        self._windows: list[Window] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None

    def add(self, window: Window) -> None:
        with self._lock:
            self._windows.append(window)
            self._idle.clear()
        self._wake.set()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="lazycelery-backfill",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_idle(self, timeout: float) -> bool:
        """True once every window added so far has been scanned (for tests and shutdown)."""
        return self._idle.wait(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            with self._lock:
                windows, self._windows = self._windows, []
            if windows:
                report = self.run(windows)
                if self.on_report is not None:
                    self.on_report(report)
            with self._lock:
                if not self._windows:
                    self._idle.set()

    def run(self, windows: Sequence[Window]) -> BackfillReport:
        from lazycelery.core.reconcile import NoResultBackend
        from lazycelery.urls import error_line

        started = time.monotonic()
        scanned = found = written = 0

        def progress(count: int) -> None:
            nonlocal scanned
            scanned = count

        pending: list[tuple[TaskRecord, Transition]] = []
        try:
            for pair in scan(self.app, windows, budget=self.budget, progress=progress,
                             masker=self.masker):
                if self._stop.is_set():
                    break
                if self.owns is not None and not self.owns(pair[0].uuid):
                    continue
                found += 1
                pending.append(pair)
                if len(pending) >= BATCH:
                    written += self._write(pending)
                    pending = []
            written += self._write(pending)
        except NoResultBackend as exc:
            return BackfillReport(len(windows), scanned, found, written,
                                  time.monotonic() - started, False, str(exc))
        except Exception as exc:
            log.debug("backfill failed", exc_info=True)
            return BackfillReport(len(windows), scanned, found, written,
                                  time.monotonic() - started, False, error_line(exc))
        seconds = time.monotonic() - started
        complete = seconds < self.budget and not self._stop.is_set()
        self.submit(WriteBatch(filled=[(w.gap[0], w.gap[1], written) for w in windows
                                       if w.gap is not None]))
        return BackfillReport(len(windows), scanned, found, written, seconds, complete)

    def _write(self, pairs: list[tuple[TaskRecord, Transition]]) -> int:
        if not pairs:
            return 0
        done = self.known([rec.uuid for rec, _ in pairs])
        fresh = [(rec, tr) for rec, tr in pairs if rec.uuid not in done]
        if fresh:
            self.submit(WriteBatch(tasks=[rec for rec, _ in fresh],
                                   transitions=[tr for _, tr in fresh],
                                   backfilled={rec.uuid for rec, _ in fresh}))
        return len(fresh)
