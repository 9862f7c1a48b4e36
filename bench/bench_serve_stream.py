"""`lazycelery serve`'s live stream under load: a real serve process ingesting a replayed
Redis event stream at a target rate (30,000 events/s by default) while 50 Server-Sent Events
clients read /api/v1/stream and a process of its own asks /api/v1/tasks?limit=100 at 100
requests/s, sent on schedule whatever the answers take.
The same publishing without any HTTP client is the reference, measured in the same run.

Reported: events serve applied vs published (ingest loss must be 0), ingest gaps, the stream
items each client got and the loss it was told (counted, by design, when it cannot keep up),
the requests answered (200) per second and their latencies (median, p95), and those serve shed
(503 with Retry-After: its admission control, a counted loss on the HTTP side).

    .venv/bin/python bench/bench_serve_stream.py                     # 10,000 and 30,000/s, 10 s
    .venv/bin/python bench/bench_serve_stream.py --rates 5000 --seconds 3 --clients 5
    git archive main lazycelery | tar -x -C /tmp/before     # before/after, same run and events:
    .venv/bin/python bench/bench_serve_stream.py --rates 30000 --before /tmp/before --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import e2e_procs
from bench_e2e import Child, Publishers, publisher_processes
from common import RedisServer, free_port, log, md_table, median

ROOT = Path(__file__).resolve().parent.parent


def metrics(port: int) -> dict[str, float]:
    import httpx

    out: dict[str, float] = {}
    for attempt in range(5):  # a busy serve (or machine) can be slow to answer
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
            break
        except httpx.TimeoutException:
            if attempt == 4:
                raise
    for line in text.splitlines():
        if line and not line.startswith("#") and ("{" not in line
                                                  or line.startswith("lazycelery_http_shed")):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def start_serve(broker: str, port: int, source: Path | None = None) -> subprocess.Popen[bytes]:
    """serve from this tree, or from ``source`` (a directory holding another version's
    ``lazycelery`` package: the "before" of a before/after run)."""
    env = dict(os.environ, LAZYCELERY_CONFIG=os.devnull)
    env.pop("LAZYCELERY_STORE", None)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    # from the source's directory: ``-m`` puts the working directory first on the path
    return subprocess.Popen([sys.executable, "-m", "lazycelery", "serve", "--broker", broker,
                             "--port", str(port), "--queue-interval", "5"], env=env,
                            cwd=None if source is None else str(source),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def cpu_seconds(pid: int) -> float:
    """A process's CPU time (user + system) so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise TimeoutError(what)


def warm_up(broker: str, port: int) -> None:
    """Heartbeats until serve has applied one (it is subscribed)."""
    from celery import Celery

    app = Celery("bench-warmup", broker=broker, set_as_current=False)
    with app.connection_for_write() as conn:
        disp = app.events.Dispatcher(conn, hostname="bench-warmup@localhost")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            disp.send("worker-heartbeat", freq=2.0, active=0, processed=0)
            if metrics(port).get("lazycelery_events_total", 0) > 0:
                return
            time.sleep(0.2)
    raise TimeoutError("serve saw no event")


def drained(port: int, base: float, expected: int, since: float, quiet: float = 2.0) -> float:
    """Events serve applied since ``base`` once it has ``expected`` or nothing changed for
    ``quiet`` s."""
    last, changed = -1.0, time.monotonic()
    while True:
        applied = metrics(port)["lazycelery_events_total"] - base
        if applied >= expected:
            return applied
        if applied != last:
            last, changed = applied, time.monotonic()
        elif time.monotonic() - changed > quiet and time.time() > since:
            return applied
        time.sleep(0.1)


# --------------------------------------------------------------------------- clients process


async def _stream(port: int, stats: dict[str, Any], ready: asyncio.Event, stop: asyncio.Event
                  ) -> None:
    import httpx

    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=60.0)) as client, \
            client.stream("GET", f"http://127.0.0.1:{port}/api/v1/stream",
                          params={"heartbeat": 2}) as response:
        tail = b""
        async for chunk in response.aiter_raw():
            data = tail + chunk
            stats["items"] += data.count(b"\nevent: task\n") + data.count(b"\nevent: worker\n")
            start = 0
            while (at := data.find(b"event: loss\ndata: ", start)) >= 0:
                end = data.find(b"\n", at + 18)
                if end < 0:
                    break
                stats["lost"] += json.loads(data[at + 18:end]).get("lost") or 0
                start = end
            tail = data[-40:]  # a marker split across reads is counted once (markers > 40 B)
            if b"event: hello" in data:
                ready.set()
            if stop.is_set():
                return


async def _requests(port: int, rate: float, latencies: list[float], errors: list[int],
                    stop: asyncio.Event, shed: list[float] | None = None) -> None:
    """``/api/v1/tasks?limit=100`` sent on schedule (``rate`` per second), each in a task of its
    own, whatever the answers take: the rate asked is the rate sent (at most 200 in flight).
    ``latencies``: the answered (200) ones; ``shed``: the latencies of the 503s (admission
    control: serve sheds requests so its ingest keeps up); ``errors``: anything else."""
    import httpx

    gate = asyncio.Semaphore(200)
    shed = [] if shed is None else shed

    async def one(client: httpx.AsyncClient) -> None:
        async with gate:
            t = time.monotonic()
            try:
                r = await client.get(f"http://127.0.0.1:{port}/api/v1/tasks",
                                     params={"limit": 100})
            except httpx.HTTPError:
                errors.append(0)
                return
            took = time.monotonic() - t
            if r.status_code == 200:
                latencies.append(took)
            elif r.status_code == 503 and r.headers.get("retry-after"):
                shed.append(took)
            else:
                errors.append(r.status_code)

    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(timeout=10.0, limits=limits) as client:
        await _on_schedule(lambda: one(client), rate, stop, errors)


async def _on_schedule(one: Callable[[], Coroutine[Any, Any, None]], rate: float,
                       stop: asyncio.Event, errors: list[int]) -> None:
    """``one()`` started ``rate`` times a second, each a task of its own, until ``stop``."""
    interval, next_at = 1.0 / rate, time.monotonic()
    pending: set[asyncio.Task[None]] = set()
    while not stop.is_set():
        task = asyncio.create_task(one())
        pending.add(task)
        task.add_done_callback(pending.discard)
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    # what is still waiting 10 s after the window is not answered in time: cancelled
    if pending:
        await asyncio.wait(set(pending), timeout=10.0)
    for task in list(pending):
        task.cancel()
        errors.append(-1)


async def _raw_requests(port: int, rate: float, latencies: list[float], errors: list[int],
                        stop: asyncio.Event, shed: list[float]) -> None:
    """As ``_requests``, with HTTP/1.1 keep-alive connections read by hand (status line,
    Content-Length, the body read whole and not parsed): the requester's own CPU per request is
    a fraction of httpx's, so on 2 shared cores its process keeps the schedule and what is
    measured is serve (httpx fell behind the schedule here: 66-99 sent/s of the 100 asked)."""
    gate = asyncio.Semaphore(200)
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    request = (f"GET /api/v1/tasks?limit=100 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
               ).encode()

    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                       ) -> tuple[int, bool]:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status, length, retry = int(head[9:12]), None, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"retry-after":
                retry = True
        if length is None:
            raise ValueError("no Content-Length")
        await reader.readexactly(length)
        return status, retry

    async def one() -> None:
        async with gate:
            t = time.monotonic()
            conn = None
            try:
                if idle:  # a kept-alive connection the server may have closed meanwhile
                    conn = idle.pop()  # (uvicorn: 5 s idle): tried again on a new one, as
                    try:               # every HTTP client does
                        status, retry = await asyncio.wait_for(exchange(*conn), 10.0)
                    except (OSError, asyncio.IncompleteReadError):
                        conn[1].close()
                        conn = None
                if conn is None:
                    conn = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10.0)
                    status, retry = await asyncio.wait_for(exchange(*conn), 10.0)
            except (OSError, EOFError, ValueError, asyncio.TimeoutError,
                    asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                if conn is not None:
                    conn[1].close()
                errors.append(0)
                return
            idle.append(conn)
            took = time.monotonic() - t
            if status == 200:
                latencies.append(took)
            elif status == 503 and retry:
                shed.append(took)
            else:
                errors.append(status)

    await _on_schedule(one, rate, stop, errors)
    for _reader, writer in idle:
        writer.close()


async def _asker(port: int, rate: float, conn: Connection, kind: str = "raw") -> dict[str, Any]:
    stop = asyncio.Event()
    latencies: list[float] = []
    errors: list[int] = []
    shed: list[float] = []
    t0 = time.monotonic()
    ask = _raw_requests if kind == "raw" else _requests
    asker = asyncio.create_task(ask(port, rate, latencies, errors, stop, shed))
    conn.send({"ready": True})
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, conn.recv)  # "stop"
    stop.set()
    sent_for = time.monotonic() - t0
    await asyncio.wait_for(asker, 30)
    kinds = {str(code): errors.count(code) for code in sorted(set(errors))}  # 0: no answer,
    # -1: still waiting 10 s after the window, else the HTTP status
    return {"latencies": latencies, "errors": len(errors), "error_kinds": kinds,
            "seconds": sent_for, "shed": shed}


def requester_main(port: int, rate: float, kind: str, conn: Connection) -> None:
    """The requests, in a process of their own: not starved by the 50 stream readers."""
    try:
        conn.send(asyncio.run(_asker(port, rate, conn, kind)))
    except Exception as exc:
        conn.send({"error": repr(exc)})


async def _clients(port: int, n: int, rate: float, conn: Connection) -> dict[str, Any]:
    stop = asyncio.Event()
    stats = [{"items": 0, "lost": 0} for _ in range(n)]
    readies = [asyncio.Event() for _ in range(n)]
    tasks = [asyncio.create_task(_stream(port, s, r, stop)) for s, r in zip(stats, readies,
                                                                              strict=True)]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
    conn.send({"ready": True})
    loop = asyncio.get_running_loop()
    while await loop.run_in_executor(None, conn.recv) == "stats":
        conn.send({"got": [s["items"] + s["lost"] for s in stats]})
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"stats": stats}


def clients_main(port: int, n: int, rate: float, conn: Connection) -> None:
    try:
        conn.send(asyncio.run(_clients(port, n, rate, conn)))
    except Exception as exc:
        conn.send({"error": repr(exc)})


# --------------------------------------------------------------------------- the run


def step(name: str, broker: str, port: int, pubs: Publishers, rate: int, seconds: float,
         clients: int, req_rate: float, catch_up_limit: float = float("inf"),
         pid: int | None = None, requester: str = "raw") -> dict[str, Any]:
    child = asker = None
    if clients:
        child = Child(clients_main, (port, clients, req_rate), "clients")
        child.recv(90)
        asker = Child(requester_main, (port, req_rate, requester), "requests")
        asker.recv(30)
    before = metrics(port)
    cpu0 = cpu_seconds(pid) if pid is not None else None
    events = int(rate * seconds)
    rep = pubs.run(rate, events, publisher_processes("redis", pubs.mode, rate))
    # serve's CPU over the publishing window (ingest, streams and requests together)
    serve_cpu = cpu_seconds(pid) - cpu0 if pid is not None and cpu0 is not None else None
    asked = None
    if asker is not None:  # the requests cover the publishing window
        asker.conn.send("stop")
        asked = asker.recv(60)
        asker.close()
    applied = drained(port, before["lazycelery_events_total"], rep["events"], rep["end"])
    after = metrics(port)
    out: dict[str, Any] = {
        "step": name, "published": rep["events"], "publisher_rate": rep["achieved_rate"],
        "applied": applied, "ingest_lost": rep["events"] - applied,
        "gaps": after["lazycelery_ingest_gaps_total"] - before["lazycelery_ingest_gaps_total"],
        "stream_items": after["lazycelery_stream_published_total"]
        - before["lazycelery_stream_published_total"],
        "client_lost_total": after["lazycelery_stream_client_lost_total"]
        - before["lazycelery_stream_client_lost_total"],
        "serve_cpu_s": serve_cpu, "publish_s": rep["end"] - rep.get("start", rep["end"]),
    }
    if child is not None:
        # the clients read on after the ingest is done: until each has every stream item
        # (received or told lost), or nothing moved for 3 s
        t0, last, moved = time.monotonic(), None, time.monotonic()
        while True:
            got = min(child.ask("stats")["got"])
            if got >= out["stream_items"] or time.monotonic() - moved > 3 \
                    or time.monotonic() - t0 > catch_up_limit:
                break
            if got != last:
                last, moved = got, time.monotonic()
            time.sleep(0.2)
        out["catch_up_s"] = time.monotonic() - t0
        out["slowest_client_got"] = got
        child.conn.send("stop")
        report = child.recv(60)
        child.close()
        assert asked is not None
        lat = sorted(asked["latencies"])
        shed = sorted(asked["shed"])
        out.update({
            "shed": len(shed), "shed_per_s": len(shed) / max(1e-9, asked["seconds"]),
            "shed_p50_ms": 1000 * median(shed) if shed else None,
            "serve_shed_total": sum(v for k, v in after.items()
                                    if k.startswith("lazycelery_http_shed_total"))
            - sum(v for k, v in before.items() if k.startswith("lazycelery_http_shed_total")),
            "serve_shed_ingest_behind": after.get('lazycelery_http_shed_total{reason="ingest_behind"}',
                                                  0)
            - before.get('lazycelery_http_shed_total{reason="ingest_behind"}', 0),
            "clients": clients, "items_per_client_median": median(
                [s["items"] for s in report["stats"]]),
            "told_lost_per_client_median": median([s["lost"] for s in report["stats"]]),
            # what the requester managed to send: below the rate asked, its own process was
            # starved (a busy machine), and answered/s says as much about it as about serve
            "sent_per_s": (len(lat) + len(shed) + asked["errors"]) / max(1e-9, asked["seconds"]),
            "requests": len(lat), "request_errors": asked["errors"],  # neither 200 nor 503
            "request_error_kinds": asked.get("error_kinds"),
            "requests_per_s": len(lat) / max(1e-9, asked["seconds"]),
            "request_p50_ms": 1000 * median(lat) if lat else None,
            "request_p95_ms": 1000 * lat[int(0.95 * (len(lat) - 1))] if lat else None,
        })
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="10000,30000",
                        help="comma-separated event rates, each run with and without clients")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=float, default=100.0, help="requests per second")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--before", type=Path, metavar="SRC",
                        help="also run serve from SRC (a directory with another version's "
                             "lazycelery package, e.g. `git archive main lazycelery | tar -x "
                             "-C SRC`), alternating with this tree's, on the same events")
    parser.add_argument("--repeats", type=int, default=1,
                        help="loaded steps per rate and serve (alternating; quote medians)")
    parser.add_argument("--catch-up-limit", type=float, default=float("inf"), metavar="S",
                        help="stop waiting for the stream clients to catch up after S seconds")
    parser.add_argument("--requester", choices=("raw", "httpx"), default="raw",
                        help="the requests' client: raw keep-alive HTTP/1.1 read by hand (cheap, "
                             "keeps the schedule on 2 cores; default) or httpx (the runs before "
                             "2026-12-07 08:45)")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the steps without HTTP clients")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    events = int(max(rates) * args.seconds)
    variants: list[tuple[str, Path | None]] = [("", None)]
    if args.before is not None:
        variants = [("before: ", args.before.resolve()), ("after: ", None)]
    results = []
    with RedisServer() as redis:
        pubs = None
        try:
            log(f"rendering {events:,} events")
            pubs = Publishers(redis.url, 2, e2e_procs.REPLAY, render=events)
            for rate in rates:
                for repeat in range(args.repeats):
                    for label, source in variants:
                        port = free_port()
                        serve = start_serve(redis.url, port, source)
                        try:
                            wait_until(lambda: metrics(port), 60, "serve to answer")  # noqa: B023
                            warm_up(redis.url, port)
                            if repeat == 0 and not args.no_reference:
                                results.append(step(f"{label}{rate:,}/s, reference: no HTTP "
                                                    "clients", redis.url, port, pubs, rate,
                                                    args.seconds, 0, 0))
                            results.append(step(f"{label}{rate:,}/s, {args.clients} stream "
                                                f"clients + {args.requests:g} req/s", redis.url,
                                                port, pubs, rate, args.seconds, args.clients,
                                                args.requests, args.catch_up_limit,
                                                serve.pid, args.requester))
                            log(json.dumps(results[-1]))
                        finally:
                            serve.terminate()
                            serve.wait(15)
        finally:
            if pubs is not None:
                pubs.close()
    for r in results:
        log(json.dumps(r))
    rows = [[r["step"], f"{r['published']:,}", f"{r['publisher_rate']:,.0f}",
             f"{r['applied']:,.0f}", f"{r['ingest_lost']:,.0f}", f"{r['gaps']:.0f}",
             f"{r.get('items_per_client_median', 0):,.0f}",
             f"{r.get('told_lost_per_client_median', 0):,.0f}",
             f"{r['client_lost_total']:,.0f}",
             "-" if r.get("request_p50_ms") is None else f"{r['request_p50_ms']:.1f}",
             "-" if r.get("request_p95_ms") is None else f"{r['request_p95_ms']:.1f}",
             str(r.get("requests", "-")),
             "-" if r.get("sent_per_s") is None else f"{r['sent_per_s']:.0f}",
             "-" if r.get("requests_per_s") is None else f"{r['requests_per_s']:.0f}",
             "-" if r.get("shed_per_s") is None else f"{r['shed_per_s']:.0f}",
             str(r.get("request_errors", "-")),
             f"{r.get('catch_up_s', 0):.1f}",
             "-" if r.get("serve_cpu_s") is None else f"{r['serve_cpu_s']:.1f}"]
            for r in results]
    print(md_table(["step", "published", "publisher/s", "applied by serve", "ingest lost",
                    "gaps", "items/client (median)", "told lost/client (median)",
                    "client loss (sum)", "req p50 ms", "req p95 ms", "answered",
                    "sent/s", "answered/s", "shed (503)/s", "errors",
                    "clients caught up after s", "serve CPU s (publishing)"],
                   rows))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
