"""Pane plugins: discovery through entry points, selection, mounting, keys and palette, and broken
plugins (import error, wrong API version, raising in create / refresh / render) reported, skipped.

Plugins are "installed" the way pip leaves them for importlib.metadata: a ``*.dist-info`` with an
``entry_points.txt`` on ``sys.path`` (or ``PYTHONPATH`` for the CLI). No network, no build step.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lazycelery.config import Settings
from lazycelery.core.index import TaskIndex
from lazycelery.tui.app import Dashboard
from lazycelery.tui.plugins import PluginInfo, Selection, discover
from lazycelery.tui.screen.sources import DashboardInfo
from tests.tui_harness import (
    ESC,
    DashboardHarness,
    SizedOutput,
    drive,
    headless_dashboard,
    screen_lines,
)

ROOT = Path(__file__).resolve().parent.parent
BEAT_PLUGIN = ROOT / "plugins" / "lazycelery-beat"

# --------------------------------------------------------------------------- fake installs


def write_dist(root: Path, dist: str, version: str, entry_points: Mapping[str, str],
               files: Mapping[str, str] | None = None) -> Path:
    """What ``pip install`` leaves behind for importlib.metadata: a dist-info with entry points
    (and the modules, when given) under ``root``."""
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[lazycelery.panes]\n{lines}")
    for rel, text in (files or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@contextmanager
def fake_site(root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on sys.path for fake installs; the modules imported from it are forgotten
    afterwards."""
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delenv("LAZYCELERY_PLUGINS", raising=False)
    before = set(sys.modules)
    yield root
    for name in set(sys.modules) - before:
        module = sys.modules.get(name)
        if str(root) in str(getattr(module, "__file__", None) or ""):
            del sys.modules[name]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    with fake_site(tmp_path / "site", monkeypatch) as root:
        yield root


def install_beat(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The beat plugin from plugins/ as an installed distribution (its sources stay in place,
    as with ``pip install -e``)."""
    write_dist(site, "lazycelery-beat", "0.1.0", {"beat": "lazycelery_beat:pane"})
    monkeypatch.syspath_prepend(str(BEAT_PLUGIN))


HELLO = """
    from prompt_toolkit.layout import Window
    from prompt_toolkit.layout.controls import FormattedTextControl

    from lazycelery.panes_api import PaneCommand, PaneContext, PaneViewBase

    VIEWS = []


    class View(PaneViewBase):
        def __init__(self, ctx):
            self.ctx = ctx
            self.refreshes = 0
            self.moves = []
            self.pokes = 0
            self.window = Window(FormattedTextControl(
                lambda: f"hello pane: {len(self.ctx.index)} tasks, refreshed {self.refreshes}"))

        def container(self):
            return self.window

        def refresh(self):
            self.refreshes += 1

        def move(self, delta):
            self.moves.append(delta)

        def commands(self):
            return [PaneCommand("poke", "Poke the hello pane", self.poke, ("p",), footer="poke"),
                    PaneCommand("clash", "A key that is taken", self.poke, ("q",)),
                    PaneCommand("poke", "The same name again", self.poke),
                    PaneCommand("bad-key", "A key that does not exist", self.poke,
                                ("ctrl-banana",))]

        def poke(self):
            self.pokes += 1
            self.ctx.log("poked")

        def subtitle(self):
            return f"{self.refreshes} refreshes"


    class HelloPane:
        api_version = 1
        name = "hello"
        title = "Hello"
        key = None

        def create(self, ctx):
            view = View(ctx)
            VIEWS.append(view)
            return view


    pane = HelloPane()
"""

BROKEN = {
    "broken_import.py": "raise RuntimeError('boom at import')\n",
    "wrong_api.py": """
        class Pane:
            api_version = 99
            name = "wrongapi"
            title = "Wrong"
            key = None

            def create(self, ctx):
                raise AssertionError("never created")

        pane = Pane()
    """,
    "bad_create.py": """
        class Pane:
            api_version = 1
            name = "badcreate"
            title = "Bad create"
            key = None

            def create(self, ctx):
                raise ValueError("cannot create")

        pane = Pane()
    """,
    "bad_refresh.py": """
        from prompt_toolkit.layout import Window
        from lazycelery.panes_api import PaneViewBase

        class View(PaneViewBase):
            def container(self):
                return Window()

            def refresh(self):
                raise KeyError("no such thing")

        class Pane:
            api_version = 1
            name = "badrefresh"
            title = "Bad refresh"
            key = "7"

            def create(self, ctx):
                return View()

        pane = Pane()
    """,
    "bad_lines.py": """
        from prompt_toolkit.data_structures import Point
        from prompt_toolkit.layout import Window
        from prompt_toolkit.layout.controls import FormattedTextControl
        from lazycelery.panes_api import PaneViewBase

        class View(PaneViewBase):
            def container(self):
                # a cursor below the last line: prompt_toolkit's Window asks for a line that
                # does not exist while scrolling, outside the control's create_content
                return Window(FormattedTextControl("one line",
                                                   get_cursor_position=lambda: Point(0, 5)))

        class Pane:
            api_version = 1
            name = "badlines"
            title = "Bad lines"
            key = None

            def create(self, ctx):
                return View()

        pane = Pane()
    """,
    "bad_render.py": """
        from prompt_toolkit.layout import Window
        from prompt_toolkit.layout.controls import FormattedTextControl
        from lazycelery.panes_api import PaneViewBase

        class View(PaneViewBase):
            def container(self):
                return Window(FormattedTextControl(lambda: 1 / 0))

        class Pane:
            api_version = 1
            name = "badrender"
            title = "Bad render"
            key = None

            def create(self, ctx):
                return View()

        pane = Pane()
    """,
}


def install_hello(site: Path) -> None:
    write_dist(site, "lazycelery-hello", "1.2.3", {"hello": "hello_pane:pane"},
               {"hello_pane.py": HELLO})


def install_broken(site: Path) -> None:
    write_dist(site, "broken-panes", "0.0.1", {
        "brokenimport": "broken_import:pane", "wrongapi": "wrong_api:pane",
        "badcreate": "bad_create:pane", "badrefresh": "bad_refresh:pane",
        "badrender": "bad_render:pane", "badlines": "bad_lines:pane",
        "misnamed": "bad_create:pane",
    }, BROKEN)


#: the fake distributions of these tests (a plugin installed in the venv stays out of the way)
MINE = Selection(only=frozenset({"lazycelery-hello", "broken-panes", "shadow", "other"}))
MINE_ENV = ",".join(sorted(MINE.only or ()))


def by_name(infos: list[PluginInfo]) -> dict[str, PluginInfo]:
    return {i.name: i for i in infos}


# --------------------------------------------------------------------------- headless dashboard


def screen_text(d: Dashboard) -> str:
    """The characters the layout draws (a render without a terminal), as one string."""
    return "\n".join(screen_lines(d))


@dataclass
class Harness(DashboardHarness):
    async def keys(self, text: str, wait: float = 0.03) -> None:
        await self.send_keys(text, wait)

    async def until(self, cond: Callable[[], object], timeout: float = 10.0) -> None:
        await super().until(cond, timeout)

    def footer(self) -> str:
        return screen_text(self.d).rstrip().splitlines()[-1]


@contextmanager
def dashboard(plugins: list[PluginInfo], settings: Settings | None = None,
              keys: dict[str, str] | None = None, rows: int = 30,
              columns: int = 110) -> Iterator[Harness]:
    info = DashboardInfo(broker="redis://127.0.0.1:6379/0")
    with headless_dashboard(TaskIndex(), info, SizedOutput(rows, columns), keys=keys,
                            plugins=plugins, settings=settings) as (d, inp):
        yield Harness(d, inp)


# --------------------------------------------------------------------------- discovery


def test_builtin_panes_come_from_the_entry_point_group() -> None:
    infos = discover(Selection(no_plugins=True))
    builtins = [i for i in infos if i.builtin]
    assert [i.name for i in builtins] == ["workers", "queues", "tasks", "detail", "alerts",
                                          "timeline", "errors", "charts", "worker"]
    assert [i.key for i in builtins] == ["1", "2", "3", "4", "!", "T", "e", "m", "w"]
    modules = {"worker": "worker_detail"}  # "workers" is the list pane's module
    for info in builtins:
        # registered by lazycelery's own distribution (pyproject.toml), not synthesised
        assert info.distribution == "lazycelery" and info.loaded and not info.reason
        # one module per pane, one entry point naming its declaration
        assert info.target == f"lazycelery.tui.panes.{modules.get(info.name, info.name)}:PANE"


def test_discovery_reports_each_broken_plugin_and_loads_the_rest(site: Path) -> None:
    install_hello(site)
    install_broken(site)
    infos = by_name(discover(MINE))
    hello = infos["hello"]
    assert hello.loaded and hello.distribution == "lazycelery-hello" and hello.version == "1.2.3"
    assert hello.title == "Hello"
    broken = infos["brokenimport"]
    assert broken.state == "failed"
    assert broken.reason == "import failed: RuntimeError: boom at import"
    assert "Traceback" in broken.detail
    assert infos["wrongapi"].state == "failed"
    assert "API version 99" in infos["wrongapi"].reason and "supports 1" in infos["wrongapi"].reason
    assert infos["misnamed"].state == "failed" and "'badcreate'" in infos["misnamed"].reason
    # these import fine: they fail only when the dashboard creates / refreshes / draws them
    assert infos["badcreate"].loaded and infos["badrefresh"].loaded
    assert infos["badrefresh"].key == "7"  # the key it asked for; others the free ones, by name
    assert [infos[n].key for n in ("badcreate", "badlines", "badrender", "hello")] == \
        ["5", "6", "8", "9"]
    assert {i.key for i in infos.values() if i.state != "loaded"} == {None}


def test_no_plugins_and_the_environment_choose_what_loads(site: Path) -> None:
    install_hello(site)
    install_broken(site)
    off = by_name(discover(Selection(no_plugins=True)))
    assert off["hello"].status() == "disabled: --no-plugins"
    assert off["brokenimport"].state == "disabled"  # not even imported
    assert off["tasks"].loaded
    only = by_name(discover(Selection.from_environment(
        environ={"LAZYCELERY_PLUGINS": "lazycelery-hello, wrongapi"})))
    assert only["hello"].loaded  # named by its distribution
    assert only["wrongapi"].state == "failed"  # named by its pane name: tried, and failed
    assert only["brokenimport"].status() == "disabled: not in LAZYCELERY_PLUGINS"
    assert "brokenimport" not in str(only["hello"].reason)


def test_a_plugin_cannot_take_a_builtin_name_or_anothers(site: Path) -> None:
    pane = """
        class P:
            api_version = 1
            title = "T"
            key = "1"
            def __init__(self, name):
                self.name = name
            def create(self, ctx):
                raise AssertionError
        tasks = P("tasks")
        help = P("help")
        twin = P("twin")
    """
    write_dist(site, "shadow", "1.0", {"tasks": "shadow_pane:tasks", "help": "shadow_pane:help",
                                       "twin": "shadow_pane:twin"}, {"shadow_pane.py": pane})
    write_dist(site / "other", "other", "1.0", {"twin": "shadow_pane:twin"})
    sys.path.insert(0, str(site / "other"))
    try:
        infos = discover(MINE)
    finally:
        sys.path.remove(str(site / "other"))
    third = [i for i in infos if not i.builtin and i.distribution in ("shadow", "other")]
    states = {(i.name, i.distribution): i.status() for i in third}
    assert states[("tasks", "shadow")] == "failed: the name 'tasks' is reserved by lazycelery"
    assert states[("help", "shadow")].startswith("failed: the name 'help' is reserved")
    twins = sorted(status for (name, _), status in states.items() if name == "twin")
    assert twins[0] == "failed: another pane is called 'twin' (other)" or \
        twins[0].startswith("failed: another pane is called 'twin'")
    assert twins[1] == "loaded"
    assert next(i for i in third if i.loaded).key == "5"  # "1" is a built-in's: next free


# --------------------------------------------------------------------------- mounting


def test_a_plugin_pane_is_mounted_with_its_key_commands_and_navigation(site: Path) -> None:
    install_hello(site)
    infos = discover(MINE)
    with dashboard(infos, keys={"hello.poke": "P"}) as h:
        async def scenario(h: Harness) -> None:
            hello_pane = importlib.import_module("hello_pane")
            d = h.d
            assert d.plugins.names == ("hello",)
            view = hello_pane.VIEWS[-1]
            assert view.refreshes == 0  # not visible yet: not refreshed
            await h.keys("5")
            assert d.ui.pane == "hello"
            screen = screen_text(d)
            assert "5 Hello" in screen and "hello pane: 0 tasks" in screen
            assert view.refreshes == 1
            # the shared commands work here; cursor keys reach the view's move()
            await h.keys("jkG")
            await h.keys("g\x04")
            assert view.moves[:4] == [1, -1, 1_000_000_000, -1_000_000_000]
            assert view.moves[4] > 1  # half a page
            # its command, remapped by name in [keys] like any other; the footer shows it
            await h.keys("P")
            assert view.pokes == 1 and d.ui.current_flash() == ("poked", False)
            d.ui.flash_text = None
            assert "P poke" in h.footer()
            # a key already taken (q quits) was dropped from the plugin's command; a second
            # command of the same name and one with a key that does not exist were left out
            assert d.registry.keys("hello.clash") == ()
            assert d.registry.get("hello.poke").title == "Poke the hello pane"
            assert "hello.bad-key" not in d.registry
            # data changes refresh the visible pane; nothing changed: no refresh
            d.index.apply({"type": "task-received", "uuid": "u1", "name": "x", "timestamp": 1.0})
            d.app.invalidate()
            await h.until(lambda: view.refreshes == 2)
            assert "hello pane: 1 tasks, refreshed 2" in screen_text(d)
            screen_text(d)
            assert view.refreshes == 2
            # tab cycles through the plugin pane: detail -> hello -> workers
            await h.keys("\t")
            assert d.ui.pane == "workers"
            await h.keys("\x1b[Z")  # shift-tab
            assert d.ui.pane == "hello"
            # palette offers the plugin's command; help lists it under the pane's title
            await h.keys(":")
            assert d.palette is not None
            titles = [c.title for c, *_ in d.palette.results("poke")]
            assert "Poke the hello pane" in titles
            await h.keys(ESC)
            await h.keys("?")
            help_text = ["".join(frag[1] for frag in line) for line in d.controls.help.lines]
            assert " Hello" in help_text  # the plugin's group, titled after its pane
            assert any("hello.poke" in line and "Poke the hello pane" in line
                       for line in help_text)
            await h.keys(ESC)
            await h.keys("3")
            assert d.ui.pane == "tasks"
            await h.keys("p")  # the plugin's key is its own pane's only
            assert view.pokes == 1

        drive(h, scenario)


NEW_BUILTIN = """
    from prompt_toolkit.layout import Window
    from prompt_toolkit.layout.controls import FormattedTextControl

    from lazycelery.panes_api import PaneCommand, PaneViewBase
    from lazycelery.tui.screen.builtin import BODY, BuiltinPane

    VIEWS = []

    class SlowestView(PaneViewBase):
        def __init__(self, ctx):
            self.screen = ctx.screen
            self.moves = []
            self.counted = 0
            VIEWS.append(self)

        def container(self):
            text = lambda: f"slowest pane: {len(self.screen.tasks)} tasks, counted {self.counted}"
            return Window(FormattedTextControl(text, focusable=True))

        def commands(self):
            return [PaneCommand("count", "Count the slow tasks", self.count, keys=("c",))]

        def count(self):
            self.counted += 1

        def move(self, delta):
            self.moves.append(delta)

    PANE = BuiltinPane(name="slowest", title="Slowest", key="5", slot=BODY, view=SlowestView,
                       command_title="Go to slowest")
"""


def test_a_new_builtin_pane_is_one_module_and_one_entry_point(
        site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What adding a pane to lazycelery takes: a module in ``lazycelery/tui/panes/`` declaring
    it, and its entry point. Here the module goes in a directory added to that package's path,
    and lazycelery's own registrations plus that one line are installed first on sys.path (so
    nothing of lazycelery itself is edited)."""
    import lazycelery.tui.panes

    own = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="lazycelery.panes")
           if ep.dist is not None and ep.dist.metadata["Name"] == "lazycelery"}
    assert {"workers", "queues", "tasks", "detail"} <= set(own)
    write_dist(site, "lazycelery", "0.1.0",
               {**own, "slowest": "lazycelery.tui.panes.slowest:PANE"},
               {"extra_panes/slowest.py": NEW_BUILTIN})
    monkeypatch.setattr(lazycelery.tui.panes, "__path__",
                        [*lazycelery.tui.panes.__path__, str(site / "extra_panes")])
    infos = discover(Selection(no_plugins=True))
    assert [(i.name, i.key) for i in infos if i.builtin] == [
        ("workers", "1"), ("queues", "2"), ("tasks", "3"), ("detail", "4"), ("slowest", "5"),
        ("alerts", "!"), ("timeline", "T"), ("errors", "e"), ("charts", "m"), ("worker", "w")]
    assert by_name(infos)["slowest"].loaded
    with dashboard(infos) as h:
        async def scenario(h: Harness) -> None:
            d = h.d
            view = importlib.import_module("lazycelery.tui.panes.slowest").VIEWS[-1]
            assert d.plugins.order[-6:] == ("slowest", "alerts", "timeline", "errors", "charts",
                                            "worker")
            assert d.plugins.names == ()
            assert d.registry.get("pane.slowest").title == "Go to slowest"
            await h.keys("5")
            assert d.ui.pane == "slowest"
            assert "slowest pane: 0 tasks, counted 0" in screen_text(d)
            await h.keys("jG")  # the cursor keys reach its view
            assert view.moves == [1, 1_000_000_000]
            await h.keys("c")  # its own command, named after it
            assert view.counted == 1 and "slowest.count" in d.registry
            await h.keys("\t")  # tab: alerts (key !), then the timeline (key T) after the numbers
            assert d.ui.pane == "alerts"
            await h.keys("\t")
            assert d.ui.pane == "timeline"
            await h.keys("j")
            assert view.moves == [1, 1_000_000_000]  # the workers list moved, not the view

        drive(h, scenario)


def test_broken_plugins_are_reported_and_skipped(site: Path) -> None:
    install_hello(site)
    install_broken(site)
    infos = discover(MINE)
    with dashboard(infos) as h:
        async def scenario(h: Harness) -> None:
            d = h.d
            by = by_name(infos)
            # create raised: reported at start, not mounted
            assert by["badcreate"].status() == "failed: create failed: ValueError: cannot create"
            flash = d.ui.current_flash()
            assert flash is not None and flash[1]
            assert "plugin brokenimport failed: import failed" in flash[0]
            assert "plugin wrongapi failed" in flash[0] and "plugin badcreate failed" in flash[0]
            assert set(d.plugins.names) == {"hello", "badrefresh", "badrender", "badlines"}
            # refresh raises: the pane shows the failure, the status line says so
            await h.keys("7")
            assert d.ui.pane == "badrefresh"
            screen = screen_text(d)
            assert "plugin badrefresh failed: refresh failed: KeyError" in screen
            assert by["badrefresh"].state == "failed"
            # drawing raises: caught at the control, the frame is drawn, the pane switched off
            await h.keys(str(by["badrender"].key))
            assert d.ui.pane == "badrender"
            screen = screen_text(d)
            assert by["badrender"].status().startswith("failed: render failed: ZeroDivisionError")
            screen = screen_text(d)
            assert "plugin badrender failed: render failed: ZeroDivisionError" in screen
            await h.keys(str(by["badlines"].key))
            assert "plugin badlines failed: render failed: IndexError" in screen_text(d)
            # and everything else still works
            await h.keys(str(by["hello"].key))
            assert "hello pane" in screen_text(d)
            await h.keys("3")
            assert d.ui.pane == "tasks" and "3 Tasks" in screen_text(d)
            await h.keys("q")
            await h.until(lambda: not d.app.is_running)

        drive(h, scenario)


def test_a_remap_of_a_missing_plugin_does_not_stop_the_dashboard(site: Path) -> None:
    install_hello(site)
    infos = discover(Selection(no_plugins=True))
    with dashboard(infos, keys={"hello.poke": "P", "pane.hello": "0"}) as h:
        assert "hello" not in h.d.plugins.names


def test_the_context_gives_settings_without_secrets_and_the_app(site: Path) -> None:
    install_hello(site)
    settings = Settings(broker_url="redis://:s3cret@127.0.0.1:6379/3", app_spec=None,
                        env_name="prod", read_only=True)
    with dashboard(discover(MINE), settings=settings) as h:
        hello_pane = importlib.import_module("hello_pane")
        ctx = hello_pane.VIEWS[-1].ctx
        assert ctx.pane == "hello"
        assert ctx.settings.broker == "redis://:********@127.0.0.1:6379/3"
        assert ctx.settings.environment == "prod" and ctx.settings.read_only
        assert "s3cret" not in repr(ctx.settings)
        assert ctx.celery_app().conf.broker_url == "redis://:s3cret@127.0.0.1:6379/3"
        assert ctx.queue_snapshot() is None and list(ctx.workers()) == []
        ctx.show_tasks("state:failure")
        assert h.d.ui.pane == "tasks" and h.d.tasks.filter_text == "state:failure"
        ctx.show_tasks("stat:x")  # a bad filter: the status line, never an exception
        flash = h.d.ui.current_flash()
        assert flash is not None and flash[1] and "unknown field" in flash[0]
        ctx.run_command("pane.hello")
        assert h.d.ui.pane == "hello"


# --------------------------------------------------------------------------- the docs' example


def _docs_example() -> tuple[dict[str, Any], str]:
    """The pyproject.toml and the module of the worked example in docs/plugins.md."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - the 3.10 fallback lazycelery itself uses
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

    text = (ROOT / "docs" / "plugins.md").read_text()
    section = text[text.index("## A complete example"):]
    toml_block = section.split("```toml\n", 1)[1].split("```", 1)[0]
    marker = section.index("<!-- file: lazycelery_slowest/__init__.py")
    module = section[marker:].split("```python\n", 1)[1].split("```", 1)[0]
    return tomllib.loads(toml_block), module


def test_the_docs_example_works_as_written(site: Path) -> None:
    project, module = _docs_example()
    entry_points = project["project"]["entry-points"]["lazycelery.panes"]
    assert entry_points == {"slowest": "lazycelery_slowest:pane"}
    write_dist(site, project["project"]["name"], project["project"]["version"], entry_points,
               {"lazycelery_slowest/__init__.py": module})
    infos = discover(Selection(only=frozenset({"lazycelery-slowest"})))
    slowest = by_name(infos)["slowest"]
    assert slowest.status() == "loaded" and slowest.key == "5"
    events: list[dict[str, Any]] = []
    for i, runtime in enumerate([0.2, 3.5, 0.01, 1.25]):
        uuid = f"task-{i}"
        events += [{"type": "task-received", "uuid": uuid, "name": f"shop.job{i}",
                    "timestamp": 100.0 + i, "hostname": "w1"},
                   {"type": "task-succeeded", "uuid": uuid, "runtime": runtime,
                    "timestamp": 101.0 + i, "hostname": "w1"}]
    with dashboard(infos) as h:
        async def scenario(h: Harness) -> None:
            d = h.d
            d.index.apply_batch(events)
            await h.keys("5")
            screen = screen_text(d)
            assert "5 Slowest tasks  the 4 slowest of the newest 5000" in screen
            rows = [line.split() for line in screen.splitlines() if line.strip().endswith(
                tuple(f"task-{i}"[:8] for i in range(4)))]
            assert [r[1] for r in rows] == ["shop.job1", "shop.job3", "shop.job0", "shop.job2"]
            assert rows[0][0] == "3.500s"
            await h.keys("j\r")  # the second slowest: its name in the task list
            assert d.ui.pane == "tasks" and d.tasks.filter_text == 'name:"shop.job3"'

        drive(h, scenario)


# --------------------------------------------------------------------------- the CLI


def _cli(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = dict(os.environ, LAZYCELERY_PLUGINS=MINE_ENV)
    environ["PYTHONPATH"] = os.pathsep.join([str(site), environ.get("PYTHONPATH", "")])
    environ.update(env, LAZYCELERY_CONFIG=os.devnull, NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "lazycelery", "plugins", *args],
                          capture_output=True, text=True, timeout=120, env=environ)


def test_plugins_command_lists_states(site: Path) -> None:
    install_hello(site)
    install_broken(site)
    proc = _cli(site)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip()}
    assert lines["NAME"].split() == ["NAME", "KEY", "KIND", "DISTRIBUTION", "VERSION", "STATE"]
    assert lines["tasks"].split()[:6] == ["tasks", "3", "built-in", "lazycelery", "0.1.0",
                                          "loaded"]
    assert lines["hello"].split() == ["hello", "9", "plugin", "lazycelery-hello", "1.2.3",
                                      "loaded"]
    assert "failed: import failed: RuntimeError: boom at import" in lines["brokenimport"]
    assert "failed: API version 99; this lazycelery supports 1" in lines["wrongapi"]
    assert f"LAZYCELERY_PLUGINS={MINE_ENV}: only these plugins load" in proc.stdout

    checked = _cli(site, "--check", "--json")
    assert checked.returncode == 1  # some pane failed when created / drawn
    import json

    doc = json.loads(checked.stdout)
    states = {p["name"]: (p["state"], p["reason"]) for p in doc["panes"]}
    assert states["hello"] == ("loaded", None)
    assert states["badcreate"] == ("failed", "create failed: ValueError: cannot create")
    assert states["badrefresh"][1].startswith("refresh failed: KeyError")
    assert states["badrender"][1].startswith("render failed: ZeroDivisionError")
    assert states["badlines"][1].startswith("render failed: IndexError")

    only = _cli(site, LAZYCELERY_PLUGINS="hello")
    assert "disabled: not in LAZYCELERY_PLUGINS" in only.stdout
    assert "LAZYCELERY_PLUGINS=hello: only these plugins load" in only.stdout
    off = _cli(site, "--no-plugins", "-v")
    assert "disabled: --no-plugins" in off.stdout and "boom" not in off.stdout
    assert "hello_pane:pane (lazycelery-hello 1.2.3)" in off.stdout


# --------------------------------------------------------------------------- import contract


@pytest.mark.parametrize("module", ["lazycelery.core", "lazycelery.tail", "lazycelery.panes_api",
                                    "lazycelery_beat", "lazycelery_beat.schedule"])
def test_headless_modules_do_not_import_prompt_toolkit(module: str) -> None:
    code = (f"import sys, importlib; importlib.import_module({module!r}); "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'prompt_toolkit'); "
            "print(bad[:5]); sys.exit(1 if bad else 0)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(BEAT_PLUGIN),
                                                        os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_pane_can_be_unit_tested_with_a_bare_context() -> None:
    from lazycelery.panes_api import API_VERSION, PaneContext

    ctx = PaneContext(pane="x")
    assert API_VERSION == 1 and len(ctx.index) == 0 and ctx.index.worker_rows() == []
    ctx.invalidate()
    ctx.log("nothing happens")
    with pytest.raises(LookupError):
        ctx.celery_app()
    with pytest.raises(LookupError):
        ctx.run_command("quit")


def test_the_beat_pane_installed_twice_is_listed_once(site: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # lazycelery's wheel ships the beat pane; `pip install plugins/lazycelery-beat` declares the
    # same entry point again: one pane, from the plugin's own distribution, and no failure
    from importlib import metadata

    own = [ep for ep in metadata.entry_points(group="lazycelery.panes") if ep.name == "beat"
           and (ep.dist is not None and ep.dist.metadata["Name"] == "lazycelery")]
    assert own, "this install of lazycelery declares the beat pane (pip install -e .)"
    install_beat(site, monkeypatch)
    beats = [i for i in discover() if i.name == "beat"]
    assert [(i.distribution, i.status()) for i in beats] == [("lazycelery-beat", "loaded")]
