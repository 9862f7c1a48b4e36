"""The audit log: one JSON line per action that changed a cluster, appended, never rewritten.

With a history store configured, each entry also goes into the store's ``audit`` table (an
``AuditSink`` given by a layer that knows the store: ``lazycelery.store.audit``); the file is
always written first."""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import msgspec

__all__ = ["AUDIT_ENV", "AuditEntry", "AuditSink", "decode", "default_path", "encode", "read",
           "record"]

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


_decoder = msgspec.json.Decoder(AuditEntry)

#: Where else an entry goes once the file has it (the history store); raises on failure.
AuditSink = Callable[[AuditEntry], None]


def encode(entry: AuditEntry) -> bytes:
    """The entry's JSON line (without the newline): the same bytes in the file and the store."""
    return _encoder.encode(entry)


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
    line = encode(entry) + b"\n"
    target = path or default_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with _write_lock:
        # Owner-only: targets and replies can name internal hosts and task ids.
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    return entry


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
