"""Benchmark: the cost of masking at ingest (decode + mask + index update, in process, replaying
the recorded Redis stream from memory), masking off vs on in the same run.

Variants, all on the same messages except the last:
  off        no masker (what ingest cost before masking existed)
  default    the default rules on the recorded stream (few secrets: the cheap pre-check path)
  secrets    the default rules on the same stream with a password, a card number and a token
             in every task's kwargs, unique per task (task-sent and task-received share them)
  unique     the same, unique per event (no cache hit at all: the worst case)
  secrets-off the secrets stream without masking (the reference for both)

    python bench/bench_mask.py [--quick]
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from common import log, median, redis_stream_copies

BATCH_MESSAGES = 64


def with_secrets(messages: Sequence[bytes], per_event: bool = False) -> list[bytes]:
    """The messages with secrets added to every task's kwargs: unique per task (its
    task-sent and task-received carry the same text, as celery's do), or with ``per_event``
    unique per event (no cache hit at all)."""
    out: list[bytes] = []
    numbers: dict[str, int] = {}
    for data in messages:
        env = json.loads(data)
        body = json.loads(base64.b64decode(env["body"]))
        events = body if isinstance(body, list) else [body]
        for event in events:
            if "kwargs" in event:
                key = str(len(numbers)) if per_event else event["uuid"]
                n = numbers.setdefault(key, len(numbers))
                event["kwargs"] = repr({"password": f"hunter{n}", "card": "4111 1111 1111 1111",
                                        "auth": f"Bearer tok{n:012d}", "amount": n})
        env["body"] = base64.b64encode(json.dumps(body).encode()).decode()
        out.append(json.dumps(env).encode())
    return out


def run_variant(messages: Sequence[bytes], masked: bool, max_tasks: int) -> tuple[float, int, int]:
    """(seconds, events, values masked): decode, mask (when ``masked``), apply in batches."""
    from lazycelery.core.fastpath import EventDecoder
    from lazycelery.core.index import TaskIndex
    from lazycelery.mask import Masker

    index = TaskIndex(max_tasks=max_tasks)
    decoder = EventDecoder()
    masker = Masker() if masked else None
    apply_batch = index.apply_batch
    decode = decoder.decode
    now = time.time
    batch: list[dict[str, Any]] = []
    gc.collect()
    t0 = time.perf_counter()
    for i, data in enumerate(messages, 1):
        batch.extend(decode(data, now()))
        if i % BATCH_MESSAGES == 0:
            if masker is not None:
                masker.apply(batch)
            apply_batch(batch)
            batch = []
    if batch:
        if masker is not None:
            masker.apply(batch)
        apply_batch(batch)
    elapsed = time.perf_counter() - t0
    return elapsed, index.events_total, sum(masker.counts.values()) if masker else 0


def run(quick: bool = False, repeats: int = 5) -> dict[str, Any]:
    copies = 1 if quick else 4
    plain = redis_stream_copies(copies)
    secret = with_secrets(plain)
    unique = with_secrets(plain, per_event=True)
    max_tasks = 100_000
    variants = {"off": (plain, False), "default": (plain, True),
                "secrets-off": (secret, False), "secrets": (secret, True),
                "unique": (unique, True)}
    rates: dict[str, list[float]] = {name: [] for name in variants}
    masked_values: dict[str, int] = {}
    for r in range(repeats):
        for name, (messages, masked) in variants.items():  # interleaved: same load for all
            seconds, events, values = run_variant(messages, masked, max_tasks)
            rates[name].append(events / seconds)
            masked_values[name] = values
        log(f"mask bench repeat {r + 1}/{repeats}: "
            + ", ".join(f"{n} {rates[n][-1]:,.0f} ev/s" for n in variants))
    result = {name: {"events_per_s_median": median(values), "runs": values,
                     "values_masked": masked_values[name]} for name, values in rates.items()}
    result["ratio_default_vs_off"] = (result["default"]["events_per_s_median"]
                                      / result["off"]["events_per_s_median"])
    result["ratio_secrets_vs_secrets_off"] = (result["secrets"]["events_per_s_median"]
                                              / result["secrets-off"]["events_per_s_median"])
    result["ratio_unique_vs_secrets_off"] = (result["unique"]["events_per_s_median"]
                                             / result["secrets-off"]["events_per_s_median"])
    result["messages"] = len(plain)
    return result


def markdown(result: dict[str, Any]) -> str:
    rows = ["| variant | events/s (median) | values masked |", "|---|---:|---:|"]
    for name in ("off", "default", "secrets-off", "secrets", "unique"):
        row = result[name]
        rows.append(f"| {name} | {row['events_per_s_median']:,.0f} | {row['values_masked']:,} |")
    rows += ["",
             f"masking on / off, recorded stream: {result['ratio_default_vs_off']:.3f}",
             f"masking on / off, secrets in every task: "
             f"{result['ratio_secrets_vs_secrets_off']:.3f}",
             f"masking on / off, secrets unique per event: "
             f"{result['ratio_unique_vs_secrets_off']:.3f}"]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(markdown(run(args.quick, args.repeats)))


if __name__ == "__main__":
    main()
