"""The fingerprint of a failure: its exception type, its message normalised, and the innermost
frames of the application's own code. Two failures with one fingerprint are one error group."""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from lazycelery.analysis.normalize import normalize_message
from lazycelery.analysis.tbparse import EXC_LINE, FRAME, is_app_frame, parse_repr, parse_traceback

__all__ = ["APP_FRAMES", "Fingerprint", "fingerprint"]

_HEADS: OrderedDict[str, tuple[str, ...]] = OrderedDict()
_HEADS_MAX: Final = 1_024
#: a traceback's text up to its exception line -> its innermost application frames (None: read
#: it the plain way)
_TAILS: OrderedDict[str, tuple[str, ...] | None] = OrderedDict()
_TAILS_MAX: Final = 1_024
#: (type, normalised message, frames) -> key: one SHA-1 per group, not per failure
_KEYS: OrderedDict[tuple[str, str, tuple[str, ...]], str] = OrderedDict()
_KEYS_MAX: Final = 4_096
_MISSING: Final = ("",)
#: the line breaks ``str.splitlines`` knows besides ``\n``: text with one is read the plain way
_SEPARATORS: Final = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
#: the start of the first line that is not indented (after the last frame: the exception line)
_EXC_START: Final = re.compile(r"\n(?=\S)")

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


def _tail_frames(prefix: str, split: int) -> tuple[str, ...] | None:
    """The innermost application frames of a traceback whose text up to its exception line is
    ``prefix`` (its last frame starts at ``split``), as ``parse_traceback`` reads them; None
    when that text has what the plain reading must see (line separators other than ``\\n``,
    a traceback header or a non-indented line after the last frame)."""
    head, block = prefix[:split], prefix[split + 1:]
    if _SEPARATORS.search(block) is not None:
        return None
    lines = block.splitlines()
    start = 0
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            start = i + 1
    last_frame = start - 1
    for i in range(start, len(lines)):
        if FRAME.match(lines[i]):
            last_frame = i
    for line in lines[last_frame + 1:]:
        if line and not line[0].isspace():
            return None
    frames = [*_head_frames(head), *(f.short for f in parse_traceback(block).frames
                                     if is_app_frame(f))]
    return tuple(frames[-APP_FRAMES:])


def _fast(traceback: str) -> tuple[str | None, str, tuple[str, ...]] | None:
    """(type, message, frames) of a traceback read in one step: the text up to the exception
    line is the same for every failure of one code path, its frames are cached; the exception
    line and the message after it are read each time. None when the plain reading is needed."""
    split = traceback.rfind('\n  File "')
    if split < 0:
        return None
    found = _EXC_START.search(traceback, split + 1)
    if found is None:
        return None
    end = found.start()
    rest = traceback[end + 1:]
    if ('File "' in rest or "Traceback (most recent call last)" in rest
            or _SEPARATORS.search(rest) is not None or rest[0].isspace()):
        return None
    # from the last block's header: a chained cause's message before it is not part of the key
    begin = traceback.rfind("Traceback (most recent call last)", 0, split)
    if begin < 0:
        begin = 0
    prefix = traceback[begin:end]
    frames = _TAILS.get(prefix, _MISSING)
    if frames is _MISSING:
        frames = _tail_frames(prefix, split - begin)
        _TAILS[prefix] = frames
        if len(_TAILS) > _TAILS_MAX:
            with contextlib.suppress(KeyError):  # another thread's call evicted it first
                _TAILS.popitem(last=False)
    if frames is None:
        return None
    rest = rest.rstrip()
    first, newline, more = rest.partition("\n")
    match = EXC_LINE.match(first)
    if match is None:
        return None, "", frames  # no type: the exception field's is kept
    message = match.group(2) or ""
    if newline:
        message = f"{message}\n{more}"
    return match.group(1), message.strip(), frames


def fingerprint(exception: str | None, traceback: str | None) -> Fingerprint:
    """The fingerprint of a failure from an event's ``exception`` (a repr) and ``traceback``
    (the full text; absent for a task that was not registered). The traceback's exception line
    wins: it has the qualified type and the whole message."""
    fast = _fast(traceback) if traceback else None
    frames: tuple[str, ...] = ()
    if fast is not None and fast[0] is not None:
        exc_type, message, frames = fast
    else:
        exc_type, message = parse_repr(exception or "")
        if fast is not None:
            frames = fast[2]
        elif traceback:
            # The text up to the last frame is the same for every failure of one code path:
            # parsed once (cached); only the last frame and the exception line are read.
            split = traceback.rfind('\n  File "')
            head, tail = ((traceback[:split], traceback[split + 1:]) if split >= 0
                          else ("", traceback))
            parsed = parse_traceback(tail)
            if parsed.exc_type is not None:
                exc_type, message = parsed.exc_type, parsed.message
            app = [*_head_frames(head), *(f.short for f in parsed.frames if is_app_frame(f))]
            frames = tuple(app[-APP_FRAMES:])
    exc_type = exc_type or "UnknownError"
    normal = normalize_message(message)
    parts = (exc_type, normal, frames)
    key = _KEYS.get(parts)
    if key is None:
        key = hashlib.sha1("\n".join((exc_type, normal, *frames)).encode("utf-8", "replace"),
                           usedforsecurity=False).hexdigest()[:12]
        _KEYS[parts] = key
        if len(_KEYS) > _KEYS_MAX:
            with contextlib.suppress(KeyError):  # another thread's call evicted it first
                _KEYS.popitem(last=False)
    raw = f"{exc_type}: {message}" if message else exc_type
    return Fingerprint(key=key, exc_type=exc_type, message=normal, frames=frames,
                       raw=raw[:1000])
