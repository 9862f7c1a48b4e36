"""Benchmark: ingest events/s with and without span export (`--otel`), in the same run.

    python bench/bench_otel.py [--quick] [--repeats N]      (or: python bench/run.py --only otel)

The recorded Redis stream, ``copies`` times with fresh task ids, is decoded with the fast path
and applied with ``TaskIndex.apply_batch`` (64 messages a batch) the way the ingest thread does;
with ``--otel`` the tap runs on every batch and the exporter process ``record --otel`` starts
(``lazycelery.otel.child``) builds the spans and sends them with the SDK's BatchSpanProcessor and
OTLP/HTTP exporter to a receiver in a third process (127.0.0.1; it decodes every
ExportTraceServiceRequest and counts the spans).
Reported: events/s fed flat out (median of the repeats, reference and otel alternated), the
ratio, and the spans delivered vs expected; then a feed paced at 30,000 events/s and what was
lost. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from common import count_events_in_envelopes, free_port, log, median, redis_stream_copies

BATCH_MESSAGES = 64
PACED_RATE = 30_000.0

RECEIVER = textwrap.dedent("""
    import gzip, sys, threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest, ExportTraceServiceResponse)
    count = [0]
    lock = threading.Lock()
    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            req = ExportTraceServiceRequest(); req.ParseFromString(body)
            n = sum(len(s.spans) for r in req.resource_spans for s in r.scope_spans)
            with lock: count[0] += n
            out = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200); self.send_header("Content-Length", str(len(out)))
            self.end_headers(); self.wfile.write(out)
        def do_GET(self):
            out = str(count[0]).encode()
            if self.path == "/reset":
                with lock: count[0] = 0
            self.send_response(200); self.send_header("Content-Length", str(len(out)))
            self.end_headers(); self.wfile.write(out)
        def log_message(self, *a): pass
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
""")


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-c", RECEIVER, str(self.port)])
        deadline = time.monotonic() + 20
        while True:
            try:
                self.count()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self, reset: bool = False) -> int:
        with urllib.request.urlopen(f"{self.url}/{'reset' if reset else 'count'}", timeout=5) as r:
            return int(r.read())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def feed(messages: list[bytes], on_batch: Any, rate: float | None = None) -> tuple[float, int]:
    """Decode + apply, as the ingest thread does; returns (seconds, events). Paced (``rate``
    events/s): message i "arrives" at i / message-rate, and each read takes every message
    that has arrived (at most 512 events' worth), like a socket read of what the kernel
    buffered; unpaced: 64 messages a batch."""
    from lazycelery.core.fastpath import EventDecoder, decode_redis_message
    from lazycelery.core.index import TaskIndex

    index = TaskIndex(max_tasks=100_000)
    decoder = EventDecoder()
    apply_batch = index.apply_batch
    now = time.time
    total = len(messages)
    per_message = EVENTS_PER_MESSAGE[0]
    message_rate = rate / per_message if rate else None
    done = 0
    t0 = time.perf_counter()
    while done < total:
        if message_rate is None:
            upto = min(total, done + BATCH_MESSAGES)
        else:
            arrived = min(total, int((time.perf_counter() - t0) * message_rate))
            if arrived <= done:
                time.sleep(max(0.0, (done + 1) / message_rate - (time.perf_counter() - t0)))
                continue
            upto = min(arrived, done + int(512 / per_message))
        batch: list[dict[str, Any]] = []
        for data in messages[done:upto]:
            batch.extend(decode_redis_message(data, now(), decoder))
        done = upto
        records = apply_batch(batch)
        if on_batch is not None:
            on_batch(batch, records)
    return time.perf_counter() - t0, index.events_total


#: events per message of the stream (set by ``run``)
EVENTS_PER_MESSAGE = [2.0]


def run_once(messages: list[bytes], receiver: Receiver | None,
             rate: float | None = None) -> dict[str, Any]:
    if receiver is None:
        seconds, events = feed(messages, None, rate)
        return {"seconds": seconds, "events": events}
    from lazycelery.otel.process import ProcessPipeline
    from lazycelery.otel.settings import OtelSettings

    receiver.count(reset=True)
    # what `record --otel` runs: the tap here, the span pipeline in its child process
    pipeline = ProcessPipeline(OtelSettings(endpoint=f"{receiver.url}/v1/traces")).start()
    seconds, events = feed(messages, pipeline.on_batch, rate)
    t0 = time.perf_counter()
    pipeline.stop(timeout=60.0)
    drain = time.perf_counter() - t0
    stats = pipeline.stats()
    return {"seconds": seconds, "events": events, "drain_seconds": drain,
            "spans_expected": stats.queued + stats.lost, "spans_built": stats.built,
            "spans_delivered": receiver.count(), "lost_queue": stats.lost,
            "export_failed": stats.export_failed, "export_dropped": stats.export_dropped}


def run(quick: bool, repeats: int | None = None) -> dict[str, Any]:
    copies = 4 if quick else 20
    repeats = repeats or (1 if quick else 3)
    log(f"otel: building {copies} copies of the recorded Redis stream")
    messages = redis_stream_copies(copies)
    EVENTS_PER_MESSAGE[0] = count_events_in_envelopes(messages) / len(messages)
    receiver = Receiver()
    try:
        ref, otel = [], []
        for r in range(repeats):
            log(f"otel: repeat {r + 1}/{repeats}")
            ref.append(run_once(messages, None))
            otel.append(run_once(messages, receiver))
        paced = run_once(messages, receiver, PACED_RATE)
    finally:
        receiver.close()
    events = ref[0]["events"]
    ref_rate = median([events / x["seconds"] for x in ref])
    otel_rate = median([events / x["seconds"] for x in otel])
    return {
        "events": events, "copies": copies, "repeats": repeats,
        "reference_events_per_s": ref_rate, "otel_events_per_s": otel_rate,
        "ratio": otel_rate / ref_rate,
        "otel_runs": otel, "paced": paced, "paced_rate": PACED_RATE,
    }


def markdown(result: dict[str, Any]) -> str:
    last = result["otel_runs"][-1]
    paced = result["paced"]
    return "\n".join([
        f"{result['events']:,} events ({result['copies']} copies of the recorded Redis stream), "
        f"median of {result['repeats']}:",
        "",
        "| feed | events/s | ratio | spans expected | delivered | lost (queue) | not delivered "
        "| drain after feed |",
        "|---|---|---|---|---|---|---|---|",
        f"| reference (no --otel) | {result['reference_events_per_s']:,.0f} | 1.00 | - | - | - | - | - |",
        f"| --otel, OTLP/HTTP | {result['otel_events_per_s']:,.0f} | {result['ratio']:.2f} | "
        f"{last['spans_expected']:,} | {last['spans_delivered']:,} | {last['lost_queue']:,} | "
        f"{last['export_failed'] + last['export_dropped']:,} | {last['drain_seconds']:.1f} s |",
        f"| --otel, arriving at {result['paced_rate']:,.0f}/s | "
        f"{paced['events'] / paced['seconds']:,.0f} | - | {paced['spans_expected']:,} | "
        f"{paced['spans_delivered']:,} | {paced['lost_queue']:,} | "
        f"{paced['export_failed'] + paced['export_dropped']:,} | {paced['drain_seconds']:.1f} s |",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int)
    args = parser.parse_args()
    result = run(args.quick, args.repeats)
    print(markdown(result))
    print(json.dumps({k: v for k, v in result.items() if k != "otel_runs"}, default=str))


if __name__ == "__main__":
    main()
