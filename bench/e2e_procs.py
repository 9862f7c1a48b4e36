"""Child processes of the end-to-end benchmark: event publishers and the consumers under test."""

from __future__ import annotations

import dataclasses
import os
import select
import socket
import threading
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

# consumer kinds
CELERY = "celery"      # celery State behind app.events.Receiver (the reference)
RECEIVER = "receiver"  # app.events.Receiver, the handler only counts
FAST = "fast"          # lazycelery Ingestor, fast path (Redis, or AMQP: "lazycelery amqp fast")
KOMBU = "kombu"        # lazycelery Ingestor, kombu Receiver path, into a TaskIndex
KINDS = (CELERY, RECEIVER, FAST, KOMBU)

SAMPLE_INTERVAL = float(os.environ.get("LAZYCELERY_BENCH_SAMPLE_S", "0.005"))


# --------------------------------------------------------------------------- publisher

LIVE = "live"      # every message goes through celery's dispatcher and kombu while timed
REPLAY = "replay"  # messages rendered by celery's dispatcher and kombu beforehand, sent raw
TICK = float(os.environ.get("LAZYCELERY_BENCH_TICK_S", "0.002"))  # pacing: what is due goes out every TICK s


class _Source:
    """Endless task-event messages from the recorded stream's plan, fresh uuids per pass,
    published through celery's dispatchers: a client dispatcher for ``task-sent`` (one message
    each), a worker dispatcher with ``buffer_group=['task']`` whose ``flush()`` publishes the
    worker's buffered events as one ``task.multi`` list (batch shapes as recorded)."""

    def __init__(self, plan: list[Any], worker: Any, client: Any) -> None:
        from common import UuidMap

        self.plan, self.worker, self.client = plan, worker, client
        self.new_map = UuidMap
        self.fresh = UuidMap()
        self.pos = 0

    def emit(self) -> int:
        """Publish the next message; returns its number of events."""
        if self.pos >= len(self.plan):
            self.pos, self.fresh = 0, self.new_map()
        msg = self.plan[self.pos]
        self.pos += 1
        fresh = self.fresh
        disp = self.worker if msg.multi else self.client
        for kind, fields in msg.events:
            ev = dict(fields)
            ev["uuid"] = fresh(ev["uuid"])
            if "root_id" in ev:
                ev["root_id"] = fresh(ev["root_id"])
                ev["parent_id"] = fresh(ev["parent_id"])
            disp.send(kind, **ev)
        if msg.multi:
            self.worker.flush(errors=False)
        return len(msg.events)


def _resp(*parts: bytes) -> bytes:
    """One Redis command in RESP (what redis-py would write for it)."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


class _Rendered:
    """Messages captured at the transport's last step (Redis: the PUBLISH kombu would send, as
    RESP bytes; AMQP: the ``amqp.Message`` kombu prepared), replayed with no celery/kombu work
    per message (Redis: written raw to a socket, replies discarded; AMQP: the frames py-amqp
    would send, rendered beforehand by its frame writer and written raw to its socket)."""

    def __init__(self, bconn: Any, source: _Source, events: int) -> None:
        self.redis = bconn.transport.driver_type == "redis"
        channel = source.worker.producer.channel
        self.items: list[tuple[Any, Any, Any, int]] = []
        captured: list[tuple[Any, Any, Any]] = []
        if self.redis:
            from kombu.transport import redis as kombu_redis

            dumps: Any = vars(kombu_redis)["dumps"]  # what the Redis channel serializes with

            def put_fanout(exchange: str, message: Any, routing_key: str, **kw: Any) -> None:
                payload: str = dumps(message)
                for topic in channel._get_publish_topics(exchange, routing_key):
                    captured.append((_resp(b"PUBLISH", topic.encode(), payload.encode()), None, None))

            channel._put_fanout = put_fanout
        else:
            def basic_publish(message: Any, exchange: str = "", routing_key: str = "", **kw: Any) -> None:
                captured.append((message, exchange, routing_key))

            channel.basic_publish = basic_publish
        try:
            done = 0
            while done < events:
                n = source.emit()
                done += n
                for a, b, c in captured:
                    self.items.append((a, b, c, n))
                    n = 0
                captured.clear()
        finally:
            if self.redis:
                del channel._put_fanout
            else:
                del channel.basic_publish
        self.pos = 0
        self.channel = channel
        self.sock: socket.socket | None = None
        if not self.redis:
            self._render_amqp_frames()
        if self.redis:
            info = bconn.info()
            self.sock = socket.create_connection((info["hostname"], info["port"]))
            self.sock.setblocking(False)
            if info.get("password"):
                self._write(_resp(b"AUTH", str(info["password"]).encode()))
            db = info.get("virtual_host") or "0"
            self._write(_resp(b"SELECT", str(db).encode()))

    def _render_amqp_frames(self) -> None:
        """Turn each captured ``amqp.Message`` into the exact bytes py-amqp's ``basic_publish``
        would write (Basic.Publish method, content header and body frames, rendered by py-amqp's
        own ``frame_writer``), so replay writes them raw to the socket as on Redis: sending
        through py-amqp costs ~40 us/event and capped the publishers near 15-25k events/s."""
        from amqp import spec
        from amqp.method_framing import frame_writer
        from amqp.serialization import dumps as amqp_dumps

        conn = self.channel.connection
        out: list[bytes] = []

        class _Capture:
            frame_max = conn.frame_max
            bytes_sent = 0

            @staticmethod
            def write(data: Any) -> None:
                out.append(bytes(data))

        write_frame = frame_writer(_Capture, _Capture)
        items = []
        for message, exchange, routing_key, n in self.items:
            args = amqp_dumps("Bssbb", (0, exchange, routing_key, False, False))
            write_frame(1, self.channel.channel_id, spec.Basic.Publish, args, message)
            items.append((b"".join(out), None, None, n))
            out.clear()
        self.items = items
        self.amqp_sock: socket.socket = conn.transport.sock

    def _write(self, data: bytes) -> None:
        """Send all of ``data``, discarding the server's replies (integers) as they come."""
        assert self.sock is not None
        view = memoryview(data)
        while view:
            try:
                n = self.sock.send(view)
                view = view[n:]
            except BlockingIOError:
                # Redis is behind: wait until it takes more (it buffers our replies meanwhile)
                select.select([], [self.sock], [], 0.05)
        self._discard_replies()

    def _discard_replies(self) -> None:
        assert self.sock is not None
        try:
            while self.sock.recv(1 << 20):
                pass
        except BlockingIOError:
            pass

    def rewind(self) -> None:
        self.pos = 0

    def send(self, until_events: int, sent: int) -> tuple[int, int]:
        """Send rendered messages until ``until_events`` are out; returns (events, messages)."""
        items, pos, messages = self.items, self.pos, 0
        if self.redis:
            out: list[bytes] = []
            while sent < until_events and pos < len(items):
                command, _, _, n = items[pos]
                out.append(command)
                pos += 1
                sent += n
                messages += 1
            self._write(b"".join(out))
        else:
            frames: list[bytes] = []
            while sent < until_events and pos < len(items):
                data, _, _, n = items[pos]
                frames.append(data)
                pos += 1
                sent += n
                messages += 1
            # one write per tick; RabbitMQ's flow control blocks it (TCP back-pressure)
            self.amqp_sock.sendall(b"".join(frames))
        if pos >= len(items) and sent < until_events:
            raise RuntimeError("rendered pool exhausted: render more events")
        self.pos = pos
        return sent, messages


def publisher_main(url: str, idx: int, mode: str, render: int, conn: Connection) -> None:
    """A publisher process. ``mode`` LIVE: each message goes through celery's dispatchers and
    kombu while timed (with kombu's ``Producer.batch()``: one Redis pipeline per tick;
    immediate on AMQP). REPLAY: ``render`` events are produced by the same dispatchers
    beforehand and captured where kombu hands them to the transport, then sent raw.

    Protocol: sends ``{"ready"}``; receives ``{"rate": r or None, "events": n, "t0": epoch}``;
    publishes ``n`` events paced at ``r``/s from ``t0`` (as fast as possible if ``r`` is None);
    sends the report; repeats until it receives None."""
    try:
        from celery import Celery
        from common import publish_plan

        app = Celery("bench-pub", broker=url, set_as_current=False)
        host = socket.gethostname()
        with app.connection_for_write() as bconn:
            bconn.ensure_connection(max_retries=3)
            worker = app.events.Dispatcher(bconn, hostname=f"bench{idx}@{host}",
                                           buffer_group=["task"], buffer_limit=24)
            client = app.events.Dispatcher(bconn, hostname=f"gen{os.getpid()}@{host}")
            source = _Source(publish_plan(), worker, client)
            rendered = _Rendered(bconn, source, render) if mode == REPLAY else None
            conn.send({"ready": True})
            while True:
                job = conn.recv()
                if job is None:
                    break
                if rendered is not None:
                    rendered.rewind()
                conn.send(_publish(job, source, rendered, worker, client))
    except Exception:
        conn.send({"error": traceback.format_exc()})


def _publish(job: dict[str, Any], source: _Source, rendered: _Rendered | None, worker: Any,
             client: Any) -> dict[str, Any]:
    rate: float | None = job["rate"]
    total: int = job["events"]
    t0: float = job["t0"]
    sent = messages = 0
    delay = t0 - time.time()
    if delay > 0:
        time.sleep(delay)
    c0 = time.process_time()
    start = time.time()
    next_tick = start
    while sent < total:
        now = time.time()
        if rate is None:
            target = min(total, sent + 2000)
        else:
            if now < next_tick:
                time.sleep(next_tick - now)
                continue
            next_tick = now + TICK
            target = min(total, int((now - t0) * rate) + 1)
            if target <= sent:
                continue
        if rendered is not None:
            sent, n = rendered.send(target, sent)
            messages += n
            continue
        with worker.producer.batch(1000), client.producer.batch(1000):
            while sent < target:
                sent += source.emit()
                messages += 1
    end = time.time()
    return {"events": sent, "messages": messages, "start": start, "end": end,
            "late": max(0.0, start - t0), "cpu": time.process_time() - c0}


# --------------------------------------------------------------------------- consumers


class Counter:
    """What a consumer has applied; ``task_events`` excludes the warm-up heartbeats."""

    def __init__(self) -> None:
        self.all = 0
        self.task = 0


def _start_celery(kind: str, url: str, max_tasks: int, counter: Counter,
                  stop: threading.Event) -> tuple[Any, Any]:
    from celery import Celery
    from celery.events.state import State

    app = Celery("bench-consumer", broker=url, set_as_current=False)
    state = State(max_tasks_in_memory=max_tasks) if kind == CELERY else None
    box: dict[str, Any] = {}

    def on_event(event: dict[str, Any]) -> None:
        if state is not None:
            state.event(event)
        counter.all += 1
        if event["type"].startswith("task-"):
            counter.task += 1

    def loop() -> None:
        # The recovery loop of CELERY-INTERNALS §2 (what Flower and a careful monitor do).
        delay = 1.0
        while not stop.is_set():
            try:
                with app.connection_for_read() as bconn:
                    recv = app.events.Receiver(bconn, handlers={"*": on_event})
                    recv.connect_max_retries = 3
                    box["recv"] = recv
                    delay = 1.0
                    recv.capture(limit=None, timeout=None, wakeup=False)
            except Exception as exc:
                box["errors"] = box.get("errors", 0) + 1
                box["last_error"] = repr(exc)[:200]
                stop.wait(delay)
                delay = min(delay * 2, 30.0)

    thread = threading.Thread(target=loop, name="bench-receiver", daemon=True)
    thread.start()
    return box, None


def _start_ingestor(kind: str, url: str, max_tasks: int) -> tuple[Any, Any]:
    from lazycelery.core.index import TaskIndex
    from lazycelery.core.ingest import Ingestor

    index = TaskIndex(max_tasks=max_tasks)
    ingestor = Ingestor(url, index, mode=kind, wakeup=False)
    ingestor.start()
    return ingestor, index


def _index_counts(index: Any) -> tuple[int, int]:
    with index.lock:
        task = sum(v for k, v in index.events_by_type.items() if k.startswith("task-"))
        return index.events_total, task


def _status_summary(ingestor: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"path": str(getattr(ingestor, "path", None))}
    status = getattr(ingestor, "status", None)
    if status is None:
        return out
    for key in ("state", "connected", "attempt", "last_error", "gap", "gaps", "lost",
                "reconnects", "overflows"):
        if hasattr(status, key):
            value = getattr(status, key)
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                value = dataclasses.asdict(value)
            elif not isinstance(value, (int, float, str, bool, type(None))):
                value = repr(value)
            out[key] = value
    out["repr"] = repr(status)[:600]
    return out


def consumer_main(kind: str, url: str, max_tasks: int, conn: Connection) -> None:
    """Run one consumer and answer the controller: ``"stats"`` -> counts, CPU and the time of
    the last change (sampled every 5 ms), ``"stop"`` -> exit."""
    try:
        counter = Counter()
        stop = threading.Event()
        ingestor: Any = None
        index: Any = None
        box: dict[str, Any] = {}
        if kind in (CELERY, RECEIVER):
            box, _ = _start_celery(kind, url, max_tasks, counter, stop)
        else:
            ingestor, index = _start_ingestor(kind, url, max_tasks)

        def counts() -> tuple[int, int]:
            return _index_counts(index) if index is not None else (counter.all, counter.task)

        last = [0, 0.0, 0.0]  # task count, time of the last change, time of the first change

        def sampler() -> None:
            while not stop.is_set():
                _, task = counts()
                if task != last[0]:
                    now = time.time()
                    if last[0] == 0 or last[2] == 0.0:
                        last[2] = now
                    last[0], last[1] = task, now
                time.sleep(SAMPLE_INTERVAL)

        threading.Thread(target=sampler, name="bench-sampler", daemon=True).start()
        conn.send({"ready": True, "pid": os.getpid()})
        while True:
            cmd = conn.recv()
            if cmd == "stats":
                all_events, task = counts()
                reply: dict[str, Any] = {"all": all_events, "task": task, "t": time.time(),
                                         "last_change": last[1], "first_change": last[2],
                                         "cpu": time.process_time()}
                if ingestor is not None:
                    reply["status"] = _status_summary(ingestor)
                    reply["evicted"] = index.evicted
                else:
                    reply["errors"] = box.get("errors", 0)
                    reply["last_error"] = box.get("last_error")
                conn.send(reply)
            elif cmd == "rearm":
                last[2] = 0.0
                conn.send({"ok": True})
            elif cmd == "stop":
                stop.set()
                if ingestor is not None:
                    t = time.monotonic()
                    ingestor.stop()
                    conn.send({"stopped_in": time.monotonic() - t})
                else:
                    recv = box.get("recv")
                    if recv is not None:
                        recv.should_stop = True
                    conn.send({"stopped_in": 0.0})
                break
    except Exception:
        conn.send({"error": traceback.format_exc()})
