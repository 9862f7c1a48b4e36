"""Run the lazycelery benchmarks beside celery's own path; print markdown, write results/latest.json.

    python bench/run.py [--quick] [--only NAME[,NAME]] [--repeats N] [--publisher replay|live]

Names: inprocess, redis, amqp, memory, startup, gap, store, otel, mask. Never run by the test
suite; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from common import RESULTS, environment, loadavg, log

NAMES = ("startup", "inprocess", "memory", "redis", "amqp", "gap", "store", "otel", "mask")


def _run_one(name: str, args: argparse.Namespace) -> dict[str, Any]:
    repeats = args.repeats or (1 if args.quick else 3)
    if name == "inprocess":
        import bench_inprocess

        return bench_inprocess.run(args.quick)
    if name == "memory":
        import bench_memory

        return bench_memory.run(args.quick, args.celery_tasks)
    if name == "startup":
        import bench_startup

        return bench_startup.run(args.quick)
    if name in ("redis", "amqp"):
        import bench_e2e

        return bench_e2e.run_broker(name, args.quick, repeats, args.publisher)
    if name == "gap":
        import bench_gap

        return bench_gap.run(args.quick)
    if name == "otel":
        import bench_otel

        return bench_otel.run(args.quick, args.repeats)
    if name == "store":
        import bench_store

        return bench_store.run(args.quick)
    if name == "mask":
        import bench_mask

        return bench_mask.run(args.quick, repeats=args.repeats or (3 if args.quick else 7))
    raise ValueError(name)


def _wait_idle(threshold: float, limit: float) -> None:
    deadline = time.monotonic() + limit
    while loadavg()[0] >= threshold and time.monotonic() < deadline:
        log(f"waiting for the machine to go idle: load {loadavg()[0]:.2f} >= {threshold}")
        time.sleep(15)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one repeat (~2 min)")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {', '.join(NAMES)}")
    parser.add_argument("--repeats", type=int, default=0,
                        help="end-to-end ladder and drain repeats (default 3, quick 1)")
    parser.add_argument("--publisher", choices=["replay", "live"], default="replay",
                        help="replay: messages rendered by celery's dispatcher beforehand and sent raw "
                             "(default); live: every message through the dispatcher and kombu while timed")
    parser.add_argument("--celery-tasks", type=int, default=None,
                        help="tasks for celery's State in the memory benchmark (default 200k, quick 50k)")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="LOAD",
                        help="before each benchmark, wait (up to --wait-max s) for the 1-minute load "
                             "average to drop below LOAD")
    parser.add_argument("--wait-max", type=float, default=600.0, help="see --wait-idle")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json",
                        help="results file; sections not run are kept from the existing file")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(NAMES)
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)} (choose from {', '.join(NAMES)})")

    results: dict[str, Any] = {}
    if args.output.exists() and args.only:
        results = json.loads(args.output.read_text())
    results["environment"] = environment()
    log(f"load average {loadavg()[0]:.2f} on {results['environment']['cpus']} cores "
        f"({'quick' if args.quick else 'full'} run: {', '.join(names)})")
    for name in names:
        if args.wait_idle > 0:
            _wait_idle(args.wait_idle, args.wait_max)
        t = time.monotonic()
        meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "quick": args.quick, "loadavg": loadavg()}
        try:
            section = _run_one(name, args)
        except Exception as exc:  # one broken benchmark must not lose the others
            import traceback

            log(f"{name} failed: {exc!r}")
            section = {"skipped": f"failed: {exc!r}", "traceback": traceback.format_exc()}
        meta["seconds"] = time.monotonic() - t
        section["_meta"] = meta
        results[name] = section
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=1, default=str))
        log(f"{name} done in {meta['seconds']:.0f} s")

    import report

    print(report.render({k: v for k, v in results.items() if k in names or k == "environment"}))
    log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
