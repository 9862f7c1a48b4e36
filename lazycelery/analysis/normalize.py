"""Error messages with their variable parts replaced by placeholders, so that two failures of
one cause read the same: timestamps, uuids, emails, URLs, quoted values, hosts and IPs, paths,
hex (addresses, digests) and numbers."""

from __future__ import annotations

import contextlib
import re
from collections import OrderedDict
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
    # numbers, wherever they are (report_2026_12_01, user42, utf8)
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
)
#: the rules as one alternation, tried in order at each position: one pass over the text
_ALL: Final = re.compile("|".join(f"(?P<r{i}>{pattern.pattern})"
                                  for i, (pattern, _) in enumerate(_RULES)))
_PLACEHOLDER: Final = {f"r{i}": placeholder for i, (_, placeholder) in enumerate(_RULES)}
_ERRNO: Final = re.compile(r"\[Errno (\d+)\]")
#: ASCII digits to ``0`` in UTF-8 bytes (no other character's encoding holds those bytes)
_ZEROS: Final = bytes.maketrans(b"123456789", b"000000000")
_CACHE: OrderedDict[bytes | tuple[bytes | str, ...], str] = OrderedDict()
_CACHE_MAX: Final = 4_096
_SPACE: Final = re.compile(r"\s+")


def _placeholder(match: re.Match[str]) -> str:
    return _PLACEHOLDER[match.lastgroup or ""]


def normalize_message(text: str) -> str:
    """``text`` with its variable parts as placeholders, whitespace collapsed, at most
    ``MESSAGE_MAX`` characters. An errno stays (``[Errno 28]`` and ``[Errno 2]`` differ).

    Every rule treats all digits alike, so the result depends only on the text with each
    digit made ``0`` (and the errno): results are cached by that skeleton (its UTF-8 bytes
    with the ASCII digits made ``0``: a bytes translation, ~20x faster than a regex
    substitution), and the messages of one cause, which differ in their numbers, are
    normalised once."""
    skeleton = text.encode("utf-8", "surrogatepass").translate(_ZEROS)
    if "[Errno" in text:
        errnos: list[str] = _ERRNO.findall(text)
        key: bytes | tuple[bytes | str, ...] = (skeleton, *errnos)
    else:
        errnos, key = [], skeleton
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    out = _normalize(text, errnos)
    _CACHE[key] = out
    if len(_CACHE) > _CACHE_MAX:
        with contextlib.suppress(KeyError):  # another thread evicted it first
            _CACHE.popitem(last=False)
    return out


def _normalize(text: str, errnos: list[str]) -> str:
    out = _ERRNO.sub("[Errno]", text) if errnos else text
    out = _ALL.sub(_placeholder, out)
    for number in errnos:
        out = out.replace("[Errno]", f"[Errno {number}]", 1)
    out = _SPACE.sub(" ", out).strip()
    return out[:MESSAGE_MAX]
