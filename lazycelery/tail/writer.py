"""The main-thread side of `tail`: drain the LineBuffer to stdout and stderr until a stop condition."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, TextIO

from lazycelery.tail.buffer import Dropped, LineBuffer, Notice
from lazycelery.tail.status import StatusReporter
from lazycelery.text import visible

if TYPE_CHECKING:
    from lazycelery.core.ingest_status import IngestorLike

__all__ = ["follow"]


def _silence(stream: IO[Any]) -> None:
    """The reader went away: point the fd at /dev/null so no later flush raises again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _stop_quietly(ingestor: IngestorLike, reporter: StatusReporter) -> None:
    """Stop the ingest thread (bounded by its 2 s timeout); a second Ctrl-C can't interrupt."""
    reporter.stopping = True
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
    try:
        ingestor.stop(timeout=2.0)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def follow(ingestor: IngestorLike, buffer: LineBuffer, reporter: StatusReporter,
           out: IO[bytes], err: TextIO, *, limit: int | None = None,
           timeout: float | None = None, clock: Callable[[], float] = time.monotonic) -> int:
    """Start the ingestor and write what the sink queues until a stop condition; exit code.

    Exit 0 after ``limit`` lines, after ``timeout`` s without a matching event, on Ctrl-C and
    when stdout's reader goes away; exit 1 after ``timeout`` s if it never connected; exit 2
    if the event stream stops by itself.
    """
    written = 0
    deadline = None if timeout is None else clock() + timeout
    try:
        ingestor.start()
        while True:
            wait = None if deadline is None else max(0.0, deadline - clock())
            buffer.wait(wait)
            if buffer.output_closed:
                _silence(out)
                return 0
            items = buffer.take()
            if not items:
                if deadline is not None and clock() >= deadline:
                    if _connected_once(ingestor, reporter):
                        return 0
                    _err_line(err, f"--timeout: {timeout:g} s went by without a connection")
                    return 1
                continue
            activity = False
            for item in items:
                if isinstance(item, bytes):
                    out.write(item)
                    written += 1
                    activity = True
                    if limit is not None and written >= limit:
                        out.flush()
                        return 0
                elif isinstance(item, Dropped):
                    out.flush()
                    _report_gap(err, item.count, buffer)
                    activity = True
                elif isinstance(item, Notice):
                    out.flush()
                    _err_line(err, item.text)
                else:
                    out.flush()
                    _err_line(err, item.text)
                    return 2
            out.flush()
            if activity and timeout is not None:
                deadline = clock() + timeout
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        _silence(out)
        return 0
    finally:
        with contextlib.suppress(KeyboardInterrupt):
            _stop_quietly(ingestor, reporter)


def _connected_once(ingestor: IngestorLike, reporter: StatusReporter) -> bool:
    """The event stream was connected at some point (``--timeout`` then ends quietly; without
    a connection it is a failure a script must see: exit 1)."""
    group = getattr(ingestor, "ever_connected", None)  # several environments: any of them
    if isinstance(group, bool):
        return group
    return reporter.ever_connected or ingestor.status.state == "connected"


def _err_line(err: TextIO, text: str) -> None:
    """One line on stderr; an error that echoes a URL or a broker's message may carry control
    characters: they are shown as escapes."""
    try:
        err.write(f"lazycelery: {visible(text)}\n")
        err.flush()
    except (BrokenPipeError, ValueError, OSError):
        pass


def _report_gap(err: TextIO, count: int, buffer: LineBuffer) -> None:
    noun = "event" if count == 1 else "events"
    _err_line(err, f"output too slow: {count:,} matching {noun} not printed here "
                   f"(more than {buffer.max_lines:,} lines were waiting to be written)")
