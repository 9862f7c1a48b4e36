"""Trace and span ids derived from celery task ids, and W3C ``traceparent`` parsing.

A celery task id is a UUID (128 bits), so the trace of a workflow is its root task id read as a
number (paste a root task id without dashes into Jaeger's trace search) and a task's span id is
the last 64 bits of its own id. A retried task's earlier attempts get ids hashed from
``(task id, attempt)``; a custom task id that is not a UUID is hashed too. Nothing random: every
recorder (and every run) names the same task with the same ids.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Final, NamedTuple

__all__ = ["ParentContext", "attempt_span_id", "parse_traceparent", "span_id_of", "trace_id_of"]

_MASK64: Final = (1 << 64) - 1
_TRACEPARENT: Final = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


class ParentContext(NamedTuple):
    """A remote span the task's span is a child of (from a ``traceparent``)."""

    trace_id: int
    span_id: int
    sampled: bool


def _hashed(text: str, bits: int) -> int:
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=bits // 8).digest()
    return int.from_bytes(digest, "big") or 1  # an id of 0 is invalid


def _uuid_int(task_id: str) -> int | None:
    if len(task_id) != 36:
        return None
    try:
        return uuid.UUID(task_id).int
    except ValueError:
        return None


def trace_id_of(root_id: str) -> int:
    """The 128-bit trace id of the workflow whose root task is ``root_id``."""
    value = _uuid_int(root_id)
    return value if value else _hashed(f"trace:{root_id}", 128)


def span_id_of(task_id: str) -> int:
    """The 64-bit span id of a task's (last) attempt."""
    value = _uuid_int(task_id)
    if value is not None and value & _MASK64:
        return value & _MASK64
    return _hashed(f"span:{task_id}", 64)


def attempt_span_id(task_id: str, attempt: int) -> int:
    """The span id of an attempt that was retried (the last attempt has ``span_id_of``)."""
    return _hashed(f"span:{task_id}:{attempt}", 64)


def parse_traceparent(value: object) -> ParentContext | None:
    """A W3C ``traceparent`` header (``00-<trace>-<span>-<flags>``), None when malformed."""
    if not isinstance(value, str) or len(value) > 128:
        return None
    match = _TRACEPARENT.match(value.strip().lower())
    if match is None or match.group(1) == "ff":
        return None
    trace_id, span_id = int(match.group(2), 16), int(match.group(3), 16)
    if not trace_id or not span_id:
        return None
    return ParentContext(trace_id, span_id, bool(int(match.group(4), 16) & 1))
