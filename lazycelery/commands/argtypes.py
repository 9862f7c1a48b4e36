"""argparse ``type=`` converters shared by the sub-commands (one wording for every option)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from lazycelery.durations import MAX_SECONDS

__all__ = ["EnvAction", "int_between", "positive_float", "positive_int", "seconds",
           "seconds_or_zero"]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or math.isinf(value):  # `not >` also refuses NaN
        raise argparse.ArgumentTypeError("must be a positive number")
    return value


def seconds(text: str) -> float:
    """A number of seconds (an interval, a timeout, a listening time): more than 0 and at
    most ``MAX_SECONDS`` (10 years: a larger one overflows a thread's wait or a datetime)."""
    value = seconds_or_zero(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def seconds_or_zero(text: str) -> float:
    """A number of seconds, 0 allowed (``0 = off``), at most ``MAX_SECONDS``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text[:40]!r}") from None
    if not value >= 0:  # `not >=` also refuses NaN
        raise argparse.ArgumentTypeError("must be 0 or more seconds")
    if value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"too long: {text[:40]!r} seconds (at most "
                                         f"{MAX_SECONDS:.0f}, 10 years)")
    return value


def int_between(low: int, high: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    return convert


class EnvAction(argparse.Action):
    """``--env NAME``, repeatable: ``env`` keeps the last name (the one-cluster commands read
    it) and ``envs`` all of them in order (``lazycelery.config_envs`` reads it)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        names = list(getattr(namespace, "envs", None) or [])
        names.append(str(values))
        namespace.envs = names
        setattr(namespace, self.dest, values)
