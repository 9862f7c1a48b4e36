"""The dashboard over several environments (``lazycelery --env a --env b``, ``--all-envs``).

One ``Dashboard`` per environment, each on that environment's own index, ingest thread, queue
monitor, actions (read-only or not, audited under its name) and colour; all ingest threads run
all the time (``core.envs.EnvSet``), each feeding its own dashboard, so a switch shows an
up-to-date screen at once. One of them is on the terminal: switching (``E``, the palette's
"environment: NAME", enter in the Clusters pane) leaves its application and runs the other's.
Every pane follows because every pane of the other dashboard reads the other environment.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from prompt_toolkit.layout import Layout, Window

from lazycelery.core.envs import EnvSet, EnvWatch
from lazycelery.core.query import FilterError, compile_filter
from lazycelery.tui.app import Dashboard
from lazycelery.tui.panes.clusters import clusters_info
from lazycelery.tui.plugins import PluginInfo, Selection, builtin_panes, discover
from lazycelery.tui.registry import Command
from lazycelery.tui.run import connect_operator, history_source
from lazycelery.tui.screen.envs import EnvSwitcher
from lazycelery.tui.screen.sources import DashboardInfo

if TYPE_CHECKING:
    from lazycelery.tui.screen.model import ScreenModel

__all__ = ["EnvDashboards", "run_envs_dashboard", "switch_commands"]

#: how often the hidden dashboards take in their events, and how long their list work may take
WARM_EVERY = 1.0
WARM_BUDGET = 0.005


def switch_commands(switcher: EnvSwitcher,
                    search: Callable[[ScreenModel], None] | None = None) -> list[Command]:
    """``E``: the next environment; in the palette, one command per environment, and
    ``search``: the shown filter in every environment."""
    # every built-in pane (the pane host widens such commands to the plugin panes too)
    views = frozenset(i.name for i in builtin_panes()) | {"help"}

    def go(name: str) -> Command:
        return Command(f"env.show.{name}", f"environment: show {name}",
                       lambda _screen: switcher.request(name), contexts=views,
                       group="Environments")

    def next_env(_screen: ScreenModel) -> None:
        switcher.next()

    commands = [Command("env.next", "environment: show the next one", next_env, keys=("E",),
                        contexts=views, group="Environments", footer="next env"),
                *(go(name) for name in switcher.names)]
    if search is not None:
        commands.append(Command(
            "env.search", "environment: this filter in every environment (counts, and the "
            "filter set in each)", search, contexts=views, group="Environments"))
    return commands


class EnvDashboards:
    """The dashboards of an EnvSet and the switch between them (built without a terminal, so
    tests and the benchmark drive it with pipe input and a dummy output)."""

    def __init__(self, envs: EnvSet, *, plugins: Sequence[PluginInfo] = (),
                 keys: dict[str, str] | None = None, color: bool = True,
                 **dashboard_options: object) -> None:
        self.envs = envs
        self.switcher = EnvSwitcher(envs.names, envs.statuses)
        self.dashboards: dict[str, Dashboard] = {}
        for watch in envs.watches:
            self.dashboards[watch.name] = self._dashboard(watch, plugins, keys, color,
                                                          dashboard_options)
        envs.build(on_batch=lambda env, events, touched:
                   self.dashboards[env].on_batch(events, touched),
                   on_status=lambda env, status: self.dashboards[env].on_status(status))
        for watch in envs.watches:
            self._attach(watch)
        self.switcher.on_request = lambda _name: self._leave()
        self._blank = Layout(Window())
        self._warm_at = 0.0
        for d in self.dashboards.values():
            d.app.before_render += self._keep_warm

    def search_everywhere(self, _screen: ScreenModel) -> None:
        """The shown dashboard's filter (a task id prefix is ``id:3f2a``) set in every
        environment's dashboard, and how many tasks it matches in each, said in one line."""
        shown = self.current
        text = shown.filter_buffer.text.strip()
        if not text:
            shown.ui.flash("type a filter first (/), e.g. id:3f2a or state:failure", error=True)
            return
        try:
            predicate = compile_filter(text)
        except FilterError as exc:
            shown.ui.flash(f"filter: {exc}", error=True)
            return
        counts = []
        for found in self.switcher.names:
            d = self.dashboards[found]
            if d is not shown:
                d.filter_buffer.text = text
            counts.append(f"{found} {sum(1 for r in d.index.snapshot() if predicate(r)):,}")
        shown.ui.flash(f"{text!r} in every environment: {' · '.join(counts)} (E switches)",
                       seconds=15.0)

    def _leave(self) -> None:
        """End the shown application; ``run`` then shows the environment asked for. An
        application draws itself once more as it ends: given an empty layout for that, the
        switch costs one full frame (the other dashboard's), not two."""
        app = self.current.app
        if app.is_running:
            app.layout = self._blank
            app.exit(result=0)

    @property
    def current(self) -> Dashboard:
        return self.dashboards[self.switcher.current]

    def _dashboard(self, watch: EnvWatch, plugins: Sequence[PluginInfo],
                   keys: dict[str, str] | None, color: bool,
                   options: dict[str, object]) -> Dashboard:
        settings = watch.settings
        info = DashboardInfo(broker=settings.masked_broker() if settings else "",
                             env_name=watch.name, read_only=watch.read_only,
                             env_color=watch.color, env_count=len(self.envs))
        history = (history_source(settings, watch.index)
                   if settings is not None and settings.store_url else None)
        return Dashboard(watch.index, info=info, keys=keys, color=color, settings=settings,
                         plugins=[*plugins, clusters_info(self.switcher)],
                         extra_commands=switch_commands(self.switcher,
                                                        self.search_everywhere),
                         history=history,
                         **options)  # type: ignore[arg-type]

    def _attach(self, watch: EnvWatch) -> None:
        d = self.dashboards[watch.name]
        d.attach(watch.ingestor, watch.monitor)
        if watch.monitor is None and watch.queue_note:
            d.screen.info = replace(d.screen.info, queues_unavailable=watch.queue_note)
        if watch.settings is None or watch.ingestor is None:
            why = watch.status().connection_text()
            d.operator.unavailable = f"unavailable: {why}"
            d.ui.flash(f"{watch.name}: {why}", error=True, seconds=10.0)
            return
        connect_operator(d, watch.settings, watch.monitor)

    def _keep_warm(self, _app: object) -> None:
        """Once a second, from the shown dashboard's frame: the hidden dashboards take in
        their events (O(new events), and a slice of any whole-list work), so switching to one
        draws a ready screen instead of rebuilding its lists first."""
        now = time.monotonic()
        if now < self._warm_at:
            return
        self._warm_at = now + WARM_EVERY
        for name, d in self.dashboards.items():
            if name != self.switcher.current:
                d.pull()
                if d.screen.tasks.busy:
                    d.screen.tasks.step(WARM_BUDGET)

    def start(self) -> None:
        self.envs.start()
        for d in self.dashboards.values():
            d.start()
            d.pull()
            d.screen.tasks.settle()  # what the indexes hold already (the stores' history)

    def run(self) -> int:
        """Show the first environment; after each switch, the asked one; until the user quits."""
        self.start()
        try:
            while True:
                shown = self.current
                result = shown.app.run()
                shown.app.layout = shown.layout  # back from the blank one of ``_leave``
                if self.switcher.take_request() is None:
                    return result if isinstance(result, int) else 0
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        self.envs.stop()  # every environment's threads at once, before each dashboard's own
        for d in self.dashboards.values():
            d.shutdown()


def run_envs_dashboard(args: argparse.Namespace) -> int:
    """The dashboard over the environments the command line names."""
    from lazycelery.config_envs import resolve_envs

    choices, notes = resolve_envs(args)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("lazycelery: the dashboard needs a terminal; to stream several environments into "
              "a pipe use `lazycelery tail --all-envs --json`", file=sys.stderr)
        return 2
    first = next((c.settings for c in choices if c.settings is not None), None)
    plugins = discover(Selection.from_environment(
        no_plugins=bool(getattr(args, "no_plugins", False))))
    dashboards = EnvDashboards(
        EnvSet.from_choices(choices), plugins=plugins,
        keys=dict(first.keys) if first else None,
        color=not (first.no_color if first else bool(getattr(args, "no_color", False))))
    for note in notes:
        dashboards.current.ui.flash(note, seconds=8.0)
    return dashboards.run()
