"""The one size parser: ``"64MB"``, ``"512k"``, ``"1.5GiB"``, ``"4096"`` (bytes) to a number of
bytes, for the command-line options and the config file. Pure (layer 0): no import of the
package.

Units are binary whatever their spelling (``k`` = ``kb`` = ``kib`` = 1024 bytes, ``m`` / ``mb``
/ ``mib`` = 2**20, ``g`` ...), any case: a buffer is sized in the units memory is counted in."""

from __future__ import annotations

import math
import re
from typing import Final

__all__ = ["HINT", "MAX_BYTES", "format_size", "parse_size", "size_of"]

_SIZE: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(?:([kmgt])(?:i?b)?|(b))?", re.IGNORECASE)
_UNITS: Final = {None: 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
#: the examples an error line shows
HINT: Final = "0, 512KB, 64MB, 1GB"
#: the largest size accepted: 1 TiB (no buffer of ours needs more; a typo such as 64TB is caught)
MAX_BYTES: Final = 1 << 40


def parse_size(text: str, *, hint: str = HINT) -> int:
    """``"64MB"``, ``"512k"``, ``"1.5GiB"``, ``"4096"`` -> bytes (0 to ``MAX_BYTES``, rounded
    down to a whole byte); a ValueError of one line, with ``hint`` as examples, otherwise."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a size: {text!r} (try {hint})")
    unit = match.group(2).lower() if match.group(2) else None
    size = float(match.group(1)) * _UNITS[unit]
    if not math.isfinite(size) or size > MAX_BYTES:
        raise ValueError(f"size too large: {text.strip()[:40]!r} (at most 1TB)")
    return int(size)


def size_of(value: str | int) -> int:
    """A config file's size: a string as ``parse_size`` reads it or a whole number of bytes;
    ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r} (try {HINT})")
    if isinstance(value, int):
        if not 0 <= value <= MAX_BYTES:
            raise ValueError(f"must be 0 to 1TB, not {value!r}")
        return value
    return parse_size(str(value))


def format_size(size: int) -> str:
    """Bytes in the largest binary unit dividing them: ``67108864`` -> ``"64MB"``,
    ``1536`` -> ``"1.5KB"`` (one decimal at most), ``0`` -> ``"0"``."""
    if size == 0:
        return "0"
    for name, unit in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= unit:
            value = size / unit
            return f"{value:.0f}{name}" if value == int(value) else f"{value:.1f}{name}"
    return f"{size}B"
