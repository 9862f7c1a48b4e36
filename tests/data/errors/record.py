"""Record the real event stream of workers running `errorapp.py` into `events.jsonl.gz`.

    .venv/bin/python tests/data/errors/record.py

Starts its own redis-server, a listener that accepts and never answers (timeouts), and two
`celery worker -E` processes on one queue: w-good alone for 8 s of resizes and some
application errors, then w-bad (which cannot write its resize output) joins; then failures of
every kind (timeouts, refused connections, DB errors, a soft time limit, retries) with resizes
paced on both workers, then a burst of cache failures followed by the render failures that
depend on it. Only the worker-heartbeat events
are thinned (one per worker per 5 s). Local paths in tracebacks are rewritten to /srv/shop.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent.parent
OUT = HERE / "events.jsonl.gz"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="lc-err-"))
    port = free_port()
    redis_proc = subprocess.Popen(["redis-server", "--port", str(port), "--save", "",
                                   "--appendonly", "no", "--dir", str(tmp)],
                                  stdout=subprocess.DEVNULL)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(512)  # never accepted: connects succeed, reads time out
    broker = f"redis://127.0.0.1:{port}/0"
    env = dict(os.environ, LC_BROKER=broker, LC_QUEUE="shop", PYTHONPATH=str(HERE),
               ERR_CLOSED_PORT=str(free_port()), ERR_SILENT_PORT=str(silent.getsockname()[1]))
    workers: list[subprocess.Popen[bytes]] = []

    def start(name: str, bad: bool) -> None:
        child = dict(env, **({"ERR_BAD_WORKER": "1"} if bad else {}))
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "errorapp", "worker", "-n", f"{name}@shop-1",
             "-Q", "shop", "-c", "2", "-E", "--without-mingle", "--without-gossip", "-l",
             "warning"], cwd=HERE, env=child, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=(tmp / f"{name}.log").open("wb")))

    events: list[dict[str, Any]] = []
    lock = threading.Lock()
    try:
        sys.path.insert(0, str(HERE))
        os.environ.update(env)
        import errorapp
        from celery.events import EventReceiver

        app = errorapp.app
        stop = threading.Event()
        last_beat: dict[str, float] = {}

        def on_event(event: dict[str, Any]) -> None:
            if event["type"] == "worker-heartbeat":
                if event["timestamp"] - last_beat.get(event["hostname"], 0) < 5:
                    return
                last_beat[event["hostname"]] = event["timestamp"]
            with lock:
                events.append(event)

        def receive() -> None:
            with app.connection_for_read() as conn:
                recv = EventReceiver(conn, handlers={"*": on_event}, app=app)
                recv.should_stop = False
                threading.Thread(target=lambda: (stop.wait(), setattr(recv, "should_stop", True)),
                                 daemon=True).start()
                recv.capture(limit=None, timeout=None, wakeup=False)

        wait(lambda: _ping(port), 10, "redis")
        threading.Thread(target=receive, daemon=True).start()
        time.sleep(1)
        start("w-good", bad=False)
        wait(lambda: _online(events, lock, "w-good@shop-1"), 60, "w-good")

        def finished() -> int:
            with lock:
                return sum(e["type"] in ("task-failed", "task-succeeded") for e in events)

        sent = 0

        def send(name: str, *args: Any) -> None:
            nonlocal sent
            app.send_task(name, args=args, queue="shop")
            sent += 1

        for i in range(40):  # 8 s of resizes on the good worker alone
            send("shop.resize", 1000 + i)
            time.sleep(0.2)
        for i in range(6):
            send("shop.charge", 5000 + i * 37, 100.5 + i * 13.25)
            send("shop.lookup_user", f"user{i * 7}@example.com")
            send("shop.save_user", f"dup{i}@example.org")
            send("shop.daily_report", f"2026-12-0{i + 1}")
        send("shop.missing_task", 1)
        wait(lambda: finished() >= sent - 1, 120, "phase 1")
        start("w-bad", bad=True)
        wait(lambda: _online(events, lock, "w-bad@shop-1"), 60, "w-bad")
        for i in range(5):
            send("shop.cache_slow", f"session:{i:04x}")
            send("shop.fetch_profile", 300 + i)
            send("shop.fetch_orders", 400 + i)
            send("shop.fetch_refused", 500 + i)
            send("shop.pg_sync", i)
            send("shop.publish", 9000 + i)
            send("shop.slow_export", i)
            send("shop.sync_inventory", 77 + i)
            for j in range(8):  # resizes on both workers, paced over 8 s
                send("shop.resize", 2000 + i * 8 + j)
                time.sleep(0.2)
        wait(lambda: finished() >= sent - 1, 180, "phase 2")
        time.sleep(2)
        for i in range(30):
            send("shop.cache_get", f"profile:{i}")
        wait(lambda: finished() >= sent - 1, 120, "the cache burst")
        time.sleep(5)
        for i in range(20):
            send("shop.render_page", 600 + i)
        wait(lambda: finished() >= sent - 1, 120, "the renders")
        time.sleep(1)
        for proc in workers:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in workers:
            proc.wait(30)
        time.sleep(1)
        stop.set()
    finally:
        for proc in workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        redis_proc.terminate()
        redis_proc.wait(10)
    with lock:
        text = "\n".join(json.dumps(e, sort_keys=True) for e in events) + "\n"
    text = text.replace(str(ROOT), "/srv/shop").replace(sys.prefix, "/srv/shop/.venv")
    with gzip.open(OUT, "wt") as out:
        out.write(text)
    kinds: dict[str, int] = {}
    for e in events:
        kinds[e["type"]] = kinds.get(e["type"], 0) + 1
    print(f"{len(events)} events -> {OUT}: {kinds}")
    return 0


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _online(events: list[dict[str, Any]], lock: threading.Lock, hostname: str) -> bool:
    with lock:
        return any(e["type"] == "worker-online" and e["hostname"] == hostname for e in events)


if __name__ == "__main__":
    raise SystemExit(main())
