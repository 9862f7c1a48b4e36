"""Pane plugins: discovery from the ``lazycelery.panes`` entry points, and mounting into the dashboard.

Discovery (``discover``) imports every entry point of the group, checks the object it names
against the API (``lazycelery.panes_api``) and returns one ``PluginInfo`` per entry point: loaded,
failed (and why) or disabled. The built-in panes are registered in the same group by lazycelery's
own distribution; the layout places them, so for them discovery only confirms they are there.

Mounting (``PluginHost``) creates each loaded third-party pane with its ``PaneContext``, wraps its
container under a title bar, adds its commands (and a ``pane.<name>`` command with its number key)
to the one command registry, and lets the commands that work in every pane (quit, help, palette,
cursor and page keys, tab) work in plugin panes too. A plugin that raises in ``create``,
``refresh`` or while rendering is reported in the status line and replaced by a message; it never
takes the dashboard down.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import metadata
from typing import TYPE_CHECKING, Any, Final

from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.key_binding import KeyBindingsBase
from prompt_toolkit.layout import Container, HSplit, Window, walk
from prompt_toolkit.layout.controls import FormattedTextControl
from prompt_toolkit.layout.dimension import Dimension
from prompt_toolkit.layout.mouse_handlers import MouseHandlers
from prompt_toolkit.layout.screen import Screen, WritePosition

from lazycelery import __version__
from lazycelery.config import mask_url
from lazycelery.core.query import FilterError
from lazycelery.panes_api import (
    API_VERSION,
    ENTRY_POINT_GROUP,
    SUPPORTED_API_VERSIONS,
    Pane,
    PaneCommand,
    PaneContext,
    PaneView,
    SettingsView,
)
from lazycelery.tui.commands import Command, CommandRegistry
from lazycelery.tui.keys import KeySeq, display_keys
from lazycelery.tui.state import ALL_CONTEXTS, PANE_ORDER, PANES

if TYPE_CHECKING:
    from lazycelery.config import Settings
    from lazycelery.tui.app import Dashboard

__all__ = [
    "BUILTIN_PANES",
    "PLUGINS_ENV",
    "BuiltinPane",
    "PluginHost",
    "PluginInfo",
    "Selection",
    "check",
    "discover",
    "settings_view",
]

log = logging.getLogger(__name__)

#: ``LAZYCELERY_PLUGINS=beat,slowest``: only these third-party panes load
PLUGINS_ENV: Final = "LAZYCELERY_PLUGINS"
DISTRIBUTION: Final = "lazycelery"
_NAME: Final = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_FREE_KEYS: Final = tuple("56789")
#: ``g``/``G`` reach a plugin's ``move`` as this many rows
_FAR: Final = 1_000_000_000
_MAX_REASON: Final = 240

LOADED: Final = "loaded"
FAILED: Final = "failed"
DISABLED: Final = "disabled"


# --------------------------------------------------------------------------- built-ins


@dataclass(frozen=True)
class BuiltinPane:
    """A pane the layout itself provides (workers, queues, tasks, detail). It is registered in
    the entry-point group like any plugin, so it is listed and checked the same way, but the
    layout builds it: ``create`` is never called for it."""

    name: str
    title: str
    key: str
    api_version: int = API_VERSION

    def create(self, ctx: PaneContext) -> PaneView:
        raise RuntimeError(f"the built-in {self.name} pane is built by the layout")


WORKERS: Final = BuiltinPane("workers", "Workers", "1")
QUEUES: Final = BuiltinPane("queues", "Queues", "2")
TASKS: Final = BuiltinPane("tasks", "Tasks", "3")
DETAIL: Final = BuiltinPane("detail", "Task detail", "4")
BUILTIN_PANES: Final[Mapping[str, BuiltinPane]] = {
    p.name: p for p in (WORKERS, QUEUES, TASKS, DETAIL)}


# --------------------------------------------------------------------------- discovery


@dataclass(frozen=True)
class Selection:
    """Which third-party panes may load: all, none (``--no-plugins``), or those named in
    ``LAZYCELERY_PLUGINS`` (pane names or distribution names). Built-ins always load."""

    no_plugins: bool = False
    only: frozenset[str] | None = None

    @classmethod
    def from_environment(cls, no_plugins: bool = False,
                         environ: Mapping[str, str] | None = None) -> Selection:
        raw = (os.environ if environ is None else environ).get(PLUGINS_ENV, "")
        names = frozenset(_normalize(n) for n in raw.split(",") if n.strip())
        return cls(no_plugins=no_plugins, only=names or None)

    def refuses(self, name: str, distribution: str) -> str | None:
        """Why a third-party pane is not loaded, or None when it may load."""
        if self.no_plugins:
            return "--no-plugins"
        if self.only is not None and not {_normalize(name), _normalize(distribution)} & self.only:
            return f"not in {PLUGINS_ENV}"
        return None

    def describe(self) -> str:
        if self.no_plugins:
            return "built-in panes only (--no-plugins)"
        if self.only is not None:
            return f"{PLUGINS_ENV}={','.join(sorted(self.only))}: only these plugins load"
        return f"every installed plugin loads ({PLUGINS_ENV} unset)"


@dataclass
class PluginInfo:
    """One entry point of the group and what became of it."""

    name: str
    #: ``module:attribute`` the entry point names
    target: str
    distribution: str
    version: str
    builtin: bool
    state: str = LOADED
    reason: str = ""
    #: the formatted traceback of a failure (``lazycelery plugins --verbose``)
    detail: str = ""
    pane: Pane | None = field(default=None, repr=False)
    title: str = ""
    #: the number key the pane gets (None: palette only)
    key: str | None = None

    @property
    def loaded(self) -> bool:
        return self.state == LOADED

    def status(self) -> str:
        """``loaded``, ``failed: reason`` or ``disabled: reason``."""
        if not self.reason:
            return self.state
        return f"{self.state} ({self.reason})" if self.loaded else f"{self.state}: {self.reason}"

    def fail(self, stage: str, exc: BaseException) -> None:
        self.state = FAILED
        self.reason = _one_line(f"{stage}: {type(exc).__name__}: {exc}")
        self.detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REASON else text[:_MAX_REASON - 1] + "…"


def _entry_points() -> list[metadata.EntryPoint]:
    return list(metadata.entry_points(group=ENTRY_POINT_GROUP))


def _dist_of(ep: metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "?", "?"
    return str(dist.metadata["Name"] or "?"), str(dist.version or "?")


class _Invalid(Exception):
    """The entry point's object is not a usable Pane."""


def _as_pane(obj: Any, entry_name: str) -> Pane:
    """The Pane an entry point names (an instance, a class, or a factory), checked."""
    if isinstance(obj, type) or (not hasattr(obj, "create") and callable(obj)):
        obj = obj()
    version = getattr(obj, "api_version", None)
    if version not in SUPPORTED_API_VERSIONS:
        supported = ", ".join(str(v) for v in sorted(SUPPORTED_API_VERSIONS))
        what = "no api_version" if version is None else f"API version {version!r}"
        raise _Invalid(f"{what}; this lazycelery supports {supported}")
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise _Invalid(f"name {name!r} is not a pane name ([a-z][a-z0-9_-]*, up to 32)")
    if name != entry_name:
        raise _Invalid(f"the entry point is called {entry_name!r} but the pane {name!r}")
    if not isinstance(getattr(obj, "title", None), str):
        raise _Invalid("title is not a string")
    key = getattr(obj, "key", None)
    if key is not None and not isinstance(key, str):
        raise _Invalid("key is not a string or None")
    if not callable(getattr(obj, "create", None)):
        raise _Invalid("no create(ctx) method")
    pane: Pane = obj
    return pane


def discover(selection: Selection | None = None,
             entry_points: Iterable[metadata.EntryPoint] | None = None) -> list[PluginInfo]:
    """Every pane in the entry-point group, built-ins first; never raises for a bad plugin."""
    selection = selection or Selection()
    eps = _entry_points() if entry_points is None else list(entry_points)
    builtins: dict[str, PluginInfo] = {}
    others: list[PluginInfo] = []
    for ep in sorted(eps, key=lambda e: (e.name, e.value)):
        dist, version = _dist_of(ep)
        builtin = _normalize(dist) == DISTRIBUTION and ep.name in BUILTIN_PANES
        info = PluginInfo(ep.name, ep.value, dist, version, builtin)
        if builtin:
            builtins.setdefault(ep.name, info)
            _check_builtin(info, ep)
            continue
        others.append(info)
        refusal = selection.refuses(ep.name, dist)
        if refusal is not None:
            info.state, info.reason = DISABLED, refusal
            continue
        _load(info, ep)
    out = [_builtin_info(name, builtins.get(name)) for name in PANE_ORDER]
    _check_names(others)
    out += others
    _assign_keys(out)
    return out


def _builtin_info(name: str, info: PluginInfo | None) -> PluginInfo:
    pane = BUILTIN_PANES[name]
    if info is None:  # a stale install: the layout still has the pane
        info = PluginInfo(name, f"{__name__}:{name.upper()}", DISTRIBUTION, __version__, True,
                          reason="not registered as an entry point: reinstall lazycelery "
                                 "(pip install -e .)")
    info.pane, info.title, info.key = pane, pane.title, pane.key
    return info


def _check_builtin(info: PluginInfo, ep: metadata.EntryPoint) -> None:
    """A built-in's entry point must name the built-in pane (the layout provides it anyway)."""
    try:
        obj = ep.load()
    except Exception as exc:
        obj = exc
    if obj is not BUILTIN_PANES[info.name]:
        info.reason = f"the entry point {ep.value} is not the built-in pane; reinstall lazycelery"


def _load(info: PluginInfo, ep: metadata.EntryPoint) -> None:
    try:
        obj = ep.load()
    except (Exception, SystemExit) as exc:
        log.debug("pane plugin %s failed to import", info.name, exc_info=True)
        info.fail("import failed", exc)
        return
    try:
        pane = _as_pane(obj, ep.name)
    except _Invalid as exc:
        info.state, info.reason = FAILED, _one_line(str(exc))
        return
    except Exception as exc:
        info.fail("bad pane object", exc)
        return
    info.pane, info.title = pane, pane.title
    info.key = pane.key


def _check_names(others: list[PluginInfo]) -> None:
    """Third-party names must not shadow a built-in, a key context, or each other."""
    seen: dict[str, PluginInfo] = {}
    for info in others:
        if not info.loaded:
            continue
        if info.name in ALL_CONTEXTS or info.name in BUILTIN_PANES or info.name == "pane":
            info.state, info.reason = FAILED, f"the name {info.name!r} is reserved by lazycelery"
        elif info.name in seen:
            info.state = FAILED
            info.reason = f"another pane is called {info.name!r} ({seen[info.name].distribution})"
        else:
            seen[info.name] = info


def _assign_keys(infos: list[PluginInfo]) -> None:
    """Built-ins keep 1-4; a plugin gets the key it asks for when free, else the next of 5-9."""
    taken = {i.key for i in infos if i.builtin}
    wanted = [i for i in infos if not i.builtin and i.loaded]
    for info in wanted:
        if info.key is not None and info.key in taken:
            info.key = None
        if info.key is not None:
            taken.add(info.key)
    for info in wanted:
        if info.key is None:
            info.key = next((k for k in _FREE_KEYS if k not in taken), None)
            if info.key is not None:
                taken.add(info.key)
    for info in infos:
        if not info.builtin and not info.loaded:
            info.key = None


def settings_view(settings: Settings | None) -> SettingsView:
    """What plugins may see of the settings: no secrets."""
    if settings is None:
        return SettingsView()
    return SettingsView(
        broker=mask_url(settings.broker_url), result_backend=mask_url(settings.result_backend),
        app=settings.app_spec, environment=settings.env_name, read_only=settings.read_only,
        max_tasks=settings.max_tasks, queues=tuple(settings.queues),
    )


# --------------------------------------------------------------------------- mounting


class _Guarded(Container):
    """A plugin's container: an exception while it is measured or drawn (its controls, their
    lines, its dimensions) fails the plugin, not the frame."""

    def __init__(self, inner: Container, on_error: Callable[[str, BaseException], None]) -> None:
        self.inner = inner
        self.on_error = on_error

    def reset(self) -> None:
        try:
            self.inner.reset()
        except Exception as exc:
            self.on_error("reset", exc)

    def preferred_width(self, max_available_width: int) -> Dimension:
        try:
            return self.inner.preferred_width(max_available_width)
        except Exception as exc:
            self.on_error("render", exc)
            return Dimension()

    def preferred_height(self, width: int, max_available_height: int) -> Dimension:
        try:
            return self.inner.preferred_height(width, max_available_height)
        except Exception as exc:
            self.on_error("render", exc)
            return Dimension()

    def write_to_screen(self, screen: Screen, mouse_handlers: MouseHandlers,
                        write_position: WritePosition, parent_style: str, erase_bg: bool,
                        z_index: int | None) -> None:
        try:
            self.inner.write_to_screen(screen, mouse_handlers, write_position, parent_style,
                                       erase_bg, z_index)
        except Exception as exc:
            self.on_error("render", exc)

    def is_modal(self) -> bool:
        return self.inner.is_modal()

    def get_key_bindings(self) -> KeyBindingsBase | None:
        return self.inner.get_key_bindings()

    def get_children(self) -> list[Container]:
        return [self.inner]


@dataclass
class _Mounted:
    """One plugin pane in this dashboard."""

    info: PluginInfo
    view: PaneView
    container: Container
    focus: Window
    #: the plugin's windows (the tallest one's height is the page size)
    windows: list[Window]
    #: what the view last refreshed for (index version, queue snapshot identity)
    stamp: tuple[int, int] | None = None
    dirty: bool = True


class PluginHost:
    """The third-party panes of one dashboard, their commands, and their refreshes."""

    def __init__(self, d: Dashboard, plugins: Sequence[PluginInfo] = (),
                 settings: Settings | None = None) -> None:
        self._d = d
        self.infos = list(plugins)
        self._settings = settings
        self._view_settings = settings_view(settings)
        self._mounted: dict[str, _Mounted] = {}
        self._failed: dict[str, Container] = {}
        self.notes: list[str] = []
        for info in self.infos:
            if not info.builtin and info.loaded and info.pane is not None:
                self._mount(info, info.pane)
        self.names: tuple[str, ...] = tuple(self._mounted)
        self.order: tuple[str, ...] = PANE_ORDER + self.names
        if self.names:
            d.registry = CommandRegistry(self._commands(list(d.registry)))
        problems = [f"plugin {i.name} {i.status()}" for i in self.infos if i.state == FAILED]
        if problems:
            d.ui.flash("; ".join(problems + self.notes), error=True, seconds=10.0)
        elif self.notes:
            d.ui.flash("; ".join(self.notes), seconds=8.0)

    # ------------------------------------------------------------------ mounting

    def _context(self, name: str) -> PaneContext:
        d = self._d
        settings = self._settings
        return PaneContext(
            pane=name, index=d.index, settings=self._view_settings,
            queue_snapshot=lambda: d.queue_snapshot,
            workers=lambda: tuple(d.workers.items),
            invalidate=lambda: self._invalidate(name),
            run_command=d.run,
            show_tasks=self._show_tasks,
            celery_app=settings.celery_app if settings is not None else _no_app,
            log=self._log,
        )

    def _mount(self, info: PluginInfo, pane: Pane) -> None:
        try:
            view = pane.create(self._context(info.name))
            body = view.container()
        except Exception as exc:
            log.debug("pane plugin %s failed in create", info.name, exc_info=True)
            info.fail("create failed", exc)
            return
        guarded = _Guarded(body, lambda stage, exc: self._fail(info.name, stage, exc))
        bar = Window(FormattedTextControl(lambda: self._title(info.name), focusable=True),
                     height=1, style=lambda: self._title_style(info.name))
        windows = [w for w in walk(body) if isinstance(w, Window)]
        focus = next((w for w in windows if w.content.is_focusable()), bar)
        self._mounted[info.name] = _Mounted(info, view, HSplit([bar, guarded]), focus, windows)

    def _commands(self, existing: list[Command]) -> list[Command]:
        """The registry's commands, those that work in every pane extended to the plugin panes,
        then ``pane.<name>`` and each plugin's own commands."""
        names = frozenset(self.names)
        out = [self._widen(c, names) if c.contexts >= PANES and c.name not in _OWN_KEYS else c
               for c in existing]
        for name, m in self._mounted.items():
            info = m.info
            keys = (info.key,) if info.key else ()
            out.append(self._checked(out, Command(
                f"pane.{name}", f"Go to {info.title}", _focuser(name), keys, PANES | names,
                group="Panes"), name))
            try:
                wanted = list(m.view.commands())
            except Exception as exc:
                self._fail(name, "commands", exc)
                continue
            for pc in wanted:
                command = self._command(name, info.title, pc, names)
                if command is None:
                    continue
                if any(c.name == command.name for c in out):  # twice, or a built-in's name
                    self.notes.append(f"plugin {name}: command {command.name} already exists")
                    continue
                out.append(self._checked(out, command, name))
        return out

    def _widen(self, command: Command, names: frozenset[str]) -> Command:
        builtin = command.handler
        name = command.name
        handler = builtin
        if name in ("pane.next", "pane.prev"):
            delta = 1 if name == "pane.next" else -1

            def handler(d: Dashboard) -> None:
                self._cycle(d, delta, builtin)

        elif name in _MOVES:
            step = _MOVES[name]

            def handler(d: Dashboard) -> None:
                self._move(d, step, builtin)

        return replace(command, contexts=command.contexts | names, handler=handler)

    def _command(self, pane: str, title: str, pc: PaneCommand,
                 names: frozenset[str]) -> Command | None:
        if not isinstance(pc, PaneCommand) or not _NAME.fullmatch(pc.name.replace(".", "-")):
            self.notes.append(f"plugin {pane}: ignored a bad command {pc!r:.60}")
            return None
        run = pc.run
        contexts = (PANES | names) if pc.everywhere else frozenset({pane})
        try:
            return Command(f"{pane}.{pc.name}", pc.title, lambda d: run(), tuple(pc.keys),
                           contexts, group=title, footer=pc.footer, palette=pc.palette)
        except ValueError as exc:
            self.notes.append(f"plugin {pane}: command {pc.name}: {exc}")
            return None

    def _checked(self, existing: list[Command], command: Command, pane: str) -> Command:
        """``command`` without the keys another command already has where both work."""
        taken: set[KeySeq] = set()
        for other in existing:
            if other.contexts & command.contexts:
                taken.update(other.bindings)
        clash = [s for s in command.bindings if s in taken]
        if not clash:
            return command
        self.notes.append(f"plugin {pane}: key {display_keys(clash)} of {command.name} is taken")
        kept = tuple(s for s in command.bindings if s not in taken)
        return replace(command, _parsed=kept)

    # ------------------------------------------------------------------ routing

    def _cycle(self, d: Dashboard, delta: int, builtin: Callable[[Dashboard], None]) -> None:
        order = self.order
        current = d.ui.pane
        target = order[(order.index(current) + delta) % len(order)] if current in order \
            else PANE_ORDER[0]
        if current in PANE_ORDER and target in PANE_ORDER:
            builtin(d)
        else:
            d.focus_pane(target)

    def _move(self, d: Dashboard, step: Callable[[int], int],
              builtin: Callable[[Dashboard], None]) -> None:
        m = self._mounted.get(d.ui.context)
        if m is None:
            builtin(d)
            return
        heights = [w.render_info.window_height for w in m.windows if w.render_info is not None]
        rows = max(heights) if heights else 10
        try:
            m.view.move(step(rows))
        except Exception as exc:
            self._fail(m.info.name, "move", exc)

    # ------------------------------------------------------------------ context callbacks

    def _invalidate(self, name: str) -> None:
        m = self._mounted.get(name)
        if m is not None:
            m.dirty = True
        app = getattr(self._d, "app", None)
        if app is not None:
            app.invalidate()

    def _log(self, message: str, error: bool) -> None:
        self._d.ui.flash(message, error=error)
        app = getattr(self._d, "app", None)
        if app is not None:
            app.invalidate()

    def _show_tasks(self, filter_text: str) -> None:
        d = self._d
        try:
            d.apply_filter(filter_text)
        except FilterError as exc:
            d.ui.flash(f"filter {filter_text!r}: {exc.message}", error=True)
            return
        d.focus_pane("tasks")

    # ------------------------------------------------------------------ per frame

    def container(self, name: str) -> Container | None:
        """The container to show for pane ``name`` (None: not a plugin pane)."""
        failed = self._failed.get(name)
        if failed is not None:
            return failed
        m = self._mounted.get(name)
        return m.container if m is not None else None

    def focus_windows(self) -> dict[str, Window]:
        return {name: m.focus for name, m in self._mounted.items()}

    def view(self, name: str) -> PaneView | None:
        m = self._mounted.get(name)
        return m.view if m is not None and name not in self._failed else None

    def pull(self) -> None:
        """Refresh the visible plugin pane if its data changed (runs before every render)."""
        d = self._d
        m = self._mounted.get(d.ui.pane)
        if m is None or m.info.name in self._failed:
            return
        stamp = (d.index.version, id(d.queue_snapshot))
        if not m.dirty and stamp == m.stamp:
            return
        m.dirty, m.stamp = False, stamp
        try:
            m.view.refresh()
        except Exception as exc:
            self._fail(m.info.name, "refresh", exc)

    def close(self) -> None:
        for m in self._mounted.values():
            try:
                m.view.close()
            except Exception:
                log.exception("pane plugin %s failed to close", m.info.name)

    # ------------------------------------------------------------------ failures

    def _fail(self, name: str, stage: str, exc: BaseException) -> None:
        if name in self._failed:
            return
        log.debug("pane plugin %s failed in %s", name, stage, exc_info=True)
        m = self._mounted.get(name)
        info = m.info if m is not None else None
        if info is not None:
            info.fail(f"{stage} failed", exc)
        reason = info.reason if info is not None else f"{type(exc).__name__}: {exc}"
        message: StyleAndTextTuples = [
            ("class:footer.error", f" plugin {name} {FAILED}: {reason} "), ("", "\n\n"),
            ("class:pane.empty", " The pane is switched off for this session; the rest of the "
                                 "dashboard is unaffected.\n `lazycelery plugins --check` shows "
                                 "the traceback; `--no-plugins` starts without plugins."),
        ]
        title = m.container.get_children()[0] if m is not None else Window(height=1)
        self._failed[name] = HSplit([title, Window(FormattedTextControl(message),
                                                   wrap_lines=True)])
        self._d.ui.flash(f"plugin {name} {FAILED}: {reason}", error=True, seconds=10.0)
        app = getattr(self._d, "app", None)
        if app is not None:
            app.invalidate()  # the next frame shows the message instead of the pane

    # ------------------------------------------------------------------ titles

    def _title(self, name: str) -> StyleAndTextTuples:
        m = self._mounted[name]
        key = f"{m.info.key} " if m.info.key else ""
        out: StyleAndTextTuples = [("bold", f" {key}{m.info.title} ")]
        if name in self._failed:
            return [*out, ("bold", f"  {FAILED.upper()}")]
        try:
            subtitle = m.view.subtitle()
        except Exception as exc:
            self._fail(name, "subtitle", exc)
            return out
        if subtitle:
            out.append(("", f" {_one_line(str(subtitle))}"))
        return out

    def _title_style(self, name: str) -> str:
        if name in self._failed:
            return "class:pane.title.stale"
        return "class:pane.title.focused" if self._d.ui.pane == name else "class:pane.title"

    def usable_keys(self, keys: Mapping[str, Any]) -> dict[str, Any]:
        """``[keys]`` without remaps of plugins that are installed but not mounted (disabled or
        failed): those must not stop the dashboard from starting."""
        absent = {i.name for i in self.infos if not i.builtin and i.name not in self._mounted}
        out: dict[str, Any] = {}
        for command, spec in keys.items():
            prefix = command.removeprefix("pane.").split(".")[0]
            if prefix in absent:
                continue
            out[command] = spec
        return out


def _focuser(name: str) -> Callable[[Dashboard], None]:
    return lambda d: d.focus_pane(name)


def _no_app() -> Any:
    raise LookupError("no Celery app in this session")


#: commands that work in every built-in pane but whose keys a plugin pane binds itself
_OWN_KEYS: Final = frozenset({"open"})
_MOVES: Final[Mapping[str, Callable[[int], int]]] = {
    "cursor.down": lambda rows: 1,
    "cursor.up": lambda rows: -1,
    "cursor.first": lambda rows: -_FAR,
    "cursor.last": lambda rows: _FAR,
    "page.down": lambda rows: max(1, rows // 2),
    "page.up": lambda rows: -max(1, rows // 2),
}


def check(infos: Sequence[PluginInfo], settings: Settings | None = None) -> None:
    """Mount the loaded plugin panes in an offscreen dashboard and draw each once, so that
    failures in ``create``, ``refresh`` or rendering show in ``infos`` (``plugins --check``)."""
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from lazycelery.core.index import TaskIndex
    from lazycelery.tui.app import Dashboard

    with create_pipe_input() as pipe:
        d = Dashboard(TaskIndex(), input=pipe, output=DummyOutput(), plugins=infos,
                      settings=settings, refresh_interval=None)
        try:
            size = d.size()
            for name in d.plugins.names:
                d.focus_pane(name)
                d.pull()
                screen = Screen(initial_width=size.columns, initial_height=size.rows)
                d.layout.container.write_to_screen(
                    screen, MouseHandlers(), WritePosition(0, 0, size.columns, size.rows),
                    parent_style="", erase_bg=False, z_index=None)
        finally:
            d.shutdown()
