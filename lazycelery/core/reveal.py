"""Revealing a task's real arguments (masked at ingest, docs/masking.md): an operator action,
refused in read-only mode and audited (the audit line says that it was revealed, never what).
The values come from the result backend at the moment of the action."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lazycelery.core import audit
from lazycelery.core.actions import guard
from lazycelery.core.reconcile import NoResultBackend, fetch_metas
from lazycelery.urls import error_line

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["ACTION", "Revealed", "reveal"]

ACTION = "reveal"


@dataclass(frozen=True)
class Revealed:
    """The real values of one task (reprs), or why there are none (``reason``)."""

    uuid: str
    fields: Mapping[str, str]
    reason: str | None = None
    audit_error: str | None = None


def _repr(value: Any) -> str:
    from celery.utils.saferepr import saferepr

    return str(saferepr(value, 4096))


def reveal(app: Celery, task_id: str, *, read_only: bool, environment: str | None,
           audit_path: Path | None = None, user: str | None = None,
           audit_sink: audit.AuditSink | None = None) -> Revealed:
    """The task's args, kwargs and result from the result backend; ``ReadOnlyError`` in
    read-only mode. Every call is audited, found or not (as ``user``: serve's API caller;
    also into ``audit_sink``, the history store)."""
    guard(read_only, ACTION)
    fields: dict[str, str] = {}
    reason: str | None = None
    try:
        meta = fetch_metas(app, [task_id]).get(task_id) or {}
    except NoResultBackend as exc:
        meta, reason = {}, str(exc)
    except Exception as exc:
        meta, reason = {}, f"result backend: {error_line(exc)}"
    if meta.get("args") is not None:
        fields["args"] = _repr(tuple(meta["args"]) if isinstance(meta["args"], list)
                               else meta["args"])
        fields["kwargs"] = _repr(meta.get("kwargs") or {})
    if meta.get("status") == "SUCCESS":
        fields["result"] = _repr(meta.get("result"))
    if not fields and reason is None:
        reason = ("the result backend has no args for this task (the worker needs "
                  "result_extended=True, or the result expired)")
    outcome = {"ok": bool(fields), "message": reason or f"revealed: {', '.join(fields)}"}
    audit_error = None
    try:
        entry = audit.record(ACTION, [task_id], outcome, environment, path=audit_path,
                             user=user)
    except OSError as exc:
        audit_error = str(exc)
    else:
        if audit_sink is not None:
            try:
                audit_sink(entry)
            except Exception as exc:  # the file has it: say the store does not
                audit_error = f"in the file, not in the store: {error_line(exc)}"
    return Revealed(task_id, fields, reason, audit_error)
