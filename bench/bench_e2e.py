"""Benchmarks 2 and 3: end to end over Redis and RabbitMQ (sustained rate, drain capacity, CPU per event)."""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import signal
import time
from typing import Any

import e2e_procs
from common import RabbitVhost, RedisServer, cpu_seconds, log, median, rabbit_available

CTX = mp.get_context("spawn")
MAX_PUBLISHERS = 2  # two cores: more publisher processes only steal CPU from the consumer
MAX_TASKS = 100_000
SUSTAIN_LAG = 1.0  # a step passes if the consumer is done within this many seconds of the publisher
DRAIN_WAIT = 30.0
AMQP_SETTLE = 1.0  # s between publishing a drain backlog and resuming the consumer (AMQP)
REDIS_PUBSUB_LIMIT = "pubsub 33554432 8388608 60"  # redis' default (32 MB hard, 8 MB / 60 s soft)


class Child:
    """A spawned child process talking over a pipe."""

    def __init__(self, target: Any, args: tuple[Any, ...], name: str) -> None:
        self.conn, child = CTX.Pipe()
        self.proc = CTX.Process(target=target, args=(*args, child), name=name, daemon=True)
        self.proc.start()
        child.close()
        self.name = name

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return self.proc.pid

    def recv(self, timeout: float = 60.0) -> dict[str, Any]:
        if not self.conn.poll(timeout):
            raise TimeoutError(f"{self.name}: no answer within {timeout} s")
        msg: dict[str, Any] = self.conn.recv()
        if "error" in msg:
            raise RuntimeError(f"{self.name} failed:\n{msg['error']}")
        return msg

    def ask(self, cmd: Any, timeout: float = 30.0) -> dict[str, Any]:
        self.conn.send(cmd)
        return self.recv(timeout)

    def close(self, timeout: float = 5.0) -> None:
        self.proc.join(timeout)
        if self.proc.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGCONT)
            self.proc.terminate()
            self.proc.join(2)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


class Publishers:
    """A pool of publisher processes (each with celery dispatchers on its own connection)."""

    def __init__(self, url: str, count: int, mode: str, render: int = 0) -> None:
        self.mode = mode
        self.children = [Child(e2e_procs.publisher_main, (url, i, mode, render), f"publisher-{i}")
                         for i in range(count)]
        for c in self.children:
            c.recv(600)

    def run(self, rate: float | None, events: int, nproc: int, start_in: float = 0.3) -> dict[str, Any]:
        """Publish ``events`` at ``rate``/s in total (None: as fast as possible) from ``nproc``
        processes; returns the combined report."""
        use = self.children[:max(1, min(nproc, len(self.children)))]
        t0 = time.time() + start_in
        share = [events // len(use) + (1 if i < events % len(use) else 0) for i in range(len(use))]
        for c, n in zip(use, share, strict=True):
            c.conn.send({"rate": None if rate is None else rate * n / events, "events": n, "t0": t0})
        reports = [c.recv(600) for c in use]
        end = max(r["end"] for r in reports)
        start = min(r["start"] for r in reports)
        published = sum(r["events"] for r in reports)
        span = end - (t0 if rate is not None else start)
        return {"events": published, "messages": sum(r["messages"] for r in reports),
                "t0": t0, "start": start, "end": end, "processes": len(use),
                "achieved_rate": published / max(span, 1e-9),
                "cpu_per_event_us": 1e6 * sum(r["cpu"] for r in reports) / max(published, 1)}

    def close(self) -> None:
        for c in self.children:
            with contextlib.suppress(OSError):
                c.conn.send(None)
        for c in self.children:
            c.close()


class Consumer:
    """One consumer process of a given kind."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind = kind
        self.child = Child(e2e_procs.consumer_main, (kind, url, MAX_TASKS), f"consumer-{kind}")
        self.pid = self.child.recv(120)["pid"]

    def stats(self) -> dict[str, Any]:
        return self.child.ask("stats")

    def stop(self) -> dict[str, Any]:
        try:
            reply = self.child.ask("stop", 15)
        except (TimeoutError, RuntimeError, OSError, EOFError) as exc:
            reply = {"stop_error": repr(exc)}
        self.child.close()
        return reply


def warm_up(url: str, consumer: Consumer, timeout: float = 30.0) -> float:
    """Send worker-heartbeat events until the consumer has seen one (it is subscribed);
    returns the seconds it took."""
    from celery import Celery

    app = Celery("bench-warmup", broker=url, set_as_current=False)
    t = time.monotonic()
    with app.connection_for_write() as conn:
        disp = app.events.Dispatcher(conn, hostname="bench-warmup@localhost")
        while time.monotonic() - t < timeout:
            disp.send("worker-heartbeat", freq=2.0, active=0, processed=0, loadavg=[0.0, 0.0, 0.0],
                      sw_ident="py-celery", sw_ver="5.7.0", sw_sys="Linux")
            deadline = time.monotonic() + 0.2
            while time.monotonic() < deadline:
                if consumer.stats()["all"] > 0:
                    time.sleep(0.2)  # let the stragglers of the warm-up in
                    return time.monotonic() - t
                time.sleep(0.02)
    raise TimeoutError(f"consumer {consumer.kind} saw no event within {timeout} s")


def wait_drained(consumer: Consumer, base: int, expected: int, since: float,
                 quiet: float = 1.5, limit: float = DRAIN_WAIT) -> dict[str, Any]:
    """Poll until the consumer has ``expected`` new task events, or nothing changed for
    ``quiet`` s (after ``since``), or ``limit`` s passed."""
    while True:
        s = consumer.stats()
        now = time.time()
        if s["task"] - base >= expected:
            return s
        if now - since > limit:
            return s
        last = max(s["last_change"], since)
        if now - last > quiet:
            return s
        time.sleep(0.05)


def publisher_processes(broker: str, mode: str, rate: float) -> int:
    """How many publisher processes a rate needs (one process caps out near these shares on
    this machine: the raw Redis and AMQP-frame replays are a few us/event, kombu+celery ~60)."""
    share = {("redis", e2e_procs.REPLAY): 30_000, ("amqp", e2e_procs.REPLAY): 30_000}.get(
        (broker, mode), 6_000)
    return max(1, min(MAX_PUBLISHERS, math.ceil(rate / share)))


def sustained_step(url: str, broker: str, kind: str, rate: int, duration: float,
                   pubs: Publishers) -> dict[str, Any]:
    """One rate: a fresh consumer, ``rate * duration`` events paced, then a drain wait."""
    consumer = Consumer(kind, url)
    try:
        warm_up(url, consumer)
        s0 = consumer.stats()
        cpu0 = cpu_seconds(consumer.pid)
        events = int(rate * duration)
        rep = pubs.run(rate, events, publisher_processes(broker, pubs.mode, rate))
        s1 = wait_drained(consumer, s0["task"], rep["events"], rep["end"])
        cpu1 = cpu_seconds(consumer.pid)
        received = s1["task"] - s0["task"]
        lost = rep["events"] - received
        lag = max(0.0, s1["last_change"] - rep["end"]) if received else float("nan")
        publisher_ok = rep["achieved_rate"] >= 0.95 * rate
        ok = lost == 0 and lag <= SUSTAIN_LAG and publisher_ok
        step: dict[str, Any] = {
            "kind": kind, "target_rate": rate, "duration": duration,
            "published": rep["events"], "messages": rep["messages"], "publishers": rep["processes"],
            "publisher_rate": rep["achieved_rate"], "publisher_cpu_us": rep["cpu_per_event_us"],
            "received": received, "lost": lost, "lag_s": lag,
            "consumer_cpu_us": 1e6 * (cpu1 - cpu0) / max(received, 1),
            "consumer_cpu_share": (cpu1 - cpu0) / max(s1["t"] - rep["t0"], 1e-9),
            "ok": ok,
        }
        if not publisher_ok:
            step["publisher_bound"] = True
        for key in ("status", "errors", "last_error"):
            if key in s1:
                step[key] = s1[key]
        return step
    finally:
        consumer.stop()


def _log_step(step: dict[str, Any]) -> None:
    verdict = "ok" if step["ok"] else ("PUBLISHER-BOUND" if step.get("publisher_bound") else "FAIL")
    log(f"  {step['kind']} @ {step['target_rate']:,}/s: published {step['published']:,} at "
        f"{step['publisher_rate']:,.0f}/s, received {step['received']:,}, lost {step['lost']:,}, "
        f"lag {step['lag_s']:.2f} s, cpu {step['consumer_cpu_us']:.1f} us/event: {verdict}")


def ladder(url: str, broker: str, kind: str, rates: list[int], duration: float,
           pubs: Publishers, start: int = 0) -> dict[str, Any]:
    """The highest rate of ``rates`` sustained with no loss: from ``rates[start]`` step up
    until a step fails (loss, lag, or the publishers cap out); if the first step fails, step
    down until one passes."""
    steps: list[dict[str, Any]] = []
    best, limit = 0, "top of the ladder"
    i, direction = start, +1
    while 0 <= i < len(rates):
        step = sustained_step(url, broker, kind, rates[i], duration, pubs)
        _log_step(step)
        steps.append(step)
        if step["ok"]:
            best = max(best, rates[i])
            if direction < 0:
                break  # stepping down found a passing rate
            i += 1
            continue
        limit = "publisher" if step.get("publisher_bound") else "loss" if step["lost"] else "lag"
        if best or i == 0:
            break
        direction, i = -1, i - 1  # the starting rung failed: step down
    if best == rates[-1]:
        limit = "top of the ladder"
    # what was really published with nothing lost (counts publisher-bound steps at their real rate)
    clean = max([s["publisher_rate"] for s in steps if s["lost"] == 0 and s["lag_s"] <= SUSTAIN_LAG]
                + [0.0])
    return {"best_rate": best, "limited_by": limit, "clean_rate": clean, "steps": steps}


def drain(url: str, kind: str, backlog: int, pubs: Publishers, redis: RedisServer | None,
          repeats: int) -> dict[str, Any]:
    """Drain capacity: freeze the consumer (SIGSTOP), publish a backlog, resume it (SIGCONT)
    and time how fast it works through the backlog (Redis: the pubsub output-buffer limit is
    lifted meanwhile). Median of ``repeats``."""
    runs: list[dict[str, Any]] = []
    for _ in range(repeats):
        consumer = Consumer(kind, url)
        try:
            warm_up(url, consumer)
            if redis is not None:
                redis.config_set("client-output-buffer-limit", "pubsub 0 0 0")
            s0 = consumer.stats()
            os.kill(consumer.pid, signal.SIGSTOP)
            try:
                cpu0 = cpu_seconds(consumer.pid)
                rep = pubs.run(None, backlog, len(pubs.children), start_in=0.1)
                if redis is None:
                    # AMQP replay returns once its frames are in the socket buffers: let
                    # RabbitMQ route the backlog into the queue before the clock starts
                    time.sleep(AMQP_SETTLE)
            finally:
                resumed = time.time()
                os.kill(consumer.pid, signal.SIGCONT)
            s1 = wait_drained(consumer, s0["task"], rep["events"], resumed, quiet=2.0, limit=120)
            cpu1 = cpu_seconds(consumer.pid)
            got = s1["task"] - s0["task"]
            span = max(s1["last_change"] - resumed, 1e-9)
            runs.append({"published": rep["events"], "publish_s": rep["end"] - rep["start"],
                         "received": got, "lost": rep["events"] - got, "seconds": span,
                         "rate": got / span, "cpu_us": 1e6 * (cpu1 - cpu0) / max(got, 1)})
            log(f"  drain {kind}: {got:,}/{rep['events']:,} events in {span:.2f} s = {got / span:,.0f}/s, "
                f"cpu {runs[-1]['cpu_us']:.1f} us/event")
        finally:
            if redis is not None:
                redis.config_set("client-output-buffer-limit", REDIS_PUBSUB_LIMIT)
            consumer.stop()
    return {"rate": median([r["rate"] for r in runs]), "cpu_us": median([r["cpu_us"] for r in runs]),
            "runs": runs}


def _kinds_available(kinds: list[str]) -> tuple[list[str], dict[str, str]]:
    skipped: dict[str, str] = {}
    if any(k in (e2e_procs.FAST, e2e_procs.KOMBU) for k in kinds):
        try:
            import lazycelery.core.ingest  # noqa: F401
        except ImportError as exc:
            for k in (e2e_procs.FAST, e2e_procs.KOMBU):
                skipped[k] = f"lazycelery.core.ingest not importable: {exc}"
    return [k for k in kinds if k not in skipped], skipped


LADDERS: dict[str, dict[str, list[int]]] = {
    "redis": {
        e2e_procs.CELERY: [2_000, 5_000, 7_500, 10_000, 15_000, 20_000, 30_000],
        e2e_procs.RECEIVER: [5_000, 10_000, 15_000, 20_000, 30_000, 40_000],
        e2e_procs.KOMBU: [2_000, 5_000, 10_000, 15_000, 20_000, 30_000, 40_000],
        e2e_procs.FAST: [10_000, 20_000, 30_000, 40_000, 60_000, 80_000, 100_000, 120_000, 150_000],
    },
    "amqp": {
        e2e_procs.CELERY: [1_000, 2_000, 3_000, 5_000, 7_500, 10_000, 15_000, 20_000, 30_000],
        e2e_procs.KOMBU: [1_000, 2_000, 3_000, 5_000, 7_500, 10_000, 15_000, 20_000, 30_000],
        # the AMQP fast path (lazycelery.core.ingest_amqp): Ingestor(mode="fast") on amqp://
        e2e_procs.FAST: [5_000, 10_000, 15_000, 20_000, 25_000, 30_000, 40_000, 50_000, 60_000],
    },
}
QUICK_LADDERS: dict[str, dict[str, list[int]]] = {
    "redis": {e2e_procs.CELERY: [5_000, 10_000], e2e_procs.KOMBU: [5_000, 10_000],
              e2e_procs.FAST: [20_000, 40_000]},
    "amqp": {e2e_procs.CELERY: [2_000, 5_000], e2e_procs.KOMBU: [2_000, 5_000],
             e2e_procs.FAST: [5_000, 10_000]},
}


def run_broker(broker: str, quick: bool, repeats: int, mode: str) -> dict[str, Any]:
    """Sustained-rate ladders (``repeats`` times, median of the best rates) and drain capacity
    (median of ``repeats``) for every consumer kind on one broker."""
    if broker == "amqp" and not rabbit_available():
        return {"skipped": "RabbitMQ not reachable on 127.0.0.1:5672 (or rabbitmqctl missing)"}
    duration = 2.0 if quick else 10.0
    ladders = (QUICK_LADDERS if quick else LADDERS)[broker]
    kinds, skipped = _kinds_available(list(ladders))
    # AMQP: the Receiver's queue has message_ttl=5 s, so the backlog must go out well within it
    backlog = {"redis": 30_000 if quick else 100_000, "amqp": 10_000 if quick else 20_000}[broker]
    render = max([math.ceil(r * duration / publisher_processes(broker, mode, r))
                  for k in kinds for r in ladders[k]] + [backlog // MAX_PUBLISHERS + 1])
    out: dict[str, Any] = {"duration_s": duration, "backlog": backlog, "max_tasks": MAX_TASKS,
                           "publisher_mode": mode, "repeats": repeats, "skipped": skipped,
                           "ladders": {k: ladders[k] for k in kinds}, "kinds": {}}
    server = RedisServer() if broker == "redis" else None
    vhost = RabbitVhost() if broker == "amqp" else None
    with server or contextlib.nullcontext(), vhost or contextlib.nullcontext():
        url = server.url if server is not None else vhost.url  # type: ignore[union-attr]
        log(f"{broker} e2e: starting {MAX_PUBLISHERS} publishers ({mode}; rendering "
            f"{render:,} events each)")
        pubs = Publishers(url, MAX_PUBLISHERS, mode, int(render * 1.02) + 100)
        try:
            for kind in kinds:
                rates = ladders[kind]
                runs: list[dict[str, Any]] = []
                for rep in range(repeats):
                    start = 0
                    if runs and runs[0]["best_rate"] in rates:
                        start = max(0, rates.index(runs[0]["best_rate"]) - 1)
                    log(f"{broker} e2e: {kind}: ladder {rep + 1}/{repeats} from {rates[start]:,}/s")
                    runs.append(ladder(url, broker, kind, rates, duration, pubs, start))
                log(f"{broker} e2e: {kind}: drain capacity ({backlog:,} events backlog)")
                res: dict[str, Any] = {
                    "best_rate": median([r["best_rate"] for r in runs]),
                    "best_rates": [r["best_rate"] for r in runs],
                    "clean_rate": median([r["clean_rate"] for r in runs]),
                    "limited_by": [r["limited_by"] for r in runs],
                    "ladders": runs,
                    "drain": drain(url, kind, backlog, pubs, server, repeats),
                }
                at_best = [s for r in runs for s in r["steps"]
                           if s["ok"] and s["target_rate"] == r["best_rate"]]
                res["cpu_us_at_best"] = median([s["consumer_cpu_us"] for s in at_best]) if at_best else None
                out["kinds"][kind] = res
        finally:
            pubs.close()
    ref = out["kinds"].get(e2e_procs.CELERY)
    if ref:
        for res in out["kinds"].values():
            res["ratio_sustained"] = res["best_rate"] / ref["best_rate"] if ref["best_rate"] else None
            res["ratio_drain"] = res["drain"]["rate"] / ref["drain"]["rate"]
            res["ratio_cpu"] = ref["drain"]["cpu_us"] / res["drain"]["cpu_us"]
    return out
