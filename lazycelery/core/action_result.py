"""What an operator action did (each worker's reply, who did not answer, what was refused) and
the errors that stop one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lazycelery.errors import LazyCeleryError

__all__ = ["ActionError", "ActionResult", "ReadOnlyError", "Reply"]


class ReadOnlyError(LazyCeleryError):
    """An action was refused because lazycelery runs read-only."""

    exit_code = 3


class ActionError(LazyCeleryError):
    """An action could not be carried out (no worker to address, broker unreachable...)."""

    exit_code = 1


@dataclass(frozen=True)
class Reply:
    """One answer: a worker's control reply, or the outcome for one task of a retry."""

    ok: bool
    text: str


@dataclass(frozen=True)
class ActionResult:
    """What an action did. ``replies`` is keyed by worker (control) or task id (retry);
    ``missing`` are the workers addressed that did not answer within the timeout."""

    action: str
    targets: tuple[str, ...]
    ok: bool
    replies: Mapping[str, Reply] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    message: str = ""
    #: retry: original task id -> id of the new run
    created: Mapping[str, str] = field(default_factory=dict)
    #: targets nothing was done for, and why
    refused: Mapping[str, str] = field(default_factory=dict)
    #: the audit line could not be written (the action itself happened)
    audit_error: str | None = None
    #: purge: how many messages were removed
    count: int | None = None
    #: tasks whose record this action changed in the index (PURGED, or REVOKED once confirmed)
    marked: tuple[str, ...] = ()
    #: the command's options beyond its targets (a pool restart's modules and reload, a
    #: consumer's exchange and routing key): in the audit line
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ok": self.ok,
            "message": self.message,
            "replies": {k: {"ok": r.ok, "text": r.text} for k, r in self.replies.items()},
            "missing": list(self.missing),
        }
        if self.created:
            out["created"] = dict(self.created)
        if self.refused:
            out["refused"] = dict(self.refused)
        if self.count is not None:
            out["count"] = self.count
        if self.marked:
            out["marked"] = list(self.marked)
        if self.options:
            out["options"] = dict(self.options)
        return out

    def lines(self) -> list[str]:
        """Human-readable: the message, then one line per reply, missing worker and refusal."""
        width = max((len(k) for k in (*self.replies, *self.missing, *self.refused)), default=0)
        out = [f"{self.action}: {self.message}"]
        out.extend(
            f"  {key:<{width}}  {'ok   ' if reply.ok else 'error'}  {reply.text}"
            for key, reply in self.replies.items()
        )
        out.extend(f"  {host:<{width}}  error  no reply (timed out)" for host in self.missing)
        out.extend(f"  {key:<{width}}  skip   {why}" for key, why in self.refused.items())
        if self.audit_error:
            out.append(f"  warning: audit log not written ({self.audit_error})")
        return out
