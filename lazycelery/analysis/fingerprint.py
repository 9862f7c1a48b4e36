"""The fingerprint of a failure: its exception type, its message normalised, and the innermost
frames of the application's own code. Two failures with one fingerprint are one error group."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Final

from lazycelery.analysis.normalize import normalize_message
from lazycelery.analysis.tbparse import is_app_frame, parse_repr, parse_traceback

__all__ = ["APP_FRAMES", "Fingerprint", "fingerprint"]

#: how many of the innermost application frames count
APP_FRAMES: Final = 3


@dataclass(frozen=True)
class Fingerprint:
    #: short stable id (12 hex characters of a SHA-1 of the parts below)
    key: str
    exc_type: str
    message: str
    #: the innermost application frames, ``dir/file.py:function``, outermost first
    frames: tuple[str, ...]
    #: ``type: message`` as raised (not normalised): one example of the group
    raw: str = field(default="", compare=False)

    @property
    def title(self) -> str:
        return f"{self.exc_type}: {self.message}" if self.message else self.exc_type

    @property
    def short_type(self) -> str:
        return self.exc_type.rsplit(".", 1)[-1]


def fingerprint(exception: str | None, traceback: str | None) -> Fingerprint:
    """The fingerprint of a failure from an event's ``exception`` (a repr) and ``traceback``
    (the full text; absent for a task that was not registered). The traceback's exception line
    wins: it has the qualified type and the whole message."""
    exc_type, message = parse_repr(exception or "")
    frames: tuple[str, ...] = ()
    if traceback:
        parsed = parse_traceback(traceback)
        if parsed.exc_type is not None:
            exc_type, message = parsed.exc_type, parsed.message
        app = [f.short for f in parsed.frames if is_app_frame(f)]
        frames = tuple(app[-APP_FRAMES:])
    exc_type = exc_type or "UnknownError"
    normal = normalize_message(message)
    digest = hashlib.sha1("\n".join((exc_type, normal, *frames)).encode("utf-8", "replace"),
                          usedforsecurity=False).hexdigest()
    raw = f"{exc_type}: {message}" if message else exc_type
    return Fingerprint(key=digest[:12], exc_type=exc_type, message=normal, frames=frames,
                       raw=raw[:1000])
