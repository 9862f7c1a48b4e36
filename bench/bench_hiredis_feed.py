"""Benchmark: hiredis parsing the recorded Redis event stream (as PUB/SUB delivers it, RESP
``pmessage`` replies) fed in slices of several sizes, in process.

hiredis moves its unparsed bytes to the front of its buffer every 1 kB it parses, so the cost
of a feed grows with its size: this is why the ingest feeds the read-ahead's chunks 16 kB at a
time (``lazycelery.core.ingest_redis.FEED_BYTES``). Median of ``--repeats`` runs per size,
sizes interleaved.

    python bench/bench_hiredis_feed.py [--copies 10] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from common import log, median, redis_stream_copies

SIZES = (4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20)
CHANNEL = b"/0.celeryev/task.received"
PATTERN = b"/0.celeryev/*"


def resp(messages: list[bytes]) -> bytes:
    """The messages as Redis sends them to a PSUBSCRIBEd client."""
    head = b"*4\r\n$8\r\npmessage\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
        len(PATTERN), PATTERN, len(CHANNEL), CHANNEL)
    return b"".join(head + b"$%d\r\n%s\r\n" % (len(m), m) for m in messages)


def parse(data: bytes, size: int) -> tuple[int, float]:
    import hiredis

    reader = hiredis.Reader()
    count = 0
    started = time.perf_counter()
    for offset in range(0, len(data), size):
        reader.feed(data, offset, min(size, len(data) - offset))
        while reader.gets() is not False:
            count += 1
    return count, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    data = resp(redis_stream_copies(args.copies))
    log(f"{len(data) / 1e6:.1f} MB of RESP")
    times: dict[int, list[float]] = {size: [] for size in SIZES}
    count = 0
    for _ in range(args.repeats):
        for size in SIZES:
            count, seconds = parse(data, size)
            times[size].append(seconds)
    best = median(times[16 << 10])
    print(f"{count:,} messages, {len(data) / 1e6:.1f} MB, median of {args.repeats}\n")
    print("| fed at once | median ms | messages/s | vs 16 kB |")
    print("|---|---|---|---|")
    for size in SIZES:
        m = median(times[size])
        label = f"{size >> 10} kB" if size < 1 << 20 else f"{size >> 20} MB"
        print(f"| {label} | {m * 1000:.1f} | {count / m:,.0f} | {m / best:.2f}x |")


if __name__ == "__main__":
    main()
