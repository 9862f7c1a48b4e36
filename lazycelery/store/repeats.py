"""A store error said once, not on every retry: a notice that repeats one already said (the
same words, whatever its numbers) is counted instead, and the count is said as one line when
the store works again, when the writer stops, or at the next repeat ``every`` seconds later.

A store that refuses every batch (a dropped table, a corrupt file) made two lines a batch, many
a second: ``relation "tasks" does not exist; 1 event not recorded (gap recorded)``."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = ["SUMMARY_EVERY", "Repeats", "notice_key"]

#: seconds between two summaries of a notice that keeps repeating
SUMMARY_EVERY: Final = 60.0

_NUMBER: Final = re.compile(r"\d[\d,.]*")
_PLURAL: Final = re.compile(r"(# [a-z]+?)s\b")


def notice_key(text: str) -> str:
    """What makes two notices the same one: their words, numbers left out (``1 event`` and
    ``12 events`` are the same notice)."""
    return _PLURAL.sub(r"\1", _NUMBER.sub("#", text))


@dataclass
class _Seen:
    first: float  # when it was last said in full
    latest: str  # its latest text, said or not
    unsaid: int = 0  # repeats since it was said


class Repeats:
    """Says notices through ``say``, each repeat of one already said counted instead (thread
    safe: the ingest thread and the writer thread both report)."""

    def __init__(self, say: Callable[[str], None], *, every: float = SUMMARY_EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.say = say
        self.every = every
        self.clock = clock
        self._seen: dict[str, _Seen] = {}
        self._lock = threading.Lock()

    @property
    def pending(self) -> bool:
        """Some repeats have not been said yet (cheap: read without the lock)."""
        return bool(self._seen)

    def __call__(self, text: str) -> None:
        key = notice_key(text)
        now = self.clock()
        out: list[str] = []
        with self._lock:
            seen = self._seen.get(key)
            if seen is None:
                self._seen[key] = _Seen(now, text)
                out.append(text)
            elif now - seen.first >= self.every:  # still repeating: a summary, then on
                out.append(_summary(text, seen.unsaid + 1, now - seen.first))
                self._seen[key] = _Seen(now, text)
            else:
                seen.unsaid += 1
                seen.latest = text
        for line in out:
            self.say(line)

    def flush(self) -> None:
        """Say the repeats not said yet, and forget every notice (the store works again, or
        the writer stops): the next failure is said in full."""
        now = self.clock()
        with self._lock:
            out = [_summary(seen.latest, seen.unsaid, now - seen.first)
                   for seen in self._seen.values() if seen.unsaid]
            self._seen.clear()
        for line in out:
            self.say(line)


def _summary(text: str, times: int, seconds: float) -> str:
    return f"{text} (repeated {times} time{'s' if times != 1 else ''} in {seconds:.0f} s)"
