"""A task's workflow read from a ``lazycelery serve`` (``--server URL``): the tree
(``GET /api/v1/tasks/ID/tree``, what ``lazycelery task tree ID --server`` prints) and the
result backend's links (``GET /api/v1/tasks/ID/links``: group ids, parents, children, what the
dashboard's ``W`` puts in the detail's Family section). Only serve reads its result backend;
both are reads (any token role, allowed read-only). Failures are one ``ActionError`` line; httpx
is imported on the first call."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from lazycelery.core.action_result import ActionError
from lazycelery.urls import error_line, mask_url

__all__ = ["RemoteWorkflow", "WorkflowLinks"]

DEFAULT_TIMEOUT: Final = 30.0


@dataclass(frozen=True)
class WorkflowLinks:
    """What the result backend links to one task: a trimmed meta per task id (``link_meta``),
    how many tasks the workflow has, and what limited the read (no backend, ...)."""

    metas: dict[str, Mapping[str, Any]]
    count: int
    note: str | None = None


class RemoteWorkflow:
    """The workflow reads of one serve, with one token."""

    def __init__(self, server: str, token: str | None, *, timeout: float = DEFAULT_TIMEOUT,
                 verify: bool | str = True) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.verify = verify
        self.label = mask_url(self.server)

    def _get(self, what: str, task_id: str, leaf: str) -> dict[str, Any]:
        try:
            import httpx
        except ImportError:
            raise ActionError(f"{what}: --server needs httpx: pip install "
                              "'lazycelery[remote]'") from None
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        url = f"{self.server}/api/v1/tasks/{quote(task_id, safe='')}/{leaf}"
        try:
            response = httpx.get(url, headers=headers, timeout=self.timeout, verify=self.verify)
            body = response.json()
        except httpx.HTTPError as exc:
            raise ActionError(f"{what}: cannot read {self.label}: "
                              f"{error_line(exc, limit=200)}") from None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ActionError(f"{what}: {self.label} answered {response.status_code} without "
                              "JSON: is it a lazycelery serve (new enough)?")
        if response.status_code == 200:
            return body
        reason = str(body.get("error") or f"status {response.status_code}")[:300]
        if response.status_code == 401:
            raise ActionError(f"{what}: serve refused the credentials ({reason}): pass a token "
                              "with --token or $LAZYCELERY_TOKEN")
        if response.status_code == 404:
            raise ActionError(f"{what}: {task_id}: {reason} at {self.label}")
        raise ActionError(f"{what}: serve answered {response.status_code}: {reason}")

    def tree(self, task_id: str) -> dict[str, Any]:
        """``lazycelery task tree ID --json``'s document, as serve builds it (its index, its
        history store, its result backend)."""
        return self._get("task tree", task_id, "tree")

    def links(self, task_id: str) -> WorkflowLinks:
        """The result backend's links of the workflow ``task_id`` belongs to, read by serve."""
        body = self._get("workflow", task_id, "links")
        raw = body.get("links")
        metas = {str(k): v for k, v in raw.items() if isinstance(v, Mapping)} \
            if isinstance(raw, Mapping) else {}
        count = body.get("count")
        note = body.get("note")
        return WorkflowLinks(metas, count if isinstance(count, int) else len(metas),
                             str(note) if note else None)
