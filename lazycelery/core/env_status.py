"""One environment's row in the cluster view: connection (and why not), workers, task rate,
failure rate, queue depth and the last gap, as an immutable value with a one-line text and a
JSON shape (``lazycelery envs``, the dashboard's clusters pane, ``tail`` notices)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from lazycelery.core.ingest_status import Gap
from lazycelery.text import visible
from lazycelery.urls import mask_text

__all__ = ["MISCONFIGURED", "EnvStatus", "format_age"]

#: the state of an environment that could not even be set up (bad config, unknown transport)
MISCONFIGURED: Final = "misconfigured"


def format_age(seconds: float | None) -> str:
    """``42 s``, ``3 m``, ``2 h``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} m"
    return f"{seconds / 3600:.0f} h"


@dataclass(frozen=True)
class EnvStatus:
    """What the cluster view shows of one environment at one moment."""

    name: str
    #: connecting / connected / reconnecting / stopped / misconfigured
    state: str
    #: why it is not connected (one line, secrets masked), else None
    why: str | None = None
    workers_online: int = 0
    workers_total: int = 0
    #: tasks finished per second (succeeded + failed) over the last ``RATE_WINDOW`` s
    tasks_per_s: float = 0.0
    #: failed / finished over the last ``FAILURE_WINDOW`` s; None when none finished
    failure_rate: float | None = None
    #: ready messages in the watched queues, and the oldest one's wait: None = not known
    queue_depth: int | None = None
    oldest_age_s: float | None = None
    #: why the queue figures are missing or stale
    queue_note: str | None = None
    last_gap: Gap | None = None
    read_only: bool = False
    color: str | None = None
    broker: str = ""

    def connection_text(self) -> str:
        """``connected``, ``reconnecting: Connection refused`` ..., one line."""
        text = f"{self.state}: {self.why}" if self.why else self.state
        return visible(mask_text(" ".join(text.split())))

    def describe(self) -> str:
        """The whole row as one line of text."""
        fail = "-" if self.failure_rate is None else f"{self.failure_rate:.1%}"
        depth = "-" if self.queue_depth is None else f"{self.queue_depth:,}"
        gap = self.last_gap.describe() if self.last_gap is not None else "no gap"
        return (f"{self.name}: {self.connection_text()}; workers "
                f"{self.workers_online}/{self.workers_total}; {self.tasks_per_s:.1f} tasks/s; "
                f"failures {fail}; queued {depth} (oldest {format_age(self.oldest_age_s)}); "
                f"{gap}")

    def to_json(self) -> dict[str, Any]:
        gap = self.last_gap
        return {
            "env": self.name, "state": self.state, "why": self.why,
            "broker": self.broker, "read_only": self.read_only, "color": self.color,
            "workers_online": self.workers_online, "workers_total": self.workers_total,
            "tasks_per_s": round(self.tasks_per_s, 3),
            "failure_rate": None if self.failure_rate is None else round(self.failure_rate, 4),
            "queue_depth": self.queue_depth, "oldest_age_s": self.oldest_age_s,
            "queue_note": self.queue_note,
            "last_gap": None if gap is None else {
                "start": gap.start, "end": gap.end, "seconds": round(gap.seconds, 3),
                "reason": gap.reason},
        }
