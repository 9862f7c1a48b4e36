"""Query and form parameters read the way Flower (tornado) reads them, refused with a 400
naming the parameter instead of a traceback or a silent default."""

from __future__ import annotations

import math
from collections.abc import Mapping

from lazycelery.serve.errors import bad_param

__all__ = ["flag", "number", "optional_int", "required", "text"]

#: tornado's ``get_argument(type=bool)`` is truthy for any non-empty string but these
_FALSE = frozenset({"", "0", "false", "no", "off", "n", "f"})
_TRUE = frozenset({"1", "true", "yes", "on", "y", "t"})
#: a parameter value longer than this is refused (no real name or filter needs more)
MAX_TEXT = 4096


def text(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is not None and len(value) > MAX_TEXT:
        raise bad_param(name, f"longer than {MAX_TEXT} characters")
    return value


def required(params: Mapping[str, str], name: str) -> str:
    value = text(params, name)
    if value is None or not value.strip():
        raise bad_param(name, "required")
    return value


def flag(params: Mapping[str, str], name: str) -> bool:
    value = text(params, name)
    if value is None:
        return False
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise bad_param(name, f"expected true or false, got {value[:40]!r}")


def optional_int(params: Mapping[str, str], name: str, *, minimum: int | None = None,
                 maximum: int | None = None) -> int | None:
    value = text(params, name)
    if value is None or value.strip() == "":
        return None
    try:
        number_ = int(value.strip())
    except ValueError:
        raise bad_param(name, f"expected an integer, got {value[:40]!r}") from None
    if minimum is not None and number_ < minimum:
        raise bad_param(name, f"must be at least {minimum}")
    if maximum is not None and number_ > maximum:
        raise bad_param(name, f"must be at most {maximum}")
    return number_


def number(params: Mapping[str, str], name: str, *, minimum: float = 0.0,
           maximum: float | None = None) -> float | None:
    value = text(params, name)
    if value is None or value.strip() == "":
        return None
    try:
        out = float(value.strip())
    except ValueError:
        raise bad_param(name, f"expected a number, got {value[:40]!r}") from None
    if not math.isfinite(out) or out < minimum:
        raise bad_param(name, f"must be a finite number >= {minimum:g}")
    if maximum is not None and out > maximum:
        raise bad_param(name, f"too long: at most {maximum:.0f} seconds (10 years)")
    return out
