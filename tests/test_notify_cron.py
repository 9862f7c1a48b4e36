"""Cron lines for report schedules: what they match, the next run, one-line refusals."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from lazycelery.cron import CronError, parse_cron


def _t(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M %a")


@pytest.mark.parametrize(("line", "after", "expected"), [
    ("0 8 * * *", "2026-12-06 07:59:30", "2026-12-06 08:00 Sun"),
    ("0 8 * * *", "2026-12-06 08:00:00", "2026-12-07 08:00 Mon"),
    ("*/15 * * * *", "2026-12-06 10:07", "2026-12-06 10:15 Sun"),
    ("0 8 * * mon-fri", "2026-12-05 09:00", "2026-12-07 08:00 Mon"),  # Saturday -> Monday
    ("30 6 1 * *", "2026-12-06 00:00", "2027-01-01 06:30 Fri"),
    ("0 0 29 feb *", "2026-03-01 00:00", "2028-02-29 00:00 Tue"),
    ("@weekly", "2026-12-06 00:00", "2026-12-13 00:00 Sun"),
    ("0 12 * * 7", "2026-12-07 00:00", "2026-12-13 12:00 Sun"),  # 7 is Sunday too
    ("5,10-12/2 3 * * *", "2026-12-06 03:06", "2026-12-06 03:10 Sun"),
    ("0 9 1-7 * 1", "2026-12-02 10:00", "2026-12-03 09:00 Thu"),  # Vixie: day OR weekday
    ("0 9 * jan,jul *", "2026-12-06 00:00", "2027-01-01 09:00 Fri"),
])
def test_next_run(line: str, after: str, expected: str) -> None:
    assert _iso(parse_cron(line).next_after(_t(after))) == expected


def test_next_runs_are_strictly_later_and_match() -> None:
    expr = parse_cron("*/7 1-3 * * 2")
    moment = _t("2026-01-01 00:00")
    for _ in range(50):
        following = expr.next_after(moment)
        assert following > moment
        assert expr.matches(datetime.fromtimestamp(following, timezone.utc))
        moment = following


@pytest.mark.parametrize(("line", "problem"), [
    ("0 8 * *", "expected 5 fields (minute hour day month weekday), got 4"),
    ("60 8 * * *", "minute '60': 60 is out of range 0-59"),
    ("0 8 * * funday", "day of week 'funday': expected a number 0-7 or a name (sun, mon, tue ...)"),
    ("*/0 * * * *", "minute '*/0': the step after / must be a whole number above 0"),
    ("0 10-2 * * *", "hour '10-2': the range runs backwards"),
    ("0 0 30 2 *", "matches no date"),
    ("", "expected 5 fields"),
])
def test_bad_lines_are_one_clear_line(line: str, problem: str) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(line)
    message = str(caught.value)
    assert problem in message
    assert "\n" not in message


# ---------------------------------------------------------------- time zones (tz = "...")

def _local(seconds: float, zone: str) -> str:
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(seconds, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


@pytest.mark.parametrize(("line", "after", "expected"), [
    # winter (CET, UTC+1) then summer (CEST, UTC+2): 08:00 on the Paris clock both times
    ("0 8 * * *", "2026-03-28 12:00", "2026-03-29 08:00 CEST"),
    ("0 8 * * *", "2026-03-27 12:00", "2026-03-28 08:00 CET"),
    ("0 8 * * *", "2026-10-24 12:00", "2026-10-25 08:00 CET"),
    # 02:30 does not exist on 2026-03-29 (02:00 CET -> 03:00 CEST): it runs at 03:30
    ("30 2 * * *", "2026-03-28 12:00", "2026-03-29 03:30 CEST"),
    # 02:30 happens twice on 2026-10-25: it runs once, the first time (CEST)
    ("30 2 * * *", "2026-10-24 12:00", "2026-10-25 02:30 CEST"),
])
def test_next_run_in_a_time_zone(line: str, after: str, expected: str) -> None:
    from lazycelery.cron import time_zone

    assert _local(parse_cron(line).next_after(_t(after), time_zone("Europe/Paris")),
                  "Europe/Paris") == expected


def test_a_repeated_local_hour_runs_each_minute_once() -> None:
    from lazycelery.cron import time_zone

    expr, zone = parse_cron("30 * * * *"), time_zone("Europe/Paris")
    moment, runs = _t("2026-10-24 22:00"), []  # 00:00 CEST on the 25th
    for _ in range(5):
        moment = expr.next_after(moment, zone)
        runs.append(_local(moment, "Europe/Paris"))
    assert runs == ["2026-10-25 00:30 CEST", "2026-10-25 01:30 CEST", "2026-10-25 02:30 CEST",
                    "2026-10-25 03:30 CET", "2026-10-25 04:30 CET"]


def test_an_unknown_time_zone_is_one_line() -> None:
    from lazycelery.cron import time_zone

    for name in ("Mars/Olympus", "", "../../etc/passwd", "Europe"):
        with pytest.raises(CronError) as caught:
            time_zone(name)
        assert "\n" not in str(caught.value)
