"""What the dashboard shows comes from: static facts for the header, the ingest thread and the
queue monitor (real ones, or fakes in tests)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from lazycelery.broker.model import QueueSnapshot
from lazycelery.core.ingest_status import IngestorLike

__all__ = ["DashboardInfo", "IngestorLike", "QueueMonitorLike"]


class QueueMonitorLike(Protocol):
    @property
    def snapshot(self) -> QueueSnapshot: ...
    def on_update(self, callback: Callable[[QueueSnapshot], None]) -> Callable[[], None]: ...
    def start(self) -> Any: ...
    def stop(self, timeout: float = ...) -> None: ...


@dataclass(frozen=True)
class DashboardInfo:
    """Static facts shown in the header."""

    broker: str = ""
    env_name: str | None = None
    read_only: bool = False
    #: why queue depths are unavailable (unsupported transport), shown in the queues pane
    queues_unavailable: str | None = None
    #: several environments: the config's ``color`` of this one (the header shows its name in it)
    env_color: str | None = None
    #: how many environments this process shows (several: confirmations name the environment)
    env_count: int = 1
