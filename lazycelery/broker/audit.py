"""Audit records for queue actions; delegates to ``lazycelery.core.audit`` so there is one log format."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["record"]


def record(action: str, targets: Sequence[str], result: Mapping[str, Any],
           environment: str | None) -> None:
    """Append one JSON line (time, user, host, environment, action, targets, result).

    Raises ``OSError`` when the log cannot be written; the caller decides how loud to be.
    """
    from lazycelery.core import audit

    audit.record(action, targets, result, environment)
