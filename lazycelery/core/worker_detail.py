"""One worker's detail: what to ask it (``inspect`` with ``destination=[that worker]``, never a
broadcast) and how its replies become a summary (pool, processes, prefetch, queues, registered
tasks, rusage, reserved / scheduled / revoked counts, active tasks with runtimes) and the
labelled rows the CLI (``lazycelery worker show``) and the dashboard's worker detail print.

Headless: no prompt_toolkit. The heartbeat facts (age, load average, sw_ver/sw_sys) are not in
any inspect reply; they come from the worker's events (``WorkerRecord``) when they are known."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from lazycelery.core.model import WorkerRecord
from lazycelery.errors import BrokerError
from lazycelery.text import age, duration, number, real, visible

__all__ = [
    "QUERIES",
    "RESOURCES_HEADING",
    "RUSAGE_SCOPE",
    "ActiveTask",
    "WorkerDetail",
    "WorkerNotAnswering",
    "detail_rows",
    "fetch_replies",
    "fetch_worker_detail",
    "summarize",
]

#: the inspect methods asked, one round trip each (a destination returns on the one reply)
QUERIES: Final = ("stats", "active_queues", "registered", "active", "reserved", "scheduled",
                  "revoked")
_MAX_ACTIVE_ROWS: Final = 50
#: celery's rusage is getrusage(RUSAGE_SELF) of the main process: the pool processes, where the
#: tasks run, are not in it and celery sends no figure of theirs (only their pids)
RUSAGE_SCOPE: Final = "main process only"
RESOURCES_HEADING: Final = f"Resources (inspect stats rusage: {RUSAGE_SCOPE}, not its pool)"
_EMPTY: Final = '""'


class WorkerNotAnswering(BrokerError):
    """The worker gave no ``inspect stats`` reply within the timeout."""


@dataclass(frozen=True)
class ActiveTask:
    id: str
    name: str
    runtime: float | None
    pid: int | None


@dataclass(frozen=True)
class WorkerDetail:
    """What one worker told about itself, summarized; ``None`` where it said nothing."""

    hostname: str
    fetched_at: float
    pool: str | None = None
    pool_size: int | None = None
    processes: tuple[int, ...] = ()
    prefetch_count: int | None = None
    pid: int | None = None
    uptime: float | None = None
    clock: int | None = None
    transport: str | None = None
    utime: float | None = None
    stime: float | None = None
    maxrss_kib: int | None = None
    totals: dict[str, int] = field(default_factory=dict)
    registered: tuple[str, ...] = ()
    queues: tuple[tuple[str, str, str], ...] = ()  # (name, exchange, routing key)
    active: tuple[ActiveTask, ...] = ()
    reserved: int | None = None
    scheduled: int | None = None
    revoked: int | None = None
    #: from heartbeats (events), when known
    heartbeat_age: float | None = None
    loadavg: tuple[float, ...] | None = None
    sw_ver: str | None = None
    sw_sys: str | None = None
    #: inspect methods that gave no reply in time
    missing: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``lazycelery worker show --json``)."""
        return {
            "hostname": self.hostname, "fetched_at": self.fetched_at, "pool": self.pool,
            "pool_size": self.pool_size, "processes": list(self.processes),
            "prefetch_count": self.prefetch_count, "pid": self.pid, "uptime": self.uptime,
            "clock": self.clock, "transport": self.transport,
            "rusage": {"utime": self.utime, "stime": self.stime, "maxrss_kib": self.maxrss_kib,
                       "scope": RUSAGE_SCOPE},
            "totals": dict(self.totals), "registered": list(self.registered),
            "queues": [{"name": q, "exchange": e, "routing_key": k} for q, e, k in self.queues],
            "active": [{"id": t.id, "name": t.name, "runtime": t.runtime, "pid": t.pid}
                       for t in self.active],
            "reserved": self.reserved, "scheduled": self.scheduled, "revoked": self.revoked,
            "heartbeat_age": self.heartbeat_age,
            "loadavg": list(self.loadavg) if self.loadavg is not None else None,
            "sw_ver": self.sw_ver, "sw_sys": self.sw_sys, "missing": list(self.missing),
        }


def fetch_replies(app: Any, hostname: str, timeout: float = 2.0) -> dict[str, Any]:
    """method -> that worker's reply (``None``: no reply in time). Each call names the worker
    (``destination=[hostname]``), so it returns as soon as the worker answered.

    Raises ``WorkerNotAnswering`` when ``stats`` gets no reply (the rest is not asked then),
    ``BrokerError`` when the broker cannot be reached."""
    inspect = app.control.inspect(destination=[hostname], timeout=timeout)
    replies: dict[str, Any] = {}
    for method in QUERIES:
        try:
            answer = getattr(inspect, method)()
        except Exception as exc:  # broker down, refused credentials
            raise BrokerError(f"inspect {method} {hostname}: "
                              f"{visible(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)}"
                              ) from None
        reply = answer.get(hostname) if isinstance(answer, Mapping) else None
        if method == "stats" and reply is None:
            raise WorkerNotAnswering(f"worker {hostname} did not answer inspect stats within "
                                     f"{timeout:g}s")
        replies[method] = reply
    return replies


def fetch_worker_detail(app: Any, hostname: str, timeout: float = 2.0,
                        record: WorkerRecord | None = None) -> WorkerDetail:
    """Ask ``hostname`` (only it) and summarize; ``record``: its events' facts, if known."""
    now = time.time()
    return summarize(hostname, fetch_replies(app, hostname, timeout), now=now, record=record)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str | None:
    return str(value) if value is not None else None


def _count(reply: object) -> int | None:
    return len(reply) if isinstance(reply, (list, tuple)) else None


def summarize(hostname: str, replies: Mapping[str, Any], *, now: float,
              record: WorkerRecord | None = None) -> WorkerDetail:
    """The detail from ``fetch_replies``' result (a recorded one in tests). Odd or missing
    values become ``None``; nothing here raises on a reply of an unexpected shape."""
    stats = _map(replies.get("stats"))
    pool, rusage = _map(stats.get("pool")), _map(stats.get("rusage"))
    broker, totals = _map(stats.get("broker")), _map(stats.get("total"))
    impl = pool.get("implementation")
    processes = pool.get("processes")
    clock = stats.get("clock")
    registered = replies.get("registered")
    return WorkerDetail(
        hostname=hostname, fetched_at=now,
        pool=str(impl).rpartition(".")[2] if impl is not None else None,
        pool_size=_int(pool.get("max-concurrency")),
        processes=tuple(p for p in processes if _int(p) is not None)
        if isinstance(processes, (list, tuple)) else (),
        prefetch_count=_int(stats.get("prefetch_count")), pid=_int(stats.get("pid")),
        uptime=real(stats.get("uptime")),
        clock=int(clock) if isinstance(clock, str) and clock.isdigit() else _int(clock),
        transport=str(broker["transport"]) if broker.get("transport") is not None else None,
        utime=real(rusage.get("utime")), stime=real(rusage.get("stime")),
        maxrss_kib=_int(rusage.get("maxrss")),
        totals={str(k): v for k, v in totals.items() if _int(v) is not None},
        registered=tuple(sorted(str(r) for r in registered))
        if isinstance(registered, (list, tuple)) else (),
        queues=_queues(replies.get("active_queues")),
        active=_active(replies.get("active"), now),
        reserved=_count(replies.get("reserved")), scheduled=_count(replies.get("scheduled")),
        revoked=_count(replies.get("revoked")),
        heartbeat_age=_heartbeat_age(record, now),
        loadavg=_loadavg(record), sw_ver=_text(record.sw_ver) if record is not None else None,
        sw_sys=_text(record.sw_sys) if record is not None else None,
        missing=tuple(m for m in QUERIES if replies.get(m) is None),
    )


def _queues(reply: object) -> tuple[tuple[str, str, str], ...]:
    out: list[tuple[str, str, str]] = []
    for queue in reply if isinstance(reply, (list, tuple)) else ():
        if not isinstance(queue, Mapping) or not isinstance(queue.get("name"), str):
            continue
        exchange = queue.get("exchange")
        ex_name = exchange.get("name") if isinstance(exchange, Mapping) else exchange
        out.append((queue["name"], str(ex_name or ""), str(queue.get("routing_key") or "")))
    return tuple(out)


def _active(reply: object, now: float) -> tuple[ActiveTask, ...]:
    out: list[ActiveTask] = []
    for task in reply if isinstance(reply, (list, tuple)) else ():
        if not isinstance(task, Mapping):
            continue
        start = real(task.get("time_start"))
        out.append(ActiveTask(id=str(task.get("id") or "?"), name=str(task.get("name") or "?"),
                              runtime=max(0.0, now - start) if start is not None else None,
                              pid=_int(task.get("worker_pid"))))
    return tuple(out)


def _heartbeat_age(record: WorkerRecord | None, now: float) -> float | None:
    beat = real(record.last_heartbeat) if record is not None else None
    return max(0.0, now - beat) if beat is not None else None


def _loadavg(record: WorkerRecord | None) -> tuple[float, ...] | None:
    load = record.loadavg if record is not None else None
    if not isinstance(load, (list, tuple)):
        return None
    values = [real(v) for v in load]
    return tuple(v for v in values if v is not None) or None


def _pid(value: int | None) -> str:
    return str(value) if value is not None else "–"


def _seconds(value: float | None) -> str:
    return f"{value:.2f}s" if value is not None else "–"


def _mib(kib: int | None) -> str:
    return f"{kib / 1024:.1f} MiB ({kib} KiB)" if kib is not None else "–"


def detail_rows(d: WorkerDetail) -> list[tuple[str, list[tuple[str, str]]]]:
    """(section, [(label, value)]) in display order: what ``worker show`` prints and the
    dashboard's worker detail draws."""
    missing = set(d.missing)

    def n(value: int | None, method: str) -> str:
        return "no reply" if method in missing else number(value)

    size = f"{d.pool or '?'}, {number(d.pool_size)} process(es)"
    pids = ", ".join(str(p) for p in d.processes) or "–"
    load = " ".join(f"{v:.2f}" for v in d.loadavg) if d.loadavg else "–"
    worker: list[tuple[str, str]] = [
        ("pool", size), ("processes", pids), ("prefetch", number(d.prefetch_count)),
        ("pid", _pid(d.pid)), ("uptime", duration(d.uptime) or "–"),
        ("transport", d.transport or "–"),
        ("heartbeat", f"{age(d.heartbeat_age)} ago" if d.heartbeat_age is not None
         else "– (no heartbeat event seen)"),
        ("load avg", load), ("software", " ".join(x for x in (d.sw_ver, d.sw_sys) if x) or "–"),
    ]
    resources = [("cpu user", _seconds(d.utime)), ("cpu system", _seconds(d.stime)),
                 ("max rss", _mib(d.maxrss_kib))]
    tasks = [("active", str(len(d.active)) if "active" not in missing else "no reply"),
             ("reserved", n(d.reserved, "reserved")), ("scheduled", n(d.scheduled, "scheduled")),
             ("revoked", n(d.revoked, "revoked"))]
    tasks += [(f"done {name}", number(count)) for name, count in sorted(d.totals.items())]
    active = [(t.name, f"{duration(t.runtime) or '–'}  pid {_pid(t.pid)}  {t.id}")
              for t in d.active[:_MAX_ACTIVE_ROWS]]
    if len(d.active) > _MAX_ACTIVE_ROWS:
        active.append(("…", f"{len(d.active) - _MAX_ACTIVE_ROWS} more"))
    queues = [(q, f"exchange {e or _EMPTY}  routing key {k or _EMPTY}") for q, e, k in d.queues]
    registered = [("", name) for name in d.registered]
    sections: list[tuple[str, Sequence[tuple[str, str]]]] = [
        ("Worker", worker), (RESOURCES_HEADING, resources), ("Tasks", tasks),
        ("Active tasks", active or [("", "none")]),
        ("Queues", queues or [("", "no reply" if "active_queues" in missing else "none")]),
        (f"Registered tasks ({len(d.registered)})",
         registered or [("", "no reply" if "registered" in missing else "none")]),
    ]
    return [(title, [(visible(k), visible(v)) for k, v in rows]) for title, rows in sections]
