"""The `lazycelery tail` command: wire config, index, filter, formatter, sink and ingestor, then follow."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from lazycelery.core.index import TaskIndex
from lazycelery.errors import UsageError
from lazycelery.tail.buffer import LineBuffer, Notice
from lazycelery.tail.events import TailIndex
from lazycelery.tail.filters import filter_from_args, type_warnings
from lazycelery.tail.format import (
    Formatter,
    JsonFormatter,
    TextFormatter,
    _isatty,
    _iso_time,
    reconciled_line,
    use_color,
)
from lazycelery.tail.sink import TailSink
from lazycelery.tail.status import StatusReporter
from lazycelery.tail.writer import _err_line, follow

__all__ = ["run"]


def _path_label(path: str) -> str:
    if not path or path == "auto":
        return ""
    return f" ({path})" if "path" in path else f" ({path} path)"


def _stdout_binary() -> IO[bytes]:
    buffer: IO[bytes] | None = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        raise UsageError("stdout is not a binary stream")
    return buffer


def _text_formatter(no_color: bool) -> TextFormatter:
    """Colour and width follow stdout: a terminal gets both (width tracked on SIGWINCH)."""
    tty = _isatty(sys.stdout)
    text = TextFormatter(
        color=use_color(sys.stdout, no_color),
        width=shutil.get_terminal_size().columns if tty else None,
        encoding=sys.stdout.encoding or "utf-8",
    )
    if tty and hasattr(signal, "SIGWINCH"):
        def on_resize(signum: int, frame: object) -> None:
            text.width = shutil.get_terminal_size().columns

        signal.signal(signal.SIGWINCH, on_resize)
    return text


def run(args: argparse.Namespace) -> int:
    """The `lazycelery tail` command; Ctrl-C anywhere (even while connecting) exits 0 quietly,
    and so does SIGTERM: both stop the ingest, which saves the mask counts (and flushes the
    spans of --otel) instead of dying with them."""
    restore = _sigterm_as_interrupt()
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 0
    finally:
        restore()


def _sigterm_as_interrupt() -> Callable[[], None]:
    """SIGTERM raises KeyboardInterrupt once (the Ctrl-C path); a second one while stopping is
    ignored. Returns what puts the previous handler back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def on_term(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


def _run(args: argparse.Namespace) -> int:
    from lazycelery.config import resolve
    from lazycelery.config_envs import requested_envs

    if requested_envs(args) is not None:  # --env a --env b, --all-envs
        from lazycelery.tail.envs import run_envs

        return run_envs(args)
    from lazycelery.core.ingest import Ingestor
    from lazycelery.core.ingest_remote import RemoteIngestor, remote_target
    from lazycelery.mask.settings import masker_for
    from lazycelery.otel.hook import start_tracing, stop_tracing
    from lazycelery.urls import mask_url

    event_filter = filter_from_args(args)
    limit: int | None = getattr(args, "limit", None)
    timeout: float | None = getattr(args, "timeout", None)
    settings = resolve(args)
    server, token = remote_target(getattr(args, "server", None), getattr(args, "token", None))
    if server is not None and getattr(args, "since", None):
        raise UsageError("--since reads the local history store; with --server ask the "
                         "server's /api/v1/tasks instead (docs/remote.md)")
    if server is not None:
        from lazycelery.core.ingest_remote import probe

        probe(server, token)  # a wrong URL or token: one line now, not a reconnect loop
    for warning in type_warnings(event_filter.types):
        _err_line(sys.stderr, warning)

    out = _stdout_binary()
    formatter: Formatter = (JsonFormatter() if getattr(args, "json", False)
                            else _text_formatter(bool(settings.no_color)))
    index = TailIndex(max_tasks=settings.max_tasks)
    buffer = LineBuffer(watch_fd=out.fileno())
    masked = settings.masked_broker() if server is None else mask_url(server)
    reporter = StatusReporter(masked, settings.broker_url)
    sink = TailSink(index, event_filter, formatter, buffer, reporter, limit=limit)
    history = _open_history(args, settings)
    gate: Any = None
    if history is not None:
        from lazycelery.tail.history import LiveGate

        gate = LiveGate(sink, index)  # live batches wait while history is printed
    reconciler = None if server is not None else _reconciler(
        settings, index, buffer, json_lines=getattr(args, "json", False))  # serve reconciles
    connected = threading.Event()

    def on_status(status: Any) -> None:
        sink.on_status(status)
        if reconciler is not None:
            reconciler.on_ingest_status(status)
        if status.state == "connected":
            connected.set()

    tracing = start_tracing(args, settings, lambda text: _err_line(sys.stderr, text))
    on_batch = gate.on_batch if gate is not None else sink.on_batch
    if reconciler is not None:
        reconciler.start()
    try:
        # wakeup=False: the Receiver's wakeup broadcasts a `heartbeat` control command to every
        # worker on the broker; tail hides heartbeats by default and needs no worker list.
        masker = masker_for(settings)
        for problem in masker.problems:
            _err_line(sys.stderr, f"mask rule skipped: {problem}")
        ingestor: Any = RemoteIngestor(
            server, index, token=token,
            on_batch=on_batch if tracing is None else tracing.tee(on_batch),
            on_status=on_status, on_notice=sink.on_notice,
        ) if server is not None else Ingestor(
            settings.broker_url, index, mode=settings.ingest, read_ahead=settings.read_ahead,
            app=settings.celery_app() if settings.app_spec else None,
            transport_options=settings.transport_options,
            on_batch=on_batch if tracing is None else tracing.tee(on_batch),
            on_status=on_status, on_notice=sink.on_notice,
            wakeup=False, masker=masker,
        )
        if history is not None:
            store, since = history
            # history is masked with the same rules (a store written with masking off, or
            # before it existed, must not show what live events would not)
            written = _replay(store, since, ingestor, connected, gate, event_filter, formatter,
                              out, settings.max_tasks, limit,
                              masker_for(settings, save_counts=False))
            if limit is not None:
                if written >= limit:
                    ingestor.stop(timeout=2.0)
                    return 0
                limit -= written
        if _isatty(sys.stderr):
            path = getattr(ingestor, "path", "")
            _err_line(sys.stderr, f"following {masked}{_path_label(path)}")
        return follow(ingestor, buffer, reporter, out, sys.stderr, limit=limit, timeout=timeout)
    finally:
        stop_tracing(tracing, lambda text: _err_line(sys.stderr, text))
        if reconciler is not None:
            reconciler.stop(timeout=1.0)
        if history is not None:
            history[0].close()
        buffer.close()


def _open_history(args: argparse.Namespace, settings: Any) -> tuple[Any, float] | None:
    """``--since``: the store to read history from, or None (live only, with one line why)."""
    text = getattr(args, "since", None)
    if not text:
        return None
    from lazycelery.store import StoreError, default_store_url, open_store
    from lazycelery.tail.history import parse_since

    since = parse_since(text)
    try:
        store = open_store(settings.store_url or default_store_url(), create=False,
                           writer=False)
    except StoreError as exc:
        _err_line(sys.stderr, f"history off: {exc}; following live events only")
        return None
    return store, since


def _replay(store: Any, since: float, ingestor: Any, connected: threading.Event, gate: Any,
            event_filter: Any, formatter: Formatter, out: IO[bytes], max_tasks: int,
            limit: int | None, masker: Any = None) -> int:
    """The switch from history to live: start the live stream (its batches wait in ``gate``),
    wait for a running recorder to have written the first event seen live, print history up
    to then, and let the live events through without those history printed. Returns the
    history lines written."""
    from lazycelery.store import StoreError
    from lazycelery.tail.history import OVERLAP, print_history, wait_for_recorder

    ingestor.start()
    connected.wait(5.0)
    switch = time.time()
    printed: set[Any] = set()
    try:
        if not wait_for_recorder(store, gate):
            _err_line(sys.stderr, "history: no recorder wrote the live events within "
                      "5 s; events just before the switch may be missing")
        until = time.time()
        return print_history(store, since, until, event_filter=event_filter,
                             formatter=formatter, out=out,
                             say=lambda text: _err_line(sys.stderr, text),
                             max_tasks=max_tasks, limit=limit,
                             seen=printed, seen_from=switch - OVERLAP, masker=masker)
    except StoreError as exc:
        _err_line(sys.stderr, f"history stopped: {exc}")
    except Exception as exc:
        _err_line(sys.stderr, f"history stopped: {store.describe_error(exc)}")
    finally:
        gate.release(printed, time.time())
    return 0


def _reconciler(settings: Any, index: TaskIndex, buffer: LineBuffer, *,
                json_lines: bool) -> Any:
    """Checks tasks left unfinished by a gap in the stream (result backend, then the workers
    that hold them) and prints one line per corrected task. None without a Celery app to ask
    (celery's import is paid only here, after the stream is set up)."""
    from lazycelery.core.reconcile import Correction, Reconciler, ReconcileReport
    from lazycelery.mask.settings import masker_for

    try:
        app = settings.celery_app()
    except Exception as exc:  # a broken -A app was reported by resolve(); be quiet here
        buffer.put(Notice(f"reconciliation off: {exc}"))
        return None

    def line(correction: Correction) -> bytes:
        if json_lines:
            doc = {"type": "reconciled", "time": _iso_time(time.time()), **correction.to_json()}
            return JsonFormatter.encode(doc)
        return reconciled_line(correction, time.time())

    def on_report(report: ReconcileReport) -> None:
        changed = report.corrected + report.unknown
        if changed:
            buffer.put(Notice(f"{report.summary()}"))
            buffer.put_lines([line(c) for c in changed])

    # its own masker with the same rules: the values the result backend gives are masked too
    return Reconciler(index, app, on_report=on_report,
                      masker=masker_for(settings, save_counts=False))
