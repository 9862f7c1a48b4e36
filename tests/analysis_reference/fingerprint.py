"""The fingerprint of a failure: its exception type, its message normalised, and the innermost
frames of the application's own code. Two failures with one fingerprint are one error group."""

from __future__ import annotations

import contextlib
import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from tests.analysis_reference.normalize import normalize_message
from tests.analysis_reference.tbparse import is_app_frame, parse_repr, parse_traceback

__all__ = ["APP_FRAMES", "Fingerprint", "fingerprint"]

_HEADS: OrderedDict[str, tuple[str, ...]] = OrderedDict()
_HEADS_MAX: Final = 1_024

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


def _head_frames(head: str) -> tuple[str, ...]:
    """The application frames of a traceback's text before its last frame (cached)."""
    # only the last block's frames count: its text (frames and source lines, no message) is
    # the same for every failure of one code path; a chained cause's message before it is not
    head = head[max(0, head.rfind("Traceback (most recent call last)")):]
    if not head:
        return ()
    found = _HEADS.get(head)
    if found is None:
        found = tuple(f.short for f in parse_traceback(head).frames if is_app_frame(f))
        _HEADS[head] = found
        if len(_HEADS) > _HEADS_MAX:
            with contextlib.suppress(KeyError):  # another thread's call evicted it first
                _HEADS.popitem(last=False)
    return found


def fingerprint(exception: str | None, traceback: str | None) -> Fingerprint:
    """The fingerprint of a failure from an event's ``exception`` (a repr) and ``traceback``
    (the full text; absent for a task that was not registered). The traceback's exception line
    wins: it has the qualified type and the whole message."""
    exc_type, message = parse_repr(exception or "")
    frames: tuple[str, ...] = ()
    if traceback:
        # The text up to the last frame is the same for every failure of one code path:
        # parsed once (cached); only the last frame and the exception line are read each time.
        split = traceback.rfind('\n  File "')
        head, tail = (traceback[:split], traceback[split + 1:]) if split >= 0 else ("", traceback)
        parsed = parse_traceback(tail)
        if parsed.exc_type is not None:
            exc_type, message = parsed.exc_type, parsed.message
        app = [*_head_frames(head), *(f.short for f in parsed.frames if is_app_frame(f))]
        frames = tuple(app[-APP_FRAMES:])
    exc_type = exc_type or "UnknownError"
    normal = normalize_message(message)
    digest = hashlib.sha1("\n".join((exc_type, normal, *frames)).encode("utf-8", "replace"),
                          usedforsecurity=False).hexdigest()
    raw = f"{exc_type}: {message}" if message else exc_type
    return Fingerprint(key=digest[:12], exc_type=exc_type, message=normal, frames=frames,
                       raw=raw[:1000])
