"""``record --otel`` / ``tail --otel``: the tap in this process, the span pipeline in a child
process (``child``), so span building and encoding never take the ingest thread's CPU (one GIL).

A feeder thread takes what the tap queued, encodes it (msgpack) and writes it to the child's
stdin; when the child is behind the write blocks the feeder, never the ingest thread: the
tap's bounded queue then fills and counts the loss. The child's stats and notices come back
as JSON lines on its stdout. No OpenTelemetry import here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any, Final

import msgspec

from lazycelery.otel.child import Item, write_frame
from lazycelery.otel.settings import GRPC, OtelSettings
from lazycelery.otel.stats import OtelStats, summary_line
from lazycelery.otel.tap import _TP, Tap

__all__ = ["ProcessPipeline", "missing_packages"]

#: items per frame written to the child
FRAME_ITEMS: Final = 2_000
#: seconds between two reports of new losses
REPORT_EVERY: Final = 30.0
#: seconds the stop waits for the child on top of its own limits (``pipeline.MAX_DRAIN``)
STOP_GRACE: Final = 10.0
MAX_DRAIN: Final = 60.0


def missing_packages(settings: OtelSettings) -> list[str]:
    """The modules the child will need that are not installed."""
    needed = ["opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.grpc" if settings.protocol == GRPC
              else "opentelemetry.exporter.otlp.proto.http"]
    missing = []
    for name in needed:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


class ProcessPipeline(Tap):
    """Same face as ``pipeline.SpanPipeline`` (``on_batch``, ``tee``, ``start``, ``stop``,
    ``stats``, ``summary``), the work in ``python -m lazycelery.otel.child``."""

    def __init__(self, settings: OtelSettings, *,
                 notify: Callable[[str], None] | None = None) -> None:
        missing = missing_packages(settings)
        if missing:
            raise ImportError(f"missing {', '.join(missing)}")
        super().__init__(settings.queue_size)
        self.settings = settings
        self.notify = notify
        self._proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._feeder: threading.Thread | None = None
        self._reader: threading.Thread | None = None
        self._child: dict[str, Any] = {}
        self._dead = False
        self._encoder = msgspec.msgpack.Encoder()
        self._reported_lost = 0
        self._next_report = 0.0

    def start(self) -> ProcessPipeline:
        if self._proc is not None:
            return self
        # its own session: a Ctrl-C meant for lazycelery must not kill it before it flushes;
        # it ends when its stdin closes (also when this process dies)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "lazycelery.otel.child"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        settings = dataclasses.asdict(self.settings)
        settings["headers"] = dict(self.settings.headers)
        self._proc.stdin.write(json.dumps(settings).encode() + b"\n")  # never in argv: secrets
        self._proc.stdin.flush()
        self._feeder = threading.Thread(target=self._feed, args=(self._proc.stdin,),
                                        name="lazycelery-otel-feed", daemon=True)
        self._reader = threading.Thread(target=self._read, args=(self._proc.stdout,),
                                        name="lazycelery-otel-read", daemon=True)
        self._feeder.start()
        self._reader.start()
        return self

    def _feed(self, stdin: IO[bytes]) -> None:
        queue = self._queue
        try:
            while True:
                stopping = self._stop.is_set()
                if not queue:
                    if stopping:
                        break
                    self._wake.wait(0.05)
                    self._wake.clear()
                    self._report()
                    continue
                items: list[Item] = []
                while queue and len(items) < FRAME_ITEMS:
                    raw = queue.popleft()
                    if raw[0] == _TP:
                        items.append(Item(_TP, None, raw[1], raw[2]))
                    else:
                        items.append(Item(raw[0], raw[1], None, raw[2] if len(raw) > 2 else None))
                try:
                    write_frame(stdin, self._encoder.encode(items))
                except (BrokenPipeError, OSError, ValueError):
                    self._died(len(items))
                    return
                self._report()
        finally:
            with contextlib.suppress(OSError, ValueError):
                stdin.close()

    def _died(self, dropped: int) -> None:
        """The child is gone: what it did not get, and everything from now on, is lost."""
        self._dead = True
        self.lost += dropped + len(self._queue)
        self._queue.clear()
        self._limit = 0  # the tap counts every later item as lost
        code = self._proc.poll() if self._proc is not None else None
        self._say(f"otel: the span exporter process ended (exit status {code}): spans are "
                  "no longer exported")

    def _read(self, stdout: IO[bytes]) -> None:
        for line in iter(stdout.readline, b""):
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "stats" in message:
                self._child = message["stats"]
            if "notice" in message:
                self._say(str(message["notice"]))
        if not self._stop.is_set() and not self._dead:
            self._died(0)

    def _report(self) -> None:
        now = time.monotonic()
        if self.lost > self._reported_lost and now >= self._next_report:
            self._say(f"otel: {self.lost - self._reported_lost:,} finished tasks lost (span "
                      "queue full: the exporter is behind)")
            self._reported_lost = self.lost
            self._next_report = now + REPORT_EVERY

    def stop(self, timeout: float = 5.0) -> None:
        """Hand over what is queued and let the child decide, export and flush: waited for
        while it makes progress (its stats lines), at most ``MAX_DRAIN`` + a grace."""
        self._stop.set()
        self._wake.set()
        if self._feeder is not None:
            self._feeder.join(timeout + STOP_GRACE)
        proc = self._proc
        if proc is None:
            return
        start = last_change = time.monotonic()
        last = self._progress()
        while proc.poll() is None:
            time.sleep(0.1)
            now, current = time.monotonic(), self._progress()
            if current != last:
                last, last_change = current, now
            elif now - last_change > timeout + STOP_GRACE or now - start > MAX_DRAIN + STOP_GRACE:
                proc.kill()
                break
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        if self._reader is not None:
            self._reader.join(2.0)

    def _progress(self) -> int:
        child = self._child
        return int(child.get("exported", 0))  # spans the collector took

    def stats(self) -> OtelStats:
        child = self._child
        return OtelStats(
            queued=self.queued, lost=self.lost, built=int(child.get("built", 0)),
            sampled_out=int(child.get("sampled_out", 0)), exported=int(child.get("exported", 0)),
            export_failed=int(child.get("export_failed", 0)),
            export_dropped=int(child.get("export_dropped", 0)),
            waiting=len(self._queue) + int(child.get("waiting", 0)),
            last_error=child.get("last_error"))

    def summary(self) -> str:
        return summary_line(self.stats(), self.settings.masked_endpoint)

    def _say(self, text: str) -> None:
        if self.notify is not None:
            with contextlib.suppress(Exception):
                self.notify(text)
