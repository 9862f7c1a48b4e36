"""Retention settings: ``--retention 30d`` (age) and ``--retention-tasks N`` (row count)."""

from __future__ import annotations

from typing import Final

from lazycelery.durations import parse_duration
from lazycelery.store.backend import Retention

__all__ = ["DEFAULT_RETENTION", "parse_age", "retention_from"]

#: Kept by default: 30 days (``--retention none`` keeps everything).
DEFAULT_RETENTION: Final = "30d"
_NONE: Final = frozenset({"none", "off", "forever", "0"})


def parse_age(text: str) -> float | None:
    """``30d``, ``12h``, ``90m`` -> seconds; ``none`` / ``off`` / ``0`` -> None (no limit).
    A ValueError (one line) for anything else."""
    value = text.strip().lower()
    if value in _NONE:
        return None
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"not a positive duration: {text!r}")
    return seconds


def retention_from(age: str | None, max_tasks: int | None) -> Retention:
    return Retention(max_age=parse_age(age if age is not None else DEFAULT_RETENTION),
                     max_tasks=max_tasks)
