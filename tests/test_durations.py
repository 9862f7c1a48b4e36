"""The duration forms users write (the filter language, command-line options, the config file,
report schedules) and the error lines they see: pinned before the parsers became one
(lazycelery.durations), so that the merge changed neither."""

from __future__ import annotations

import pytest

from lazycelery.config_file import seconds_of
from lazycelery.core.query import parse_duration


@pytest.mark.parametrize(("text", "seconds"), [
    ("3", 3.0), ("2s", 2.0), ("150ms", 0.15), ("10m", 600.0), ("1.5h", 5400.0), ("1d", 86400.0),
    ("2 s", 2.0), (" 2s ", 2.0), ("2S", 2.0), ("500MS", 0.5), ("3sec", 3.0), ("2min", 120.0),
    ("1.", 1.0), (".5s", 0.5), ("0", 0.0), ("0s", 0.0),
])
def test_filter_and_option_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "soon", "2x", "-1s", "1e3", "2 h 3 m", "1,5s", "2ss"])
def test_filter_and_option_duration_errors(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    assert str(caught.value) == f"not a duration: {text!r} (try 500ms, 2s, 10m, 1h)"


@pytest.mark.parametrize(("value", "seconds"), [
    ("2s", 2.0), ("500ms", 0.5), ("1.5m", 90.0), ("1h", 3600.0), ("1d", 86400.0), ("3", 3.0),
    (" 2 S ", 2.0), (2.5, 2.5), (7, 7.0),
])
def test_config_durations(value: str | float, seconds: float) -> None:
    assert seconds_of(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["soon", "2x", "", "-1s", "1e3"])
def test_config_duration_errors(value: str) -> None:
    with pytest.raises(ValueError) as caught:
        seconds_of(value)
    assert str(caught.value) == f"not a duration: {value!r} (try 500ms, 2s, 1.5m, 1h)"


@pytest.mark.parametrize("value", ["0s", "0", 0, -1, -1.0, 0.0, 1e9, "1000000000", "20000d"])
def test_config_durations_must_be_positive_and_bounded(value: str | float) -> None:
    with pytest.raises(ValueError) as caught:
        seconds_of(value)
    assert str(caught.value) == f"must be a positive duration, not {value!r}"


def test_a_boolean_is_not_a_config_duration() -> None:
    with pytest.raises(ValueError) as caught:
        seconds_of(True)
    assert str(caught.value) == "not a duration: True (try 500ms, 2s, 1.5m, 1h)"


@pytest.mark.parametrize(("since", "seconds"), [
    ("30s", 30.0), ("15m", 900.0), ("2h", 7200.0), ("1d", 86400.0), ("2w", 1209600.0),
])
def test_report_schedule_since(since: str, seconds: float) -> None:
    """A schedule's ``since`` (checked as ``\\d+[smhdw]`` when the file is read)."""
    assert parse_duration(since) == seconds


@pytest.mark.parametrize(("value", "seconds"), [
    ("1w", 604800.0), ("2W", 1209600.0), ("3sec", 3.0), ("2min", 120.0), (".5s", 0.5),
    ("1.", 1.0),
])
def test_one_parser_accepts_the_union_of_the_forms(value: str, seconds: float) -> None:
    """What one of the old parsers took, both places take now (weeks came from the report
    schedules, ``sec`` / ``min`` / ``.5`` from the filter language)."""
    assert parse_duration(value) == pytest.approx(seconds)
    assert seconds_of(value) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["99999d", "3651d", "522w", "1" + "0" * 400, "315360001"])
def test_durations_past_ten_years_are_refused(text: str) -> None:
    from lazycelery.durations import DurationTooLong

    with pytest.raises(DurationTooLong) as caught:
        parse_duration(text)
    assert str(caught.value) == f"duration too long: {text[:40]!r} (at most 3650d, 10 years)"


def test_ten_years_is_accepted() -> None:
    assert parse_duration("3650d") == 3650 * 86400.0
    assert seconds_of("3650d") == 3650 * 86400.0
    with pytest.raises(ValueError):
        seconds_of("3651d")


@pytest.mark.parametrize(("convert", "text", "message"), [
    ("seconds", "1e12", "too long: '1e12' seconds (at most 315360000, 10 years)"),
    ("seconds", "inf", "too long: 'inf' seconds (at most 315360000, 10 years)"),
    ("seconds", "nan", "must be 0 or more seconds"),
    ("seconds", "0", "must be a positive number of seconds"),
    ("seconds", "soon", "not a number of seconds: 'soon'"),
    ("seconds_or_zero", "-1", "must be 0 or more seconds"),
])
def test_seconds_options_are_bounded(convert: str, text: str, message: str) -> None:
    import argparse

    from lazycelery.commands import argtypes

    with pytest.raises(argparse.ArgumentTypeError) as caught:
        getattr(argtypes, convert)(text)
    assert str(caught.value) == message
    assert argtypes.seconds("2.5") == 2.5 and argtypes.seconds_or_zero("0") == 0.0
