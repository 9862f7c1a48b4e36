"""Cron expressions (``"0 8 * * 1-5"``) for scheduled reports: parsing with one clear line per
problem, and the next matching minute after a time, in UTC or in an IANA time zone.

Five fields (minute hour day-of-month month day-of-week) with ``*``, ``a-b``, ``*/n``,
``a-b/n``, lists, month and day names (``jan``, ``mon``), 7 as Sunday, and the ``@hourly``,
``@daily``, ``@weekly``, ``@monthly``, ``@yearly`` shorthands. As in Vixie cron, when both
day fields are restricted a day matching either one matches. croniter is not used: its
maintainer stopped maintaining it (2024), and this is all the reports need.

In a time zone (``Europe/Paris``) the fields are read on the local clock across DST changes:
a local time the spring change skips (02:30) runs when the clock reads it an hour on (03:30,
zoneinfo's reading of a missing time); a local time the autumn change repeats runs once, at
its first occurrence."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["CronError", "CronExpr", "parse_cron", "time_zone"]

_SHORTHANDS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
#: (name, lowest, highest, names for lowest.. on)
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
#: a cron line that matches no real date (``0 0 30 2 *``) is searched this far, then refused
_SEARCH_YEARS = 8


class CronError(ValueError):
    """A cron line that cannot be read; the message is one line naming the problem."""


@dataclass(frozen=True)
class CronExpr:
    """A parsed cron line: the set of values each field matches."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    #: whether the day fields were written as ``*`` (Vixie cron's either-day rule needs it)
    any_day: bool
    any_weekday: bool

    def matches(self, moment: datetime) -> bool:
        """Whether the minute of ``moment`` (an aware or UTC-naive datetime) matches."""
        return (moment.minute in self.minutes and moment.hour in self.hours
                and moment.month in self.months and self._day_matches(moment))

    def _day_matches(self, moment: datetime) -> bool:
        day = moment.day in self.days
        weekday = (moment.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return day and weekday
        return day or weekday

    def next_after(self, after: float, zone: tzinfo | None = None) -> float:
        """The first matching minute strictly after the unix time ``after``, the fields read
        on the clock of ``zone`` (UTC when None).

        Jumps a month, day or hour at a time when that field does not match, so even a
        yearly line costs a few hundred steps."""
        if zone is None:
            zone = timezone.utc
        # searched on the local wall clock (naive), each match turned back into a real time
        moment = datetime.fromtimestamp(after, zone).replace(second=0, microsecond=0,
                                                              tzinfo=None)
        moment += timedelta(minutes=1)
        limit = moment.replace(year=moment.year + _SEARCH_YEARS)
        while moment < limit:
            if moment.month not in self.months:
                year, month = divmod(moment.month, 12)
                moment = moment.replace(year=moment.year + year, month=month + 1, day=1,
                                        hour=0, minute=0)
            elif not self._day_matches(moment):
                moment = (moment + timedelta(days=1)).replace(hour=0, minute=0)
            elif moment.hour not in self.hours:
                moment = (moment + timedelta(hours=1)).replace(minute=0)
            elif moment.minute not in self.minutes:
                moment += timedelta(minutes=1)
            else:
                # fold=0: a repeated local minute is its first occurrence, a skipped one is
                # read with the offset before the change (an hour later on the new clock)
                found = moment.replace(tzinfo=zone, fold=0).timestamp()
                if found > after:  # not so in the second pass of a repeated hour: run once
                    return found
                moment += timedelta(minutes=1)
        raise CronError(f"cron {self.text!r}: matches no date")


def time_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Europe/Paris``); a ``CronError`` of one line when there
    is no such zone (or no time zone database: the ``tzdata`` package provides one)."""
    if not isinstance(name, str) or not name:
        raise CronError(f"time zone: expected an IANA name like 'Europe/Paris', got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CronError(f"unknown time zone {name!r} (an IANA name like 'Europe/Paris'; "
                        f"without a system time zone database: pip install tzdata)") from None


def parse_cron(text: str) -> CronExpr:
    """Parse a cron line; every problem is a ``CronError`` of one line."""
    if not isinstance(text, str):
        raise CronError(f"cron: expected a string, got {type(text).__name__}")
    line = " ".join(text.split())
    spec = _SHORTHANDS.get(line.lower(), line)
    fields = spec.split(" ")
    if len(fields) != len(_FIELDS):
        raise CronError(f"cron {text!r}: expected 5 fields (minute hour day month weekday), "
                        f"got {len([f for f in fields if f])}")
    sets = [_parse_field(field, *meta, line=text) for field, meta in zip(fields, _FIELDS, strict=True)]
    weekdays = frozenset(0 if d == 7 else d for d in sets[4])
    expr = CronExpr(text=line, minutes=sets[0], hours=sets[1], days=sets[2], months=sets[3],
                    weekdays=weekdays, any_day=fields[2] == "*", any_weekday=fields[4] == "*")
    expr.next_after(0.0)  # refuses a line that matches no date (Feb 30th)
    return expr


def _parse_field(field: str, name: str, low: int, high: int, names: tuple[str, ...],
                 *, line: str) -> frozenset[int]:
    values: set[int] = set()
    for part in field.split(","):
        values.update(_parse_part(part, name, low, high, names, line=line))
    return frozenset(values)


def _parse_part(part: str, name: str, low: int, high: int, names: tuple[str, ...],
                *, line: str) -> range:
    where = f"cron {line!r}: {name} {part!r}"
    span, slash, step_text = part.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) == 0:
            raise CronError(f"{where}: the step after / must be a whole number above 0")
        step = int(step_text)
    if span == "*":
        return range(low, high + 1, step)
    first_text, dash, last_text = span.partition("-")
    first = _value(first_text, name, low, high, names, where)
    last = _value(last_text, name, low, high, names, where) if dash else (
        high if slash else first)
    if last < first:
        raise CronError(f"{where}: the range runs backwards")
    return range(first, last + 1, step)


def _value(text: str, name: str, low: int, high: int, names: tuple[str, ...],
           where: str) -> int:
    lowered = text.lower()
    if lowered in names:
        return names.index(lowered) + low
    if not text.isdigit():
        hint = f" or a name ({', '.join(names[:3])} ...)" if names else ""
        raise CronError(f"{where}: expected a number {low}-{high}{hint}")
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{where}: {value} is out of range {low}-{high}")
    return value
