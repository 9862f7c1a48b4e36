"""What the dashboard needs from the ingest thread and the queue monitor (real ones or fakes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from lazycelery.broker.model import QueueSnapshot

__all__ = ["DashboardInfo", "IngestStatusLike", "IngestorLike", "QueueMonitorLike"]


class IngestStatusLike(Protocol):
    @property
    def state(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def since(self) -> float: ...
    @property
    def gap(self) -> Any: ...
    def describe(self) -> str: ...


class IngestorLike(Protocol):
    @property
    def status(self) -> IngestStatusLike: ...
    def events_per_second(self) -> float: ...
    def start(self) -> None: ...
    def stop(self, timeout: float = ...) -> None: ...


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
