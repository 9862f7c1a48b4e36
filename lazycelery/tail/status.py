"""Connection status for `tail`: one stderr notice per change of the ingest connection's state."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from lazycelery.tail.buffer import Fatal, Notice

if TYPE_CHECKING:
    from lazycelery.core.ingest_status import IngestStatus

__all__ = ["StatusReporter"]


def _url_secrets(url: str) -> list[str]:
    """Passwords in a broker URL (or a ``;``-separated list of them), to scrub from errors."""
    from lazycelery.urls import url_secrets

    return url_secrets(url)


class StatusReporter:
    """Turns ingest status updates into one stderr line per change of connection state.

    connecting -> connected is silent; connected -> reconnecting says ``connection lost``; a
    first connection that fails says ``cannot connect``; further attempts add nothing (their
    number and the latest error are in the ingest status, not worth a line each);
    reconnecting -> connected says how long the gap was. A ``stopped`` status that tail did not
    ask for is fatal.
    """

    def __init__(self, masked_url: str, broker_url: str = "",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.masked_url = masked_url
        self._secrets = _url_secrets(broker_url)
        self._clock = clock
        self._ever_connected = False
        self._trouble_since: float | None = None
        self.stopping = False

    @property
    def ever_connected(self) -> bool:
        """The ingest has been connected at least once."""
        return self._ever_connected

    def _scrub(self, text: str | None) -> str:
        text = " ".join((text or "unknown error").split())
        for secret in self._secrets:
            text = text.replace(secret, "********")
        return text

    def _retry_text(self, status: IngestStatus) -> str:
        nxt = status.next_retry_in
        when = f", next try in {nxt:.1f} s" if nxt is not None else ""
        return f"attempt {status.attempt}{when}"

    def update(self, status: IngestStatus) -> Notice | Fatal | None:
        state = status.state
        if state == "connected":
            return self._connected(status)
        if state == "reconnecting":
            return self._reconnecting(status)
        if state == "stopped" and not self.stopping:
            error = self._scrub(status.last_error) if status.last_error else "no reason given"
            return Fatal(f"event stream stopped: {error}")
        return None  # "connecting" (the first attempt, or one more attempt) changes nothing

    def _connected(self, status: IngestStatus) -> Notice | None:
        since, self._trouble_since = self._trouble_since, None
        first, self._ever_connected = not self._ever_connected, True
        if since is None:
            return None
        gap = status.gap.seconds if status.gap is not None else self._clock() - since
        if first:
            return Notice(f"connected to {self.masked_url} after {gap:.1f} s")
        reason = getattr(status.gap, "reason", None)
        why = f" ({self._scrub(reason)})" if isinstance(reason, str) and reason else ""
        return Notice(f"reconnected after {gap:.1f} s gap{why}")

    def _reconnecting(self, status: IngestStatus) -> Notice | None:
        if self._trouble_since is not None:
            return None  # one more attempt is no change of state
        self._trouble_since = self._clock()
        error = self._scrub(status.last_error)
        retry = self._retry_text(status)
        if self._ever_connected:
            return Notice(f"connection lost ({error}); reconnecting ({retry})")
        return Notice(f"cannot connect to {self.masked_url} ({error}); retrying ({retry})")
