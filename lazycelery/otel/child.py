"""The exporter process of ``record --otel`` / ``tail --otel``: ``python -m lazycelery.otel.child``.

Building and encoding spans costs far more CPU than ingesting the events they come from, and a
thread of the ingesting process would take that from the ingest thread (one GIL). So the span
pipeline runs here, on the other core: stdin brings one JSON line of settings, then frames
(4-byte big-endian length + msgpack list of ``Item``); stdout carries JSON lines back:
``{"stats": {...}}`` every second and at the end, ``{"notice": "..."}`` for the user. End of
stdin: everything held is decided, exported and flushed, the last stats line is written, exit 0.
When this process cannot keep up it stops reading: the pipe fills and the ingesting process
counts what its bounded queue cannot hold (it never waits).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time
from typing import IO, Any, Final

import msgspec

from lazycelery.core.model import TaskRecord

__all__ = ["Item", "main", "read_frame", "write_frame"]

#: seconds between two stats lines
STATS_EVERY: Final = 1.0


class Item(msgspec.Struct, array_like=True, gc=False):
    """One tap item on the wire: ``kind`` as in ``tap`` (0 done, 1 retried, 2 traceparent)."""

    kind: int
    rec: TaskRecord | None = None
    task_id: str | None = None
    value: Any = None


def write_frame(out: IO[bytes], payload: bytes) -> None:
    out.write(len(payload).to_bytes(4, "big"))
    out.write(payload)
    out.flush()


def read_frame(stream: IO[bytes]) -> bytes | None:
    """The next frame, None at the end of the stream."""
    head = stream.read(4)
    if len(head) < 4:
        return None
    size = int.from_bytes(head, "big")
    body = stream.read(size)
    return body if len(body) == size else None


def main() -> int:
    from lazycelery.otel.pipeline import SpanPipeline
    from lazycelery.otel.settings import OtelSettings

    stdin = sys.stdin.buffer
    lock = threading.Lock()

    def emit(message: dict[str, Any]) -> None:
        line = json.dumps(message, default=str)
        with lock:
            try:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            except (OSError, ValueError):
                pass

    raw = json.loads(stdin.readline() or "{}")
    settings = OtelSettings(**raw)
    pipeline = SpanPipeline(settings, notify=lambda text: emit({"notice": text}))
    pipeline._limit = sys.maxsize  # back-pressure is the pipe: see the module docstring
    pipeline.start()
    done = threading.Event()

    def report() -> None:
        while not done.wait(STATS_EVERY):
            emit({"stats": dataclasses.asdict(pipeline.stats())})

    threading.Thread(target=report, name="lazycelery-otel-stats", daemon=True).start()
    decoder = msgspec.msgpack.Decoder(list[Item])
    queue = pipeline._queue
    high = max(1, settings.queue_size)
    try:
        while True:
            while len(queue) > high:  # the exporter thread is behind: stop reading
                time.sleep(0.01)
            frame = read_frame(stdin)
            if frame is None:
                break
            for item in decoder.decode(frame):
                if item.kind == 2:
                    queue.append((2, item.task_id, item.value))
                elif item.rec is not None:
                    queue.append((item.kind, item.rec) if item.kind == 0
                                 else (item.kind, item.rec, item.value))
            pipeline._wake.set()
    except KeyboardInterrupt:
        pass
    finally:
        pipeline.stop()
        done.set()
        emit({"stats": dataclasses.asdict(pipeline.stats()), "final": True})
    return 0


if __name__ == "__main__":
    sys.exit(main())
