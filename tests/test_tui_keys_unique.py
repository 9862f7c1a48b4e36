"""No key means two things: in the dashboard's real command registry (global commands, operator
actions, every built-in pane's own commands, the environments' commands and Clusters pane), no
two commands that can both be enabled in one context bind the same key.

The rule is the registry's own. ``build_key_bindings`` binds every key of every command, active
where the command is enabled (its context, then its ``when``); when several bindings for the same
keys are active, prompt_toolkit runs the last one added, silently. ``when`` is screen state that
can hold for both, so it separates nothing. Nothing documents that a pane's key wins over a
global one: the pane host does the opposite, dropping a pane command's key that an earlier
command already has where both work (``PaneHost._checked``, a note in ``PaneHost.notes``), so
for the built-in panes a dropped key is a conflict too. A sequence that is a prefix of another
(``g`` and ``g g``) also clashes: prompt_toolkit waits for the longer one."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import pytest
from prompt_toolkit.input import create_pipe_input

from lazycelery.core.envs import EnvSet, EnvWatch
from lazycelery.core.index import TaskIndex
from lazycelery.tui.app import Dashboard
from lazycelery.tui.envs_run import EnvDashboards
from lazycelery.tui.keys import KeySeq, display_keys
from lazycelery.tui.plugins import discover
from lazycelery.tui.registry import Command, CommandRegistry
from lazycelery.tui.screen.sources import DashboardInfo
from tests.tui_harness import SizedOutput, headless_dashboard


def _clash(a: KeySeq, b: KeySeq) -> bool:
    shorter, longer = sorted((a, b), key=len)
    return longer[:len(shorter)] == shorter


def conflicts(registry: CommandRegistry) -> list[str]:
    """Each pair of commands sharing a context and a key (or a key prefix), once per context."""
    commands: list[Command] = list(registry)
    found: list[str] = []
    for i, a in enumerate(commands):
        for b in commands[i + 1:]:
            shared = a.contexts & b.contexts
            if not shared:
                continue
            for ka in registry.keys(a.name):
                for kb in registry.keys(b.name):
                    if _clash(ka, kb):
                        found.append(f"{display_keys([ka])} means {a.name} and {b.name} in "
                                     f"{', '.join(sorted(shared))}")
    return found


def _problems(d: Dashboard) -> list[str]:
    return conflicts(d.registry) + [n for n in d.plugins.notes if "is taken" in n]


@contextmanager
def _dashboard(read_only: bool = False,
               extra: Iterable[Command] = ()) -> Iterator[Dashboard]:
    info = DashboardInfo(broker="redis://127.0.0.1:1/0", read_only=read_only)
    if not extra:
        with headless_dashboard(TaskIndex(), info, SizedOutput(40, 120)) as (d, _inp):
            yield d
        return
    with create_pipe_input() as inp:
        yield Dashboard(TaskIndex(), info=info, input=inp, output=SizedOutput(40, 120),
                        extra_commands=extra, refresh_interval=None)


def test_no_key_means_two_things_in_the_dashboard() -> None:
    with _dashboard() as d:
        assert len(d.registry) > 80  # the whole registry, the panes' own commands included
        assert "charts.restart" in d.registry and "timeline.follow" in d.registry
        assert _problems(d) == []


def test_nor_in_read_only_mode() -> None:
    # the mutating commands stay bound (hidden, without their ``when``) to say why they refuse
    with _dashboard(read_only=True) as d:
        assert _problems(d) == []


def test_nor_with_several_environments() -> None:
    with create_pipe_input() as inp:
        ds = EnvDashboards(EnvSet([EnvWatch("a", None), EnvWatch("b", None)]), input=inp,
                           output=SizedOutput(40, 160), refresh_interval=None)
        try:
            for d in ds.dashboards.values():
                assert "env.next" in d.registry and "pane.clusters" in d.registry
                assert _problems(d) == []
        finally:
            ds.shutdown()


def test_a_key_bound_twice_is_found() -> None:
    """The check can fail: a global command's key reused by a pane-only command, a prefix."""
    def noop(_s: object) -> None:
        return None

    planted = [Command("test.quit-twice", "t", noop, keys=("q",), contexts=frozenset({"tasks"})),
               Command("test.prefix", "t", noop, keys=("g g",), contexts=frozenset({"queues"})),
               Command("test.elsewhere", "t", noop, keys=("q",), contexts=frozenset({"nowhere"}))]
    with _dashboard(extra=planted) as d:
        assert conflicts(d.registry) == ["q means quit and test.quit-twice in tasks",
                                         "g means cursor.first and test.prefix in queues"]


def test_nor_with_the_installed_first_party_plugins() -> None:
    """The shipped plugins (lazycelery-beat) as `lazycelery` mounts them: found by entry point.
    A plugin key that is taken is dropped by design (noted); a first-party one must not be."""
    infos = [i for i in discover() if not i.builtin]
    if not infos:
        pytest.skip("no first-party plugin installed (pip install -e plugins/lazycelery-beat)")
    info = DashboardInfo(broker="redis://127.0.0.1:1/0")
    with headless_dashboard(TaskIndex(), info, SizedOutput(40, 120), plugins=infos) as (d, _):
        assert any(c.name.startswith("pane.") and c.name[5:] == infos[0].name
                   for c in d.registry)
        assert _problems(d) == []
