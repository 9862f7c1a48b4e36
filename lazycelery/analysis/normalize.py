"""Error messages with their variable parts replaced by placeholders, so that two failures of
one cause read the same: timestamps, uuids, emails, URLs, quoted values, hosts and IPs, paths,
hex (addresses, digests) and numbers."""

from __future__ import annotations

import re
from typing import Final

__all__ = ["MESSAGE_MAX", "normalize_message"]

#: longer normalised messages are cut (a message quoting a whole payload is still one cause)
MESSAGE_MAX: Final = 300

# Order matters: the wider patterns first (a timestamp holds numbers, a URL holds a host).
_RULES: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
                r"(?:Z|[+-]\d{2}:?\d{2})?"), "<time>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}\b"), "<date>"),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b"), "<time>"),
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
     "<uuid>"),
    (re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b"), "<email>"),
    (re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()]+"), "<url>"),
    # a quoted value, not an apostrophe inside a word (can't ... don't)
    (re.compile(r"(?<!\w)'[^'\n]{0,200}'(?!\w)"), "<str>"),
    (re.compile(r"(?<!\w)\"[^\"\n]{0,200}\"(?!\w)"), "<str>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?\b"), "<ip>"),
    (re.compile(r"\[[0-9a-fA-F:]*:[0-9a-fA-F:]+\](?::\d{1,5})?"), "<ip>"),
    (re.compile(r"\b(?:localhost|[a-z0-9-]+(?:\.[a-z0-9-]+)+\.[a-z]{2,}):\d{1,5}\b"), "<host>"),
    (re.compile(r"(?<![\w.<])(?:[A-Za-z]:)?[/\\](?:[\w.@-]+[/\\])+[\w.@-]*"), "<path>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"), "<hex>"),
    # numbers, also inside identifiers (report_2026_12_01), not after a letter (utf8, h2)
    (re.compile(r"(?<![A-Za-z])\d+(?:\.\d+)?"), "<n>"),
)
_ERRNO: Final = re.compile(r"\[Errno (\d+)\]")
_SPACE: Final = re.compile(r"\s+")


def normalize_message(text: str) -> str:
    """``text`` with its variable parts as placeholders, whitespace collapsed, at most
    ``MESSAGE_MAX`` characters. An errno stays (``[Errno 28]`` and ``[Errno 2]`` differ)."""
    errnos = _ERRNO.findall(text)
    out = _ERRNO.sub("[Errno]", text)
    for pattern, placeholder in _RULES:
        out = pattern.sub(placeholder, out)
    for number in errnos:
        out = out.replace("[Errno]", f"[Errno {number}]", 1)
    out = _SPACE.sub(" ", out).strip()
    return out[:MESSAGE_MAX]
