"""Admission control: the HTTP side yields to the ingest, never the reverse.

Every request but the live stream, ``/metrics`` and ``/healthcheck`` counts as in flight from
its arrival until its answer is sent. A GET that arrives while ``max_inflight`` are already in
flight, or while the ingest thread is behind its broker and ``BEHIND_INFLIGHT`` are, is
answered at once with a 503 JSON error and ``Retry-After`` (no authentication, no handler,
no thread): a shed request is a counted loss on the HTTP side
(``lazycelery_http_shed_total``), where a lost event on the ingest would be the failure.
Actions (POST) are never shed: they are rare and wanted.

The ingest is "behind" when its reads have kept finding the socket full for
``BEHIND_AFTER`` seconds (``lazycelery.core.backlog``): the broker is buffering for it, and a
broker cuts a subscriber whose buffer grows too far (Redis: 32 MB by default, about a second
at 30,000 events/s)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final

import msgspec

__all__ = ["DEFAULT_MAX_INFLIGHT", "Admission", "AdmissionMiddleware"]

#: requests in flight before further GETs are shed (``serve --max-inflight``)
DEFAULT_MAX_INFLIGHT: Final = 32
#: seconds the ingest has been behind before GETs are shed
BEHIND_AFTER: Final = 0.25
#: requests in flight while the ingest is behind: a page costs ~1 ms, the cost that matters
#: is many at once (and the streams, paused meanwhile); more are shed
BEHIND_INFLIGHT: Final = 2
#: the Retry-After of a shed request, in seconds
RETRY_AFTER: Final = 1
#: reasons, as the metric's label
BUSY: Final = "busy"
INGEST: Final = "ingest_behind"
#: paths never shed nor counted: long-lived (the stream) or what watches the server
EXEMPT: Final = frozenset({"/api/v1/stream", "/metrics", "/healthcheck"})

_encoder = msgspec.json.Encoder()


class Admission:
    """The in-flight count and what was shed, on the event loop only (no lock)."""

    def __init__(self, max_inflight: int = DEFAULT_MAX_INFLIGHT,
                 behind: Callable[[], float] = lambda: 0.0) -> None:
        if max_inflight < 1:
            raise ValueError("max_inflight must be at least 1")
        self.max_inflight = max_inflight
        #: seconds the ingest has been behind its broker (0: keeping up)
        self.behind = behind
        self.inflight = 0
        self.shed: dict[str, int] = {BUSY: 0, INGEST: 0}
        # resolved when the last request in flight is answered (``quiet``); made on the loop
        self._idle: asyncio.Future[None] | None = None

    async def quiet(self, timeout: float) -> bool:
        """Wait until no request is in flight, at most ``timeout`` s; whether it is so.
        The live stream's writers call it before each write: requests go first. The waiters
        share one future (``asyncio.wait`` on it makes no task per waiter)."""
        if self.inflight == 0:
            return True
        loop = asyncio.get_running_loop()
        if self._idle is None or self._idle.done() or self._idle.get_loop() is not loop:
            self._idle = loop.create_future()
        await asyncio.wait((self._idle,), timeout=timeout)
        return self.inflight == 0

    def done(self) -> None:
        """A request in flight was answered."""
        self.inflight -= 1
        if self.inflight == 0 and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    def refusal(self) -> str | None:
        """Why a new GET is refused now (a reason counted in ``shed``), or None."""
        if self.inflight >= self.max_inflight:
            reason = BUSY
        elif self.inflight >= BEHIND_INFLIGHT and self.behind() >= BEHIND_AFTER:
            reason = INGEST
        else:
            return None
        self.shed[reason] += 1
        return reason


def _shed_body(reason: str, admission: Admission) -> bytes:
    message = (f"busy: {admission.max_inflight} requests in flight (--max-inflight); retry"
               if reason == BUSY else
               "busy: the event ingest is behind its broker and goes first; retry")
    return _encoder.encode({"error": message, "reason": reason})


class AdmissionMiddleware:
    """Pure ASGI (no per-request task or body wrapping): counts, sheds, passes through."""

    def __init__(self, app: Any, admission: Admission) -> None:
        self.app = app
        self.admission = admission

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        admission = self.admission
        if scope["method"] in ("GET", "HEAD"):
            reason = admission.refusal()
            if reason is not None:
                body = _shed_body(reason, admission)
                await send({"type": "http.response.start", "status": 503, "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(RETRY_AFTER).encode()),
                    (b"cache-control", b"no-store")]})
                await send({"type": "http.response.body", "body": body})
                return
        admission.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            admission.done()
