"""Benchmark 4: RSS per retained task, TaskIndex vs celery State, each built in a fresh subprocess."""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

from common import BENCH_DIR, lifecycle_templates, log, rss_bytes

BATCH = 512


def synthesize(n_tasks: int) -> Iterator[list[dict[str, Any]]]:
    """Batches of events for ``n_tasks`` full lifecycles (sent, received, started, succeeded),
    cycled from the recorded tasks with fresh uuids (parent/root links remapped the same way).
    Every event goes through JSON encode + msgspec decode, as the ingest path does, so each
    task owns fresh strings (name, args, kwargs, result, hostnames) like a real stream."""
    import msgspec

    encode, decode = msgspec.json.encode, msgspec.json.decode
    templates = lifecycle_templates()
    fresh: dict[str, str] = {}
    batch: list[dict[str, Any]] = []
    now = time.time()
    for i in range(n_tasks):
        if i % len(templates) == 0:
            fresh = {}
        for ev in templates[i % len(templates)]:
            out = dict(ev)
            for key in ("uuid", "root_id", "parent_id"):
                old = out.get(key)
                if old:
                    new = fresh.get(old)
                    if new is None:
                        new = fresh[old] = str(uuid.uuid4())
                    out[key] = new
            out["timestamp"] = out["local_received"] = now + i * 1e-4
            batch.append(decode(encode(out)))
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def child(kind: str, n_tasks: int) -> dict[str, Any]:
    """Runs in the fresh subprocess: build, measure, print JSON."""
    if kind == "lazycelery":
        from lazycelery.core.index import TaskIndex

        index = TaskIndex(max_tasks=n_tasks)

        def apply(batch: list[dict[str, Any]]) -> None:
            index.apply_batch(batch)

        def size() -> int:
            return len(index)
    else:
        from celery.events.state import State

        state = State(max_tasks_in_memory=n_tasks)

        def apply(batch: list[dict[str, Any]]) -> None:
            for ev in batch:
                state.event(ev)

        def size() -> int:
            return len(state.tasks)

    # warm the generator and allocator paths with a throwaway batch, then take the baseline
    for _ in synthesize(1):
        pass
    gc.collect()
    base = rss_bytes()
    t0 = time.perf_counter()
    events = 0
    for batch in synthesize(n_tasks):
        apply(batch)
        events += len(batch)
    build_s = time.perf_counter() - t0
    gc.collect()
    rss = rss_bytes()
    return {"kind": kind, "tasks": size(), "events": events, "build_s": build_s,
            "events_per_s": events / build_s, "rss_base": base, "rss_after": rss,
            "growth": rss - base, "bytes_per_task": (rss - base) / max(size(), 1)}


def measure(kind: str, n_tasks: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(BENCH_DIR / "bench_memory.py"), "--child", kind,
                          "--tasks", str(n_tasks)], capture_output=True, text=True, check=False,
                         cwd=BENCH_DIR)
    if out.returncode != 0:
        return {"kind": kind, "tasks": n_tasks, "error": out.stderr[-2000:]}
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def run(quick: bool, celery_tasks: int | None = None) -> dict[str, Any]:
    ours_n = 200_000 if quick else 1_000_000
    ref_n = celery_tasks or (50_000 if quick else 200_000)
    log(f"memory: lazycelery TaskIndex with {ours_n:,} tasks")
    ours = measure("lazycelery", ours_n)
    log(f"memory: celery State with {ref_n:,} tasks")
    ref = measure("celery", ref_n)
    result: dict[str, Any] = {"lazycelery": ours, "celery": ref}
    if "error" not in ours and "error" not in ref:
        result["ratio"] = ref["bytes_per_task"] / ours["bytes_per_task"]
        ref["extrapolated_1m_bytes"] = ref["bytes_per_task"] * 1_000_000
        ours["extrapolated_1m_bytes"] = ours["bytes_per_task"] * 1_000_000
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", choices=["lazycelery", "celery"], required=True)
    parser.add_argument("--tasks", type=int, required=True)
    args = parser.parse_args()
    print(json.dumps(child(args.child, args.tasks)))


if __name__ == "__main__":
    main()
