"""What the commands that listen to the broker for a while (``--listen SECONDS``: errors, stats,
report) share: whether the ingest connected, and the one line when it never did."""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["ListenWatch"]


class ListenWatch:
    """The ``on_status`` of an Ingestor: remembers that it connected and its last error."""

    def __init__(self) -> None:
        self.connected = threading.Event()
        self.last_error: str | None = None

    def on_status(self, status: Any) -> None:
        if status.state == "connected":
            self.connected.set()
        if status.last_error:
            self.last_error = status.last_error

    def check(self, masked_broker: str) -> None:
        """A LazyCeleryError of one line (with the last error) when it never connected."""
        from lazycelery.errors import LazyCeleryError

        if not self.connected.is_set():
            why = f": {self.last_error}" if self.last_error else ""
            raise LazyCeleryError(f"could not read events from {masked_broker}{why}")
