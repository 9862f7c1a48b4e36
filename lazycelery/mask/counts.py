"""The counts log: how many values each masking rule masked, appended as JSON lines by every
process that ingests (``lazycelery record``, ``tail``, the dashboard) and summed by the
compliance report."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path

import msgspec

__all__ = ["COUNTS_ENV", "CountsEntry", "append", "default_path", "read"]

#: environment variable naming another counts file (tests, a shared location)
COUNTS_ENV = "LAZYCELERY_MASK_COUNTS"

_lock = threading.Lock()
_encoder = msgspec.json.Encoder()


class CountsEntry(msgspec.Struct, frozen=True, kw_only=True):
    """Values masked by each rule in one process over one interval, up to ``time``."""

    time: str
    environment: str
    events: int = 0
    counts: dict[str, int]


_decoder = msgspec.json.Decoder(CountsEntry)


def default_path() -> Path:
    """``$LAZYCELERY_MASK_COUNTS``, else ``mask-counts.log`` beside the audit log."""
    override = os.environ.get(COUNTS_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return platformdirs.user_state_path("lazycelery", appauthor=False) / "mask-counts.log"


def append(counts: Mapping[str, int], environment: str | None, events: int = 0,
           path: Path | None = None) -> None:
    """One line (nothing when ``counts`` is empty); ``OSError`` when it cannot be written."""
    if not counts:
        return
    entry = CountsEntry(time=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        environment=environment or "-", events=events, counts=dict(counts))
    target = path or default_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    line = _encoder.encode(entry) + b"\n"
    with _lock:
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def read(path: Path | None = None) -> list[CountsEntry]:
    """Every readable entry, oldest first (bad lines are skipped)."""
    target = path or default_path()
    try:
        stream = target.open("rb")
    except FileNotFoundError:
        return []
    entries: list[CountsEntry] = []
    with stream:
        lines: Iterator[bytes] = iter(stream)
        for raw in lines:
            with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                entries.append(_decoder.decode(raw))
    return entries
