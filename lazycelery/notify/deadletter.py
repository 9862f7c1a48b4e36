"""The dead-letter file: notifications a channel could not take after its retries, one JSON
object a line (NDJSON), kept until delivered again (on the next start, periodically, or by
``lazycelery notify dead-letters --retry``).

Appends and rewrites hold an advisory lock on the file (POSIX), so a recorder and the CLI
retrying at the same time do not lose each other's lines; delivery is at least once (a letter
leaves the file only after it was delivered)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import msgspec

from lazycelery.notify.message import Notification

__all__ = ["DeadLetter", "DeadLetterFile", "default_path"]


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """One undelivered notification for one channel."""

    version: int = 1
    #: the delivery id (the same on every later attempt: receivers deduplicate on it)
    id: str
    channel: str
    notification: Notification
    #: unix time of the last failed attempt
    failed: float
    #: attempts made so far, over every try
    attempts: int
    #: why the last attempt failed (one line, no secret)
    error: str


def default_path() -> Path:
    """``notify-dead-letters.ndjson`` in the platform's user state directory."""
    import platformdirs

    return platformdirs.user_state_path("lazycelery", appauthor=False) / \
        "notify-dead-letters.ndjson"


@contextlib.contextmanager
def _locked(handle: IO[bytes]) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: one process at a time is the user's business
        yield
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class DeadLetterFile:
    """Append, read and rewrite the NDJSON file at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(DeadLetter)

    def append(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = b"".join(self._encoder.encode(letter) + b"\n" for letter in letters)
        with open(self.path, "ab") as handle, _locked(handle):
            handle.write(data)
            handle.flush()  # before the lock is released, not when the file closes

    def read(self) -> tuple[list[DeadLetter], int]:
        """The letters, and how many lines could not be read (kept as they are by ``take``)."""
        letters, bad = self._parse(self._lines())
        return letters, len(bad)

    def _lines(self) -> list[bytes]:
        try:
            return self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return []

    def _parse(self, lines: list[bytes]) -> tuple[list[DeadLetter], list[bytes]]:
        letters: list[DeadLetter] = []
        bad: list[bytes] = []
        for line in lines:
            if not line.strip():
                continue
            try:
                letters.append(self._decoder.decode(line))
            except msgspec.DecodeError:
                bad.append(line)
        return letters, bad

    def settle(self, delivered: set[tuple[str, str]],
               still_failing: Sequence[DeadLetter] = ()) -> None:
        """Drop the letters delivered again (by ``(id, channel)``) and update the ones that
        failed again, re-reading the file under the lock so that lines appended meanwhile (by
        this or another process) stay. A crash before this only means a second delivery of
        the same id, which receivers deduplicate on: never a loss."""
        if not self.path.exists():
            return
        updated = {(letter.id, letter.channel): letter for letter in still_failing}
        with open(self.path, "r+b") as handle, _locked(handle):
            lines = handle.read().splitlines()
            kept: list[bytes] = []
            for line in lines:
                if not line.strip():
                    continue
                try:
                    letter = self._decoder.decode(line)
                except msgspec.DecodeError:
                    kept.append(line)  # not ours to judge: left for a human
                    continue
                key = (letter.id, letter.channel)
                if key in delivered:
                    continue
                kept.append(self._encoder.encode(updated[key]) if key in updated else line)
            # in place (same inode): an appender waiting on the lock writes after this
            handle.seek(0)
            handle.truncate()
            handle.write(b"".join(line + b"\n" for line in kept))
            handle.flush()
            os.fsync(handle.fileno())
