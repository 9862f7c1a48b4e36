"""A remote event source: a ``lazycelery serve``'s snapshot and live stream (``/api/v1``) fed
into the same pipeline the broker ingest feeds (``BatchSink`` -> ``TaskIndex`` -> ``on_batch``),
so ``tail --server`` and the dashboard ``--server`` work on a serve instead of the broker: 50
viewers cost the broker one subscription, serve's.

One thread reads the stream (the index's one writer, as the Ingestor's thread is). Events come
masked already (serve masks at ingest). A dropped connection is resumed with ``Last-Event-ID``
(nothing lost while the server still holds the events); what the server says was lost (this
viewer too slow, a restart) is reported as a gap, like a broker gap, and a fresh snapshot is
merged. httpx is imported when the thread starts, never by ``--help``."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any, Final

import msgspec

from lazycelery.core.batch import BatchSink, OnBatch
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest_status import (
    CONNECTED,
    CONNECTING,
    RECONNECTING,
    STOPPED,
    Gap,
    IngestStatus,
    backoff_delay,
)
from lazycelery.core.model import TaskRecord
from lazycelery.errors import UsageError
from lazycelery.text import counted
from lazycelery.urls import error_line, mask_url

__all__ = ["PATH", "TOKEN_ENV", "RemoteAuthError", "RemoteIngestor", "SseFrame", "parse_frames",
           "probe", "probe_server", "remote_target"]

log = logging.getLogger(__name__)

PATH: Final = "remote"
#: tasks taken from the server's snapshot at start (its newest)
SNAPSHOT_TASKS: Final = 20_000
#: seconds between the server's keepalive comments; a silence of 3 of them is a dead link
HEARTBEAT: Final = 5.0

#: the token from the environment: a command line is visible to every user (ps)
TOKEN_ENV: Final = "LAZYCELERY_TOKEN"

OnStatus = Callable[[IngestStatus], None]
OnNotice = Callable[[str], None]


def remote_target(server: str | None, token: str | None) -> tuple[str | None, str | None]:
    """``--server`` checked (an http(s) URL: one line otherwise) and the token, from
    ``--token`` or ``$LAZYCELERY_TOKEN``."""
    if server is None:
        return None, None
    if not server.startswith(("http://", "https://")):
        raise UsageError(f"--server must be an http:// or https:// URL, got {server[:80]!r}")
    return server, token or os.environ.get(TOKEN_ENV) or None


def probe(server: str, token: str | None, *, timeout: float = 10.0) -> str:
    """Check the server answers and takes the credentials before a command starts: the role
    it gives them; a ``UsageError`` (one line) otherwise."""
    return probe_server(server, token, timeout=timeout)[0]


def probe_server(server: str, token: str | None, *,
                 timeout: float = 10.0) -> tuple[str, bool]:
    """``probe``, with whether the server runs read-only (``serve --read-only``: it refuses
    every action, so a remote dashboard offers none)."""
    try:
        import httpx
    except ImportError:
        raise UsageError("--server needs httpx: pip install 'lazycelery[remote]'") from None

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    label = mask_url(server)
    try:
        response = httpx.get(f"{server.rstrip('/')}/api/v1/snapshot", params={"limit": 0},
                             headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise UsageError(f"cannot reach {label}: {error_line(exc, limit=200)}") from None
    if response.status_code in (401, 403):
        raise UsageError(f"{label} refused the credentials ({response.status_code}); pass a "
                         f"token with --token or ${TOKEN_ENV}")
    if response.status_code != 200:
        raise UsageError(f"{label} is not a lazycelery serve with /api/v1 "
                         f"(it answered {response.status_code})")
    try:
        body = response.json()
        role, read_only = body.get("role"), bool(body.get("read_only"))
    except (ValueError, AttributeError):
        raise UsageError(f"{label} is not a lazycelery serve (not JSON)") from None
    return str(role or "viewer"), read_only


class RemoteAuthError(Exception):
    """The server refused the credentials (401) or the role (403): retrying will not help."""


class SseFrame(msgspec.Struct, frozen=True):
    event: str
    data: str
    id: str | None = None


def parse_frames(buffer: bytes) -> tuple[list[SseFrame], bytes]:
    """Complete Server-Sent Events frames in ``buffer`` and the incomplete rest. Comments
    (keepalives) are skipped; a frame without data is dropped (the SSE rules)."""
    buffer = buffer.replace(b"\r\n", b"\n")
    *blocks, rest = buffer.split(b"\n\n")
    frames: list[SseFrame] = []
    for block in blocks:
        event, data, ident = "message", [], None
        for line in block.decode("utf-8", "replace").split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
            elif name == "id":
                ident = value
        if data:
            frames.append(SseFrame(event, "\n".join(data), ident))
    return frames, rest


def _merge_snapshot(stored: TaskRecord, live: TaskRecord) -> TaskRecord:
    """The server's record wins over ours: it saw every event, we may have missed some."""
    return stored


def _worker_event(worker: Mapping[str, Any]) -> dict[str, Any]:
    """A worker of the snapshot as the event ``TaskIndex.merge_workers`` takes."""
    event = {k: worker.get(k) for k in ("hostname", "pid", "sw_ident", "sw_ver", "sw_sys",
                                        "freq", "active", "processed", "loadavg")}
    event["type"] = "worker-offline" if worker.get("offline") else "worker-heartbeat"
    event["local_received"] = worker.get("last_heartbeat")
    return {k: v for k, v in event.items() if v is not None}


class RemoteIngestor:
    """``IngestorLike`` over a serve's ``/api/v1``: snapshot, then the stream, forever."""

    def __init__(self, server: str, index: TaskIndex, *, token: str | None = None,
                 on_batch: OnBatch | None = None, on_status: OnStatus | None = None,
                 on_notice: OnNotice | None = None, query: str | None = None,
                 snapshot_tasks: int = SNAPSHOT_TASKS, heartbeat: float = HEARTBEAT,
                 verify: bool | str = True,
                 on_snapshot: Callable[[list[TaskRecord]], None] | None = None) -> None:
        self.server = server.rstrip("/")
        self.label = mask_url(self.server)
        self.index = index
        self.token = token
        self.on_status = on_status
        self.on_notice = on_notice
        self.query = query
        self.snapshot_tasks = snapshot_tasks
        self.heartbeat = heartbeat
        self.verify = verify
        #: told the index's records of each snapshot once merged (a task list rebuilds)
        self.on_snapshot = on_snapshot
        self.path = PATH
        self.status = IngestStatus(state=CONNECTING, path=PATH)
        self._sink = BatchSink(index, on_batch)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_id: str | None = None
        self._attempt = 0
        #: events the server said this viewer lost (too slow, or it restarted)
        self.lost = 0
        #: the role the server gave these credentials (``viewer`` / ``operator``)
        self.role: str | None = None
        self.read_only: bool | None = None
        self._server_gap: Any = None
        self._response: Any = None

    # ------------------------------------------------------------------ IngestorLike

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lazycelery-remote",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            try:  # unblocks the reader waiting on the socket
                response.close()
            except Exception:
                log.debug("closing the stream failed", exc_info=True)
        thread = self._thread
        if thread is None:
            self._set_status(STOPPED)
        elif thread is not threading.current_thread():
            thread.join(max(0.0, timeout))

    def events_per_second(self) -> float:
        return self._sink.rate()

    # ------------------------------------------------------------------ the loop

    def _run(self) -> None:
        lost_at: float | None = None
        try:
            while not self._stop.is_set():
                try:
                    self._session(lost_at)
                    lost_at = None
                    if not self._stop.is_set():
                        raise ConnectionError("the server closed the stream")
                except RemoteAuthError as exc:
                    self._set_status(STOPPED, last_error=str(exc))
                    self._notice(str(exc))
                    return
                except Exception as exc:
                    if self._stop.is_set():
                        break
                    if self.status.state == CONNECTED:
                        lost_at = time.time()
                    self._attempt += 1
                    delay = backoff_delay(self._attempt)
                    self._set_status(RECONNECTING, attempt=self._attempt, next_retry_in=delay,
                                     last_error=error_line(exc, limit=300),
                                     retry_at=time.time() + delay)
                    self._stop.wait(delay)
                finally:
                    self._sink.flush()
        finally:
            self._sink.flush()
            if self.status.state != STOPPED:
                self._set_status(STOPPED)

    def _client(self) -> Any:
        import httpx

        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return httpx.Client(base_url=self.server, headers=headers, verify=self.verify,
                            timeout=httpx.Timeout(10.0, read=self.heartbeat * 3))

    def _check(self, response: Any) -> None:
        if response.status_code in (401, 403):
            try:
                why = response.json().get("error", "")
            except Exception:
                why = ""
            raise RemoteAuthError(f"{self.label} refused the credentials "
                                  f"({response.status_code}{': ' + why if why else ''}); "
                                  "pass a token with --token")
        if response.status_code != 200:
            raise ConnectionError(f"{self.label} answered {response.status_code}")

    def _session(self, lost_at: float | None) -> None:
        with self._client() as client:
            if self._last_id is None:
                self._snapshot(client)
            headers = {"Last-Event-ID": self._last_id} if self._last_id else {}
            params: dict[str, Any] = {"heartbeat": self.heartbeat}
            if self.query:
                params["q"] = self.query
            with client.stream("GET", "/api/v1/stream", params=params,
                               headers=headers) as response:
                self._response = response
                try:
                    self._check(response)
                    self._connected(lost_at)
                    self._read(client, response.iter_raw())
                finally:
                    self._response = None

    def _snapshot(self, client: Any) -> None:
        response = client.get("/api/v1/snapshot", params={"limit": self.snapshot_tasks})
        self._check(response)
        body = response.json()
        self.role = body.get("role")
        self.read_only = body.get("read_only")
        records = [(msgspec.convert({k: v for k, v in t.items()
                                     if k not in ("children", "timestamp")}, TaskRecord), False)
                   for t in body.get("tasks", ())]
        records.reverse()  # oldest first: merge_stored adds each at the old end
        self.index.merge_stored(records, _merge_snapshot)
        if self.on_snapshot is not None:
            with self.index.lock:
                taken = [r for rec, _ in records if (r := self.index.get(rec.uuid)) is not None]
            self.on_snapshot(taken)
        self.index.merge_workers([_worker_event(w) for w in body.get("workers", ())])
        self._last_id = body.get("last_event_id")

    def _connected(self, lost_at: float | None) -> None:
        """Connected (again). A reconnect resumed by Last-Event-ID is no gap by itself: the
        server replays what we missed, or says what it cannot (``event: loss``)."""
        if lost_at is not None:
            log.info("stream resumed after %.1f s", time.time() - lost_at)
        self._attempt = 0
        self._set_status(CONNECTED)

    def _read(self, client: Any, chunks: Iterator[bytes]) -> None:
        rest = b""
        for chunk in chunks:
            if self._stop.is_set():
                return
            frames, rest = parse_frames(rest + chunk)
            for frame in frames:
                self._frame(client, frame)
            self._sink.flush()  # one batch per network read: what arrived together

    def _frame(self, client: Any, frame: SseFrame) -> None:
        if frame.id:
            self._last_id = frame.id
        if frame.event in ("task", "worker"):
            event = msgspec.json.decode(frame.data).get("event")
            if isinstance(event, dict):
                self._sink.add(event)
        elif frame.event == "loss":
            self._loss(client, msgspec.json.decode(frame.data))
        elif frame.event == "status":
            self._server_status(msgspec.json.decode(frame.data).get("record") or {})

    def _loss(self, client: Any, body: Mapping[str, Any]) -> None:
        """Events the server could not give us: a gap, then its current snapshot merged."""
        lost = body.get("lost")
        self.lost += int(lost or 0)
        now = time.time()
        count = counted(lost, "event") if lost is not None else "events"
        reason = f"{count} not received from the server ({body.get('reason', 'unknown')})"
        self._sink.flush()
        self._set_status(CONNECTED, gap=Gap(start=now, end=now, seconds=0.0, reason=reason))
        self._notice(f"gap: {reason}")
        last_id = self._last_id
        self._snapshot(client)
        self._last_id = last_id  # the stream goes on from where it is

    def _server_status(self, status: Mapping[str, Any]) -> None:
        """The server's own ingest gaps are ours too (we see what it saw)."""
        gap = status.get("gap")
        if not isinstance(gap, dict) or gap == self._server_gap:
            return
        self._server_gap = gap
        try:
            theirs = msgspec.convert(gap, Gap)
        except msgspec.ValidationError:
            return
        self._sink.flush()
        self._set_status(CONNECTED, gap=replace(theirs, reason=f"server: {theirs.reason}"))

    # ------------------------------------------------------------------ status

    def _notice(self, text: str) -> None:
        if self.on_notice is not None:
            try:
                self.on_notice(text)
            except Exception as exc:
                log.warning("on_notice callback failed: %s", error_line(exc, limit=300))

    def _set_status(self, state: str, **changes: Any) -> None:
        old = self.status
        since = old.since if state == old.state else time.time()
        fields: dict[str, Any] = {"attempt": 0, "next_retry_in": None, "last_error": None,
                                  "retry_at": None, "gap": old.gap}
        fields.update(changes)
        self.status = IngestStatus(state=state, path=PATH, since=since, **fields)
        if self.on_status is not None:
            try:
                self.on_status(self.status)
            except Exception as exc:
                log.warning("on_status callback failed: %s", error_line(exc, limit=300))
