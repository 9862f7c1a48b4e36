"""What a masked value is replaced by: ``'***' (str, 7 chars)``, the value's type and size, never
a piece of it, so a masked argument still tells its shape when debugging."""

from __future__ import annotations

import re
from typing import Any, Final

__all__ = ["MARK", "Masked", "is_masked_text", "shape_of", "text_shape"]

#: what every masked value starts with (``is_masked_text`` looks for it)
MARK: Final = "'***'"
_MARKED: Final = re.compile(r"'\*\*\*' \((?:str|bytes|int|float|complex|dict|list|tuple|set|"
                            r"text|value)[^)]*\)")


class Masked:
    """A value replaced in a parsed structure; rendered as its ``text``."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _plural(n: int, unit: str) -> str:
    return f"{n:,} {unit}" if n != 1 else f"1 {unit.rstrip('s')}"


def shape_of(value: Any) -> Masked:
    """``'***' (str, 7 chars)``, ``'***' (int, 16 digits)``, ``'***' (dict, 3 items)`` ..."""
    cls = value.__class__
    if cls is str:
        return Masked(f"{MARK} (str, {_plural(len(value), 'chars')})")
    if cls is bytes:
        return Masked(f"{MARK} (bytes, {_plural(len(value), 'bytes')})")
    if cls is int:
        return Masked(f"{MARK} (int, {_plural(len(str(abs(value))), 'digits')})")
    if cls in (dict, list, tuple, set):
        return Masked(f"{MARK} ({cls.__name__}, {_plural(len(value), 'items')})")
    if cls in (float, complex):
        return Masked(f"{MARK} ({cls.__name__})")
    return Masked(f"{MARK} (value)")


def text_shape(text: str) -> str:
    """What a piece of unparsed text becomes: ``'***' (text, 19 chars)``."""
    return f"{MARK} (text, {_plural(len(text), 'chars')})"


def is_masked_text(text: str) -> bool:
    """True when ``text`` holds a masked value (so it is not the real argument)."""
    return MARK in text and _MARKED.search(text) is not None
