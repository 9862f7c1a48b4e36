"""The dashboard attached to a ``lazycelery serve`` (``--server URL``): events, tasks and
workers from the server's /api/v1 snapshot and stream, queue depths from its /api/v1/queues.
The broker sees one subscriber however many dashboards are attached (serve's).

Actions are not forwarded yet: the operator answers with one line pointing at the server's
HTTP action endpoints (operator token)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lazycelery.core.index import TaskIndex
from lazycelery.tui.app import Dashboard
from lazycelery.tui.plugins import Selection, discover
from lazycelery.tui.screen.sources import DashboardInfo

if TYPE_CHECKING:
    from lazycelery.config import Settings

__all__ = ["NO_ACTIONS", "run_remote_dashboard"]

NO_ACTIONS = ("not available with --server: use the server's HTTP actions "
              "(POST /api/task/revoke/<id> ... with an operator token; docs/remote.md)")


def run_remote_dashboard(settings: Settings, server: str, token: str | None, *,
                         no_plugins: bool = False) -> int:
    from lazycelery.core.ingest_remote import RemoteIngestor, probe
    from lazycelery.core.queues_remote import RemoteQueues
    from lazycelery.urls import mask_url

    role = probe(server, token)
    index = TaskIndex(max_tasks=settings.max_tasks)
    info = DashboardInfo(broker=f"{mask_url(server)} ({role})", env_name=settings.env_name,
                         read_only=True)
    dashboard = Dashboard(index, info=info, keys=settings.keys, color=not settings.no_color,
                          plugins=discover(Selection.from_environment(no_plugins=no_plugins)),
                          settings=settings)
    ingestor = RemoteIngestor(server, index, token=token, on_batch=dashboard.on_batch,
                              on_status=dashboard.on_status,
                              on_snapshot=lambda records: dashboard.on_batch([], records))
    dashboard.attach(ingestor, RemoteQueues(server, token=token))
    dashboard.operator.unavailable = NO_ACTIONS
    return dashboard.run_app()
