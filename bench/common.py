"""Shared helpers for the benchmarks: recorded streams, uuid remapping, brokers, stats and tables."""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RECORDED = REPO / "tests" / "data" / "recorded"
RESULTS = BENCH_DIR / "results"

# Fields the dispatcher sets itself (Event() / _prepare_event); everything else is the payload.
DISPATCHER_FIELDS = frozenset({"type", "hostname", "utcoffset", "pid", "clock", "timestamp",
                               "local_received"})
UUID_FIELDS = ("uuid", "root_id", "parent_id")

Event = dict[str, Any]


# --------------------------------------------------------------------------- statistics


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def fmt_int(value: float | None) -> str:
    if value is None or value != value:  # NaN
        return "-"
    return f"{value:,.0f}"


def fmt_float(value: float | None, digits: int = 1) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:,.{digits}f}"


def fmt_ratio(value: float | None) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:.1f}x"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def log(message: str) -> None:
    """Progress on stderr, so stdout stays the markdown report."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- recorded streams


def read_jsonl_gz(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def recorded_events(broker: str = "redis") -> list[Event]:
    """Decoded events of a recording, as the Receiver handed them over."""
    return read_jsonl_gz(RECORDED / broker / "events.jsonl.gz")


def recorded_redis_raw() -> list[dict[str, Any]]:
    """Redis recording: ``{"t", "channel", "data": kombu envelope JSON}`` per message."""
    return read_jsonl_gz(RECORDED / "redis" / "raw.jsonl.gz")


class UuidMap:
    """Maps recorded task ids to fresh ones; a new instance per replayed copy."""

    def __init__(self) -> None:
        self._map: dict[str, str] = {}

    def __call__(self, old: str | None) -> str | None:
        if not old:
            return old
        new = self._map.get(old)
        if new is None:
            new = self._map[old] = str(uuid.uuid4())
        return new


def remap_event(event: Event, fresh: UuidMap) -> Event:
    out = dict(event)
    for key in UUID_FIELDS:
        if key in out:
            out[key] = fresh(out[key])
    return out


def _kombu_dumps(obj: Any) -> str:
    # kombu.utils.json.dumps == json.dumps with the default separators (", ", ": ").
    return json.dumps(obj)


def redis_stream_copies(copies: int) -> list[bytes]:
    """The recorded Redis messages (kombu envelopes, as PUB/SUB delivers them) ``copies``
    times over, each copy with fresh task ids and delivery tags: re-encoded body and envelope,
    same shape and sizes as the original."""
    raw = recorded_redis_raw()
    parsed = []
    for rec in raw:
        env = json.loads(rec["data"])
        body = json.loads(base64.b64decode(env["body"]))
        parsed.append((env, body))
    out: list[bytes] = []
    for _ in range(copies):
        fresh = UuidMap()
        for env, body in parsed:
            if isinstance(body, list):
                new_body: Any = [remap_event(ev, fresh) for ev in body]
            else:
                new_body = remap_event(body, fresh)
            new_env = dict(env)
            new_env["body"] = base64.b64encode(_kombu_dumps(new_body).encode()).decode()
            props = dict(env["properties"])
            props["delivery_tag"] = str(uuid.uuid4())
            new_env["properties"] = props
            out.append(_kombu_dumps(new_env).encode())
    return out


def count_events_in_envelopes(messages: Sequence[bytes]) -> int:
    n = 0
    for data in messages:
        body = json.loads(base64.b64decode(json.loads(data)["body"]))
        n += len(body) if isinstance(body, list) else 1
    return n


# --------------------------------------------------------------------------- publisher plan


class Message:
    """One broker message to publish: a single event (``routing key = type``) or a worker's
    ``task.multi`` batch. Events hold payload fields only (the dispatcher adds the rest)."""

    __slots__ = ("events", "multi")

    def __init__(self, multi: bool, events: list[tuple[str, dict[str, Any]]]) -> None:
        self.multi = multi
        self.events = events


def publish_plan() -> list[Message]:
    """The recorded Redis stream's task events with their batching (task-sent single, worker
    task events in ``task.multi`` lists of 1-4), as (type, payload fields) pairs; worker-*
    events are left out (heartbeats are timers, not load)."""
    plan: list[Message] = []
    for rec in recorded_redis_raw():
        env = json.loads(rec["data"])
        body = json.loads(base64.b64decode(env["body"]))
        evs = body if isinstance(body, list) else [body]
        items = [(ev["type"], {k: v for k, v in ev.items() if k not in DISPATCHER_FIELDS})
                 for ev in evs if ev["type"].startswith("task-")]
        if items:
            plan.append(Message(isinstance(body, list), items))
    return plan


def lifecycle_templates() -> list[list[Event]]:
    """Per recorded task that went sent -> received -> started -> succeeded: those 4 events."""
    by_uuid: dict[str, dict[str, Event]] = {}
    for ev in recorded_events("redis"):
        if ev["type"].startswith("task-") and ev.get("uuid"):
            by_uuid.setdefault(ev["uuid"], {}).setdefault(ev["type"], ev)
    order = ("task-sent", "task-received", "task-started", "task-succeeded")
    return [[evs[t] for t in order] for evs in by_uuid.values() if all(t in evs for t in order)]


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time of a process (all threads) from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def loadavg() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return one, five, fifteen


class RedisServer:
    """A private ``redis-server`` on a free port (no persistence), for end-to-end runs."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server not found on PATH")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not listen on {self.port}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def config_set(self, key: str, value: str) -> None:
        import redis

        redis.Redis(port=self.port).config_set(key, value)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


class RabbitVhost:
    """A private RabbitMQ vhost (guest has full rights on it), deleted afterwards."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5672) -> None:
        self.name = f"lazycelery-bench-{os.getpid()}"
        self.host, self.port = host, port

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{self.host}:{self.port}/{self.name}"

    @staticmethod
    def _ctl(*args: str) -> None:
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)

    def __enter__(self) -> RabbitVhost:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._ctl("delete_vhost", self.name)
        self._ctl("add_vhost", self.name)
        self._ctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._ctl("delete_vhost", self.name)


def rabbit_available(host: str = "127.0.0.1", port: int = 5672) -> bool:
    if shutil.which("rabbitmqctl") is None:
        return False
    try:
        with socket.create_connection((host, port), 1):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------- environment


def environment() -> dict[str, Any]:
    import celery
    import kombu
    import msgspec
    import redis

    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "python": platform.python_version(),
        "celery": celery.__version__,
        "kombu": kombu.__version__,
        "redis_py": redis.__version__,
        "msgspec": msgspec.__version__,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "loadavg_at_start": loadavg(),
    }
    with contextlib.suppress(Exception):
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
        info["redis_server"] = out.split("v=")[1].split()[0]
    with contextlib.suppress(Exception):
        import hiredis

        info["hiredis"] = hiredis.__version__
    return info


def timed_repeats(fn: Callable[[], float], repeats: int) -> list[float]:
    return [fn() for _ in range(repeats)]


def chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i:i + size]
