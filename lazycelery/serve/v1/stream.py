"""``GET /api/v1/stream``: Server-Sent Events of task and worker events (each with its record
after the event's batch) and ingest status changes, filtered like ``/api/v1/tasks``.

Each client reads the hub's ring from its own position. A client slower than the ingest falls
behind; once the ring has overwritten items it had not read, it gets ``event: loss`` with the
count and goes on from the oldest item kept: the ingest never waits for it. Comments
(``: keepalive``) are sent when nothing matched for ``heartbeat`` seconds, so proxies keep the
connection and a dead client is noticed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from lazycelery.core.query import Predicate
from lazycelery.serve import params
from lazycelery.serve.admission import BEHIND_AFTER
from lazycelery.serve.auth import Caller
from lazycelery.serve.v1.hub import STATUS, TASK, WORKER, Item, StreamHub
from lazycelery.serve.v1.query import query_of, v1_flag, v1_number
from lazycelery.serve.v1.tasks import compile_q

__all__ = ["StreamApi"]

#: items read from the ring per turn (a client far behind catches up in chunks)
READ_CHUNK: Final = 2048
DEFAULT_HEARTBEAT: Final = 15.0
#: seconds between two writes to one client (items are batched per client per tick)
TICK: Final = 0.05
#: ... while the ingest is behind its broker
PAUSE: Final = 0.5
#: seconds a stream's next write waits at most for the requests in flight to be answered
#: (requests go first: a page costs a few ms, a write to a client far behind is megabytes)
YIELD_MAX: Final = 0.25
_encoder = msgspec.json.Encoder()


def _loss(hub: StreamHub, lost: int | None, total: int, reason: str, position: int) -> bytes:
    body = _encoder.encode({"lost": lost, "total_lost": total, "reason": reason})
    return b"id: %s\nevent: loss\ndata: %s\n\n" % (hub.event_id(position).encode(), body)


class _Client:
    """One connection's filter and position."""

    def __init__(self, hub: StreamHub, pred: Predicate | None, workers: bool,
                 position: int, heartbeat: float,
                 quiet: Callable[[float], Awaitable[bool]] | None = None) -> None:
        self.hub = hub
        self.quiet = quiet
        self.pred = pred
        self.workers = workers
        self.position = position
        self.heartbeat = heartbeat
        self.lost = 0

    def wants(self, item: Item) -> bool:
        if item.kind == TASK:
            return self.pred is None or self.pred(item.record)  # type: ignore[arg-type]
        if item.kind == WORKER:
            return self.workers
        return item.kind == STATUS

    def turn(self) -> tuple[bytes, bool]:
        """The frames of one read, and whether the ring holds more right away."""
        if self.pred is None and self.workers:  # every item: frames joined once for all
            data, count, lost, position = self.hub.read_frames(self.position, READ_CHUNK)
            if lost:
                self.lost += lost
                data = _loss(self.hub, lost, self.lost, "this client fell behind the stream",
                             position) + data
            self.position = position
            return data, count >= READ_CHUNK
        got = self.hub.read(self.position, READ_CHUNK)
        chunks: list[bytes] = []
        if got.lost:
            self.lost += got.lost
            chunks.append(_loss(self.hub, got.lost, self.lost,
                                "this client fell behind the stream", got.position))
        if self.pred is not None and self.pred.time_dependent:
            self.pred.refresh()
        epoch = self.hub.epoch
        chunks.extend(item.frame(epoch) for item in got.items if self.wants(item))
        self.position = got.position
        return b"".join(chunks), len(got.items) >= READ_CHUNK

    async def frames(self, hello: bytes) -> AsyncIterator[bytes]:
        hub = self.hub
        waiter = hub.subscribe()
        try:
            yield hello
            while not hub.closed:
                if self.quiet is not None:
                    await self.quiet(YIELD_MAX)  # the requests in flight first
                waiter.clear()
                data, more = self.turn()
                if data:
                    yield data
                    # one write per client per tick: what is published meanwhile goes in the
                    # next (fewer, larger writes); while the ingest is behind its broker, a
                    # longer pause: the ingest goes first, a stream is told what it loses
                    await asyncio.sleep(PAUSE if hub.behind() >= BEHIND_AFTER else TICK)
                if more or hub.last > self.position:
                    await asyncio.sleep(0)  # let other clients and requests run
                    continue
                try:
                    await asyncio.wait_for(waiter.wait(), self.heartbeat)
                except TimeoutError:
                    yield b": keepalive\n\n"
        finally:
            hub.unsubscribe(waiter)


class StreamApi:
    def __init__(self, hub: StreamHub,
                 quiet: Callable[[float], Awaitable[bool]] | None = None) -> None:
        """``quiet(timeout)``: waits until no request is in flight (``Admission.quiet``)."""
        self.hub = hub
        self.quiet = quiet

    async def stream(self, request: Request, caller: Caller) -> Response:
        query = query_of(request)
        pred = compile_q(query)
        workers = v1_flag(query, "workers", True)
        heartbeat = v1_number(query, "heartbeat", DEFAULT_HEARTBEAT, minimum=0.1, cap=300.0)
        last_id = request.headers.get("last-event-id") or params.text(query, "last_event_id")
        position, problem = self.hub.position_of(last_id)
        client = _Client(self.hub, pred, workers, position, heartbeat, self.quiet)
        hello = b"retry: 2000\n" + b"id: %s\nevent: hello\ndata: %s\n\n" % (
            self.hub.event_id(position).encode(),
            _encoder.encode({"resumed": bool(last_id) and problem is None,
                             "filter": pred.text if pred is not None else None,
                             "role": caller.role}))
        if problem is not None:  # a resume that cannot be honoured: say so, never silently
            hello += _loss(self.hub, None, 0, f"cannot resume: {problem}", position)
        return StreamingResponse(client.frames(hello), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache",
                                          "X-Accel-Buffering": "no"})
