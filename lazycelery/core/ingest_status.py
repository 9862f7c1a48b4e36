"""What the ingest thread reports: its connection state, the gaps it saw, how long it waits
before reconnecting, and the interface readers of it (dashboard, tail) rely on."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Final, Protocol

__all__ = [
    "BACKOFF_MAX",
    "CONNECTED",
    "CONNECTING",
    "FAST_RETRIES",
    "RECONNECTING",
    "STOPPED",
    "Gap",
    "IngestStatus",
    "IngestorLike",
    "backoff_delay",
    "short_reason",
]

CONNECTING: Final = "connecting"
CONNECTED: Final = "connected"
RECONNECTING: Final = "reconnecting"
STOPPED: Final = "stopped"

# Redis PUB/SUB keeps nothing: every second spent waiting after the broker is back is a
# second of lost events, so the cap is short (a refused connect costs the broker nothing).
BACKOFF_MAX: Final = 5.0
FAST_RETRIES: Final = 5

_ERRNO_PREFIX = re.compile(r"^\[Errno -?\d+\]\s*")


@dataclass(frozen=True)
class Gap:
    """A stretch of time in which events were lost (disconnect, broker restart, overflow)."""

    start: float
    end: float
    seconds: float
    reason: str

    def describe(self) -> str:
        return f"gap of {self.seconds:.1f} s ({self.reason})"


@dataclass(frozen=True)
class IngestStatus:
    """The ingest thread's state, swapped whole on every change (safe to read from any thread)."""

    state: str
    path: str
    attempt: int = 0
    next_retry_in: float | None = None
    last_error: str | None = None
    since: float = field(default_factory=time.time)
    gap: Gap | None = None
    #: time.time() of the next connection attempt while reconnecting (for a countdown)
    retry_at: float | None = None
    #: bad events (or messages) skipped, and fields of applied events dropped or cut, since
    #: the start (``sanitize.BadInput``; updated at most once a second)
    skipped: int = 0
    repaired: int = 0

    def describe(self) -> str:
        """One human line: ``connected (fast path)``,
        ``reconnecting: attempt 3, next try in 4.0 s (Connection refused)``."""
        if self.state == RECONNECTING:
            text = f"reconnecting: attempt {self.attempt}"
            if self.next_retry_in is not None:
                text += f", next try in {self.next_retry_in:.1f} s"
            if self.last_error:
                text += f" ({short_reason(self.last_error)})"
            return text
        if self.state == STOPPED:
            return STOPPED
        return f"{self.state} ({self.path} path)"


def backoff_delay(attempt: int) -> float:
    """1 s for the first five attempts (a restarting broker is usually back within seconds,
    and every second we wait after that is lost events), then 2, 4, 5, 5 ... s."""
    if attempt <= FAST_RETRIES:
        return 1.0
    return float(min(BACKOFF_MAX, 2 ** (attempt - FAST_RETRIES)))


def short_reason(error: str) -> str:
    """The last sentence of an error: ``Error 111 connecting to h:1. Connection refused.``
    -> ``Connection refused``."""
    text = _ERRNO_PREFIX.sub("", error.strip()).rstrip(".")
    parts = [part for part in text.split(". ") if part.strip()]
    return parts[-1].strip() if parts else text


class IngestorLike(Protocol):
    """What the dashboard and ``tail`` drive: the ingest thread (``Ingestor``) or a fake."""

    @property
    def status(self) -> IngestStatus: ...

    def events_per_second(self) -> float: ...

    def start(self) -> None: ...

    def stop(self, timeout: float = ...) -> None: ...
