"""Benchmark: `lazycelery demo` N times in a row, headless, with a `lazycelery tail` beside it.

Each run starts ``lazycelery demo --no-dashboard --json`` in a private TMPDIR and, as soon as the
demo says it is up (its ``demo-started`` line: every worker answered a ping and beat wrote its
schedule), ``lazycelery tail --json`` on the demo's broker (the fast-path ingest). A run passes
when, within ``--timeout`` seconds:

  - tail sees task events from every worker, and successes, failures and retries;
  - ``lazycelery queues --json`` shows the priority queue filled (the producer pauses its
    consumers) in at least two priority sub-lists;
  - beat's schedule file has a run recorded (entries_from_shelve: total_run_count > 0);
  - Ctrl-C (SIGINT) stops it with status 130, nothing had to be killed (SIGKILL), every
    process group it started is gone and its temp dir is removed.

Times, from the moment `lazycelery demo` is started: ``ready`` (the demo-started line) and
``first_task`` (the first task event tail printed; what a user waits for before the dashboard
shows a task). Results: bench/results/demo-<kind>.json and a markdown summary on stdout.

    python bench/bench_demo.py --runs 50 [--embedded-broker auto|redis-server|fakeredis]

    python bench/bench_demo.py --screen 10    # the dashboard in a pty: first task row on screen

Never run by the test suite; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from common import REPO, RESULTS, environment, loadavg, log

BEAT_PLUGIN = REPO / "plugins" / "lazycelery-beat"
Doc = dict[str, Any]


class Lines:
    """A subprocess whose stdout lines are collected, each with the wall time it arrived."""

    def __init__(self, argv: list[str], env: dict[str, str], err: Path) -> None:
        with err.open("wb") as out:
            self.proc = subprocess.Popen(argv, env=env, cwd=REPO, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=out,
                                         start_new_session=True)
        self.err = err
        self.lines: list[tuple[float, str]] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            self.lines.append((time.time(), raw.decode("utf-8", "replace").rstrip("\n")))

    def docs(self) -> list[tuple[float, Doc]]:
        out = []
        for at, line in list(self.lines):
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append((at, json.loads(line)))
        return out

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signum)

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._thread.join(5)


@dataclass
class Run:
    number: int
    ok: bool = False
    failure: str = ""
    kind: str = ""
    ready: float | None = None
    first_task: float | None = None
    workers_seen: int = 0
    events: int = 0
    priority_sub_lists: int = 0
    beat_runs: int = 0
    stop_seconds: float | None = None
    exit_status: int | None = None
    checks: dict[str, float] = field(default_factory=dict)


def _lazycelery() -> list[str]:
    script = Path(os.path.abspath(sys.executable)).with_name("lazycelery")
    return [str(script)] if script.exists() else [sys.executable, "-m", "lazycelery"]


def _wait(predicate: Any, timeout: float, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def _group_gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _priority_sub_lists(cmd: list[str], env: dict[str, str], broker: str, queue: str) -> int:
    """How many priority sub-lists of ``queue`` hold messages, per `lazycelery queues --json`."""
    out = subprocess.run([*cmd, "queues", "--json", "--broker", broker], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=60, check=False)
    if out.returncode != 0:
        return 0
    for row in json.loads(out.stdout).get("queues", []):
        if row.get("name") == queue:
            return sum(1 for n in (row.get("by_priority") or {}).values() if n)
    return 0


def _beat_runs(schedule: str) -> int:
    sys.path.insert(0, str(BEAT_PLUGIN))
    try:
        from lazycelery_beat.schedule import entries_from_shelve
    finally:
        sys.path.remove(str(BEAT_PLUGIN))
    try:
        return sum(e.total_run_count or 0 for e in entries_from_shelve(schedule))
    except Exception:
        return 0


def _pids(info: Doc) -> list[int]:
    """The process groups the demo started (from its demo-started line)."""
    if not info:
        return []
    pids = [w["pid"] for w in info["workers"]] + [info["producer"]["pid"], info["beat"]["pid"]]
    if info.get("embedded_broker"):
        pids.append(info["embedded_broker"]["pid"])
    return [int(p) for p in pids if p]


def _tail_ok(tail: Lines, workers: set[str], start: float, run: Run) -> bool:
    docs = tail.docs()
    tasks = [(at, d) for at, d in docs if str(d.get("type", "")).startswith("task-")]
    if tasks and run.first_task is None:
        run.first_task = tasks[0][0] - start
    seen = {d.get("hostname") for _, d in tasks} & workers
    run.workers_seen = len(seen)
    run.events = len(tasks)
    types = {d["type"] for _, d in tasks}
    return seen == workers and {"task-succeeded", "task-failed", "task-retried"} <= types


def one_run(number: int, args: argparse.Namespace, root: Path) -> Run:
    run = Run(number)
    cmd = _lazycelery()
    tmp = root / f"run{number:03d}"
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYCELERY_")}
    env.update(TMPDIR=str(tmp), PYTHONUNBUFFERED="1")
    argv = [*cmd, "demo", "--no-dashboard", "--json", "--duration", str(args.timeout + 30)]
    if args.embedded_broker != "auto":
        argv += ["--embedded-broker", args.embedded_broker]
    start = time.time()
    demo = Lines(argv, env, tmp / "demo.err")
    tail: Lines | None = None
    info: Doc = {}
    try:
        started = _wait(lambda: next((d for _, d in demo.docs()
                                      if d.get("event") == "demo-started"), None)
                        or demo.proc.poll() is not None, 90)
        if not isinstance(started, dict):
            run.failure = "did not start: " + tmp.joinpath("demo.err").read_text()[-300:]
            return run
        info = started
        run.ready = next(at for at, d in demo.docs() if d.get("event") == "demo-started") - start
        run.kind = (info.get("embedded_broker") or {}).get("kind", "")
        tail = Lines([*cmd, "tail", "--json", "--broker", info["broker"]], env, tmp / "tail.err")
        workers = {w["hostname"] for w in info["workers"]}
        if not _wait(lambda: _tail_ok(tail, workers, start, run), args.timeout, 0.2):
            run.failure = (f"tail: {run.workers_seen}/{len(workers)} workers, {run.events} "
                           "task events, or no success/failure/retry")
            return run
        run.checks["tail"] = time.time() - start
        queue = info["queues"][1]
        def filled() -> int:
            count = _priority_sub_lists(cmd, env, info["broker"], queue)
            return count if count >= 2 else 0

        run.priority_sub_lists = _wait(filled, args.timeout, 0.5) or 0
        if run.priority_sub_lists < 2:
            run.failure = f"queues: {queue} never held messages in 2 priority sub-lists"
            return run
        run.checks["queues"] = time.time() - start
        run.beat_runs = _wait(lambda: _beat_runs(info["beat"]["schedule"]), args.timeout,
                              0.5) or 0
        if not run.beat_runs:
            run.failure = "beat: no run recorded in its schedule file"
            return run
        run.checks["beat"] = time.time() - start
        stopping = time.monotonic()
        demo.signal(signal.SIGINT)
        try:
            run.exit_status = demo.proc.wait(60)
        except subprocess.TimeoutExpired:
            run.failure = "Ctrl-C: the demo did not exit within 60 s"
            return run
        run.stop_seconds = time.monotonic() - stopping
        left = [pid for pid in _pids(info) if not _wait(lambda p=pid: _group_gone(p), 10)]
        if run.exit_status != 130 or left or Path(info["data_dir"]).exists():
            run.failure = (f"Ctrl-C: status {run.exit_status}, groups left {left}, data dir "
                           f"{'left' if Path(info['data_dir']).exists() else 'removed'}")
            return run
        stopped = next((d for _, d in demo.docs() if d.get("event") == "demo-stopped"), {})
        if stopped.get("killed"):
            run.failure = f"Ctrl-C: had to SIGKILL {stopped['killed']}"
            return run
        err = tmp.joinpath("demo.err").read_text(errors="replace")
        if "Traceback" in err:
            run.failure = "a traceback on the demo's stderr"
            return run
        run.ok = True
        return run
    finally:
        if tail is not None:
            tail.signal(signal.SIGTERM)
            tail.kill_group()
        demo.kill_group()
        for pid in _pids(info):  # whatever a failed run left behind
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


_TASK_ROW = re.compile(r"^\d\d:\d\d:\d\d (PENDING|RECEIVED|STARTED|SUCCESS|FAILURE|RETRY|REVOKED)"
                       r" +demo\.", re.M)


def screen_run(number: int, root: Path, timeout: float = 90.0) -> float | None:
    """The dashboard in a pseudo-terminal: seconds from start to the first task row on screen
    (None: none within ``timeout``). Needs pexpect and pyte (the test extras)."""
    import pexpect
    import pyte

    tmp = root / f"screen{number:03d}"
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYCELERY_")}
    env.update(TMPDIR=str(tmp), TERM="xterm-256color")
    screen = pyte.Screen(140, 40)
    stream = pyte.ByteStream(screen)
    cmd = _lazycelery()
    start = time.monotonic()
    child = pexpect.spawn(cmd[0], [*cmd[1:], "demo"], cwd=str(REPO), env=env,
                          dimensions=(40, 140))
    seen: float | None = None
    try:
        while time.monotonic() - start < timeout:
            try:
                stream.feed(child.read_nonblocking(65536, timeout=0.05))
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                break
            if _TASK_ROW.search("\n".join(screen.display)):
                seen = time.monotonic() - start
                break
    finally:
        child.send("q")
        with contextlib.suppress(pexpect.TIMEOUT, pexpect.EOF):
            child.expect(pexpect.EOF, timeout=60)
        child.close(force=True)
    return seen


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def summary(runs: list[Run]) -> dict[str, Any]:
    passed = [r for r in runs if r.ok]
    ready = [r.ready for r in passed if r.ready is not None]
    first = [r.first_task for r in passed if r.first_task is not None]
    stops = [r.stop_seconds for r in passed if r.stop_seconds is not None]

    def stats(values: list[float]) -> dict[str, float]:
        return {"median": round(statistics.median(values), 2) if values else float("nan"),
                "p95": round(_pct(values, 0.95), 2), "max": round(max(values), 2)
                if values else float("nan")}

    return {"runs": len(runs), "passed": len(passed),
            "kinds": sorted({r.kind for r in runs if r.kind}),
            "ready_s": stats(ready), "first_task_s": stats(first), "stop_s": stats(stops),
            "failures": [f"run {r.number}: {r.failure}" for r in runs if not r.ok]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--embedded-broker", default="auto",
                        choices=("auto", "redis-server", "fakeredis"))
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds each check may take (default 60)")
    parser.add_argument("--output", type=Path, default=None,
                        help="default bench/results/demo-<embedded-broker>.json")
    parser.add_argument("--screen", type=int, default=0, metavar="N",
                        help="instead: N runs of the dashboard in a pseudo-terminal, timing "
                             "the first task row on screen (needs pexpect and pyte)")
    args = parser.parse_args(argv)
    if args.screen:
        return _screen_main(args.screen)
    output = args.output or RESULTS / f"demo-{args.embedded_broker}.json"
    runs: list[Run] = []
    log(f"demo: {args.runs} runs, embedded broker {args.embedded_broker}, load "
        f"{loadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="lazycelery-bench-demo-") as root:
        for number in range(1, args.runs + 1):
            run = one_run(number, args, Path(root))
            runs.append(run)
            log(f"run {number}: {'ok' if run.ok else 'FAILED ' + run.failure} ({run.kind}, "
                f"ready {run.ready or float('nan'):.2f} s, first task "
                f"{run.first_task or float('nan'):.2f} s, stop "
                f"{run.stop_seconds or float('nan'):.2f} s, load {loadavg()[0]:.2f})")
            result = {"environment": environment(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                      "summary": summary(runs), "runs": [asdict(r) for r in runs]}
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(json.dumps(result, indent=1, default=str))
    s = summary(runs)
    print(f"| embedded broker | passed | ready median / p95 | first task median / p95 | "
          f"stop median |\n|---|---|---|---|---|\n| {', '.join(s['kinds'])} | "
          f"{s['passed']}/{s['runs']} | {s['ready_s']['median']} / {s['ready_s']['p95']} s | "
          f"{s['first_task_s']['median']} / {s['first_task_s']['p95']} s | "
          f"{s['stop_s']['median']} s |")
    for failure in s["failures"]:
        print(f"- {failure}")
    log(f"wrote {output}")
    return 0 if s["passed"] == s["runs"] else 1


def _screen_main(runs: int) -> int:
    times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="lazycelery-bench-demo-") as root:
        for number in range(1, runs + 1):
            seen = screen_run(number, Path(root))
            log(f"screen {number}: first task row "
                f"{'never' if seen is None else f'after {seen:.2f} s'} (load {loadavg()[0]:.2f})")
            if seen is not None:
                times.append(seen)
    print(f"| dashboard runs | first task row on screen, median / p95 / max |\n|---|---|\n"
          f"| {len(times)}/{runs} | {statistics.median(times):.2f} / {_pct(times, 0.95):.2f} / "
          f"{max(times):.2f} s |" if times else f"no task row in {runs} runs")
    return 0 if len(times) == runs else 1


if __name__ == "__main__":
    sys.exit(main())
