"""Value patterns: secrets recognised by what they look like wherever they appear (card numbers
that pass the Luhn check, bearer tokens, JWTs, PEM private keys, AWS access keys, passwords in
URLs, e-mail addresses), and the user's own regular expressions."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = ["BUILTIN", "DEFAULT_PATTERNS", "ValuePattern", "luhn_ok", "scan"]


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies (separators ignored)."""
    total = 0
    numbers = [ord(c) - 48 for c in digits if "0" <= c <= "9"]
    for position, digit in enumerate(reversed(numbers)):
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return bool(numbers) and total % 10 == 0


@dataclass(frozen=True)
class ValuePattern:
    """One rule that finds secrets in text; ``check`` confirms a match (Luhn for cards)."""

    name: str
    regex: re.Pattern[str]
    check: Callable[[str], bool] | None = None
    #: a cheap regex every match contains (the ingest pre-check); None: ``regex`` itself
    anchor: str | None = None

    @property
    def rule(self) -> str:
        return f"pattern:{self.name}"


# Card numbers: 13 to 19 digits, optionally in groups split by a space or a dash, starting with a
# 2 to 6 (the issuers' ranges: a millisecond timestamp starts with 1), Luhn-valid.
_CARD: Final = r"(?<![\d.])[2-6]\d{3}(?:[ -]?\d){9,15}(?![\d.])"

#: the built-in patterns by name; ``email`` is off unless named in ``patterns``
BUILTIN: Final[dict[str, ValuePattern]] = {
    p.name: p for p in (
        ValuePattern("card", re.compile(_CARD), luhn_ok, r"[2-6]\d{3}[ -]?\d"),
        ValuePattern("bearer", re.compile(r"\b(?i:bearer)\s+[A-Za-z0-9\-._~+/]{8,}=*"),
                     anchor=r"[Bb][Ee][Aa][Rr][Ee][Rr]\s"),
        ValuePattern("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\."
                                       r"[A-Za-z0-9_-]*"), anchor="eyJ"),
        ValuePattern("private_key", re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY-----"
            r"|.*)", re.DOTALL), anchor="PRIVATE KEY-----"),
        ValuePattern("aws_key", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b"),
                     anchor=r"A[KSGIR][IOP]A[0-9A-Z]{16}"),
        ValuePattern("url_password", re.compile(
            r"\b[A-Za-z][A-Za-z0-9+.-]{1,20}://[^\s/:@'\"]*:[^\s/@'\"]+@"), anchor="://"),
        ValuePattern("email", re.compile(
            r"\b[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,}\b"),
            anchor="@"),
    )
}
#: the patterns on when the config does not name them
DEFAULT_PATTERNS: Final = ("card", "bearer", "jwt", "private_key", "aws_key", "url_password")


def scan(text: str, patterns: Sequence[ValuePattern],
         trigger: re.Pattern[str] | None) -> list[tuple[int, int, str]]:
    """The spans of ``text`` the patterns find, as (start, end, rule), sorted, not overlapping.
    ``trigger`` is all the patterns in one regex: when it finds nothing, nothing is scanned."""
    if trigger is not None and trigger.search(text) is None:
        return []
    spans: list[tuple[int, int, str]] = []
    for pattern in patterns:
        check = pattern.check
        for match in pattern.regex.finditer(text):
            if check is None or check(match.group()):
                spans.append((match.start(), match.end(), pattern.rule))
    if len(spans) < 2:
        return spans
    spans.sort()
    merged = [spans[0]]
    for start, end, rule in spans[1:]:
        last = merged[-1]
        if start < last[1]:
            merged[-1] = (last[0], max(last[1], end), last[2])
        else:
            merged.append((start, end, rule))
    return merged
