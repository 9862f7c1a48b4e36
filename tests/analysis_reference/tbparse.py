"""Reading the traceback text Celery puts in task-failed / task-retried events: the frames of
the last (outermost raised) exception, the exception line, and which frames are the
application's own code."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = ["Frame", "ParsedTraceback", "is_app_frame", "parse_repr", "parse_traceback"]

_FRAME: Final = re.compile(r'^\s*File "([^"]+)", line (\d+), in (.+?)\s*$')
_EXC_LINE: Final = re.compile(r"^([A-Za-z_][\w.]*)(?::\s?(.*))?$")
_REPR: Final = re.compile(r"^([A-Za-z_][\w.]*)\((.*)\)$", re.DOTALL)
#: path parts of code that is not the application's: installed packages, the standard library,
#: celery's own stack (also when run from a checkout)
_LIBRARY_PARTS: Final = ("site-packages", "dist-packages", "/celery/", "/kombu/", "/billiard/",
                         "/vine/", "/amqp/", "<frozen ", "<string>")
_STDLIB: Final = re.compile(r"[/\\]lib[/\\]python\d+(?:\.\d+)?[/\\](?!site-packages)")


@dataclass(frozen=True)
class Frame:
    path: str
    line: int
    function: str

    @property
    def short(self) -> str:
        """``file.py:function`` with the file's parent directory: stable across deploy paths
        and line shifts."""
        parts = self.path.replace("\\", "/").rsplit("/", 2)
        tail = "/".join(parts[-2:])
        return f"{tail}:{self.function}"


@dataclass(frozen=True)
class ParsedTraceback:
    #: the frames of the last exception's traceback, outermost first
    frames: tuple[Frame, ...]
    #: its qualified type (``redis.exceptions.ConnectionError``), or None if unreadable
    exc_type: str | None
    message: str


def is_app_frame(frame: Frame) -> bool:
    """The frame is in the application's code: not an installed package, the standard
    library or celery / kombu / billiard."""
    path = frame.path.replace("\\", "/")
    if any(part in path for part in _LIBRARY_PARTS):
        return False
    return _STDLIB.search(path) is None


def parse_traceback(text: str) -> ParsedTraceback:
    """The frames and exception of the last block of ``text`` (a chained traceback's "During
    handling ..." / "The above exception ..." blocks before it are the causes)."""
    lines = text.rstrip().splitlines()
    start = 0
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            start = i + 1
    frames: list[Frame] = []
    last_frame = start - 1
    for i in range(start, len(lines)):
        match = _FRAME.match(lines[i])
        if match:
            frames.append(Frame(match.group(1), int(match.group(2)), match.group(3)))
            last_frame = i
    exc_type, message = None, ""
    for i in range(last_frame + 1, len(lines)):
        line = lines[i]
        if not line or line[0].isspace():
            continue  # the source line and the ^^^ markers of the last frame
        match = _EXC_LINE.match(line)
        if match:
            exc_type = match.group(1)
            message = "\n".join([match.group(2) or "", *lines[i + 1:]]).strip()
        break
    return ParsedTraceback(tuple(frames), exc_type, message)


def parse_repr(text: str) -> tuple[str, str]:
    """(type, message) from the ``exception`` field (``safe_repr(exc)``): ``ValueError('x')``
    gives ``("ValueError", "x")``; anything else is its own type with no message."""
    text = text.strip()
    match = _REPR.match(text)
    if match is None:
        return text.rsplit(":", 1)[-1] or text, ""
    args = match.group(2).strip()
    if len(args) >= 2 and args[0] == args[-1] and args[0] in "'\"" and args.count(args[0]) == 2:
        args = args[1:-1]
    return match.group(1), args
