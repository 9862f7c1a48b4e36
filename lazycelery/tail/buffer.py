"""The bounded hand-off from the ingest thread to the writer: encoded lines, gaps and notices."""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["MAX_PENDING_BYTES", "MAX_PENDING_LINES", "Dropped", "Fatal", "Item", "LineBuffer", "Notice"]


#: Bounds of the backlog between the ingest thread and the writer (see `lazycelery.tail`).
MAX_PENDING_LINES: Final = 100_000
MAX_PENDING_BYTES: Final = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Notice:
    """A line for stderr (never dropped)."""

    text: str


@dataclass(frozen=True, slots=True)
class Dropped:
    """``count`` matching events were dropped here because the writer fell behind."""

    count: int


@dataclass(frozen=True, slots=True)
class Fatal:
    """The event stream ended on its own: print ``text`` and exit with status 2."""

    text: str


Item = bytes | Notice | Dropped | Fatal


class LineBuffer:
    """A bounded queue of encoded lines from the ingest thread to the writer (main thread).

    ``put_lines`` never blocks: past ``max_lines`` or ``max_bytes`` pending, new lines are
    dropped and counted until the backlog is down to half, and a ``Dropped`` marker is queued
    before the next line kept, so the writer reports each run of drops once, where it
    happened. Notices are never dropped (they are rare: one per connection state change).

    The writer waits in ``wait()`` on a self-pipe and, when given, on stdout itself: poll()
    reports POLLERR/POLLHUP on a pipe whose reader has gone (``| head -1``), so tail exits then
    instead of at its next write, which on a quiet cluster could be minutes later.
    """

    def __init__(self, max_lines: int = MAX_PENDING_LINES, max_bytes: int = MAX_PENDING_BYTES,
                 watch_fd: int | None = None) -> None:
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._items: deque[Item] = deque()
        self._lines = 0
        self._bytes = 0
        self._dropping = 0
        self.dropped_total = 0
        self._signalled = False
        self._poll: Any = None
        self._wake_r = self._wake_w = -1
        self._event = threading.Event()
        self._watch_fd = watch_fd
        if hasattr(select, "poll"):
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_r, False)
            os.set_blocking(self._wake_w, False)
            self._poll = select.poll()
            self._poll.register(self._wake_r, select.POLLIN)
            if watch_fd is not None:
                self._poll.register(watch_fd, 0)  # POLLERR / POLLHUP / POLLNVAL are always reported
        self.output_closed = False

    # -- ingest thread side

    def put_lines(self, lines: Sequence[bytes]) -> int:
        """Queue what fits; returns how many lines were queued (the rest were dropped).

        Once full, the buffer keeps dropping until the writer has worked it down to half, so
        an overload is reported as a few large gaps rather than one per line written."""
        queued = 0
        with self._lock:
            for line in lines:
                if self._dropping:
                    if self._lines > self.max_lines // 2 or self._bytes > self.max_bytes // 2:
                        self._dropping += 1
                        self.dropped_total += 1
                        continue
                    self._items.append(Dropped(self._dropping))
                    self._dropping = 0
                if self._lines >= self.max_lines or self._bytes + len(line) > self.max_bytes:
                    self._dropping = 1
                    self.dropped_total += 1
                    continue
                self._items.append(line)
                self._lines += 1
                self._bytes += len(line)
                queued += 1
            self._wake()
        return queued

    def put(self, item: Notice | Fatal) -> None:
        with self._lock:
            self._items.append(item)
            self._wake()

    def _wake(self) -> None:  # with the lock held
        if self._signalled or not self._items:
            return
        self._signalled = True
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):  # full pipe: a wakeup is pending anyway
                os.write(self._wake_w, b"x")
        else:
            self._event.set()

    # -- writer side

    def take(self, max_items: int = 4096) -> list[Item]:
        """Up to ``max_items`` pending items, oldest first; a run of drops with nothing queued
        after it comes last as a ``Dropped``. Taking in chunks keeps what the writer holds small."""
        with self._lock:
            items: list[Item] = []
            pop = self._items.popleft
            while self._items and len(items) < max_items:
                item = pop()
                if isinstance(item, bytes):
                    self._lines -= 1
                    self._bytes -= len(item)
                items.append(item)
            if self._dropping and not self._items:
                items.append(Dropped(self._dropping))
                self._dropping = 0
            if not self._items:
                self._signalled = False
                self._drain_wakeups()
        return items

    def _drain_wakeups(self) -> None:  # with the lock held
        if self._wake_r < 0:
            self._event.clear()
            return
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def wait(self, timeout: float | None) -> None:
        """Return when items are pending, after ``timeout`` s, or when stdout's reader is gone
        (then ``output_closed`` is set). May return early; callers re-check."""
        if self._poll is None:
            self._event.wait(timeout)
            return
        ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
        for fd, flags in self._poll.poll(ms):
            if fd == self._watch_fd and flags & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
                self.output_closed = True

    def close(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
        self._poll = None
