"""Whether the ingest thread is behind its broker, from its own socket reads: a read that
finds the socket holding at least half its buffer means data was waiting; a read that finds
less (or nothing, a poll timeout) means the thread had caught up. ``behind()`` is the time
since it last caught up, so a thread starved of the CPU (or of the GIL) shows as behind too.

Written by the ingest thread (one float per read), read by anyone (a float: no lock)."""

from __future__ import annotations

import time

__all__ = ["Backlog"]


class Backlog:
    def __init__(self) -> None:
        #: monotonic time the reader last caught up; None while no session reads
        self._caught_up: float | None = None

    def read(self, received: int, size: int) -> None:
        """One socket read of ``received`` bytes into a buffer of ``size``."""
        if received < size // 2:
            self._caught_up = time.monotonic()

    def idle(self) -> None:
        """A read found nothing (or a session just started): caught up."""
        self._caught_up = time.monotonic()

    def stopped(self) -> None:
        """No session reads (disconnected): not behind, there is nothing to read."""
        self._caught_up = None

    def behind(self) -> float:
        """Seconds since the reader last caught up (0: no session, or keeping up)."""
        caught_up = self._caught_up
        return 0.0 if caught_up is None else max(0.0, time.monotonic() - caught_up)
