"""Whether the ingest thread is behind its broker, from its own socket reads: a read that
finds the socket holding at least half its buffer means data was waiting; a smaller read (or
nothing, a poll timeout) means the thread has caught up. ``behind()`` is how long the reads
have kept finding data waiting: a thread slowed by the CPU or the GIL (the event loop busy)
shows as behind at its next read. An idle reader, blocked on a quiet socket, is never behind.

Written by the ingest thread (one float per read), read by anyone (a float: no lock)."""

from __future__ import annotations

import time

__all__ = ["Backlog"]


class Backlog:
    def __init__(self) -> None:
        #: monotonic time of the first of the reads that all found data waiting; None when
        #: the last read did not (caught up), or no session reads
        self._since: float | None = None

    def read(self, received: int, size: int) -> None:
        """One socket read of ``received`` bytes into a buffer of ``size``."""
        if received < size // 2:
            self._since = None
        elif self._since is None:
            self._since = time.monotonic()

    def idle(self) -> None:
        """A read found nothing (a poll timeout), or a session starts: caught up."""
        self._since = None

    def stopped(self) -> None:
        """No session reads (disconnected): not behind, there is nothing to read."""
        self._since = None

    def behind(self) -> float:
        """Seconds the reads have kept finding data waiting (0: keeping up, or idle)."""
        since = self._since
        return 0.0 if since is None else max(0.0, time.monotonic() - since)
