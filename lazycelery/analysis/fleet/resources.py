"""Worker resources over time: CPU and memory from ``inspect stats`` rusage samples, and the
host load average the heartbeats carry.

rusage is what celery's ``stats`` reply holds: ``getrusage(RUSAGE_SELF)`` of the worker's main
process (utime / stime in CPU seconds since it started, maxrss in KiB on Linux). A prefork
pool's child processes, where the tasks run, are not in it, and celery sends no figure of
theirs: only their pids (``pool.processes``), whose number each sample keeps so the figures can
say what they leave out. Every surface labels them "main process only"; the load average (the
host's) does include the children. The CPU share between
two samples is ``(utime + stime difference) / elapsed``: 100 % is one core busy.

Each sample costs one ``inspect stats`` addressed to that worker only
(``destination=[it]``): one message published on the control exchange and one reply, two
broker round trips for the client; ``Sampler`` never asks one worker more often than its
``interval`` (docs/fleet.md has the measured cost)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from lazycelery.text import real

__all__ = ["MIN_INTERVAL", "SCOPE", "ResourcePoint", "RusageSample", "Sampler", "cpu_series",
           "rusage_sample"]

#: what the figures cover, said beside them on every surface (and in the JSON)
SCOPE: Final = "main process only"
#: the shortest interval a sampler accepts (seconds)
MIN_INTERVAL: Final = 1.0


@dataclass(frozen=True)
class RusageSample:
    worker: str
    time: float
    utime: float
    stime: float
    maxrss_kib: int | None
    #: the pool's processes the figures leave out (``pool.processes`` of the reply)
    pool_processes: int | None = None


def rusage_sample(worker: str, stats: object, when: float) -> RusageSample | None:
    """The sample in one ``inspect stats`` reply; None when it holds no usable rusage."""
    rusage = stats.get("rusage") if isinstance(stats, Mapping) else None
    if not isinstance(rusage, Mapping):
        return None
    utime, stime = real(rusage.get("utime")), real(rusage.get("stime"))
    if utime is None or stime is None:
        return None
    rss = rusage.get("maxrss")
    pool = stats.get("pool") if isinstance(stats, Mapping) else None
    pids = pool.get("processes") if isinstance(pool, Mapping) else None
    return RusageSample(worker, when, utime, stime,
                        rss if isinstance(rss, int) and not isinstance(rss, bool) else None,
                        len(pids) if isinstance(pids, list) else None)


@dataclass(frozen=True)
class ResourcePoint:
    """CPU share since the previous sample (None for the first, or after a restart: the
    counters went down), and the max RSS: of the worker's main process only."""

    time: float
    cpu_percent: float | None
    maxrss_kib: int | None
    #: the pool's processes not counted in the figures (None: the reply did not say)
    pool_processes: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"time": self.time, "cpu_percent": self.cpu_percent,
                "maxrss_kib": self.maxrss_kib, "pool_processes_not_counted": self.pool_processes}


def cpu_series(samples: Sequence[RusageSample]) -> list[ResourcePoint]:
    """One point per sample of one worker, oldest first."""
    ordered = sorted(samples, key=lambda s: s.time)
    out: list[ResourcePoint] = []
    previous: RusageSample | None = None
    for s in ordered:
        cpu = None
        if previous is not None and s.time > previous.time:
            used = (s.utime + s.stime) - (previous.utime + previous.stime)
            cpu = 100.0 * used / (s.time - previous.time) if used >= 0 else None
        out.append(ResourcePoint(s.time, cpu, s.maxrss_kib, s.pool_processes))
        previous = s
    return out


class Sampler:
    """Asks ``fetch(worker)`` (an ``inspect stats`` reply, or None) for each worker, no more
    often than ``interval`` seconds per worker; keeps the samples (at most ``keep`` each)."""

    def __init__(self, fetch: Callable[[str], object], interval: float, keep: int = 720,
                 clock: Callable[[], float] = time.time) -> None:
        if not interval >= MIN_INTERVAL:
            raise ValueError(f"sampling interval must be at least {MIN_INTERVAL:g} s")
        self.fetch, self.interval, self.keep, self.clock = fetch, interval, keep, clock
        self.samples: dict[str, list[RusageSample]] = {}
        self.asked = 0
        self.unanswered = 0
        self._last: dict[str, float] = {}

    def due(self, worker: str) -> bool:
        return self.clock() - self._last.get(worker, float("-inf")) >= self.interval

    def sample(self, worker: str) -> RusageSample | None:
        """One sample of ``worker`` when it is due (else None, nothing asked)."""
        if not self.due(worker):
            return None
        self._last[worker] = self.clock()
        self.asked += 1
        reply = self.fetch(worker)
        found = rusage_sample(worker, reply, self.clock())
        if found is None:
            self.unanswered += 1
            return None
        kept = self.samples.setdefault(worker, [])
        kept.append(found)
        del kept[:-self.keep]
        return found
