"""The one duration parser: ``"2s"``, ``"150ms"``, ``"10m"``, ``"1.5h"``, ``"3"`` (seconds) and the
other forms the filter language, the command-line options, the config file and the report
schedules accept, to seconds. Pure (layer 0): no import of the package.

The accepted forms are the union of what the parsers it replaced accepted: a decimal number
(``2``, ``1.5``, ``1.``, ``.5``), optional spaces, and an optional unit, any case: ``ms``,
``s`` / ``sec``, ``m`` / ``min``, ``h``, ``d``, ``w``. The error lines are theirs too: each
caller keeps the examples it always showed."""

from __future__ import annotations

import math
import re
from typing import Final

__all__ = ["CONFIG_HINT", "HINT", "MAX_SECONDS", "DurationTooLong", "parse_duration",
           "seconds_of"]

_DURATION: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|sec|m|min|h|d|w)?", re.IGNORECASE)
_UNITS: Final = {None: 1.0, "ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0,
                 "h": 3600.0, "d": 86400.0, "w": 604800.0}
#: the examples an error line shows (the filter language and the options) ...
HINT: Final = "500ms, 2s, 10m, 1h"
#: ... and the config file's
CONFIG_HINT: Final = "500ms, 2s, 1.5m, 1h"
#: the longest duration accepted: 10 years (3650d). No window, age or silence needs more, and
#: ``now - 99999d`` is before year 1: a datetime of it overflows
MAX_SECONDS: Final = 3650 * 86400.0


class DurationTooLong(ValueError):
    """A duration past ``MAX_SECONDS`` (or too large to be a number at all)."""


def _seconds(text: str) -> float | None:
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        return None
    unit = match.group(2).lower() if match.group(2) else None
    return float(match.group(1)) * _UNITS[unit]


def _not_a_duration(value: object, hint: str) -> ValueError:
    return ValueError(f"not a duration: {value!r} (try {hint})")


def parse_duration(text: str, *, hint: str = HINT) -> float:
    """``"2s"``, ``"150ms"``, ``"10m"``, ``"1.5h"``, ``"3"`` (seconds) -> seconds (0 to
    ``MAX_SECONDS``); a ValueError of one line, with ``hint`` as examples, otherwise
    (``DurationTooLong`` past ``MAX_SECONDS``)."""
    seconds = _seconds(text)
    if seconds is None:
        raise _not_a_duration(text, hint)
    if not math.isfinite(seconds) or seconds > MAX_SECONDS:
        raise DurationTooLong(f"duration too long: {text.strip()[:40]!r} (at most 3650d, "
                              "10 years)")
    return seconds


def seconds_of(value: str | float) -> float:
    """A config file's duration: a string as ``parse_duration`` reads it or a number of
    seconds (``2.5``), more than 0 and less than 1e9 seconds; ValueError otherwise."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds: float | None = float(value)
    else:
        seconds = _seconds(str(value))
    if seconds is None:
        raise _not_a_duration(value, CONFIG_HINT)
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"must be a positive duration, not {value!r}")
    return seconds
