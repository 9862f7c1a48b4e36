"""The dashboard attached to a ``lazycelery serve`` (``--server URL``): events, tasks and
workers from the server's /api/v1 snapshot and stream, queue depths from its /api/v1/queues.
The broker sees one subscriber however many dashboards are attached (serve's).

Actions are forwarded to the server (``core.actions_remote``): the same dialogs and dry runs
(asked of the server, which alone has the tasks' real args), then a POST to its
``/api/v1/actions``; the server checks the role and its own --read-only and audits with the
token's name. A viewer token gets no actions: the dashboard is read-only and says why. The
workflow links (``W``) are a read: serve reads its result backend for any token role."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lazycelery.core.index import TaskIndex
from lazycelery.tui.app import Dashboard
from lazycelery.tui.plugins import Selection, discover
from lazycelery.tui.screen.sources import DashboardInfo

if TYPE_CHECKING:
    from lazycelery.config import Settings

__all__ = ["connect_remote_operator", "run_remote_dashboard", "viewer_refusal"]


def viewer_refusal(label: str, role: str) -> str:
    """Why a token without the operator role cannot act (said when an action is asked)."""
    return (f"refused: the token's role at {label} is {role}; actions need an operator token "
            "(--token or $LAZYCELERY_TOKEN; docs/remote.md)")


def connect_remote_operator(dashboard: Dashboard, server: str, token: str | None, role: str, *,
                            read_only: bool, server_read_only: bool = False) -> None:
    """Actions forwarded to ``server`` for an operator token; a viewer's dashboard, or one on
    a read-only serve, is read-only with the reason. ``read_only``: this process's
    --read-only (refused here, before sending)."""
    from lazycelery.core.actions_remote import RemoteActions, RemoteQueueOps
    from lazycelery.core.workflow_remote import RemoteWorkflow
    from lazycelery.urls import mask_url

    op = dashboard.operator
    op.read_links = RemoteWorkflow(server, token).links  # a read: any role, read-only too
    if role != "operator":
        op.read_only_reason = viewer_refusal(mask_url(server), role)
        return
    if server_read_only and not read_only:
        op.read_only_reason = (f"refused: {mask_url(server)} runs read-only "
                               "(serve --read-only refuses every action)")
        return
    op.attach(RemoteActions(server, token, read_only=read_only, index=dashboard.index),
              queue_ops=RemoteQueueOps(server, token))
    op.unavailable = ("not available with --server: the server reconciles with its result "
                      "backend (docs/remote.md)")


def run_remote_dashboard(settings: Settings, server: str, token: str | None, *,
                         no_plugins: bool = False) -> int:
    from lazycelery.core.ingest_remote import RemoteIngestor, probe_server
    from lazycelery.core.queues_remote import RemoteQueues
    from lazycelery.urls import mask_url

    role, server_read_only = probe_server(server, token)
    index = TaskIndex(max_tasks=settings.max_tasks)
    info = DashboardInfo(broker=f"{mask_url(server)} ({role})", env_name=settings.env_name,
                         read_only=settings.read_only or server_read_only or role != "operator")
    dashboard = Dashboard(index, info=info, keys=settings.keys, color=not settings.no_color,
                          plugins=discover(Selection.from_environment(no_plugins=no_plugins)),
                          settings=settings)
    ingestor = RemoteIngestor(server, index, token=token, on_batch=dashboard.on_batch,
                              on_status=dashboard.on_status,
                              on_snapshot=lambda records: dashboard.on_batch([], records))
    dashboard.attach(ingestor, RemoteQueues(server, token=token))
    connect_remote_operator(dashboard, server, token, role, read_only=settings.read_only,
                            server_read_only=server_read_only)
    return dashboard.run_app()
