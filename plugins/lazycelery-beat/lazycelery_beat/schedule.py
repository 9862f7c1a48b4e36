"""Headless beat schedule reading: entries from the app, a beat shelve file or redbeat keys, in words.

Nothing here imports prompt_toolkit: the pane (``view.py``) only formats what this module returns.
Every reader returns ``BeatEntry`` records with absolute epoch times, so the pane can show a
countdown without asking the source again.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shelve
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from celery import Celery

__all__ = [
    "DEFAULT_KEY_PREFIX",
    "BeatEntry",
    "BeatSchedule",
    "BeatSource",
    "describe_crontab",
    "describe_every",
    "describe_schedule",
    "entries_from_app",
    "entries_from_redbeat",
    "entries_from_shelve",
    "entry_filter",
    "load",
    "resolve_source",
    "source_mtime",
]

DEFAULT_KEY_PREFIX: Final = "redbeat:"
SOURCE_ENV: Final = "LAZYCELERY_BEAT_SOURCE"
SCHEDULE_ENV: Final = "LAZYCELERY_BEAT_SCHEDULE"
REDIS_ENV: Final = "LAZYCELERY_BEAT_REDIS_URL"
PREFIX_ENV: Final = "LAZYCELERY_BEAT_KEY_PREFIX"
#: suffixes the dbm backends add to a shelve's name (celery's PersistentScheduler.known_suffixes)
SHELVE_SUFFIXES: Final = ("", ".db", ".dat", ".dir", ".bak")
#: at most this many redbeat entries are read
MAX_ENTRIES: Final = 5000

_DAYS: Final = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
_MONDAY_FIRST: Final = (1, 2, 3, 4, 5, 6, 0)
_MONTHS: Final = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                  "Nov", "Dec")
_RRULE_UNITS: Final = ("year", "month", "week", "day", "h", "min", "s")


@dataclass(frozen=True)
class BeatEntry:
    """One schedule entry as the pane shows it (times are epoch seconds)."""

    name: str
    task: str
    schedule: str
    next_run_at: float | None
    last_run_at: float | None = None
    total_run_count: int | None = None
    args: str = "()"
    kwargs: str = "{}"
    queue: str | None = None
    enabled: bool = True
    #: the next run is an estimate (no stored beat state: from when lazycelery first saw it)
    estimated: bool = False


@dataclass(frozen=True)
class BeatSource:
    """Where entries are read from. ``url`` (redbeat) may hold a password: never show it."""

    kind: str
    location: str
    url: str = field(default="", repr=False)
    key_prefix: str = DEFAULT_KEY_PREFIX

    def describe(self) -> str:
        return f"{self.kind} {self.location}"


@dataclass(frozen=True)
class BeatSchedule:
    """One read of a source: its entries, soonest first, or why it could not be read."""

    source: BeatSource | None
    entries: tuple[BeatEntry, ...] = ()
    error: str | None = None
    read_at: float = field(default_factory=time.time)


# --------------------------------------------------------------------------- words


def describe_every(seconds: float) -> str:
    """``30`` -> ``every 30 s``; ``300`` -> ``every 5 min``; ``7200`` -> ``every 2 h``."""
    if seconds <= 0:
        return "continuously"
    whole = int(seconds)
    if whole == seconds and whole >= 60:
        for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
            if whole % size == 0:
                return f"every {whole // size} {unit}"
    return f"every {seconds:g} s"


def _step(values: set[int], start: int, stop: int) -> int | None:
    """``n`` when ``values`` is ``range(start, stop, n)`` with n > 1."""
    ordered = sorted(values)
    if len(ordered) < 2 or ordered[0] != start:
        return None
    step = ordered[1] - ordered[0]
    return step if step > 1 and ordered == list(range(start, stop, step)) else None


def _day_list(days: set[int]) -> str:
    order = [d for d in _MONDAY_FIRST if d in days]
    positions = [_MONDAY_FIRST.index(d) for d in order]
    if len(order) > 2 and positions == list(range(positions[0], positions[0] + len(order))):
        return f"{_DAYS[order[0]]}–{_DAYS[order[-1]]}"
    return ", ".join(_DAYS[d] for d in order)


def _number_list(values: set[int]) -> str:
    return ", ".join(str(v) for v in sorted(values))


def _tz_label(tz: tzinfo | None) -> str:
    if tz is None:
        return "UTC"
    key = getattr(tz, "key", None) or getattr(tz, "zone", None)
    return str(key) if key else str(tz)


def describe_crontab(minute: set[int], hour: set[int], day_of_week: set[int],
                     day_of_month: set[int], month_of_year: set[int], tz: str = "UTC",
                     fallback: str = "") -> str:
    """Words for a crontab's expanded sets: ``at 03:00 UTC daily``, ``every 15 min``,
    ``at 07:30 UTC on Mon–Fri``; ``fallback`` (the cron line) when words would not be clearer."""
    all_minutes, all_hours = set(range(60)), set(range(24))
    days: list[str] = []
    if day_of_week != set(range(7)):
        days.append(f"on {_day_list(day_of_week)}")
    if day_of_month != set(range(1, 32)):
        plural = "s" if len(day_of_month) > 1 else ""
        days.append(f"on day{plural} {_number_list(day_of_month)} of the month")
    if month_of_year != set(range(1, 13)):
        days.append("in " + ", ".join(_MONTHS[m] for m in sorted(month_of_year)))
    when = " and ".join(days[:2]) + (f" {days[2]}" if len(days) > 2 else "")
    minutes = sorted(minute)
    if hour == all_hours:
        if minute == all_minutes:
            time_part = "every minute"
        elif (step := _step(minute, 0, 60)) is not None:
            time_part = f"every {step} min"
        elif len(minutes) <= 4:
            time_part = "hourly at " + ", ".join(f":{m:02d}" for m in minutes)
        else:
            return fallback or f"at minutes {_number_list(minute)} of every hour"
        return f"{time_part} {when}".strip()
    if len(minutes) == 1 and (step := _step(hour, 0, 24)) is not None:
        return f"every {step} h at :{minutes[0]:02d} {tz} {when}".strip()
    if len(hour) * len(minutes) <= 4:
        times = ", ".join(f"{h:02d}:{m:02d}" for h in sorted(hour) for m in minutes)
        return f"at {times} {tz} {when or 'daily'}"
    return fallback or f"hours {_number_list(hour)}, minutes {_number_list(minute)} {tz}"


def describe_schedule(schedule: Any, tz: tzinfo | None = None) -> str:
    """A celery schedule object in words (interval, crontab, solar; else its repr)."""
    run_every = getattr(schedule, "run_every", None)
    if isinstance(run_every, timedelta):
        return describe_every(run_every.total_seconds())
    if all(hasattr(schedule, a) for a in ("minute", "hour", "day_of_week", "day_of_month",
                                          "month_of_year")):
        label = _tz_label(tz if tz is not None else _schedule_tz(schedule))
        fallback = "cron " + " ".join(str(getattr(schedule, f"_orig_{a}", "*")) for a in (
            "minute", "hour", "day_of_month", "month_of_year", "day_of_week"))
        return describe_crontab(set(schedule.minute), set(schedule.hour),
                                set(schedule.day_of_week), set(schedule.day_of_month),
                                set(schedule.month_of_year), label, fallback)
    event = getattr(schedule, "event", None)
    if isinstance(event, str):
        where = f" ({getattr(schedule, 'lat', '?')}, {getattr(schedule, 'lon', '?')})"
        return f"at {event.replace('_', ' ')}{where}"
    if isinstance(schedule, _RRule):
        return schedule.describe()
    return repr(schedule)


def _schedule_tz(schedule: Any) -> tzinfo | None:
    try:
        tz = schedule.tz
    except Exception:
        return None
    return tz if isinstance(tz, tzinfo) else None


def _epoch(value: object) -> float | None:
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)  # celery stores naive times as UTC
    return value.timestamp()


def _next_run(schedule: Any, last_run_at: datetime | None) -> float | None:
    """When ``schedule`` runs next after ``last_run_at`` (celery's own arithmetic)."""
    if last_run_at is None:
        return None
    try:
        remaining = schedule.remaining_estimate(last_run_at)
    except NotImplementedError:
        due, seconds = schedule.is_due(last_run_at)
        wait = 0.0 if due else float(seconds)
        return time.time() + wait
    if not isinstance(remaining, timedelta):
        return None
    return time.time() + remaining.total_seconds()


def entry_filter(entry: BeatEntry) -> str:
    """The task-list filter for the tasks this schedule entry sent: its task name, args and
    kwargs (beat marks its messages only with a ``celery_beat_task`` header, which no event
    carries, so two entries with the same task and arguments cannot be told apart).

    Beat sends args as a list, other callers often as a tuple: both are matched. Arguments
    shown cut (``…``) are left out of the filter."""
    terms = ["name:re:" + _quoted("^" + re.escape(entry.task) + "$")]
    args = entry.args
    if args.startswith("(") and args.endswith(")"):
        inner = args[1:-1].removesuffix(",")
        terms.append("args:re:" + _quoted(r"^(?:\(|\[)" + re.escape(inner) + r",?(?:\)|\])$"))
    if entry.kwargs.startswith("{") and entry.kwargs.endswith("}"):
        terms.append("kwargs:re:" + _quoted("^" + re.escape(entry.kwargs) + "$"))
    return " ".join(terms)


def _quoted(value: str) -> str:
    """A filter-language value in double quotes (a backslash escapes the next character)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _short_repr(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _sorted(entries: Sequence[BeatEntry]) -> tuple[BeatEntry, ...]:
    return tuple(sorted(entries, key=lambda e: (e.next_run_at is None, e.next_run_at or 0,
                                                e.name)))


# --------------------------------------------------------------------------- the app


def entries_from_app(app: Celery, assumed: MutableMapping[str, datetime] | None = None
                     ) -> list[BeatEntry]:
    """The app's ``beat_schedule``, built the way beat builds it (``ScheduleEntry``).

    Without beat's stored state the last run is unknown: like beat at start-up, it is taken as
    the moment an entry is first seen (kept in ``assumed`` across calls, and moved forward when
    the estimated run has passed), so the next run is an estimate.
    """
    from celery.beat import ScheduleEntry

    assumed = {} if assumed is None else assumed
    now = app.now()
    out: list[BeatEntry] = []
    for name, spec in dict(app.conf.beat_schedule or {}).items():
        entry = ScheduleEntry(**dict(spec, name=name, app=app))
        last = assumed.setdefault(name, now)
        next_at = _next_run(entry.schedule, last)
        if next_at is not None and next_at <= now.timestamp():
            assumed[name] = now
            next_at = _next_run(entry.schedule, now)
        out.append(BeatEntry(
            name=name, task=str(entry.task), schedule=describe_schedule(entry.schedule),
            next_run_at=next_at, args=_short_repr(tuple(entry.args or ())),
            kwargs=_short_repr(dict(entry.kwargs or {})),
            queue=(entry.options or {}).get("queue"), estimated=True,
        ))
    return out


# --------------------------------------------------------------------------- shelve


def _shelve_base(path: Path) -> Path:
    """The name to open: ``celerybeat-schedule`` also when given ``celerybeat-schedule.db``."""
    if path.suffix in SHELVE_SUFFIXES[1:] and not path.with_suffix("").exists() \
            and any(Path(f"{path.with_suffix('')}{s}").exists() for s in SHELVE_SUFFIXES[1:]):
        return path.with_suffix("")
    return path


@contextlib.contextmanager
def _open_shelve(path: Path) -> Iterator[shelve.Shelf[Any]]:
    """Open a beat shelve read-only; if beat holds a lock on it, read a copy instead."""
    base = _shelve_base(path)
    files = [Path(f"{base}{s}") for s in SHELVE_SUFFIXES if Path(f"{base}{s}").exists()]
    if not files:
        raise FileNotFoundError(f"no beat schedule file at {path}")
    try:
        db = shelve.open(str(base), flag="r")  # noqa: SIM115 (closed below, or yielded)
    except Exception:
        with tempfile.TemporaryDirectory(prefix="lazycelery-beat-") as tmp:
            for f in files:
                shutil.copy2(f, Path(tmp) / f.name)
            with shelve.open(str(Path(tmp) / base.name), flag="r") as copy:
                yield copy
        return
    with db:
        yield db


def entries_from_shelve(path: str | os.PathLike[str], app: Celery | None = None
                        ) -> list[BeatEntry]:
    """Entries from the file ``celery beat`` keeps (``-s``, ``beat_schedule_filename``): real
    last-run times and run counts. It is a pickle: read only files your own beat wrote."""
    with _open_shelve(Path(path)) as db:
        entries: Mapping[str, Any] = dict(db.get("entries") or {})
    out: list[BeatEntry] = []
    for name, entry in entries.items():
        schedule = entry.schedule
        if app is not None:
            with contextlib.suppress(AttributeError):
                schedule.app = app  # unpickled unbound: use the app's timezone
        last = entry.last_run_at
        runs = int(entry.total_run_count or 0)
        out.append(BeatEntry(
            name=str(name), task=str(entry.task), schedule=describe_schedule(schedule),
            next_run_at=_next_run(schedule, last),
            # before the first run beat stores its start time there, not a run
            last_run_at=_epoch(last) if runs else None, total_run_count=runs,
            args=_short_repr(tuple(entry.args or ())), kwargs=_short_repr(dict(entry.kwargs or {})),
            queue=(entry.options or {}).get("queue"),
        ))
    return out


# --------------------------------------------------------------------------- redbeat


@dataclass(frozen=True)
class _RRule:
    """A redbeat rrule schedule, described only (redbeat is not a dependency)."""

    freq: int
    interval: int

    def describe(self) -> str:
        unit = _RRULE_UNITS[self.freq] if 0 <= self.freq < len(_RRULE_UNITS) else "?"
        return f"every {self.interval} {unit} (rrule)"


def _redbeat_tz(zone: Any) -> tzinfo:
    if isinstance(zone, (int, float)):  # redbeat writes fixed offsets in seconds
        return timezone(timedelta(seconds=zone))
    if not zone or zone == "UTC":
        return timezone.utc
    from zoneinfo import ZoneInfo

    return ZoneInfo(str(zone))


def _redbeat_decoder(app: Celery | None) -> Any:
    from celery.schedules import crontab, schedule

    def hook(d: dict[str, Any]) -> Any:
        kind = d.get("__type__")
        if kind == "datetime":
            fields = {k: d.get(k, 0) for k in ("year", "month", "day", "hour", "minute",
                                                "second", "microsecond")}
            return datetime(tzinfo=_redbeat_tz(d.get("timezone", "UTC")), **fields)
        if kind == "interval":
            return schedule(run_every=float(d["every"]), relative=bool(d.get("relative")),
                            app=app)
        if kind == "crontab":
            return crontab(minute=d.get("minute", "*"), hour=d.get("hour", "*"),
                           day_of_week=d.get("day_of_week", "*"),
                           day_of_month=d.get("day_of_month", "*"),
                           month_of_year=d.get("month_of_year", "*"), app=app)
        if kind == "rrule":
            return _RRule(int(d.get("freq", -1)), int(d.get("interval") or 1))
        return d

    return hook


def entries_from_redbeat(client: Any, app: Celery | None = None,
                         key_prefix: str = DEFAULT_KEY_PREFIX) -> list[BeatEntry]:
    """Entries celery-redbeat keeps in Redis: the ``<prefix>:schedule`` ZSET of entry keys scored
    by their next run (UTC epoch; -1: never), and each key's ``definition`` / ``meta`` JSON."""
    hook = _redbeat_decoder(app)
    scored = client.zrange(f"{key_prefix}:schedule", 0, MAX_ENTRIES - 1, withscores=True)
    with client.pipeline(transaction=False) as pipe:
        for key, _score in scored:
            pipe.hmget(key, "definition", "meta")
        fields = pipe.execute()
    out: list[BeatEntry] = []
    for (key, score), (definition, meta) in zip(scored, fields, strict=True):
        key = key.decode() if isinstance(key, bytes) else str(key)
        name = key.removeprefix(key_prefix)
        if not definition:
            out.append(BeatEntry(name=name, task="?", schedule="(no definition)",
                                 next_run_at=None))
            continue
        spec = json.loads(definition, object_hook=hook)
        info = json.loads(meta, object_hook=hook) if meta else {}
        sched = spec.get("schedule")
        out.append(BeatEntry(
            name=str(spec.get("name") or name), task=str(spec.get("task") or "?"),
            schedule=describe_schedule(sched) if sched is not None else "?",
            next_run_at=float(score) if score is not None and score >= 0 else None,
            last_run_at=_epoch(info.get("last_run_at")),
            total_run_count=info.get("total_run_count"),
            args=_short_repr(tuple(spec.get("args") or ())),
            kwargs=_short_repr(dict(spec.get("kwargs") or {})),
            queue=(spec.get("options") or {}).get("queue"),
            enabled=bool(spec.get("enabled", True)),
        ))
    return out


# --------------------------------------------------------------------------- choosing a source


def _conf(app: Celery | None, name: str) -> Any:
    if app is None:
        return None
    try:
        return app.conf.get(name)
    except Exception:
        return None


def _mask(url: str) -> str:
    from kombu.utils.url import maybe_sanitize_url

    return str(maybe_sanitize_url(url))


def _redbeat_source(url: str, app: Celery | None, environ: Mapping[str, str]) -> BeatSource:
    prefix = environ.get(PREFIX_ENV) or _conf(app, "redbeat_key_prefix") or DEFAULT_KEY_PREFIX
    return BeatSource("redbeat", _mask(url), url=url, key_prefix=str(prefix))


def _redis_url(app: Celery | None, environ: Mapping[str, str]) -> str | None:
    url = environ.get(REDIS_ENV) or _conf(app, "redbeat_redis_url")
    if url:
        return str(url)
    broker = _conf(app, "broker_url")
    return str(broker) if isinstance(broker, str) and broker.startswith(("redis://", "rediss://",
                                                                           "unix://")) else None


def _has_redbeat_keys(url: str, prefix: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return bool(client.exists(f"{prefix}:schedule"))
    except redis.RedisError:
        return False
    finally:
        client.close()


def resolve_source(app: Celery | None, app_spec: str | None = None,
                   environ: Mapping[str, str] | None = None) -> BeatSource | str:
    """The source to read, or a sentence saying how to configure one.

    ``LAZYCELERY_BEAT_SOURCE`` = ``auto`` (default) | ``app`` | ``shelve`` | ``redbeat``. In auto:
    a shelve named by ``LAZYCELERY_BEAT_SCHEDULE``; redbeat when configured
    (``LAZYCELERY_BEAT_REDIS_URL``, the app's ``redbeat_redis_url`` or a redbeat
    ``beat_scheduler``); the app's ``beat_schedule_filename`` when that file exists here; redbeat
    keys found on a Redis broker; the app's ``beat_schedule`` (with ``-A``).
    """
    env = os.environ if environ is None else environ
    wanted = (env.get(SOURCE_ENV) or "auto").strip().lower()
    path = env.get(SCHEDULE_ENV)
    redis_url = _redis_url(app, env)
    has_app_schedule = bool(app_spec) and bool(_conf(app, "beat_schedule"))
    if wanted == "shelve" or (wanted == "auto" and path):
        target = path or str(_conf(app, "beat_schedule_filename") or "celerybeat-schedule")
        return BeatSource("shelve", target)
    if wanted == "redbeat":
        if not redis_url:
            return f"No Redis for redbeat: set {REDIS_ENV} or the app's redbeat_redis_url."
        return _redbeat_source(redis_url, app, env)
    if wanted == "app":
        if not app_spec:
            return "The app source needs lazycelery -A your.app."
        return BeatSource("app", app_spec)
    if wanted != "auto":
        return f"{SOURCE_ENV}={wanted!r}: use auto, app, shelve or redbeat."
    scheduler = str(_conf(app, "beat_scheduler") or "")
    if redis_url and (env.get(REDIS_ENV) or _conf(app, "redbeat_redis_url")
                      or "redbeat" in scheduler.lower()):
        return _redbeat_source(redis_url, app, env)
    filename = _conf(app, "beat_schedule_filename")
    if filename and any(Path(f"{filename}{s}").exists() for s in SHELVE_SUFFIXES):
        return BeatSource("shelve", str(filename))
    if redis_url:
        source = _redbeat_source(redis_url, app, env)
        if _has_redbeat_keys(redis_url, source.key_prefix):
            return source
    if has_app_schedule and app_spec:
        return BeatSource("app", app_spec)
    return (f"No beat schedule found. Start lazycelery with -A your.app to read its "
            f"beat_schedule, set {SCHEDULE_ENV}=/path/celerybeat-schedule to read the file beat "
            f"keeps, or {REDIS_ENV}=redis://… to read celery-redbeat's keys.")


def source_mtime(source: BeatSource) -> float | None:
    """When the source last changed, if it can tell: a shelve's newest file (beat rewrites it
    when it syncs); None for the app and redbeat (read again on the interval)."""
    if source.kind != "shelve":
        return None
    base = _shelve_base(Path(source.location))
    stamps = []
    for suffix in SHELVE_SUFFIXES:
        with contextlib.suppress(OSError):
            stamps.append(Path(f"{base}{suffix}").stat().st_mtime)
    return max(stamps) if stamps else None


def load(source: BeatSource, app: Celery | None,
         assumed: MutableMapping[str, datetime] | None = None) -> BeatSchedule:
    """Read ``source`` once; a failure is returned as ``error``, never raised."""
    try:
        if source.kind == "shelve":
            entries = entries_from_shelve(source.location, app)
        elif source.kind == "redbeat":
            import redis

            client = redis.Redis.from_url(source.url, socket_timeout=3, socket_connect_timeout=3)
            try:
                entries = entries_from_redbeat(client, app, source.key_prefix)
            finally:
                client.close()
        elif app is not None:
            entries = entries_from_app(app, assumed)
        else:
            raise LookupError("no app to read beat_schedule from")
    except Exception as exc:
        return BeatSchedule(source, error=f"{type(exc).__name__}: {exc}")
    return BeatSchedule(source, _sorted(entries))
