"""Running the dashboard for real settings: the index, the ingest thread, the queue monitor, the
operator's actions and reconciler, wired to a ``Dashboard``; and ``plugins --check``, which
mounts and draws every plugin pane offscreen."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from lazycelery.core.index import TaskIndex
from lazycelery.errors import LazyCeleryError
from lazycelery.tui.app import Dashboard
from lazycelery.tui.plugins import PluginInfo, Selection, discover
from lazycelery.tui.screen.history import HistorySource
from lazycelery.tui.screen.sources import DashboardInfo, QueueMonitorLike

if TYPE_CHECKING:
    from lazycelery.config import Settings

__all__ = ["check_panes", "connect_operator", "history_source", "run_dashboard"]


def _queue_monitor(settings: Settings) -> tuple[QueueMonitorLike | None, str | None]:
    """The queue monitor for the broker, or why there is none (shown in the queues pane)."""
    from lazycelery.broker import open_inspector
    from lazycelery.broker.monitor import QueueMonitor
    from lazycelery.broker.workers import worker_probe

    try:
        inspector = open_inspector(settings.broker_url, settings.transport_options,
                                   settings.queues, management_url=settings.management_url,
                                   dead_letter=settings.dead_letter, ssl_options=settings.broker_ssl())
    except LazyCeleryError as exc:
        return None, str(exc)
    # the workers the broker lists, by name (RabbitMQ without its API: a read-only inspect)
    return QueueMonitor(inspector, interval=1.0,
                        workers=worker_probe(settings.celery_app, inspector)), None


def connect_operator(d: Dashboard, settings: Settings, monitor: object | None) -> None:
    """Give the dashboard its actions (scoped, guarded, audited), the broker's purge and the
    reconciler. A cluster app that cannot be built leaves the dashboard read-only in effect,
    saying why when an action is asked for."""
    from lazycelery.broker.monitor import QueueMonitor
    from lazycelery.core.actions import Actions
    from lazycelery.core.reconcile import Reconciler
    from lazycelery.policies.runtime import routing
    from lazycelery.store.audit import store_sink

    try:
        app = settings.celery_app()
        actions = Actions.from_settings(settings, index=d.index,
                                        audit_sink=store_sink(settings.store_url))
        actions.route = routing(settings)  # [[policies.route]]: where retries and replays go
    except LazyCeleryError as exc:
        d.operator.unavailable = f"unavailable: {exc}"
        return
    from lazycelery.mask.settings import masker_for

    # its own masker with the same rules: the values the result backend gives are masked too
    reconciler = Reconciler(d.index, app, on_report=d.operator.on_reconcile_report,
                            masker=masker_for(settings, save_counts=False))
    queue_ops = monitor.inspector if isinstance(monitor, QueueMonitor) else None
    on_purged = monitor.wake if isinstance(monitor, QueueMonitor) else None
    d.operator.attach(actions, queue_ops=queue_ops, reconciler=reconciler, on_purged=on_purged)
    d.operator.restart_command = settings.restart
    d.screen.charts.sla = settings.sla
    # the peek overlay masks arguments with the configured rules, as the CLI's peek does
    d.screen.peek.masker = masker_for(settings, save_counts=False)


def history_source(settings: Settings, index: TaskIndex) -> HistorySource | None:
    """The history reader for the store in use: ``--store``, ``$LAZYCELERY_STORE`` or the
    environment's ``store``; the default SQLite file only if a recorder has created it (the
    dashboard says nothing of a store nobody records into)."""
    from lazycelery.store import default_store_path, default_store_url

    if settings.store_url:
        return HistorySource(settings.store_url, index)
    if not default_store_path().exists():  # a stat, not a database call
        return None
    return HistorySource(default_store_url(), index, quiet_missing=True)


def run_dashboard(settings: Settings, *, no_plugins: bool = False, otel: bool = False) -> int:
    """Build the index, the ingest thread and the queue monitor, and run the dashboard."""
    import argparse
    import sys

    from lazycelery.core.ingest import Ingestor
    from lazycelery.mask.settings import masker_for
    from lazycelery.otel.hook import start_tracing, stop_tracing

    index = TaskIndex(max_tasks=settings.max_tasks)
    masker = masker_for(settings)
    monitor, unavailable = _queue_monitor(settings)
    info = DashboardInfo(broker=settings.masked_broker(), env_name=settings.env_name,
                         read_only=settings.read_only, queues_unavailable=unavailable)
    plugins = discover(Selection.from_environment(no_plugins=no_plugins))
    dashboard = Dashboard(index, info=info, keys=settings.keys, color=not settings.no_color,
                          plugins=plugins, settings=settings,
                          history=history_source(settings, index))
    # --otel: the exporter's lines are flashed at start; later ones (and the summary) go to
    # stderr once the screen is gone
    otel_notes: list[str] = []
    tracing = start_tracing(argparse.Namespace(otel=otel), settings, otel_notes.append)
    # wakeup=False: the wakeup is a `heartbeat` broadcast to every worker on the broker;
    # workers appear with their next regular heartbeat (2 s by default) instead.
    ingestor = Ingestor(
        settings.broker_url, index, mode=settings.ingest, read_ahead=settings.read_ahead,
        app=settings.celery_app() if settings.app_spec else None,
        transport_options=settings.transport_options,
        on_batch=dashboard.on_batch if tracing is None else tracing.tee(dashboard.on_batch),
        on_status=dashboard.on_status, wakeup=False, masker=masker,
    )
    dashboard.attach(ingestor, monitor)
    connect_operator(dashboard, settings, monitor)
    shown = len(otel_notes)
    for note in (*settings.notes, *(f"mask rule skipped: {p}" for p in masker.problems),
                 *otel_notes[:shown]):
        dashboard.ui.flash(note, seconds=8.0)
    try:
        return dashboard.run_app()
    finally:
        stop_tracing(tracing, otel_notes.append)
        for note in otel_notes[shown:]:
            print(f"lazycelery: {note}", file=sys.stderr)


def check_panes(infos: Sequence[PluginInfo], settings: Settings | None = None) -> None:
    """Mount the loaded plugin panes in an offscreen dashboard and draw each once, so that
    failures in ``create``, ``refresh`` or rendering show in ``infos`` (``plugins --check``)."""
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.layout.mouse_handlers import MouseHandlers
    from prompt_toolkit.layout.screen import Screen, WritePosition
    from prompt_toolkit.output import DummyOutput

    with create_pipe_input() as pipe:
        d = Dashboard(TaskIndex(), input=pipe, output=DummyOutput(), plugins=infos,
                      settings=settings, refresh_interval=None)
        try:
            columns, rows = d.terminal_size()
            for name in d.plugins.names:
                d.screen.focus_pane(name)
                d.pull()
                screen = Screen(initial_width=columns, initial_height=rows)
                d.layout.container.write_to_screen(
                    screen, MouseHandlers(), WritePosition(0, 0, columns, rows),
                    parent_style="", erase_bg=False, z_index=None)
        finally:
            d.shutdown()
