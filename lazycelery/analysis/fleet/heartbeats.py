"""Worker heartbeats over time: each worker's beats (online / heartbeat / offline, with the
load average they carry), its heartbeat age through time, the beats it missed and its online /
lost / offline flips.

A worker sends a heartbeat every ``freq`` seconds (2 by default). The history store keeps at
most one heartbeat a minute per worker (``store.capture.WORKER_SAMPLE_INTERVAL``), so beats read
from it are judged against ``resolution`` = 60 s: the interval expected between two beats is
``max(freq, resolution)``. A gap between two beats longer than 1.5 intervals counts
``round(gap / interval) - 1`` missed beats; one longer than 2 intervals is a *lost* stretch
(lazycelery's worker status rule: no heartbeat within 2 x freq), starting 2 intervals after the
last beat and ending at the next one."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from lazycelery.text import real

__all__ = ["LIVE", "STORED", "Beat", "Flip", "WorkerBeats", "beat_of", "beats_from_events",
           "heartbeat_report"]

#: the resolution of live events (every beat is seen) and of the history store
LIVE: Final = 0.0
STORED: Final = 60.0
_KINDS: Final = {"worker-online": "online", "worker-heartbeat": "heartbeat",
                 "worker-offline": "offline"}


@dataclass(frozen=True)
class Beat:
    worker: str
    time: float
    kind: str  # online / heartbeat / offline
    freq: float
    loadavg: tuple[float, ...] | None
    active: int | None
    processed: int | None


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def beat_of(event: Mapping[str, Any]) -> Beat | None:
    """The beat a ``worker-*`` event stands for (its sender time); None for anything else."""
    kind = _KINDS.get(str(event.get("type")))
    host = event.get("hostname")
    when = real(event.get("timestamp"))
    if kind is None or not isinstance(host, str) or not host or when is None:
        return None
    freq = real(event.get("freq"))
    load = event.get("loadavg")
    values = [real(v) for v in load] if isinstance(load, (list, tuple)) else []
    loads = tuple(v for v in values if v is not None) or None
    return Beat(host, when, kind, freq if freq is not None and 0 < freq <= 86_400 else 2.0,
                loads, _count(event.get("active")), _count(event.get("processed")))


def beats_from_events(events: Iterable[Mapping[str, Any]]) -> list[Beat]:
    beats = [b for b in (beat_of(e) for e in events) if b is not None]
    beats.sort(key=lambda b: (b.worker, b.time))
    return beats


@dataclass(frozen=True)
class Flip:
    time: float
    status: str  # online / lost / offline


@dataclass(frozen=True)
class WorkerBeats:
    """One worker's heartbeats in the range: ``ages[i]`` is the oldest its last beat got during
    bucket ``i`` (None before its first beat); ``loads`` the (time, load1) of each beat."""

    worker: str
    beats: int
    interval: float
    missed: int
    max_age: float | None
    ages: tuple[float | None, ...]
    flips: tuple[Flip, ...]
    loads: tuple[tuple[float, float], ...]

    def as_json(self) -> dict[str, Any]:
        return {"worker": self.worker, "beats": self.beats, "interval": self.interval,
                "missed": self.missed, "max_age": self.max_age, "ages": list(self.ages),
                "flips": [{"time": f.time, "status": f.status} for f in self.flips],
                "load1": [list(x) for x in self.loads]}


def _ages(times: Sequence[float], columns: Sequence[float], bucket: float,
          until: float) -> tuple[float | None, ...]:
    """Per bucket, the largest ``t - last beat before t`` for t in the bucket (and < until)."""
    ages: list[float | None] = [None] * len(columns)
    if not columns:
        return ()
    first = columns[0]
    ends = [*times[1:], until]
    for start, end in zip(times, ends, strict=True):
        if end <= start:
            continue
        i = max(0, int((start - first) // bucket))
        while i < len(columns) and columns[i] < end:
            top = min(end, columns[i] + bucket)
            if top > start:
                age = top - start
                current = ages[i]
                ages[i] = age if current is None else max(current, age)
            i += 1
    return tuple(ages)


def _flips(beats: Sequence[Beat], interval: float) -> tuple[list[Flip], int]:
    flips: list[Flip] = []
    missed = 0
    status = ""

    def flip(time: float, to: str) -> None:
        nonlocal status
        if to != status:
            flips.append(Flip(time, to))
            status = to

    previous: Beat | None = None
    for beat in beats:
        if previous is not None and previous.kind != "offline":
            gap = beat.time - previous.time
            if gap > 1.5 * interval:
                missed += max(0, round(gap / interval) - 1)
            if gap > 2 * interval:
                flip(previous.time + 2 * interval, "lost")
        flip(beat.time, "offline" if beat.kind == "offline" else "online")
        previous = beat
    return flips, missed


def _last_flip(flips: list[Flip], last: Beat, interval: float, until: float) -> None:
    if last.kind != "offline" and until - last.time > 2 * interval and \
            (not flips or flips[-1].status != "lost"):
        flips.append(Flip(last.time + 2 * interval, "lost"))


def heartbeat_report(beats: Sequence[Beat], columns: Sequence[float], bucket: float,
                     until: float, resolution: float = LIVE) -> list[WorkerBeats]:
    """Per worker (by name): beats, missed beats, flips and ages per bucket up to ``until``."""
    per: dict[str, list[Beat]] = defaultdict(list)
    for beat in beats:
        per[beat.worker].append(beat)
    out = []
    for worker in sorted(per):
        mine = sorted(per[worker], key=lambda b: b.time)
        interval = max(mine[-1].freq, resolution)
        flips, missed = _flips(mine, interval)
        _last_flip(flips, mine[-1], interval, until)
        alive = [b.time for b in mine]
        ages = _ages(alive, columns, bucket, until if mine[-1].kind != "offline"
                     else mine[-1].time)
        known = [a for a in ages if a is not None]
        out.append(WorkerBeats(
            worker, len(mine), interval, missed, max(known) if known else None, ages,
            tuple(flips), tuple((b.time, b.loadavg[0]) for b in mine if b.loadavg)))
    return out
