"""The dashboard over several environments, headless (pipe input, dummy output): one dashboard
per environment, switching by key, palette and the Clusters pane, the header's colour, actions
refused in a read-only environment only, and confirmations that name the environment."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from prompt_toolkit.input import create_pipe_input

from conftest import wait_for
from lazycelery.config import Settings
from lazycelery.core.env_status import EnvStatus
from lazycelery.core.envs import EnvSet, EnvWatch
from lazycelery.tui.envs_run import EnvDashboards
from lazycelery.tui.panes.clusters import cluster_lines
from lazycelery.tui.panes.header import header_text
from tests.tui_harness import SizedOutput, screen_lines


@contextmanager
def dashboards(*watches: EnvWatch) -> Iterator[EnvDashboards]:
    with create_pipe_input() as inp:
        ds = EnvDashboards(EnvSet(watches), input=inp, output=SizedOutput(40, 160),
                           refresh_interval=None)
        try:
            yield ds
        finally:
            ds.shutdown()


def _closed(name: str, *, read_only: bool = False) -> Settings:
    """Settings of an environment nobody connects to (the threads are never started here)."""
    return Settings(broker_url="redis://127.0.0.1:1/0", env_name=name, read_only=read_only)


def test_each_environment_has_its_own_dashboard_actions_and_colour() -> None:
    prod = EnvWatch("prod", _closed("prod", read_only=True), color="red")
    staging = EnvWatch("staging", _closed("staging"))
    with dashboards(prod, staging) as ds:
        p, s = ds.dashboards["prod"], ds.dashboards["staging"]
        assert p.index is prod.index and s.index is staging.index
        assert ds.current is p
        header = header_text(p.screen)
        assert ("class:header.env fg:ansired bold reverse", "prod") in header
        assert ("class:header.env", "staging") in header_text(s.screen)
        # a read-only environment refuses, the other one acts, audited under its name
        assert p.operator.ready("retry") is None
        assert s.operator.ready("retry") is not None
        assert getattr(s.operator.actions, "environment", None) == "staging"
        s.operator.confirm("Revoke 1 task", [], "Revoke", lambda: None)
        assert s.operator.dialog is not None
        assert s.operator.dialog.title == "Revoke 1 task [environment staging]"


def test_switch_commands_are_in_the_registry_and_the_palette() -> None:
    with dashboards(EnvWatch("a", None), EnvWatch("b", None)) as ds:
        registry = ds.current.registry
        assert {"env.next", "env.show.a", "env.show.b", "env.search"} <= {
            c.name for c in registry}
        assert registry.get("env.next").keys == ("E",)
        registry.get("env.show.b").handler(ds.current.screen)
        assert ds.switcher.take_request() == "b" and ds.current is ds.dashboards["b"]
        registry.get("env.show.b").handler(ds.current.screen)  # already shown: nothing to do
        assert ds.switcher.take_request() is None


def test_a_filter_searched_in_every_environment_says_how_many_in_each() -> None:
    from tests.replay import load_events

    a, b = EnvWatch("a", None, max_tasks=100_000), EnvWatch("b", None, max_tasks=100_000)
    events = load_events("redis")
    a.index.apply_batch(events)
    with dashboards(a, b) as ds:
        shown = ds.current
        shown.run("env.search")
        assert shown.ui.flash_error and "type a filter first" in (shown.ui.flash_text or "")
        failed = sum(1 for r in a.index.snapshot() if r.state == "FAILURE")
        assert failed > 0
        shown.filter_buffer.text = "state:failure"
        shown.run("env.search")
        assert f"in every environment: a {failed:,} · b 0" in (shown.ui.flash_text or "")
        assert ds.dashboards["b"].filter_buffer.text == "state:failure"


def test_a_misconfigured_environment_says_why_and_refuses_actions() -> None:
    with dashboards(EnvWatch("broken", None, error="cannot import app 'x'")) as ds:
        d = ds.current
        assert d.operator.ready("retry") is None
        assert "misconfigured: cannot import app 'x'" in d.operator.unavailable


def test_the_cluster_view_marks_the_shown_one_and_says_why_not() -> None:
    rows = [EnvStatus(name="prod", state="connected", workers_online=2, workers_total=3,
                      tasks_per_s=4.5, failure_rate=0.1, queue_depth=12, color="red"),
            EnvStatus(name="eu", state="reconnecting", why="attempt 2 (Connection refused)")]
    text = "".join(t for _style, t, *_ in cluster_lines(rows, cursor=1, current="prod"))
    lines = text.splitlines()
    assert lines[0].split() == ["ENV", "WORKERS", "TASKS/S", "FAILED", "QUEUED", "OLDEST",
                                "LAST", "GAP", "CONNECTION"]
    assert lines[1].startswith("* prod") and "2/3" in lines[1] and "10.0%" in lines[1]
    assert lines[2].startswith("  eu") and lines[2].endswith(
        "reconnecting: attempt 2 (Connection refused)")


def test_e_and_enter_in_the_clusters_pane_switch_the_running_dashboard() -> None:
    with create_pipe_input() as inp:
        ds = EnvDashboards(EnvSet([EnvWatch("a", None), EnvWatch("b", None),
                                   EnvWatch("c", None)]),
                           input=inp, output=SizedOutput(40, 160), refresh_interval=None)
        seen: list[str] = []
        failures: list[BaseException] = []

        def shown(name: str) -> bool:
            return ds.switcher.current == name and ds.current.app.is_running

        def drive() -> None:
            try:
                wait_for(lambda: shown("a"), timeout=10, what="a shown")
                inp.send_text("E")
                wait_for(lambda: shown("b"), timeout=10, what="b shown")
                seen.append(ds.switcher.current)
                inp.send_text("0")  # the Clusters pane
                wait_for(lambda: ds.current.screen.ui.pane == "clusters", timeout=10,
                         what="the clusters pane")
                inp.send_text("jj\r")  # the third row: c
                wait_for(lambda: shown("c"), timeout=10, what="c shown")
                seen.append(ds.switcher.current)
            except BaseException as exc:
                failures.append(exc)
            finally:
                inp.send_text("q")

        driver = threading.Thread(target=drive, daemon=True)
        driver.start()
        assert ds.run() == 0
        driver.join(10)
        assert not failures, failures
        assert seen == ["b", "c"]
        lines = screen_lines(ds.current)
        assert any("│ c │" in line for line in lines[:2])
