"""The audit log: one JSON line per action that changed a cluster, appended, never rewritten.

Tamper-evident: each line carries ``prev``, the SHA-256 of the line before it (the first
line: ``GENESIS``), computed under an exclusive ``flock`` so that processes appending at once
still form one chain. Editing, inserting or deleting a line breaks the chain at the next line;
``verify`` finds where. (Cutting lines off the end leaves a valid, shorter chain: compare the
last hash ``lazycelery audit verify`` prints with one kept elsewhere, or with the store's copy.)

With a history store configured, each entry also goes into the store's ``audit`` table (an
``AuditSink`` given by a layer that knows the store: ``lazycelery.store.audit``); the file is
always written first."""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import os
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import msgspec

__all__ = ["AUDIT_ENV", "GENESIS", "AuditEntry", "AuditSink", "ChainReport", "current_user", "decode",
           "default_path", "encode", "line_hash", "read", "record", "verify"]

#: Environment variable naming another audit file (tests, or a shared location).
AUDIT_ENV = "LAZYCELERY_AUDIT_LOG"

# One append per line from this process; O_APPEND makes lines from other processes land whole
# too (each line is written with a single write() call).
_write_lock = threading.Lock()
_encoder = msgspec.json.Encoder()


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One audit line: who did what to which cluster, and what came back."""

    time: str
    user: str
    host: str
    environment: str
    action: str
    targets: list[str]
    result: dict[str, Any]
    #: SHA-256 (hex) of the previous line as written; ``GENESIS`` on a file's first line; None
    #: on lines written before the chain existed
    prev: str | None = None


#: ``prev`` of a file's first line.
GENESIS: str = "0" * 64
#: How far back from the end of the file the last line is looked for (lines are far shorter).
_TAIL_READ = 1 << 20


_decoder = msgspec.json.Decoder(AuditEntry)

#: Where else an entry goes once the file has it (the history store); raises on failure.
AuditSink = Callable[[AuditEntry], None]


def encode(entry: AuditEntry) -> bytes:
    """The entry's JSON line (without the newline): the same bytes in the file and the store."""
    return _encoder.encode(entry)


def line_hash(line: bytes) -> str:
    """The hash the next entry's ``prev`` names: SHA-256 of the line without its newline."""
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def _last_line(fd: int) -> bytes | None:
    """The file's last complete line (without newline), None when the file is empty."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    start = max(0, size - _TAIL_READ)
    data = os.pread(fd, size - start, start).rstrip(b"\n")
    return data.rpartition(b"\n")[2]


def decode(raw: bytes | str) -> AuditEntry | None:
    """An entry back from its JSON line; None if it is not one."""
    try:
        return _decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def default_path() -> Path:
    """``$LAZYCELERY_AUDIT_LOG``, else ``audit.log`` in platformdirs' user state directory."""
    override = os.environ.get(AUDIT_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return platformdirs.user_state_path("lazycelery", appauthor=False) / "audit.log"


def current_user() -> str:
    """The OS user this process runs as (the ``user`` of an entry written without one)."""
    return _user()


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in a container, no USER variable
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def record(
    action: str,
    targets: Sequence[str],
    result: Mapping[str, Any],
    environment: str | None,
    *,
    path: Path | None = None,
    user: str | None = None,
) -> AuditEntry:
    """Append one line and return it. ``result`` must be JSON-able (an ``ActionResult.to_json()``).

    Raises ``OSError`` when the file cannot be written: an action that cannot be audited should
    be reported, not silently forgotten. ``user`` names who asked when it is not this process's
    OS user (an HTTP API caller: ``api:user:alice (as lc)``).
    """
    entry = AuditEntry(
        time=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        user=_user() if user is None else f"{user} (as {_user()})",
        host=socket.gethostname(),
        environment=environment or "-",
        action=action,
        targets=list(targets),
        result=dict(result),
    )
    target = path or default_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with _write_lock:
        # Owner-only: targets and replies can name internal hosts and task ids.
        fd = os.open(target, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            _lock(fd)  # other processes append to the same chain: read the last line and
            last = _last_line(fd)  # write ours under one lock (released by close)
            entry = msgspec.structs.replace(
                entry, prev=GENESIS if last is None else line_hash(last))
            os.write(fd, encode(entry) + b"\n")
        finally:
            os.close(fd)
    return entry


def _lock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # not POSIX: this process's lock only
        return
    fcntl.flock(fd, fcntl.LOCK_EX)


class ChainReport(msgspec.Struct, frozen=True, kw_only=True):
    """What ``verify`` found: entries read, legacy (unchained) lines before the chain, the
    first break (1-based line number and why), and the last line's hash."""

    entries: int
    unchained: int
    broken_at: int | None
    problem: str | None
    last_hash: str | None

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def verify(path: Path | None = None) -> ChainReport:
    """Check every line's ``prev`` against the line before it."""
    target = path or default_path()
    try:
        raw_lines = target.read_bytes().splitlines()
    except FileNotFoundError:
        raw_lines = []
    previous: bytes | None = None
    unchained = 0
    chained = False
    for number, raw in enumerate(raw_lines, start=1):
        entry = decode(raw)
        problem = None
        if entry is None:
            problem = "not an audit entry (edited or damaged)"
        elif entry.prev is None:
            if chained:
                problem = "no hash link after the chain began (line inserted or edited)"
            else:
                unchained += 1
        else:
            expected = GENESIS if previous is None else line_hash(previous)
            if entry.prev != expected:
                problem = ("the line before it was changed or removed" if number > 1
                           else "the first line does not start the chain")
            chained = True
        if problem is not None:
            return ChainReport(entries=len(raw_lines), unchained=unchained, broken_at=number,
                               problem=problem, last_hash=None)
        previous = raw
    return ChainReport(entries=len(raw_lines), unchained=unchained, broken_at=None,
                       problem=None,
                       last_hash=None if previous is None else line_hash(previous))


def read(path: Path | None = None, limit: int | None = None) -> list[AuditEntry]:
    """The last ``limit`` entries (all when None), oldest first; unreadable lines are skipped."""
    target = path or default_path()
    try:
        stream = target.open("rb")
    except FileNotFoundError:
        return []
    with stream:
        lines: Iterator[bytes] = iter(stream)
        tail: deque[bytes] = deque(lines, maxlen=limit) if limit is not None else deque(lines)
    entries: list[AuditEntry] = []
    for raw in tail:
        with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
            entries.append(_decoder.decode(raw))
    return entries
